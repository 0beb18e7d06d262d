using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;

using PromHa.Node.Sink;

namespace PromHa.Lab;

/// <summary>
/// A lab of Linux network namespaces in which every node of a <see cref="LocalCluster"/> runs as if
/// on its own host, so that a test can cut one node's network the way a pulled cable or a dead
/// switch port does (packets silently dropped), not by killing a process or closing a proxy.
/// <code>
///   hub ns "phclu": bridge "phcbr"  ── phcNh ═veth═ phcNc (10.77.0.N/24) ── node ns "phcN"
///   root ns:        phcNo (10.78.N.1/30) ═veth═ phcNx (10.78.N.2/30) ──── node ns "phcN"
/// </code>
/// The cluster link (remoting, peers' HTTP, scrapes) goes through the hub's bridge; the observer
/// link reaches each node from the root namespace only, so the test process can still poll a node
/// whose cluster link is cut. <see cref="Cut(int)"/> sets the hub-side end of a node's cluster veth
/// down: the node keeps its address and sees NO-CARRIER, its peers' packets to it go nowhere.
/// Every name starts with the prefix (default "phc"); no name begins an `ip` keyword (shared/PLATFORM.md).
/// Needs root. Everything is made with `ip` (iproute2), run without a shell.
/// </summary>
public sealed class NetnsLab : IDisposable
{
    public const string DefaultPrefix = "phc";
    private readonly object _gate = new();
    private readonly bool[] _cut;
    private bool _disposed;
    private FileStream? _lock;

    public string Prefix { get; }
    /// <summary>How many node namespaces (1..Count).</summary>
    public int Count { get; }
    /// <summary>The `ip` binary.</summary>
    public string Ip { get; }
    public string HubNamespace => $"{Prefix}lu";
    public string Bridge => $"{Prefix}br";

    /// <summary>The namespace of node <paramref name="i"/> (1-based).</summary>
    public string Namespace(int i) => $"{Prefix}{Check(i)}";
    /// <summary>Node i's address on the cluster network (the hub bridge).</summary>
    public string ClusterAddress(int i) => $"10.77.0.{Check(i)}";
    /// <summary>Node i's address on its observer link, reachable from the root namespace.</summary>
    public string ObserverAddress(int i) => $"10.78.{Check(i)}.2";
    /// <summary>The root namespace's end of node i's observer link.</summary>
    public string ObserverRootAddress(int i) => $"10.78.{Check(i)}.1";
    /// <summary>Node i's end of its cluster veth (in its namespace).</summary>
    public string NodeClusterLink(int i) => $"{Prefix}{Check(i)}c";
    /// <summary>The hub's end of node i's cluster veth (a port of the bridge): the one Cut sets down.</summary>
    public string HubClusterLink(int i) => $"{Prefix}{Check(i)}h";
    public string RootObserverLink(int i) => $"{Prefix}{Check(i)}o";
    public string NodeObserverLink(int i) => $"{Prefix}{Check(i)}x";

    /// <summary>The command prefix that runs a program inside node i's namespace (`ip netns exec` execs it: the PID is the program's).</summary>
    public IReadOnlyList<string> Exec(int i) => [Ip, "netns", "exec", Namespace(i)];

    /// <summary>Commands run so far, with their durations (for a failure report).</summary>
    public List<string> Journal { get; } = [];

    private NetnsLab(int count, string prefix, string ip)
    {
        Count = count;
        Prefix = prefix;
        Ip = ip;
        _cut = new bool[count + 1];
    }

    /// <summary>
    /// Makes the lab for <paramref name="count"/> nodes, first deleting whatever a previous run with
    /// the same prefix left behind (a crashed test never ran its Dispose). The names and addresses
    /// are fixed, so one lab per prefix and host at a time: a lock file (released by the kernel if
    /// this process dies) makes a second run wait up to <paramref name="waitForLock"/> (default
    /// 10 min) rather than delete a running lab as leftovers. Throws <see cref="NetnsLabException"/>,
    /// saying why, when it cannot (not root, no `ip`, no netns support, the lock still held).
    /// </summary>
    public static NetnsLab Create(int count, string prefix = DefaultPrefix, string? ip = null, TimeSpan? waitForLock = null)
    {
        if (count is < 1 or > 250) throw new ArgumentOutOfRangeException(nameof(count), count, "1-250 nodes");
        // interface names: prefix + up to 3 digits + 1 letter, at most 15 characters (IFNAMSIZ - 1);
        // letters only, so that no prefix's names match another's (phc12c is phc's, never ph's)
        if (!Regex.IsMatch(prefix, "^[a-z]{1,10}$"))
            throw new ArgumentException($"'{prefix}' must be 1-10 lower-case letters", nameof(prefix));
        if (!OperatingSystem.IsLinux()) throw new NetnsLabException("network namespaces need Linux");
        if (geteuid() != 0)
            throw new NetnsLabException($"network namespaces need root (`ip netns add` as uid {geteuid()} fails): run the partition tests as root");
        ip ??= new[] { "/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip" }.FirstOrDefault(File.Exists)
               ?? throw new NetnsLabException("`ip` (iproute2) not found: apt-get install -y iproute2");
        // before anything is deleted: a lab in use is not a leftover
        var lab = new NetnsLab(count, prefix, ip) { _lock = Lock(prefix, waitForLock ?? TimeSpan.FromMinutes(10)) };
        try
        {
            lab.DeleteLeftovers();
            lab.Build();
        }
        catch (Exception e)
        {
            lab.Dispose();
            if (e is NetnsLabException) throw;
            throw new NetnsLabException($"could not build the network namespace lab: {e.Message}", e);
        }
        return lab;
    }

    private void Build()
    {
        var hub = HubNamespace;
        Run("netns", "add", hub);
        Run("-netns", hub, "link", "set", "dev", "lo", "up");
        Run("-netns", hub, "link", "add", "name", Bridge, "type", "bridge");
        Run("-netns", hub, "link", "set", "dev", Bridge, "up");
        for (var i = 1; i <= Count; i++)
        {
            var ns = Namespace(i);
            Run("netns", "add", ns);
            Run("-netns", ns, "link", "set", "dev", "lo", "up");
            // cluster link: node end in its namespace, hub end on the bridge
            Run("-netns", ns, "link", "add", "name", NodeClusterLink(i), "type", "veth", "peer", "name", HubClusterLink(i), "netns", hub);
            Run("-netns", hub, "link", "set", "dev", HubClusterLink(i), "master", Bridge);
            Run("-netns", hub, "link", "set", "dev", HubClusterLink(i), "up");
            Run("-netns", ns, "addr", "add", $"{ClusterAddress(i)}/24", "dev", NodeClusterLink(i));
            Run("-netns", ns, "link", "set", "dev", NodeClusterLink(i), "up");
            // observer link: root end here, node end in its namespace
            Run("link", "add", "name", RootObserverLink(i), "type", "veth", "peer", "name", NodeObserverLink(i), "netns", ns);
            Run("addr", "add", $"{ObserverRootAddress(i)}/30", "dev", RootObserverLink(i));
            Run("link", "set", "dev", RootObserverLink(i), "up");
            Run("-netns", ns, "addr", "add", $"{ObserverAddress(i)}/30", "dev", NodeObserverLink(i));
            Run("-netns", ns, "link", "set", "dev", NodeObserverLink(i), "up");
        }
    }

    /// <summary>Cuts node i off the cluster network (its observer link stays).</summary>
    public void Cut(int i) => SetCluster(i, up: false);

    /// <summary>Puts node i back on the cluster network.</summary>
    public void Heal(int i) => SetCluster(i, up: true);

    public void Cut(LocalNode n) => Cut(IndexOf(n));
    public void Heal(LocalNode n) => Heal(IndexOf(n));

    public void CutAll()
    {
        for (var i = 1; i <= Count; i++) Cut(i);
    }

    /// <summary>Every link up and every filter gone.</summary>
    public void HealAll()
    {
        for (var i = 1; i <= Count; i++) Clear(i);
    }

    /// <summary>
    /// Applies a packet filter to node i's cluster link inside its namespace (iptables, which works in
    /// namespaces here; this kernel has no netem). The link stays up: the fault is what the filter
    /// does with the packets. <see cref="Clear"/> removes it.
    /// </summary>
    public void Apply(int i, LinkFault fault)
    {
        if (fault == LinkFault.Down)
        {
            Cut(i);
            return;
        }
        var link = NodeClusterLink(i);
        string[][] rules = fault switch
        {
            LinkFault.Drop => [["INPUT", "-i", link, "-j", "DROP"], ["OUTPUT", "-o", link, "-j", "DROP"]],
            // what `ufw reject` does for TCP: established connections are reset too
            LinkFault.RejectTcpReset => [["INPUT", "-i", link, "-p", "tcp", "-j", "REJECT", "--reject-with", "tcp-reset"]],
            LinkFault.RejectPortUnreachable => [["INPUT", "-i", link, "-p", "tcp", "-j", "REJECT", "--reject-with", "icmp-port-unreachable"]],
            LinkFault.RejectHostProhibited => [["INPUT", "-i", link, "-p", "tcp", "-j", "REJECT", "--reject-with", "icmp-host-prohibited"]],
            LinkFault.DropInbound => [["INPUT", "-i", link, "-j", "DROP"]],
            LinkFault.DropOutbound => [["OUTPUT", "-o", link, "-j", "DROP"]],
            LinkFault.Loss30 =>
            [
                ["INPUT", "-i", link, "-m", "statistic", "--mode", "random", "--probability", "0.3", "-j", "DROP"],
                ["OUTPUT", "-o", link, "-m", "statistic", "--mode", "random", "--probability", "0.3", "-j", "DROP"],
            ],
            _ => throw new ArgumentOutOfRangeException(nameof(fault), fault, null),
        };
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            foreach (var rule in rules) Run(["netns", "exec", Namespace(Check(i)), Iptables, "-I", .. rule]);
            _cut[i] = true;
        }
    }

    /// <summary>Removes every filter from node i's namespace and puts its cluster link up.</summary>
    public void Clear(int i)
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (File.Exists(Iptables))
                foreach (var chain in new[] { "INPUT", "OUTPUT" }) TryRun("netns", "exec", Namespace(Check(i)), Iptables, "-F", chain);
        }
        Heal(i);
    }

    public void Apply(LocalNode n, LinkFault fault) => Apply(IndexOf(n), fault);
    public void Clear(LocalNode n) => Clear(IndexOf(n));

    /// <summary>Debian's iptables (package iptables; nf_tables underneath).</summary>
    public static string Iptables => new[] { "/usr/sbin/iptables", "/sbin/iptables" }.FirstOrDefault(File.Exists) ?? "/usr/sbin/iptables";

    public bool IsCut(int i)
    {
        lock (_gate) return _cut[Check(i)];
    }

    private void SetCluster(int i, bool up)
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            Run("-netns", HubNamespace, "link", "set", "dev", HubClusterLink(i), up ? "up" : "down");
            _cut[i] = !up;
        }
    }

    private static int IndexOf(LocalNode n) =>
        n.NetnsIndex ?? throw new InvalidOperationException($"{n.Name} does not run in a network namespace of this lab");

    private int Check(int i) => i >= 1 && i <= Count ? i : throw new ArgumentOutOfRangeException(nameof(i), i, $"nodes are 1..{Count}");

    /// <summary>
    /// Deletes this prefix's namespaces (the node ends of the veths go with them) and root-side
    /// links, whatever the node count of the run that made them. A namespace that still holds
    /// processes lives on unnamed until they exit; deleting the root-side veth cuts it off anyway.
    /// </summary>
    private void DeleteLeftovers()
    {
        var (links, namespaces) = Mine(Prefix, args => Exec(args).Out);
        foreach (var name in links) TryRun("link", "del", "dev", name);
        foreach (var name in namespaces) TryRun("netns", "del", name);
    }

    /// <summary>Deletes everything the lab made. Stop the processes inside first (LocalCluster.DisposeAsync).</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
        }
        for (var i = 1; i <= Count; i++)
        {
            TryRun("link", "del", "dev", RootObserverLink(i));
            TryRun("netns", "del", Namespace(i));
        }
        TryRun("netns", "del", HubNamespace);
        _lock?.Dispose();
    }

    /// <summary>An exclusive lock on /run/lock/promha-netnslab-PREFIX.lock (flock underneath: the kernel drops it with the process).</summary>
    private static FileStream Lock(string prefix, TimeSpan wait)
    {
        var dir = Directory.Exists("/run/lock") ? "/run/lock" : Path.GetTempPath();
        var path = Path.Combine(dir, $"promha-netnslab-{prefix}.lock");
        var sw = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException) when (sw.Elapsed < wait)
            {
                Thread.Sleep(1000);
            }
            catch (IOException e)
            {
                throw new NetnsLabException($"another process holds {path} (a lab with prefix '{prefix}' is in use) after waiting {wait.TotalSeconds:F0} s: {e.Message}", e);
            }
        }
    }

    /// <summary>What of this prefix is still there (namespaces and root links); empty after Dispose.</summary>
    public static IReadOnlyList<string> Remains(string prefix = DefaultPrefix, string ip = "/usr/sbin/ip")
    {
        var (links, namespaces) = Mine(prefix, args => Exec(ip, args).Out);
        return [.. namespaces.Select(n => $"netns {n}"), .. links.Select(l => $"link {l}")];
    }

    /// <summary>The root namespace's links and the namespaces whose names this prefix makes.</summary>
    private static (List<string> Links, List<string> Namespaces) Mine(string prefix, Func<string[], string> ip)
    {
        var nsPattern = new Regex($"^{prefix}(lu|[0-9]+)$");
        var linkPattern = new Regex($"^{prefix}[0-9]+[a-z]$");
        // `ip -o link show`: "7: phc1o@if2: <BROADCAST,...> ..."; `ip netns list`: "phc1 (id: 3)"
        var links = ip(["-o", "link", "show"]).Split('\n').Select(l => l.Split(':', 3)).Where(p => p.Length == 3)
            .Select(p => p[1].Trim().Split('@')[0]).Where(l => linkPattern.IsMatch(l)).ToList();
        var namespaces = ip(["netns", "list"]).Split('\n').Select(l => l.Split(' ')[0].Trim())
            .Where(n => nsPattern.IsMatch(n)).ToList();
        return (links, namespaces);
    }

    private void Run(params string[] args)
    {
        var (code, _, err) = Exec(args);
        if (code != 0)
            throw new NetnsLabException($"`{Ip} {string.Join(' ', args)}` failed (exit {code}): {err.Trim()}");
    }

    private void TryRun(params string[] args) => Exec(args);

    private (int Code, string Out, string Err) Exec(string[] args)
    {
        var sw = Stopwatch.StartNew();
        var r = Exec(Ip, args);
        lock (Journal) Journal.Add($"{DateTime.Now:HH:mm:ss.fff} ip {string.Join(' ', args)} -> {r.Code} ({sw.ElapsedMilliseconds} ms){(r.Code != 0 ? ": " + r.Err.Trim() : "")}");
        return r;
    }

    private static (int Code, string Out, string Err) Exec(string ip, string[] args) => ProcessRun.ExecSync(ip, args, TimeSpan.FromSeconds(10));

    [DllImport("libc", SetLastError = false)]
    private static extern uint geteuid();
}

/// <summary>What a node's cluster link does wrong (<see cref="NetnsLab.Apply(int, LinkFault)"/>).</summary>
public enum LinkFault
{
    /// <summary>The link is down (`ip link set down` on the hub's end).</summary>
    Down,
    /// <summary>Every packet in and out is dropped silently.</summary>
    Drop,
    /// <summary>Inbound TCP is answered with a reset (`ufw reject`).</summary>
    RejectTcpReset,
    /// <summary>Inbound TCP is answered with ICMP port unreachable (iptables' REJECT default).</summary>
    RejectPortUnreachable,
    /// <summary>Inbound TCP is answered with ICMP host prohibited (firewalld's default reject).</summary>
    RejectHostProhibited,
    /// <summary>Only inbound packets are dropped: the node still sends.</summary>
    DropInbound,
    /// <summary>Only outbound packets are dropped: the node still receives.</summary>
    DropOutbound,
    /// <summary>30 % of packets each way are dropped at random.</summary>
    Loss30,
}

/// <summary>The network namespace lab cannot be built (or used): the message says why.</summary>
public sealed class NetnsLabException(string message, Exception? inner = null) : Exception(message, inner);
