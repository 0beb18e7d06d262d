namespace PromHa.Node.Settings;

/// <summary>
/// promha.yml, bound from YAML + environment (PROMHA_...) + flags. Property names are the YAML keys
/// in camelCase; docs/reference.md (Configuration reference) lists them.
/// </summary>
public sealed class NodeSettings
{
    public NodeSection Node { get; set; } = new();
    /// <summary>
    /// The HA group this node's Prometheus belongs to (its master, conf tree, versions and
    /// notifications are the group's). Empty: the default group, or the one group in
    /// <c>cluster.groups</c> that lists this node.
    /// </summary>
    public string Group { get; set; } = "";
    public ClusterSection Cluster { get; set; } = new();
    public HttpSection Http { get; set; } = new();
    public string DataDir { get; set; } = "";
    public string ConfDir { get; set; } = "";
    public ManagedServer Prometheus { get; set; } = new();
    public ManagedServer Alertmanager { get; set; } = new();
    public TimingSection Timing { get; set; } = new();
    public ConfigSection Config { get; set; } = new();
    public TlsSection Tls { get; set; } = new();
    public AlertsSection Alerts { get; set; } = new();
    public HooksSection Hooks { get; set; } = new();
    public JournalSection Journal { get; set; } = new();
    /// <summary>Remote storage the group's samples go to (rendered as remote_write in prometheus.yml).</summary>
    public List<RemoteWriteTarget> RemoteWrite { get; set; } = [];

    /// <summary>A node without Prometheus or Alertmanager votes in the cluster but never becomes master.</summary>
    public bool IsWitness => Prometheus.Mode == ServerMode.None && Alertmanager.Mode == ServerMode.None;

    /// <summary>
    /// A local server's URL as other nodes reach it: a loopback or wildcard host is replaced by the
    /// cluster's advertised host when that is not loopback itself (another node's 127.0.0.1 is its own).
    /// </summary>
    public string Advertised(string url)
    {
        if (!Uri.TryCreate(url, UriKind.Absolute, out var u) || u.Host is not ("127.0.0.1" or "localhost" or "0.0.0.0" or "[::]" or "[::1]" or "::1")) return url;
        if (Cluster.AdvertisedHost is "127.0.0.1" or "localhost" or "::1" || Cluster.AdvertisedHost.Length == 0) return url;
        return new UriBuilder(u) { Host = Cluster.AdvertisedHost }.Uri.ToString().TrimEnd('/');
    }

    /// <summary>Where other nodes reach this node's HTTP API: the listen address, or the cluster's advertised host when it listens on all interfaces.</summary>
    public string ApiUrl => SettingsLoader.TryHostPort(Http.Listen, out var host, out var port)
        ? $"{(Tls.Http ? "https" : "http")}://{(SettingsLoader.IsAnyAddress(host) ? Cluster.AdvertisedHost : host)}:{port}"
        : "";
}

public sealed class NodeSection
{
    public string Name { get; set; } = "";
}

public sealed class ClusterSection
{
    public string Host { get; set; } = "127.0.0.1";
    public int Port { get; set; } = 4053;
    /// <summary>
    /// The address other nodes reach this one at, when it is not host:port (NAT, a container's
    /// published port, a proxy). Seeds list this address. Empty or 0: host and port.
    /// </summary>
    public string PublicHost { get; set; } = "";
    public int PublicPort { get; set; }
    public string AdvertisedHost => string.IsNullOrEmpty(PublicHost) ? Host : PublicHost;
    public int AdvertisedPort => PublicPort == 0 ? Port : PublicPort;
    /// <summary>host:port of every seed; list all of them, so a restarted node never forms a cluster alone.</summary>
    public List<string> Seeds { get; set; } = [];
    /// <summary>
    /// Several HA groups in this cluster: group name to the names of its nodes (a witness may be in
    /// several). Every node lists the same map; each group elects its own master among its nodes,
    /// by a majority of them. Empty: one group of every seed.
    /// </summary>
    public Dictionary<string, List<string>> Groups { get; set; } = new();
    public TieBreakerSection TieBreaker { get; set; } = new();
}

/// <summary>
/// For a pure two-node pair: the node that loses its peer stays up only while it reaches a majority
/// of these host:port addresses (the keepalived/Pacemaker "ping node").
/// </summary>
public sealed class TieBreakerSection
{
    public List<string> Targets { get; set; } = [];
    public int TimeoutMs { get; set; } = 500;
    /// <summary>
    /// Instead of targets: a PostgreSQL connection string. The side that loses its peer stays up only
    /// if it takes the pair's lease row in that database first (one winner, also on a cut link); with
    /// the database unreachable neither side does, and the pair has no master until it answers again.
    /// </summary>
    public string Database { get; set; } = "";
    /// <summary>How long a lease taken by a crashed node blocks the other, when it crashed holding it.</summary>
    public int DatabaseLeaseTtlMs { get; set; } = 10000;
}

/// <summary>
/// One remote_write receiver. mode master-only: only the master's Prometheus writes (a switch of
/// master switches the writer); all-replicas: every replica writes, for receivers that deduplicate
/// (VictoriaMetrics' -dedup.minScrapeInterval, Mimir/Cortex HA tracker). Either way the replica label
/// is dropped on the way out, so the receiver keeps one series per target whoever wrote it.
/// </summary>
public sealed class RemoteWriteTarget
{
    public const string MasterOnly = "master-only";
    public const string AllReplicas = "all-replicas";
    public string Url { get; set; } = "";
    public string Mode { get; set; } = MasterOnly;
    /// <summary>remote_write's name (queues and metrics); default promha-&lt;index&gt;.</summary>
    public string Name { get; set; } = "";
    /// <summary>A file holding a bearer token (bearer_token_file).</summary>
    public string BearerTokenFile { get; set; } = "";
    public string BasicAuthUsername { get; set; } = "";
    public string BasicAuthPasswordFile { get; set; } = "";
    /// <summary>
    /// master-only: each node's gate holds what its Prometheus wrote and the master has not
    /// confirmed yet, up to this many bytes (then Prometheus is told to retry and keeps it in its WAL)
    /// and this many seconds (older is forgotten: a receiver down longer than that leaves a gap if
    /// the master fails meanwhile).
    /// </summary>
    public long BufferBytes { get; set; } = 256L * 1024 * 1024;
    public int BufferSeconds { get; set; } = 600;

    public string EffectiveName(int index) => Name.Length > 0 ? Name : $"promha-{index}";
}

public enum JournalProvider { Sqlite, Postgresql }

/// <summary>
/// Where the node's journal (Akka.Persistence.Sql: its replica of the role ledger and the config
/// versions) lives. SQLite in the data dir by default; PostgreSQL by connection string, each node in
/// its own schema (the journal is a per-node replica, not shared state).
/// </summary>
public sealed class JournalSection
{
    public JournalProvider Provider { get; set; } = JournalProvider.Sqlite;
    /// <summary>PostgreSQL: an Npgsql connection string (Host=...;Port=...;Database=...;Username=...; a password
    /// is better kept in PROMHA_JOURNAL__CONNECTIONSTRING or a Passfile= than in promha.yml).</summary>
    public string ConnectionString { get; set; } = "";
    /// <summary>PostgreSQL: the node's schema; default promha_&lt;node name&gt;.</summary>
    public string Schema { get; set; } = "";
}

/// <summary>
/// Mutual TLS between nodes (Akka remoting), certificates from files (`promha certs init`): a node
/// whose certificate is not signed by the cluster CA cannot join. Set all three files, or none.
/// </summary>
public sealed class TlsSection
{
    public string CaFile { get; set; } = "";
    public string CertFile { get; set; } = "";
    public string KeyFile { get; set; } = "";
    /// <summary>Serve the HTTP API over HTTPS with the same certificate.</summary>
    public bool Http { get; set; }

    public bool Enabled => CertFile.Length > 0;
}

public sealed class HttpSection
{
    public string Listen { get; set; } = "127.0.0.1:8480";
    /// <summary>
    /// A file holding the admin token (owner-readable only). Without it PROMHA_TOKEN or the systemd
    /// credential "promha-token" is used; with none, the admin API is open (a warning at start).
    /// </summary>
    public string TokenFile { get; set; } = "";
}

public enum ServerMode { None, External, Supervised }

public sealed class ManagedServer
{
    public ServerMode Mode { get; set; } = ServerMode.None;
    /// <summary>Base URL PromHa talks to. For supervised servers it defaults to http://{listen}.</summary>
    public string Url { get; set; } = "";
    /// <summary>Supervised only: where the server listens.</summary>
    public string Listen { get; set; } = "";
    /// <summary>Supervised only: the binary; defaults to the Debian paths.</summary>
    public string Binary { get; set; } = "";
    public List<string> ExtraArgs { get; set; } = [];

    /// <summary>
    /// Where this node talks to the server. A supervised server that listens on every address
    /// (0.0.0.0:9090, a container) is reached on 127.0.0.1; <see cref="NodeSettings.Advertised"/>
    /// gives other nodes the cluster's advertised host instead.
    /// </summary>
    public string EffectiveUrl => (string.IsNullOrEmpty(Url) ? $"http://{LocalListen}" : Url).TrimEnd('/');

    private string LocalListen => SettingsLoader.TryHostPort(Listen, out var host, out var port) && SettingsLoader.IsAnyAddress(host)
        ? $"127.0.0.1:{port}"
        : Listen;

    /// <summary>
    /// Alertmanager only: its gossip address (--cluster.listen-address), so that silences and the
    /// notification log are shared by every node's Alertmanager. Empty: the listen host, port 9094;
    /// "off": no gossip (silences are then local to each node).
    /// </summary>
    public string ClusterListen { get; set; } = "";
    /// <summary>
    /// Alertmanager only: the other nodes' gossip addresses (--cluster.peer). Empty: every seed's
    /// host with this node's gossip port (one node per host, the same port everywhere).
    /// </summary>
    public List<string> ClusterPeers { get; set; } = [];
}

/// <summary>Operator scripts run when this node's role changes (keepalived's notify_master/notify_backup).</summary>
public sealed class HooksSection
{
    /// <summary>Executables run in this order with ROLE EPOCH MASTER, one at a time.</summary>
    public List<string> OnRoleChange { get; set; } = [];
    /// <summary>A hook still running after this long is killed (and recorded as timed out).</summary>
    public int TimeoutSeconds { get; set; } = 30;
}

/// <summary>The notification gate: what the local Alertmanager's webhooks go through.</summary>
public sealed class AlertsSection
{
    /// <summary>How long a delivery is retried (with backoff) before it counts as failed; it is kept and shown either way.</summary>
    public int GiveUpAfterSeconds { get; set; } = 600;
    /// <summary>How long the outbox keeps notifications (pending, delivered, failed); deduplication looks back this far at most.</summary>
    public int RetentionHours { get; set; } = 24;
    /// <summary>The largest webhook body the gate takes from Alertmanager (set max_alerts on big groups).</summary>
    public int MaxPayloadBytes { get; set; } = 4 * 1024 * 1024;
    /// <summary>
    /// Where the local Alertmanager reaches this node's HTTP API, when not on this host's loopback
    /// (an Alertmanager container beside a promha container: http://node-a:8480). Empty: the
    /// http.listen port on 127.0.0.1.
    /// </summary>
    public string GateUrl { get; set; } = "";
}

public sealed class TimingSection
{
    public int LeaseMs { get; set; } = 2000;
    public int LeaseMarginMs { get; set; } = 300;
    public int ProbeIntervalMs { get; set; } = 1000;
    public int ProbeTimeoutMs { get; set; } = 800;
    /// <summary>How long the master's Prometheus may fail its probes before the role moves.</summary>
    public int UnhealthyAfterMs { get; set; } = 3000;
}

public enum ConfigMode { Mirror, Federate }

/// <summary>How a node renders, validates and applies configuration versions.</summary>
public sealed class ConfigSection
{
    /// <summary>mirror: every node runs the same config; federate: standbys scrape the master's /federate.</summary>
    public ConfigMode Mode { get; set; } = ConfigMode.Mirror;
    /// <summary>External label naming the replica, so downstream stores can deduplicate.</summary>
    public string ReplicaLabel { get; set; } = "promha_replica";
    /// <summary>federate mode: the match[] selectors a standby asks the master for.</summary>
    public List<string> FederateMatch { get; set; } = [];
    /// <summary>Where the rendered files Prometheus and Alertmanager read live; default &lt;dataDir&gt;/live.</summary>
    public string LiveDir { get; set; } = "";
    /// <summary>How many previous live trees to keep in &lt;dataDir&gt;/config/backups.</summary>
    public int Backups { get; set; } = 5;
    /// <summary>Quiet time after the last change in the conf dir before it becomes a candidate.</summary>
    public int DebounceMs { get; set; } = 150;
    /// <summary>Full rescan of the conf dir, a safety net for missed file events.</summary>
    public int RescanSeconds { get; set; } = 10;
    public string Promtool { get; set; } = "/usr/bin/promtool";
    public string Amtool { get; set; } = "/usr/bin/amtool";
    /// <summary>What a conf tree may hold in all, unpacked (uploads, the conf dir, fetched bundles).</summary>
    public long MaxBundleBytes { get; set; } = 256L * 1024 * 1024;
    /// <summary>What a single file of a conf tree may hold.</summary>
    public long MaxFileBytes { get; set; } = 64L * 1024 * 1024;
    /// <summary>Size of one fetched slice of a bundle; a remoting frame holds 128,000 bytes.</summary>
    public int ChunkBytes { get; set; } = 64 * 1024;

    public PromHa.Node.Config.ArchiveLimits Limits => new(MaxBundleBytes, Math.Min(MaxFileBytes, MaxBundleBytes));

    public string EffectiveLiveDir(string dataDir) => string.IsNullOrEmpty(LiveDir) ? Path.Combine(dataDir, "live") : LiveDir;

    public IReadOnlyList<string> EffectiveFederateMatch => FederateMatch.Count > 0 ? FederateMatch : ["{__name__=~\".+\"}"];
}
