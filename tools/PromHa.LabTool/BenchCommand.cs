using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using PromHa.Lab;
using PromHa.Node.Sink;

using PromHa.Node.Console;

namespace PromHa.LabTool;

/// <summary>
/// `promha-lab bench failover`: crash failover, failover after the master's Prometheus dies, graceful
/// switchover, and idle memory/CPU, measured on real `promha run` processes beside real Prometheus
/// servers (a <see cref="LocalCluster"/>). It prints numbers, it is not a test; but it counts every
/// poll at which two nodes answered /primary 200, which must never happen.
/// </summary>
public static class BenchCommand
{
    /// <summary>How long a restarted node may take to join before it counts as stuck and is restarted.</summary>
    private static readonly TimeSpan RejoinPatience = TimeSpan.FromSeconds(30);

    public static Command Create()
    {
        var rounds = new Option<int>("--rounds") { Description = "Rounds per failover figure", DefaultValueFactory = _ => 5 };
        var nodes = new Option<int>("--nodes") { Description = "PromHa nodes (3 or more)", DefaultValueFactory = _ => 3 };
        var dir = new Option<string?>("--dir") { Description = "Directory for the nodes' config, data and logs (default: a new temp directory, deleted afterwards unless the run failed or saw two masters, stuck or exited nodes)" };
        var keep = new Option<bool>("--keep") { Description = "Keep the temp directory afterwards" };
        var env = new Option<string[]>("--env")
        {
            Description = "KEY=VALUE environment variable for the promha node processes only, e.g. --env DOTNET_TieredPGO=0 (repeatable)",
            AllowMultipleArgumentsPerToken = false,
        };
        var noTls = new Option<bool>("--no-tls") { Description = "Plain TCP between the nodes (default: mutual TLS, as the demo runs)" };
        var idleOnly = new Option<bool>("--idle-only") { Description = "Skip the failover scenarios and the partition cases: start, settle, then measure idle memory and CPU" };
        // Tiered compilation still promotes once-a-second methods 30-40 s after start: measuring
        // earlier counts the JIT, not the idle node.
        var idleSeconds = new Option<int>("--idle-seconds") { Description = "Idle time before the CPU window", DefaultValueFactory = _ => 60 };
        var cpuSeconds = new Option<int>("--cpu-seconds") { Description = "Length of the CPU window (CPU time is counted in 10 ms ticks)", DefaultValueFactory = _ => 30 };
        var noPartitions = new Option<bool>("--no-partitions") { Description = "Skip the partition cases (run as root, they cut nodes' links in network namespaces)" };
        var partitionsOnly = new Option<bool>("--partitions-only") { Description = "Only the partition cases (root): skip the failover scenarios and the idle figures" };
        var cases = new Option<string>("--cases") { Description = "Only the partition cases whose name contains one of these texts, '|' between them, e.g. 'cut every link|pair + witness] Drop'" };
        var layouts = new Option<string>("--layouts")
        {
            Description = "Comma-separated layouts to measure: three, supervised, pair-witness, pair-tiebreaker",
            DefaultValueFactory = _ => "three,supervised,pair-witness,pair-tiebreaker",
        };
        var failover = new Command("failover", "Measure failover, switchover, memory and idle CPU on a local cluster, and partitions as root")
            { rounds, nodes, dir, keep, env, idleOnly, idleSeconds, cpuSeconds, noTls, noPartitions, partitionsOnly, layouts, cases };
        failover.SetAction((p, ct) => Failover(p.GetValue(rounds), p.GetValue(nodes), p.GetValue(layouts)!, p.GetValue(dir), p.GetValue(keep),
            p.GetValue(env) ?? [], p.GetValue(idleOnly), !p.GetValue(noTls), TimeSpan.FromSeconds(p.GetValue(idleSeconds)),
            TimeSpan.FromSeconds(Math.Max(1, p.GetValue(cpuSeconds))),
            p.GetValue(partitionsOnly) ? Partitions.Only : p.GetValue(noPartitions) || p.GetValue(idleOnly) ? Partitions.None : Partitions.After, p.GetValue(cases), ct));
        return new Command("bench", "Benchmarks on real local processes") { failover, ConfigBenchCommand.Create(), AlertsBenchCommand.Create(), GateBenchCommand.Create(), RemoteWriteBenchCommand.Create() };
    }

    /// <summary>
    /// The layouts measured: three nodes with external Prometheus (every case, and the idle
    /// figures), three with supervised Prometheus (its death), a pair with a witness and a pure pair
    /// with a tie-breaker (crashes, with the singleton elsewhere and on the master).
    /// </summary>
    private static List<Layout> Layouts(LocalClusterOptions o, int nodes) =>
    [
        new("three", $"{nodes} nodes, external Prometheus", o with { Nodes = nodes }, Main: true),
        new("supervised", $"{nodes} nodes, supervised Prometheus", o with { Nodes = nodes, Servers = LocalServers.Supervised }, Main: true),
        new("pair-witness", "2 nodes and a witness, external Prometheus", o with { Nodes = 2, Witnesses = 1 }, Main: false),
        new("pair-tiebreaker", "2 nodes, tie-breaker target, external Prometheus",
            o with { Nodes = 2, TieBreakerTargets = [TieBreakerTarget.Endpoint] }, Main: false),
    ];

    /// <summary>The "gateway" a pure pair's tie-breaker reaches: a listener of this process on loopback.</summary>
    private static class TieBreakerTarget
    {
        private static readonly System.Net.Sockets.TcpListener Listener = Start();
        public static string Endpoint => $"127.0.0.1:{((System.Net.IPEndPoint)Listener.LocalEndpoint).Port}";

        private static System.Net.Sockets.TcpListener Start()
        {
            var l = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
            l.Start();
            return l;
        }
    }

    /// <summary>Whether the partition cases (root only) run: not at all, after the other scenarios, or alone.</summary>
    private enum Partitions { None, After, Only }

    private static async Task<int> Failover(int rounds, int nodes, string layouts, string? dir, bool keep, string[] env, bool idleOnly, bool tls,
        TimeSpan idleFor, TimeSpan cpuWindow, Partitions partitions, string? only, CancellationToken ct)
    {
        var nodeEnv = new Dictionary<string, string>();
        foreach (var kv in env)
        {
            var i = kv.IndexOf('=');
            if (i <= 0)
            {
                await System.Console.Error.WriteLineAsync($"promha-lab bench: --env {kv}: expected KEY=VALUE");
                return 64;
            }
            nodeEnv[kv[..i]] = kv[(i + 1)..];
        }
        // A pair without a tie-breaker cannot survive a crash (keep-majority), so it would only time out.
        if (rounds < 1 || nodes < 3 || idleFor < TimeSpan.Zero)
        {
            await System.Console.Error.WriteLineAsync("promha-lab bench: --rounds must be >= 1 and --nodes >= 3");
            return 64;
        }
        var options = new LocalClusterOptions { Nodes = nodes, Servers = LocalServers.External, Alertmanager = false, NodeEnvironment = nodeEnv, Tls = tls };
        if (LocalCluster.MissingBinaries(options) is { Count: > 0 } missing)
        {
            await System.Console.Error.WriteLineAsync($"promha-lab bench: missing {string.Join(", ", missing)}. Install with:\n" +
                "  sudo apt-get install -y prometheus prometheus-alertmanager prometheus-node-exporter");
            return 3;
        }

        var commandLine = "promha " + string.Join(' ', Environment.GetCommandLineArgs().Skip(1).Select(Quote));
        var baseDir = dir is null ? Directory.CreateTempSubdirectory("promha-bench").FullName : Path.GetFullPath(dir);
        var all = Layouts(options, nodes);
        var chosen = idleOnly ? all.Where(l => l.Main && l.Options.Servers == LocalServers.External).ToList()
            : all.Where(l => layouts.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).Contains(l.Name)).ToList();
        if (chosen.Count == 0 && partitions != Partitions.Only)
        {
            await System.Console.Error.WriteLineAsync($"promha-lab bench: --layouts {layouts}: none of {string.Join(", ", all.Select(l => l.Name))}");
            return 64;
        }
        var what = partitions == Partitions.Only
            ? "partition cases: 3 nodes in network namespaces with supervised Prometheus"
            : $"layouts: {string.Join("; ", chosen.Select(l => $"{l.Name} ({l.Title})"))}";
        Say($"{commandLine}\n{what}, {(tls ? "mutual TLS" : "plain TCP")} between nodes, " +
            $"{(partitions == Partitions.Only ? "" : $"{rounds} rounds, ")}{Environment.ProcessorCount} CPUs, " +
            $"{BuildKind} build, dir {baseDir}" +
            (nodeEnv.Count > 0 ? $"\nnode environment: {string.Join(' ', nodeEnv.Select(kv => $"{kv.Key}={kv.Value}"))}" : "") +
            (idleOnly ? "\nidle only: no failover scenarios" : "") +
            (partitions == Partitions.Only ? "\npartitions only: no failover scenarios, no idle figures" : ""));

        // System.CommandLine lets the process exit 2 s after Ctrl-C; hold the exit until every
        // process the cluster started has been stopped by its PID.
        var stopped = new ManualResetEventSlim();
        EventHandler holdExit = (_, _) => stopped.Wait(TimeSpan.FromSeconds(120));
        AppDomain.CurrentDomain.ProcessExit += holdExit;
        var keepLogs = true; // a failed run, or one that saw something wrong, keeps its logs
        Figures? results = null;
        PartitionBench.Section? partitionSection = null;
        try
        {
            if (partitions != Partitions.Only)
            {
                results = new Figures();
                foreach (var layout in chosen)
                {
                    await using var cluster = LocalCluster.Create(Path.Combine(baseDir, layout.Name), layout.Options);
                    await new Bench(cluster, layout, results, idleFor, cpuWindow, ct).Run(idleOnly ? 0 : rounds);
                    Say($"stopping the {layout.Name} cluster (by PID, one node at a time)");
                }
            }
            if (partitions != Partitions.None)
                partitionSection = Environment.IsPrivilegedProcess
                    ? await PartitionBench.Run(baseDir, options, only, ct)
                    : PartitionBench.NotRoot();
            keepLogs = (results?.Anomalies ?? 0) + (partitionSection?.Anomalies ?? 0) > 0;
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            keepLogs = false;
            await System.Console.Error.WriteLineAsync("promha-lab bench: cancelled; every process started was stopped");
            return 130;
        }
        catch (Exception e) when (e is BenchFailed or TimeoutException or HttpRequestException)
        {
            await System.Console.Error.WriteLineAsync($"promha-lab bench: {e.Message}");
            return 1;
        }
        finally
        {
            stopped.Set();
            AppDomain.CurrentDomain.ProcessExit -= holdExit;
            // Only a temp dir of our own is deleted.
            if (!keepLogs && dir is null && !keep) TryDelete(baseDir);
            else Say($"kept {baseDir}");
        }

        if (results is not null) results.Print(commandLine, partitionSection);
        else
        {
            Say("\n=== summary ===");
            partitionSection?.Print();
            Say($"command: {commandLine}");
        }
        return 0;
    }

    private static string BuildKind =>
#if DEBUG
        "Debug";
#else
        "Release";
#endif

    private static string Quote(string a) => a.Length > 0 && a.All(c => char.IsLetterOrDigit(c) || "-_./=:,@".Contains(c)) ? a : $"'{a.Replace("'", "'\\''")}'";

    private static void TryDelete(string path)
    {
        try { Directory.Delete(path, recursive: true); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { Say($"could not delete {path}: {e.Message}"); }
    }

    private static void Say(string line) => System.Console.WriteLine(line);

    private sealed class BenchFailed(string message) : Exception(message);

    /// <summary>One process's figures after the idle window.</summary>
    private sealed record ProcFigures(string Node, string Kind, int Pid, double VmRssMiB, double RssAnonMiB, double RssFileMiB,
        double RssShmemMiB, double CpuPercent);

    /// <summary>A cluster shape the benchmark runs its cases on, each on a cluster of its own.</summary>
    private sealed record Layout(string Name, string Title, LocalClusterOptions Options, bool Main);

    /// <summary>Every layout's cases: seconds to the new master, and the longest time no node answered 200.</summary>
    private sealed class Figures
    {
        public readonly List<(string Case, List<double> Seconds, List<double> NoMaster, string Note)> Cases = [];
        public readonly Dictionary<string, int> TwoMasters = [];
        public readonly List<string> TwoMasterEpisodes = [];
        public List<ProcFigures> Procs = [];
        public int UnexpectedExits;
        public int StuckRejoins;
        public int Anomalies => TwoMasters.Values.Sum() + UnexpectedExits + StuckRejoins;

        public (List<double> Seconds, List<double> NoMaster) Case(string name, string note = "")
        {
            var existing = Cases.FirstOrDefault(c => c.Case == name);
            if (existing.Case is not null) return (existing.Seconds, existing.NoMaster);
            var added = (name, new List<double>(), new List<double>(), note);
            Cases.Add(added);
            return (added.Item2, added.Item3);
        }

        public void Print(string commandLine, PartitionBench.Section? partitions)
        {
            Say("\n=== summary (seconds from the action to the first poll where another node answers /primary 200; polls every 50 ms) ===");
            foreach (var (name, seconds, noMaster, note) in Cases)
            {
                Row(name, seconds, "s", $"({seconds.Count} rounds{(note.Length > 0 ? "; " + note : "")})");
                if (noMaster.Count > 0) Row("    longest time with no node answering 200", noMaster, "s", "");
            }
            foreach (var kind in new[] { "promha", "prometheus" })
            {
                var ps = Procs.Where(p => p.Kind == kind).ToList();
                var per = $"({ps.Count} processes)";
                Row($"{kind} VmRSS", ps.Select(p => p.VmRssMiB).ToList(), "MiB", per);
                Row($"{kind} RssAnon (private)", ps.Select(p => p.RssAnonMiB).ToList(), "MiB", per);
                Row($"{kind} RssFile (mapped files, shared)", ps.Select(p => p.RssFileMiB).ToList(), "MiB", per);
                Row($"{kind} RssShmem", ps.Select(p => p.RssShmemMiB).ToList(), "MiB", per);
                Row($"{kind} idle CPU (after idling)", ps.Select(p => p.CpuPercent).ToList(), "%", per);
            }
            Say($"two masters seen at any poll: {TwoMasters.Values.Sum()}" +
                (TwoMasters.Count > 0 ? $" ({string.Join(", ", TwoMasters.Select(kv => $"{kv.Key}: {kv.Value}"))})" : "") +
                $"; nodes that exited unexpectedly: {UnexpectedExits}; restarted nodes that did not join within {RejoinPatience.TotalSeconds:F0} s: {StuckRejoins}");
            foreach (var e in TwoMasterEpisodes) Say($"  two masters: {e}");
            partitions?.Print();
            Say($"command: {commandLine}");
        }

        private static void Row(string label, IReadOnlyList<double> xs, string unit, string extra)
        {
            if (xs.Count == 0) return;
            var sorted = xs.Order().ToList();
            var median = sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[sorted.Count / 2 - 1] + sorted[sorted.Count / 2]) / 2;
            string F(double v) => $"{v.ToString(unit == "s" ? "0.00" : "0.0", CultureInfo.InvariantCulture)} {unit}";
            Say($"{label,-68} min {F(sorted[0]),-9} median {F(median),-9} max {F(sorted[^1]),-9} {extra}".TrimEnd());
        }
    }

    /// <summary>The cases of one layout, run one after the other on one cluster.</summary>
    private sealed class Bench(LocalCluster cluster, Layout layout, Figures figures, TimeSpan idleFor, TimeSpan cpuWindow, CancellationToken ct)
    {
        private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(50);
        // a frozen or dying node must not slow the 50 ms polls of the others
        private static readonly TimeSpan PollTimeout = TimeSpan.FromMilliseconds(300);
        private static readonly TimeSpan Patience = TimeSpan.FromSeconds(120);
        private static readonly TimeSpan SettleFor = TimeSpan.FromSeconds(5);
        // sysconf(_SC_CLK_TCK): /proc/PID/stat counts CPU time in 1/100 s on Linux
        private const double ClockTicksPerSecond = 100;

        private string _scenario = "start";
        private LocalNode? _frozen;
        private double _noMaster; // the longest time no node answered 200 in the current Watch
        private double _lastGap; // the recorded case's, for its line (a later Watch resets _noMaster)
        private bool _goneAtStart; // the next Watch starts right after the master was killed or frozen

        private string Label(string what) => $"{layout.Name}: {what}";

        /// <summary>Runs every case of the layout <paramref name="rounds"/> times (0: none, only the idle figures).</summary>
        public async Task Run(int rounds)
        {
            Say($"\n--- {layout.Name}: {layout.Title} ---");
            await cluster.StartAll(ct);
            await Settled();
            var servers = cluster.Nodes.Where(n => !n.Witness).ToList();

            for (var r = 1; r <= rounds; r++)
            {
                // the master's promha killed, its host up: with the singleton on another node, then on the same node
                foreach (var onSingleton in new[] { false, true })
                {
                    _scenario = onSingleton ? "crash-singleton" : "crash";
                    var old = await MasterWhere(onSingleton);
                    if (old is null) continue;
                    var pid = old.Process!.Id;
                    var sw = Stopwatch.StartNew();
                    cluster.Kill(old);
                    _goneAtStart = true;
                    var (s, next) = await FailedOverFrom(old, sw);
                    Record(onSingleton ? "kill -9 master's promha, master also ran the singleton" : "kill -9 master's promha (singleton elsewhere)", s);
                    var back = await Recover();
                    figures.Case(Label("restart the killed promha -> back as a healthy standby")).Seconds.Add(back);
                    Say($"{_scenario,-16} round {r}/{rounds}: kill -9 {old.Name} (pid {pid}) -> {next.Name} master after {s:F2} s (no master for {_lastGap:F2} s); rejoined in {back:F2} s");
                }
                if (!layout.Main) continue;

                _scenario = "frozen";
                {
                    var old = await MasterWhere(false) ?? await Settled();
                    var sw = Stopwatch.StartNew();
                    Signal(old, "STOP");
                    _frozen = old;
                    _goneAtStart = true;
                    var (s, next) = await FailedOverFrom(old, sw);
                    Record("kill -STOP master's promha", s);
                    Signal(old, "CONT");
                    _frozen = null;
                    // resumed: it must not answer 200 while the new master does, and comes back as a standby
                    // (or is downed by the resolver and restarted, when it stayed frozen long enough)
                    var resumed = Stopwatch.StartNew();
                    await Watch("resume", async _ => !old.Running ||
                        (await cluster.Status(old) is { IsMaster: false, Master: { } m } && m == next.Name), resumed);
                    var back = await Recover() + resumed.Elapsed.TotalSeconds;
                    figures.Case(Label("kill -CONT -> a standby of the new master, all healthy")).Seconds.Add(back);
                    Say($"{_scenario,-16} round {r}/{rounds}: kill -STOP {old.Name} -> {next.Name} master after {s:F2} s (no master for {_lastGap:F2} s); resumed, all healthy in {back:F2} s");
                }

                _scenario = "prometheus";
                {
                    var old = await Settled();
                    var sw = Stopwatch.StartNew();
                    var pid = KillPrometheus(old);
                    var (s, next) = await FailedOverFrom(old, sw);
                    Record($"kill -9 master's Prometheus ({(old.ExternalPrometheus is null ? "supervised" : "external")})", s);
                    if (layout.Options.Servers == LocalServers.External)
                    {
                        old.ExternalPrometheus!.WaitForExit(5000);
                        old.ExternalPrometheus.Dispose();
                        cluster.StartExternalPrometheus(old);
                    }
                    var back = await Recover();
                    Say($"{_scenario,-16} round {r}/{rounds}: kill -9 {old.Name}'s prometheus (pid {pid}) -> {next.Name} master after {s:F2} s (no master for {_lastGap:F2} s); healthy again in {back:F2} s");
                }

                if (layout.Options.Servers != LocalServers.External) continue;
                _scenario = "switchover";
                {
                    var old = await Settled();
                    var via = cluster.Nodes[(r - 1) % cluster.Nodes.Count];
                    using var api = cluster.Api(via);
                    var sw = Stopwatch.StartNew();
                    var answer = await api.Switchover(null, ct);
                    if (!answer.Accepted) throw new BenchFailed($"switchover via {via.Name} refused: {answer.Message}");
                    var (s, next) = await FailedOverFrom(old, sw);
                    Record("graceful switchover (POST /api/v1/switchover)", s);
                    Say($"{_scenario,-16} round {r}/{rounds}: POST via {via.Name}, {old.Name} -> {next.Name} master after {s:F2} s");
                }
            }

            if (layout.Main && layout.Options.Servers == LocalServers.External)
            {
                _scenario = "idle";
                figures.Procs = await Resources();
            }
        }

        private void Record(string what, double seconds)
        {
            var (xs, noMaster) = figures.Case(Label(what));
            xs.Add(seconds);
            noMaster.Add(_noMaster);
            _lastGap = _noMaster;
        }

        private static void Signal(LocalNode n, string signal) => ProcessRun.Signal(n.Process!.Id, signal);

        private static int KillPrometheus(LocalNode n)
        {
            if (n.ExternalPrometheus is { } p)
            {
                p.Kill();
                return p.Id;
            }
            var pid = int.Parse(File.ReadAllLines(Path.Combine(n.DataDir, "prometheus.pid"))[0], CultureInfo.InvariantCulture);
            Process.GetProcessById(pid).Kill();
            return pid;
        }

        /// <summary>
        /// The settled master, moved first (a switchover) onto the node that runs the singleton or
        /// off it. Null when that cannot be arranged (the singleton runs on a witness).
        /// </summary>
        private async Task<LocalNode?> MasterWhere(bool onSingleton)
        {
            var master = await Settled();
            var singleton = (await cluster.Status(master))?.SingletonNode;
            var host = cluster.Nodes.FirstOrDefault(n => n.Name == singleton);
            if (host is null) return null;
            if (host.Witness)
            {
                if (!onSingleton) return master;
                // a witness is the oldest member: restart it so that the singleton moves to a server node
                Say($"  (the singleton runs on witness {host.Name}: restarting it so that it moves)");
                cluster.Kill(host);
                await Recover();
                return await MasterWhere(onSingleton);
            }
            var target = onSingleton ? host : cluster.Nodes.FirstOrDefault(n => !n.Witness && n != host);
            if (target is null || target == master) return master;
            if (onSingleton == (master == host)) return master;
            using var api = cluster.Api(master);
            var answer = await api.Switchover(target.Name, ct);
            if (!answer.Accepted) throw new BenchFailed($"switchover to {target.Name} refused: {answer.Message}");
            await Watch("arrange", ms => Task.FromResult(ms.Count == 1 && ms[0] == target));
            return await Settled();
        }

        /// <summary>Seconds (on <paramref name="since"/>) until a node other than <paramref name="old"/> answers /primary 200.</summary>
        private async Task<(double Seconds, LocalNode Next)> FailedOverFrom(LocalNode old, Stopwatch since)
        {
            var (s, masters) = await Watch("failover", ms => Task.FromResult(ms.Any(m => m != old)), since);
            return (s, masters.First(m => m != old));
        }

        /// <summary>
        /// Restarts every node that is down, waits for one master and fresh, healthy reports from
        /// every node, and returns how long that took. A restarted node that has not joined the
        /// cluster after <see cref="RejoinPatience"/> is counted as stuck, killed and started again.
        /// </summary>
        private async Task<double> Recover()
        {
            var sw = Stopwatch.StartNew();
            var restarted = new Dictionary<LocalNode, TimeSpan>();
            foreach (var n in cluster.Nodes.Where(n => !n.Running))
            {
                // The node a scenario killed has Process.HasExited with signal 9 (exit code 137).
                if (n.Process is { } p && p.ExitCode != 137)
                {
                    figures.UnexpectedExits++;
                    Say($"  note: {n.Name} (pid {p.Id}) exited on its own with code {p.ExitCode}; restarting it");
                }
                cluster.StartNode(n);
                restarted[n] = sw.Elapsed;
            }
            var (s, _) = await Watch("recovery", async ms =>
            {
                foreach (var (n, at) in restarted.Where(kv => sw.Elapsed - kv.Value > RejoinPatience).ToList())
                {
                    if (await Joined(n))
                    {
                        restarted.Remove(n);
                        continue;
                    }
                    figures.StuckRejoins++;
                    Say($"  note: {n.Name} (pid {n.Process!.Id}) has not joined the cluster {RejoinPatience.TotalSeconds:F0} s after its restart; killing and starting it again");
                    cluster.Kill(n);
                    cluster.StartNode(n);
                    restarted[n] = sw.Elapsed;
                }
                return ms.Count == 1 && await AllHealthy(ms[0]);
            }, sw);
            return s;
        }

        /// <summary>The node sees every node of the cluster as an Up member (not an island of its own).</summary>
        private async Task<bool> Joined(LocalNode n) =>
            await cluster.Status(n) is { } s && s.Members.Count == cluster.Nodes.Count && s.Members.All(m => m.Status == "Up");

        /// <summary>Recovers, then lets the cluster settle with stable reports; returns the master.</summary>
        private async Task<LocalNode> Settled()
        {
            await Recover();
            var sw = Stopwatch.StartNew();
            await Watch("settle", _ => Task.FromResult(sw.Elapsed >= SettleFor), sw);
            var (_, masters) = await Watch("settle", async ms => ms.Count == 1 && await AllHealthy(ms[0]));
            return masters[0];
        }

        /// <summary>The master's status shows every node Up, reachable, with a fresh healthy report.</summary>
        private async Task<bool> AllHealthy(LocalNode master)
        {
            var s = await cluster.Status(master);
            return s is { IsMaster: true }
                   && s.Members.Count == cluster.Nodes.Count && s.Members.All(m => m is { Status: "Up", Reachable: true })
                   && s.Nodes.Count == cluster.Nodes.Count
                   && s.Nodes.All(n => n.Reachable && (n.Witness || n.PrometheusHealthy) && n.LastReportAgeSeconds < 3);
        }

        /// <summary>
        /// Polls every running node's /primary about every 50 ms until <paramref name="done"/> holds,
        /// counting each poll where more than one node answered 200. Returns the seconds elapsed on
        /// <paramref name="since"/> when the poll that satisfied it came back.
        /// </summary>
        private async Task<(double Seconds, IReadOnlyList<LocalNode> Masters)> Watch(
            string phase, Func<IReadOnlyList<LocalNode>, Task<bool>> done, Stopwatch? since = null)
        {
            var sw = since ?? Stopwatch.StartNew();
            var deadline = sw.Elapsed + Patience;
            string? episode = null; // the masters of the two-master episode under way, and since when
            // the end of the last poll that saw a master; a killed or frozen master answered last at the action
            TimeSpan? lastSeen = _goneAtStart ? TimeSpan.Zero : null;
            var gapOpen = _goneAtStart;
            _goneAtStart = false;
            _noMaster = 0;
            while (true)
            {
                ct.ThrowIfCancellationRequested();
                var started = sw.Elapsed;
                // a SIGSTOPped node answers nothing until resumed; it is polled again from then on
                var masters = await cluster.Masters(PollTimeout, skip: n => n == _frozen);
                var at = sw.Elapsed;
                if (masters.Count == 0) gapOpen = true;
                else
                {
                    if (gapOpen && lastSeen is { } seen) _noMaster = Math.Max(_noMaster, (started - seen).TotalSeconds);
                    gapOpen = false;
                    lastSeen = at;
                }
                if (masters.Count > 1)
                {
                    var key = $"{layout.Name} {_scenario} {phase}";
                    figures.TwoMasters[key] = figures.TwoMasters.GetValueOrDefault(key) + 1;
                    if (episode is null)
                    {
                        episode = $"{key}: {string.Join(" and ", masters.Select(m => m.Name))} from {at.TotalSeconds:F2} s";
                        Say($"  WARNING two masters: {episode}");
                    }
                }
                else if (episode is not null)
                {
                    figures.TwoMasterEpisodes.Add($"{episode} to {at.TotalSeconds:F2} s");
                    Say($"  two masters ended at {at.TotalSeconds:F2} s");
                    episode = null;
                }
                if (await done(masters))
                {
                    if (episode is not null) figures.TwoMasterEpisodes.Add($"{episode}, still on at {at.TotalSeconds:F2} s when this wait ended");
                    return (at.TotalSeconds, masters);
                }
                if (sw.Elapsed > deadline)
                    throw new TimeoutException($"{_scenario} {phase}: no result after {Patience.TotalSeconds:F0} s " +
                                               $"(masters now: {string.Join(", ", masters.Select(m => m.Name))})\n{cluster.LogTails()}");
                var wait = Poll - (sw.Elapsed - started);
                if (wait > TimeSpan.Zero) await Task.Delay(wait, ct);
            }
        }

        /// <summary>Memory and idle CPU of every promha and Prometheus process, without polling them meanwhile.</summary>
        private async Task<List<ProcFigures>> Resources()
        {
            await Settled();
            Say($"idle for {idleFor.TotalSeconds:F0} s, then CPU over {cpuWindow.TotalSeconds:F0} s");
            await Task.Delay(idleFor, ct);
            var procs = cluster.Nodes.Select(n => (n.Name, Kind: "promha", Pid: n.Process!.Id))
                .Concat(cluster.Nodes.Where(n => n.ExternalPrometheus is not null).Select(n => (n.Name, Kind: "prometheus", Pid: n.ExternalPrometheus!.Id)))
                .ToList();
            var loadBefore = File.ReadAllText("/proc/loadavg").Trim();
            var before = procs.Select(p => CpuTicks(p.Pid)).ToList();
            var threadsBefore = procs.Select(p => ThreadTicks(p.Pid)).ToList();
            var sw = Stopwatch.StartNew();
            await Task.Delay(cpuWindow, ct);
            var after = procs.Select(p => CpuTicks(p.Pid)).ToList();
            var threadsAfter = procs.Select(p => ThreadTicks(p.Pid)).ToList();
            var seconds = sw.Elapsed.TotalSeconds;
            Say($"load average before/after the CPU window: {loadBefore} / {File.ReadAllText("/proc/loadavg").Trim()}");
            if (cluster.Nodes.Any(n => !n.Running)) throw new BenchFailed("a node exited during the idle window");

            var figures = procs.Select((p, i) =>
            {
                var st = ProcStatusKiB(p.Pid);
                return new ProcFigures(p.Name, p.Kind, p.Pid, st.GetValueOrDefault("VmRSS") / 1024.0, st.GetValueOrDefault("RssAnon") / 1024.0,
                    st.GetValueOrDefault("RssFile") / 1024.0, st.GetValueOrDefault("RssShmem") / 1024.0,
                    (after[i] - before[i]) / ClockTicksPerSecond / seconds * 100);
            }).ToList();
            foreach (var f in figures)
                Say(string.Create(CultureInfo.InvariantCulture,
                    $"{f.Node,-7} {f.Kind,-10} pid {f.Pid,-7} VmRSS {f.VmRssMiB,6:0.0} MiB  RssAnon {f.RssAnonMiB,6:0.0} MiB  RssFile {f.RssFileMiB,6:0.0} MiB  RssShmem {f.RssShmemMiB,6:0.0} MiB  CPU {f.CpuPercent,5:0.00} %"));
            // Where a promha node's idle CPU goes: its threads' CPU over the window, by thread name.
            for (var i = 0; i < procs.Count; i++)
            {
                if (procs[i].Kind != "promha") continue;
                var busy = threadsAfter[i]
                    .Select(kv => (kv.Value.Name, Ticks: kv.Value.Ticks - (threadsBefore[i].TryGetValue(kv.Key, out var b) ? b.Ticks : 0)))
                    .Where(t => t.Ticks > 0)
                    .GroupBy(t => t.Name)
                    .Select(g => (Name: g.Key, Threads: g.Count(), Pct: g.Sum(t => t.Ticks) / ClockTicksPerSecond / seconds * 100))
                    .OrderByDescending(t => t.Pct)
                    .Take(8);
                Say(string.Create(CultureInfo.InvariantCulture, $"  {procs[i].Name} threads: ") +
                    string.Join(", ", busy.Select(t => string.Create(CultureInfo.InvariantCulture, $"{t.Name} x{t.Threads} {t.Pct:0.00}%"))));
            }
            return figures;
        }

        /// <summary>utime + stime (fields 14 and 15 of /proc/PID/stat), in clock ticks.</summary>
        private static long CpuTicks(int pid)
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            // The command name (field 2) may contain spaces: count fields after its closing ')'.
            var f = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return long.Parse(f[11], CultureInfo.InvariantCulture) + long.Parse(f[12], CultureInfo.InvariantCulture);
        }

        /// <summary>utime + stime and name of each thread of the process, by thread id.</summary>
        private static Dictionary<int, (string Name, long Ticks)> ThreadTicks(int pid)
        {
            var result = new Dictionary<int, (string, long)>();
            foreach (var task in Directory.EnumerateDirectories($"/proc/{pid}/task"))
            {
                try
                {
                    var stat = File.ReadAllText(Path.Combine(task, "stat"));
                    var name = stat[(stat.IndexOf('(') + 1)..stat.LastIndexOf(')')];
                    var f = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                    result[int.Parse(Path.GetFileName(task), CultureInfo.InvariantCulture)] =
                        (name, long.Parse(f[11], CultureInfo.InvariantCulture) + long.Parse(f[12], CultureInfo.InvariantCulture));
                }
                catch (IOException) { } // the thread ended meanwhile
            }
            return result;
        }

        /// <summary>The kB-valued lines of /proc/PID/status (VmRSS = RssAnon + RssFile + RssShmem, ...).</summary>
        private static Dictionary<string, long> ProcStatusKiB(int pid) =>
            PromHa.Node.Health.ProcessMetrics.ReadStatus(File.ReadAllLines($"/proc/{pid}/status"));
    }
}
