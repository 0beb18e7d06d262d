using System.Diagnostics;
using System.Net;
using System.Text;
using PromHa.Node.Console;
using PromHa.Node.Http;
using PromHa.Node.Security;
using PromHa.Node.Supervision;

using PromHa.Node.Sink;

namespace PromHa.Lab;

public enum LocalServers
{
    /// <summary>Each node starts its own Prometheus and Alertmanager (the demo).</summary>
    Supervised,
    /// <summary>The launcher starts each Prometheus itself and the node only probes it by URL.</summary>
    External,
}

public sealed record LocalClusterOptions
{
    public int Nodes { get; init; } = 3;
    public int Witnesses { get; init; }
    /// <summary>
    /// Several HA groups (cluster.groups): the nodes in order, so many per group; every witness
    /// serves every group. Empty: one group of all.
    /// </summary>
    public IReadOnlyList<(string Name, int Nodes)> Groups { get; init; } = [];
    /// <summary>The Prometheus scrape interval (default 5s, 1s with alerting for quick alerts).</summary>
    public string? ScrapeInterval { get; init; }
    public LocalServers Servers { get; init; } = LocalServers.Supervised;
    public bool Alertmanager { get; init; } = true;
    public bool NodeExporter { get; init; }
    /// <summary>host:port addresses for a pure pair's tie-breaker.</summary>
    public IReadOnlyList<string> TieBreakerTargets { get; init; } = [];
    /// <summary>A PostgreSQL connection string the pair agrees on a survivor through (cluster.tieBreaker.database).</summary>
    public string? TieBreakerDatabase { get; init; }
    /// <summary>A PostgreSQL database for the nodes' journals (journal.provider postgresql), used as <see cref="Journals"/> says.</summary>
    public string? PostgresJournal { get; init; }
    public JournalMix Journals { get; init; } = JournalMix.Sqlite;
    /// <summary>promha.yml's remoteWrite: (url, mode) per receiver.</summary>
    public IReadOnlyList<(string Url, string Mode)> RemoteWrite { get; init; } = [];
    /// <summary>How to start promha: the executable and leading arguments (e.g. ["dotnet", "promha.dll"]).</summary>
    public IReadOnlyList<string> PromhaCommand { get; init; } = DefaultPromhaCommand();
    public string PrometheusBinary { get; init; } = "/usr/bin/prometheus";
    public string AlertmanagerBinary { get; init; } = "/usr/bin/prometheus-alertmanager";
    public string NodeExporterBinary { get; init; } = "/usr/bin/prometheus-node-exporter";
    /// <summary>How nodes render the config: every node the same (mirror), or standbys federating the master.</summary>
    public PromHa.Node.Settings.ConfigMode ConfigMode { get; init; } = PromHa.Node.Settings.ConfigMode.Mirror;
    /// <summary>
    /// Nodes advertise a second port (cluster.publicPort) that the caller forwards to their cluster
    /// port, e.g. through a proxy that can cut the link between them (tests).
    /// </summary>
    public bool PublicClusterPorts { get; init; }
    /// <summary>Mutual TLS between the nodes, with a CA and certificates made for the run (as `promha certs init` makes them).</summary>
    public bool Tls { get; init; } = true;
    /// <summary>The nodes serve their HTTP API over HTTPS with the same certificates.</summary>
    public bool HttpsApi { get; init; }
    /// <summary>Extra environment variables for the promha node processes only (e.g. DOTNET_* runtime knobs).</summary>
    public IReadOnlyDictionary<string, string> NodeEnvironment { get; init; } = new Dictionary<string, string>();
    /// <summary>
    /// Run node i (1-based, witnesses after the nodes) in the lab's namespace i, as on a host of its
    /// own: cluster traffic over the lab's bridge (10.77.0.i), the HTTP API, Prometheus and
    /// Alertmanager listening on all of the namespace's addresses, reached from here at the node's
    /// observer address (10.78.i.2). The caller owns the lab: dispose it after the cluster.
    /// </summary>
    public NetnsLab? Netns { get; init; }
    /// <summary>On-role-change hooks every node runs (hooks.onRoleChange).</summary>
    public IReadOnlyList<string> Hooks { get; init; } = [];
    /// <summary>Alerting wired end to end: a receiver with this webhook, and a rule that fires while a scraped trigger is 1.</summary>
    public LocalAlerting? Alerting { get; init; }

    /// <summary>The promha next to this assembly: its apphost when present, else `dotnet promha.dll`.</summary>
    public static IReadOnlyList<string> DefaultPromhaCommand()
    {
        var dir = AppContext.BaseDirectory;
        var host = Path.Combine(dir, "promha");
        return File.Exists(host) ? [host] : ["dotnet", Path.Combine(dir, "promha.dll")];
    }
}

/// <param name="WebhookUrl">The receiver every notification goes to (through the gates).</param>
/// <param name="TriggerTarget">host:port serving /metrics with promha_demo_trigger: the rule DemoTrigger fires while it is 1.</param>
/// <param name="GroupInterval">Alertmanager's group_wait and group_interval (short in tests).</param>
/// <param name="PeerTimeout">Alertmanager's --cluster.peer-timeout: how long the second Alertmanager waits for the first to send (15s by default; short in tests).</param>
/// <param name="GroupBy">the route's group_by: by default every trigger is a group of its own; [alertname] puts them all in one</param>
/// <summary>Where the nodes keep their journals: SQLite (the default), PostgreSQL, or every other node on PostgreSQL (both at once).</summary>
public enum JournalMix { Sqlite, Postgres, Mixed }

public sealed record LocalAlerting(string WebhookUrl, string? TriggerTarget = null, string GroupInterval = "1s", string RepeatInterval = "1h",
    string? PeerTimeout = null, string GroupBy = "[alertname, name]");

/// <summary>One node of a <see cref="LocalCluster"/>: its ports, files and processes.</summary>
public sealed class LocalNode
{
    public required string Name { get; init; }
    public required bool Witness { get; init; }
    /// <summary>Its HA group (LocalClusterOptions.Groups); null without groups or for a witness (it serves all).</summary>
    public string? Group { get; set; }
    public required int ClusterPort { get; init; }
    /// <summary>The port other nodes connect to: ClusterPort, or a forwarded one (LocalClusterOptions.PublicClusterPorts).</summary>
    public required int PublicClusterPort { get; init; }
    public required int HttpPort { get; init; }
    public int PrometheusPort { get; init; }
    public int AlertmanagerPort { get; init; }
    /// <summary>Its Alertmanager's gossip port (silences and the notification log are shared).</summary>
    public int AlertmanagerClusterPort { get; init; }
    public required string Dir { get; init; }
    /// <summary>The address the node's cluster transport binds and peers reach (127.0.0.1, or its lab address).</summary>
    public string ClusterHost { get; init; } = "127.0.0.1";
    /// <summary>Where this process reaches the node's HTTP API and servers (127.0.0.1, or its lab observer address).</summary>
    public string ObserverHost { get; init; } = "127.0.0.1";
    /// <summary>Its index in the <see cref="LocalClusterOptions.Netns"/> lab (1-based), when it runs in one.</summary>
    public int? NetnsIndex { get; init; }
    public string ConfigPath => Path.Combine(Dir, "promha.yml");
    public string DataDir => Path.Combine(Dir, "data");
    /// <summary>The node's own conf tree: authoritative while it is master, a copy of the running version otherwise.</summary>
    public string ConfDir => Path.Combine(Dir, "conf");
    /// <summary>The rendered files its Prometheus and Alertmanager read.</summary>
    public string LiveDir => Path.Combine(DataDir, "live");
    public string LogPath => Path.Combine(Dir, "promha.log");
    public string Scheme { get; init; } = "http";
    public string HttpUrl => $"{Scheme}://{ObserverHost}:{HttpPort}";
    /// <summary>Its Prometheus as this process reaches it (through the observer link in a lab).</summary>
    public string PrometheusUrl => $"http://{ObserverHost}:{PrometheusPort}";
    public string AlertmanagerUrl => $"http://{ObserverHost}:{AlertmanagerPort}";
    /// <summary>Its Prometheus as the node itself reaches it (each lab namespace has its own loopback).</summary>
    public string LocalPrometheusUrl => $"http://127.0.0.1:{PrometheusPort}";
    public Process? Process { get; internal set; }
    /// <summary>False after Kill or Stop: only a node that exits on its own is started again.</summary>
    internal bool WantRunning { get; set; }
    /// <summary>How often the launcher started this node again after it exited on its own.</summary>
    public int Restarts { get; internal set; }
    /// <summary>The exit codes of the times it exited on its own (docs/reference.md, "Exit codes").</summary>
    public List<int> Exits { get; } = [];
    /// <summary>The Prometheus the launcher started for this node in external mode.</summary>
    public Process? ExternalPrometheus { get; internal set; }
    public bool Running => Process is { HasExited: false };
}

/// <summary>
/// Several real `promha run` processes on 127.0.0.1 with free ports, beside real Prometheus (and
/// Alertmanager) servers: what `promha-lab demo` runs, what the benchmark measures and what the
/// end-to-end tests drive. Every process it starts is stopped by its PID on dispose.
/// </summary>
public sealed class LocalCluster : IAsyncDisposable
{
    private LocalClusterOptions _options;
    private readonly List<Process> _extra = [];
    private HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(3) };
    private volatile bool _disposing;

    public string BaseDir { get; }
    public IReadOnlyList<LocalNode> Nodes { get; }
    /// <summary>The conf tree every node starts from (copied into each node's own conf dir).</summary>
    public string ConfDir => Path.Combine(BaseDir, "conf");
    public int? NodeExporterPort { get; private set; }
    public Process? NodeExporter { get; private set; }
    /// <summary>The admin token file every node reads (owner-readable only), as a user would set it up.</summary>
    public string TokenFile => Path.Combine(BaseDir, "admin.token");
    /// <summary>The admin token and CA an operator's console would use.</summary>
    public ApiAccess Access { get; private set; } = ApiAccess.None;
    /// <summary>The cluster CA and node certificates (with TLS on).</summary>
    public string TlsDir => Path.Combine(BaseDir, "tls");
    public string CaFile => Path.Combine(TlsDir, "ca.crt");

    /// <summary>A console client for a node, with the admin token.</summary>
    public ApiClient Api(LocalNode n, TimeSpan? timeout = null) => new(n.HttpUrl, timeout, Access);

    private LocalCluster(string baseDir, LocalClusterOptions options, IReadOnlyList<LocalNode> nodes)
    {
        BaseDir = baseDir;
        _options = options;
        Nodes = nodes;
    }

    /// <summary>Missing binaries, with the command that installs them; empty when all are there.</summary>
    public static IReadOnlyList<string> MissingBinaries(LocalClusterOptions o)
    {
        var need = new List<string> { o.PrometheusBinary };
        if (o.Alertmanager && o.Servers == LocalServers.Supervised) need.Add(o.AlertmanagerBinary);
        return need.Where(b => !File.Exists(b)).ToList();
    }

    public static LocalCluster Create(string baseDir, LocalClusterOptions options)
    {
        Directory.CreateDirectory(baseDir);
        var total = options.Nodes + options.Witnesses;
        var lab = options.Netns;
        if (lab is not null && lab.Count < total)
            throw new ArgumentException($"the network namespace lab has {lab.Count} namespaces for {total} nodes", nameof(options));
        if (lab is not null && options.PublicClusterPorts)
            throw new ArgumentException("PublicClusterPorts (a loopback proxy) and Netns (cut links in a lab) do not mix", nameof(options));
        var ports = LoopbackPorts.Claim(total * 6 + 1);
        var nodes = Enumerable.Range(0, total).Select(i => new LocalNode
        {
            Name = i < options.Nodes ? $"node{i + 1}" : $"witness{i - options.Nodes + 1}",
            Witness = i >= options.Nodes,
            Group = i < options.Nodes ? GroupOf(options, i) : null,
            ClusterPort = ports[i * 5],
            PublicClusterPort = options.PublicClusterPorts ? ports[i * 5 + 4] : ports[i * 5],
            HttpPort = ports[i * 5 + 1],
            PrometheusPort = i < options.Nodes ? ports[i * 5 + 2] : 0,
            AlertmanagerPort = i < options.Nodes && options.Alertmanager ? ports[i * 5 + 3] : 0,
            AlertmanagerClusterPort = i < options.Nodes && options.Alertmanager ? ports[total * 5 + i] : 0,
            Dir = Path.Combine(baseDir, i < options.Nodes ? $"node{i + 1}" : $"witness{i - options.Nodes + 1}"),
            ClusterHost = lab?.ClusterAddress(i + 1) ?? "127.0.0.1",
            ObserverHost = lab?.ObserverAddress(i + 1) ?? "127.0.0.1",
            NetnsIndex = lab is null ? null : i + 1,
            Scheme = options.HttpsApi ? "https" : "http",
        }).ToList();
        var cluster = new LocalCluster(baseDir, options, nodes);
        if (options.NodeExporter && File.Exists(options.NodeExporterBinary)) cluster.NodeExporterPort = ports[^1];
        cluster.WriteFiles();
        return cluster;
    }

    /// <summary>The group of server i (0-based) when groups are configured.</summary>
    private static string? GroupOf(LocalClusterOptions options, int i)
    {
        foreach (var (name, count) in options.Groups)
        {
            if (i < count) return name;
            i -= count;
        }
        return options.Groups.Count == 0 ? null : throw new ArgumentException($"the groups name fewer nodes than the {options.Nodes} servers", nameof(options));
    }

    private void WriteFiles()
    {
        // The seeds' layout: prometheus.yml, alertmanager.yml, business/<name>/job/*.yml (file_sd)
        // and business/<name>/rule/*.rules.
        Directory.CreateDirectory(ConfDir);
        var token = AdminToken.Generate();
        AdminToken.WriteFile(TokenFile, token);
        if (_options.Tls || _options.HttpsApi)
        {
            var ca = ClusterCerts.CreateCa(TlsDir, "PromHa local cluster CA");
            // In a lab a node is reached at its cluster and observer addresses: name them too (the
            // remoting validator checks the chain only; an HTTPS client checks the name).
            foreach (var n in Nodes)
                ClusterCerts.CreateNode(ca, TlsDir, n.Name, extraIps: _options.Netns is null ? null
                    : [IPAddress.Parse(n.ClusterHost), IPAddress.Parse(n.ObserverHost)]);
        }
        Access = new ApiAccess(token, _options.HttpsApi ? CaFile : null);
        _http.Dispose();
        _http = new HttpClient(Access.Handler()) { Timeout = TimeSpan.FromSeconds(3) };
        // Prometheus scrapes the nodes' /metrics; over HTTPS it trusts the cluster CA.
        var alerting = _options.Alerting;
        var promhaScheme = _options.HttpsApi ? $"\n    scheme: https\n    tls_config:\n      ca_file: {CaFile}" : "";
        var targets = string.Join(", ", Nodes.Select(n => $"'{n.ClusterHost}:{n.HttpPort}'"));
        File.WriteAllText(Path.Combine(ConfDir, "prometheus.yml"), $"""
            # Demo conf: every Prometheus scrapes every PromHa node's /metrics, and the targets
            # listed under business/*/job/ (edit them on the master: PromHa versions and pushes them).
            global:
              scrape_interval: {_options.ScrapeInterval ?? (alerting is null ? "5s" : "1s")}
              evaluation_interval: {(alerting is null ? "5s" : "1s")}
            rule_files:
              - business/demo/rule/*.rules
              - business/promha/rule/*.rules
            scrape_configs:
              - job_name: promha{promhaScheme}
                static_configs:
                  - targets: [{targets}]{(alerting?.TriggerTarget is { } trigger ? $"\n  - job_name: trigger\n    static_configs:\n      - targets: ['{trigger}']" : "")}
              - job_name: business
                file_sd_configs:
                  - files: ['business/demo/job/*.yml']
                    refresh_interval: 30s

            """);
        var jobDir = Path.Combine(ConfDir, "business", "demo", "job");
        var ruleDir = Path.Combine(ConfDir, "business", "demo", "rule");
        Directory.CreateDirectory(jobDir);
        Directory.CreateDirectory(ruleDir);
        File.WriteAllText(Path.Combine(jobDir, "node.yml"), NodeExporterPort is { } ne
            ? $"- targets: ['127.0.0.1:{ne}']\n  labels:\n    service: node-exporter\n"
            : "[]\n");
        File.WriteAllText(Path.Combine(ruleDir, "demo.rules"), """
            groups:
              - name: demo
                rules:
                  - alert: NodeExporterDown
                    expr: up{service="node-exporter"} == 0
                    for: 10s
                    labels:
                      severity: warning
                    annotations:
                      summary: "node_exporter {{ $labels.instance }} is down"

            """);
        // PromHa's own alerts, as shipped in deploy/rules
        var promhaRules = Path.Combine(ConfDir, "business", "promha", "rule");
        Directory.CreateDirectory(promhaRules);
        File.WriteAllText(Path.Combine(promhaRules, "promha.rules"), ShippedRules());
        if (alerting?.TriggerTarget is not null)
            File.WriteAllText(Path.Combine(ruleDir, "trigger.rules"), """
                groups:
                  - name: trigger
                    rules:
                      - alert: DemoTrigger
                        expr: promha_demo_trigger == 1
                        # One scrape of the trigger that misses its 1 s timeout (a loaded CI machine)
                        # marks the series stale: that replica resolves the alert, Alertmanager takes
                        # the youngest report and resolves it too, and the replica fires it anew a
                        # second later (seen in CI: resolved, refired, resolved within 2 s of one
                        # cycle). A real pager rule would carry `for` or `keep_firing_for` as well.
                        keep_firing_for: 3s
                        labels:
                          severity: page
                        annotations:
                          summary: "The demo's trigger is set"

                """);
        File.WriteAllText(Path.Combine(ConfDir, "alertmanager.yml"), alerting is null ? """
            route:
              receiver: default
            receivers:
              - name: default

            """ : $"""
            # Every notification goes through the nodes' notification gates: only the master's delivers.
            route:
              receiver: sink
              group_by: {alerting.GroupBy}
              group_wait: {alerting.GroupInterval}
              group_interval: {alerting.GroupInterval}
              repeat_interval: {alerting.RepeatInterval}
            receivers:
              - name: sink
                webhook_configs:
                  - url: {alerting.WebhookUrl}
                    send_resolved: true

            """);

        foreach (var n in Nodes)
        {
            Directory.CreateDirectory(n.Dir);
            CopyTree(ConfDir, n.ConfDir);
            // Each group's tree names its group, as a user's would: remote storage and a global
            // Prometheus tell the groups' copies of a target both scrape apart by it.
            if (n.Group is { } group)
            {
                var prometheusYml = Path.Combine(n.ConfDir, "prometheus.yml");
                File.WriteAllText(prometheusYml, File.ReadAllText(prometheusYml).Replace("global:\n", $"global:\n  external_labels:\n    shard: {group}\n"));
            }
            // An external Prometheus is started before its node, from the node's live dir.
            if (!n.Witness && _options.Servers == LocalServers.External) CopyTree(ConfDir, n.LiveDir);
        }
        WriteNodeConfigs();
    }

    /// <summary>
    /// Puts the nodes in HA groups (cluster.groups, group:) from now on: rewrites every node's
    /// promha.yml; the nodes read it when they start next (stop them all first: nodes with and
    /// without groups do not mix).
    /// </summary>
    public void Regroup(IReadOnlyList<(string Name, int Nodes)> groups)
    {
        _options = _options with { Groups = groups };
        foreach (var (n, i) in Nodes.Select((n, i) => (n, i))) n.Group = n.Witness ? null : GroupOf(_options, i);
        WriteNodeConfigs();
    }

    /// <summary>Every node's promha.yml.</summary>
    private void WriteNodeConfigs()
    {
        var seeds = string.Join(", ", Nodes.Select(n => $"{n.ClusterHost}:{n.PublicClusterPort}"));
        var groups = _options.Groups.Count == 0 ? ""
            : "  groups:\n" + string.Concat(_options.Groups.Select(g =>
                $"    {g.Name}: [{string.Join(", ", Nodes.Where(n => n.Group == g.Name || n.Witness).Select(n => n.Name))}]\n"));
        // In a lab every namespace has its own loopback: listen on all of the node's addresses so
        // that this process reaches it through the observer link, and let it reach its servers on 127.0.0.1.
        var lab = _options.Netns is not null;
        var bind = lab ? "0.0.0.0" : "127.0.0.1";
        foreach (var n in Nodes)
        {
            var yaml = new StringBuilder($"""
                node:
                  name: {n.Name}
                cluster:
                  host: {n.ClusterHost}
                  port: {n.ClusterPort}
                  publicPort: {n.PublicClusterPort}
                  seeds: [{seeds}]

                """);
            yaml.Append(groups);
            if (_options.TieBreakerTargets.Count > 0)
                yaml.Append($"  tieBreaker:\n    targets: [{string.Join(", ", _options.TieBreakerTargets)}]\n");
            if (_options.TieBreakerDatabase is { } leaseDb)
                yaml.Append($"  tieBreaker:\n    database: '{leaseDb}'\n");
            if (n.Group is { } group) yaml.Append($"group: {group}\n");
            if (_options.RemoteWrite.Count > 0)
                yaml.Append("remoteWrite:\n" + string.Concat(_options.RemoteWrite.Select(rw => $"  - url: {rw.Url}\n    mode: {rw.Mode}\n")));
            if (OnPostgres(n))
                yaml.Append($"journal:\n  provider: postgresql\n  connectionString: '{_options.PostgresJournal}'\n");
            if (_options.Hooks.Count > 0)
                yaml.Append($"hooks:\n  onRoleChange: [{string.Join(", ", _options.Hooks)}]\n");
            yaml.Append($"""
                http:
                  listen: {bind}:{n.HttpPort}
                  tokenFile: {TokenFile}
                {Tls(n)}
                dataDir: {n.DataDir}
                confDir: {n.ConfDir}
                config:
                  mode: {_options.ConfigMode.ToString().ToLowerInvariant()}

                """);
            if (!n.Witness)
            {
                yaml.Append(_options.Servers == LocalServers.Supervised
                    ? $"prometheus:\n  mode: supervised\n  binary: {_options.PrometheusBinary}\n  listen: {bind}:{n.PrometheusPort}\n" +
                      (lab ? $"  url: {n.LocalPrometheusUrl}\n" : "")
                    : $"prometheus:\n  mode: external\n  url: {n.LocalPrometheusUrl}\n");
                if (_options.Alertmanager && _options.Servers == LocalServers.Supervised)
                    yaml.Append($"alertmanager:\n  mode: supervised\n  binary: {_options.AlertmanagerBinary}\n  listen: {bind}:{n.AlertmanagerPort}\n" +
                                (lab ? $"  url: http://127.0.0.1:{n.AlertmanagerPort}\n" : "") +
                                $"  clusterListen: {n.ClusterHost}:{n.AlertmanagerClusterPort}\n" +
                                (_options.Alerting?.PeerTimeout is { } pt ? $"  extraArgs: ['--cluster.peer-timeout={pt}']\n" : "") +
                                $"  clusterPeers: [{string.Join(", ", Nodes.Where(o => o != n && o.AlertmanagerClusterPort > 0 && o.Group == n.Group).Select(o => $"{o.ClusterHost}:{o.AlertmanagerClusterPort}"))}]\n");
            }
            File.WriteAllText(n.ConfigPath, yaml.ToString());
        }
    }

    /// <summary>Whether a node keeps its journal in PostgreSQL (<see cref="LocalClusterOptions.Journals"/>).</summary>
    public bool OnPostgres(LocalNode n) => _options.PostgresJournal is not null && _options.Journals switch
    {
        JournalMix.Postgres => true,
        JournalMix.Mixed => Nodes.ToList().IndexOf(n) % 2 == 1,
        _ => false,
    };

    private string Tls(LocalNode n) => !(_options.Tls || _options.HttpsApi) ? "" : $"""
        tls:
          caFile: {CaFile}
          certFile: {Path.Combine(TlsDir, $"{n.Name}.crt")}
          keyFile: {Path.Combine(TlsDir, $"{n.Name}.key")}
          http: {(_options.HttpsApi ? "true" : "false")}
        """;

    /// <param name="which">The nodes to start (default: all); the others wait, as nodes not yet installed.</param>
    public async Task StartAll(CancellationToken ct = default, Func<LocalNode, bool>? which = null)
    {
        if (NodeExporterPort is { } ne)
            _extra.Add(NodeExporter = StartLogged(_options.NodeExporterBinary,
                [$"--web.listen-address=127.0.0.1:{ne}", "--collector.disable-defaults", "--collector.cpu", "--collector.meminfo", "--collector.loadavg"],
                Path.Combine(BaseDir, "node-exporter.log")));
        foreach (var n in Nodes.Where(n => which?.Invoke(n) ?? true)) StartNode(n);
        await WaitForMembers(TimeSpan.FromSeconds(90), ct);
    }

    /// <summary>Waits until every running node sees every running node as an Up member.</summary>
    public Task WaitForMembers(TimeSpan timeout, CancellationToken ct = default) =>
        WaitUntil(async () =>
        {
            var running = Nodes.Where(n => n.Running).ToList();
            var statuses = await Task.WhenAll(running.Select(Status));
            return statuses.All(s => s is not null &&
                                     s.Members.Count(m => m.Status == "Up" && m.Reachable) == running.Count &&
                                     s.Members.Count == running.Count);
        }, timeout, ct, "every running node to be an Up member of one cluster");

    /// <summary>Starts (or restarts) a node, and its external Prometheus when that is not running.</summary>
    public void StartNode(LocalNode n)
    {
        if (n.Running) throw new InvalidOperationException($"{n.Name} is already running (pid {n.Process!.Id})");
        if (!n.Witness && _options.Servers == LocalServers.External && n.ExternalPrometheus is not { HasExited: false })
            StartExternalPrometheus(n);
        // `ip netns exec` execs the command in the namespace: the PID is still promha's.
        IReadOnlyList<string> cmd = [.. InNamespace(n), .. _options.PromhaCommand];
        n.WantRunning = true;
        n.Process = LoggedProcess.Start(cmd[0], [.. cmd.Skip(1), "run", "--config", n.ConfigPath], n.LogPath,
            exited => _ = RestartIfWanted(n, exited), _options.NodeEnvironment);
    }

    /// <summary>
    /// Like systemd's Restart=always: a node that exits on its own (downed on the minority side,
    /// or stopped itself on an island) is started again after 2 s.
    /// </summary>
    private async Task RestartIfWanted(LocalNode n, Process exited)
    {
        lock (n)
            if (n.WantRunning && n.Process == exited)
                try { n.Exits.Add(exited.ExitCode); } catch (InvalidOperationException) { }
        await Task.Delay(TimeSpan.FromSeconds(2));
        lock (n)
        {
            if (_disposing || !n.WantRunning || n.Process != exited) return;
            n.Restarts++;
            StartNode(n);
        }
    }

    public void StartExternalPrometheus(LocalNode n)
    {
        IReadOnlyList<string> cmd = [.. InNamespace(n), _options.PrometheusBinary];
        n.ExternalPrometheus = StartLogged(cmd[0],
        [
            .. cmd.Skip(1),
            $"--config.file={Path.Combine(n.LiveDir, "prometheus.yml")}",
            $"--storage.tsdb.path={Path.Combine(n.Dir, "prometheus-data")}",
            $"--web.listen-address={(_options.Netns is null ? "127.0.0.1" : "0.0.0.0")}:{n.PrometheusPort}",
            "--web.enable-lifecycle",
        ], Path.Combine(n.Dir, "prometheus.log"));
    }

    /// <summary>The command prefix that runs a program in the node's lab namespace (empty without a lab).</summary>
    private IReadOnlyList<string> InNamespace(LocalNode n) =>
        _options.Netns is { } lab && n.NetnsIndex is { } i ? lab.Exec(i) : [];

    /// <summary>kill -9 the node process (its supervised servers keep running, as after a real crash).</summary>
    public void Kill(LocalNode n)
    {
        n.WantRunning = false;
        if (n.Process is { } p)
        {
            try { p.Kill(); } catch (InvalidOperationException) { }
            p.WaitForExit(5000);
        }
    }

    /// <summary>The PID of the node's Prometheus: the external process, or the one its pid file names (null: none running).</summary>
    /// <summary>The node's promha VmRSS in MiB (/proc/PID/status), or null when it does not run.</summary>
    public static double? RssMib(LocalNode n)
    {
        if (n.Process is not { HasExited: false } p) return null;
        try
        {
            return PromHa.Node.Health.ProcessMetrics.ReadStatus(File.ReadAllLines($"/proc/{p.Id}/status")).GetValueOrDefault("VmRSS") / 1024.0;
        }
        catch (IOException)
        {
            return null;
        }
    }

    public static int? PrometheusPid(LocalNode n)
    {
        if (n.Witness) return null;
        if (n.ExternalPrometheus is { } p) return p.HasExited ? null : p.Id;
        var pidFile = Path.Combine(n.DataDir, "prometheus.pid");
        try
        {
            return File.Exists(pidFile) && int.TryParse(File.ReadLines(pidFile).FirstOrDefault(), out var pid) && DetachedServer.IsRunning(pid) ? pid : null;
        }
        catch (IOException)
        {
            return null; // being rewritten
        }
    }

    /// <summary>
    /// kill -9 the node's whole host: promha and the Prometheus and Alertmanager it supervises (their
    /// pid files), as when the machine dies. Its disk stays: started again, the node finds its data.
    /// </summary>
    public void KillHost(LocalNode n)
    {
        Kill(n);
        foreach (var server in new[] { "prometheus", "alertmanager" })
        {
            var pidFile = Path.Combine(n.DataDir, $"{server}.pid");
            if (!File.Exists(pidFile) || !int.TryParse(File.ReadLines(pidFile).FirstOrDefault(), out var pid) || !DetachedServer.IsRunning(pid)) continue;
            try
            {
                using var p = Process.GetProcessById(pid);
                p.Kill();
                p.WaitForExit(5000);
            }
            catch (Exception e) when (e is ArgumentException or InvalidOperationException) { } // gone meanwhile
        }
    }

    /// <summary>The node is not started again when it exits (its service disabled, as before `promha cluster leave`).</summary>
    public void Disable(LocalNode n) => n.WantRunning = false;

    /// <summary>SIGTERM: a graceful stop that hands the role over.</summary>
    public async Task Stop(LocalNode n, TimeSpan? grace = null)
    {
        n.WantRunning = false;
        if (n.Process is { } p) await Task.Run(() => ServerSupervisorActor.Terminate(p, grace ?? TimeSpan.FromSeconds(20)));
    }

    public async Task<bool> IsUp(LocalNode n)
    {
        try
        {
            using var r = await _http.GetAsync($"{n.HttpUrl}/api/v1/status");
            return r.IsSuccessStatusCode;
        }
        catch (Exception) { return false; }
    }

    public async Task<int> PrimaryCode(LocalNode n, TimeSpan? timeout = null)
    {
        try
        {
            using var cts = new CancellationTokenSource(timeout ?? Timeout.InfiniteTimeSpan);
            using var r = await _http.GetAsync($"{n.HttpUrl}/primary", cts.Token);
            return (int)r.StatusCode;
        }
        catch (Exception) { return 0; }
    }

    public async Task<StatusResponse?> Status(LocalNode n)
    {
        try
        {
            using var api = Api(n);
            return await api.Status();
        }
        catch (Exception) { return null; }
    }

    /// <summary>Nodes (among the running ones) whose /primary answers 200 right now.</summary>
    public async Task<IReadOnlyList<LocalNode>> Masters(TimeSpan? timeout = null, Func<LocalNode, bool>? skip = null)
    {
        var running = Nodes.Where(n => n.Running && skip?.Invoke(n) != true).ToList();
        var codes = await Task.WhenAll(running.Select(n => PrimaryCode(n, timeout)));
        return running.Where((_, i) => codes[i] == 200).ToList();
    }

    /// <summary>Waits until exactly one running node (of <paramref name="group"/>, when given) answers /primary with 200 and returns it.</summary>
    public async Task<LocalNode> WaitForSingleMaster(TimeSpan timeout, Func<LocalNode, bool>? where = null, CancellationToken ct = default, string? group = null)
    {
        LocalNode? found = null;
        await WaitUntil(async () =>
        {
            var masters = await Masters(skip: group is null ? null : n => n.Group != group);
            found = masters.Count == 1 && (where?.Invoke(masters[0]) ?? true) ? masters[0] : null;
            return found is not null;
        }, timeout, ct, group is null ? "exactly one master" : $"exactly one master in group {group}");
        return found!;
    }

    /// <summary>
    /// Waits until <paramref name="n"/> (restarted) is a standby again: every node sees all members
    /// Up and reachable, and <paramref name="n"/> names another node as master.
    /// </summary>
    public Task WaitForStandbyAgain(LocalNode n, TimeSpan timeout, CancellationToken ct = default) =>
        WaitUntil(async () =>
        {
            var statuses = await Task.WhenAll(Nodes.Select(Status));
            return statuses.All(st => st is not null && st.Members.Count == Nodes.Count && st.Members.All(m => m.Status == "Up" && m.Reachable)) &&
                   statuses[Nodes.ToList().IndexOf(n)]!.Master is { } m && m != n.Name;
        }, timeout, ct, $"{n.Name} to be a standby again after its restart");

    /// <summary>
    /// Waits until the cluster is settled: every node running, one cluster of all of them, all Up
    /// and reachable, exactly one master that every node names, and a singleton host, seen
    /// <paramref name="inARow"/> checks in a row so that a downing already decided does not slip
    /// through. The one "settled" the partition tests and the benchmarks share.
    /// </summary>
    public async Task<Settled> Settle(TimeSpan timeout, string what, int inARow = 2, CancellationToken ct = default)
    {
        var sw = System.Diagnostics.Stopwatch.StartNew();
        Settled? found = null;
        var seen = 0;
        await WaitUntil(async () =>
        {
            found = null;
            if (!Nodes.All(n => n.Running))
            {
                seen = 0;
                return false;
            }
            var statuses = await Task.WhenAll(Nodes.Select(Status));
            var masters = await Masters();
            var ok = masters.Count == 1 &&
                     statuses.All(st => st is not null && st.Master == masters[0].Name && st.Members.Count == Nodes.Count &&
                                        st.Members.All(m => m.Status == "Up" && m.Reachable));
            if (!ok)
            {
                seen = 0;
                return false;
            }
            var ms = statuses[Nodes.ToList().IndexOf(masters[0])]!;
            found = new Settled(masters[0], ms.SingletonNode, ms.Epoch, sw.Elapsed);
            return ++seen >= inARow && ms.SingletonNode is not null;
        }, timeout, ct, $"one cluster of all {Nodes.Count} nodes, all Up, with exactly one master ({what})");
        return found!;
    }

    /// <summary>The largest cluster the nodes report (its Up members) and the nodes outside it: what a repair restarts.</summary>
    public async Task<(IReadOnlySet<string> Largest, List<LocalNode> Outside)> OutsideLargestCluster()
    {
        var statuses = await Task.WhenAll(Nodes.Select(Status));
        var largest = statuses.Where(st => st is not null)
            .Select(st => st!.Members.Where(m => m.Status == "Up").Select(m => m.Node).ToHashSet())
            .OrderByDescending(m => m.Count).FirstOrDefault() ?? [];
        return (largest, Nodes.Where((n, i) => statuses[i] is null || !largest.Contains(n.Name)).ToList());
    }

    public Task WaitUntil(Func<Task<bool>> condition, TimeSpan timeout, CancellationToken ct, string what) =>
        WaitUntil(condition, timeout, ct, () => what);

    /// <param name="what">What was waited for, said when it times out (it may name what was last seen).</param>
    public async Task WaitUntil(Func<Task<bool>> condition, TimeSpan timeout, CancellationToken ct, Func<string> what)
    {
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < timeout)
        {
            if (await condition()) return;
            await Task.Delay(100, ct);
        }
        throw new TimeoutException($"Timed out after {timeout.TotalSeconds:F0}s waiting for {what()}.\n{LogTails()}");
    }

    /// <summary>
    /// The last lines of every node's log. The seed handshake (InitJoin, InitJoinAck: two lines per
    /// half second from a node that cannot join) is left out: it filled whole tails in CI and hid
    /// why the join never completed.
    /// </summary>
    public string LogTails(int lines = 25) => string.Join("\n", Nodes.Select(n =>
        $"--- {n.Name} ({n.LogPath}) ---\n" +
        (File.Exists(n.LogPath)
            ? string.Join("\n", ReadShared(n.LogPath).Where(l => !l.Contains("InitJoin", StringComparison.Ordinal)).TakeLast(lines))
            : "(no log)") +
        (Path.Combine(n.DataDir, "logs", "alertmanager.log") is var am && File.Exists(am)
            ? $"\n--- {n.Name}'s alertmanager ({am}) ---\n" + string.Join("\n", ReadShared(am).TakeLast(8))
            : "")));

    private static IEnumerable<string> ReadShared(string path)
    {
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        using var r = new StreamReader(fs);
        var all = new List<string>();
        while (r.ReadLine() is { } l) all.Add(l.Length > 600 ? l[..600] : l);
        return all;
    }

    private static Process StartLogged(string file, IEnumerable<string> args, string logPath) =>
        LoggedProcess.Start(file, args, logPath);

    /// <summary>
    /// Stops everything by PID: nodes one at a time (all at once makes Akka's exit phase time out),
    /// then servers a killed node left behind (from its pid files), external servers, extras.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        _disposing = true;
        foreach (var n in Nodes.Where(n => n.Running))
            await Stop(n, TimeSpan.FromSeconds(15));
        foreach (var n in Nodes)
        {
            foreach (var pidFile in new[] { "prometheus.pid", "alertmanager.pid" }.Select(f => Path.Combine(n.DataDir, f)))
                ServerSupervisorActor.StopRecorded(pidFile);
            if (n.ExternalPrometheus is { } ep) ServerSupervisorActor.Terminate(ep, TimeSpan.FromSeconds(10));
        }
        foreach (var p in _extra) ServerSupervisorActor.Terminate(p, TimeSpan.FromSeconds(5));
        _http.Dispose();
    }

    /// <summary>deploy/rules/promha.rules.yml, embedded in the executable.</summary>
    public static string ShippedRules()
    {
        using var stream = typeof(LocalCluster).Assembly.GetManifestResourceStream("promha.rules.yml")!;
        return new StreamReader(stream).ReadToEnd();
    }

    /// <summary>Copies every file of a directory tree (the template conf into a node's dirs).</summary>
    public static void CopyTree(string from, string to)
    {
        foreach (var file in Directory.EnumerateFiles(from, "*", SearchOption.AllDirectories))
        {
            var target = Path.Combine(to, Path.GetRelativePath(from, file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target, overwrite: true);
        }
    }
}

/// <summary>A settled cluster (<see cref="LocalCluster.Settle"/>): its master, the singleton's host, the epoch, how long settling took.</summary>
public sealed record Settled(LocalNode Master, string? SingletonNode, long Epoch, TimeSpan Took);
