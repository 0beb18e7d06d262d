using PromHa.Messages.Health;
using PromHa.Messages.Roles;
using Prometheus;

namespace PromHa.Node.Cluster;

/// <summary>
/// What this node knows right now, written by its actors and read by the HTTP surface without
/// asking an actor (a load balancer's /primary probe must answer even while the cluster is busy).
/// </summary>
public sealed class NodeView(string nodeName, bool witness, TimeProvider? time = null)
{
    /// <summary>The HA group whose master this node's role follows (a witness: the first it serves).</summary>
    public string Group { get; set; } = Groups.GroupScope.DefaultName;

    /// <summary>The node's clock (monotonic in production), shared with the actors that measure leases and retries.</summary>
    public TimeProvider Time { get; } = time ?? MonotonicTimeProvider.Instance;

    private volatile Snapshot _snapshot = new(0, null, false, null, null);

    public string NodeName { get; } = nodeName;
    public bool Witness { get; } = witness;

    public sealed record Snapshot(long Epoch, string? Master, bool HoldsLease, MasterStatus? Status, NodeHealth? Health);

    public Snapshot Current => _snapshot;

    /// <summary>
    /// Holds the lease now, by the clock: a process that was paused (SIGSTOP, a long GC) answers
    /// its first /primary after resuming before its role actor has run, and must not say master
    /// from a lease that ran out meanwhile.
    /// </summary>
    public bool IsMaster => _snapshot.HoldsLease && Time.GetUtcNow().UtcTicks < Interlocked.Read(ref _leaseUntilTicks);

    /// <summary>The config version this node runs, and the latest it knows of.</summary>
    public long ConfigApplied { get; set; }
    public long ConfigLatest { get; set; }

    /// <summary>The config-versions singleton's last heartbeat: the latest version and what each node runs.</summary>
    public Messages.Config.ConfigHeartbeat? ConfigCluster { get; set; }
    public bool PrometheusHealthy => _snapshot.Health is { PrometheusHealthy: true };

    /// <summary>When this node last became master; edits in its conf dir after that are authoritative.</summary>
    public DateTime? MasterSinceUtc { get; private set; }

    private long _masterSinceEpoch = -1;

    private long _leaseUntilTicks = DateTimeOffset.MinValue.UtcTicks;

    /// <summary>How long this node's lease still runs (zero when it holds none): the gate sends only with time to spare.</summary>
    public TimeSpan LeaseLeft(DateTimeOffset now) =>
        _snapshot.HoldsLease ? TimeSpan.FromTicks(Math.Max(0, Interlocked.Read(ref _leaseUntilTicks) - now.UtcTicks)) : TimeSpan.Zero;

    public void SetRole(long epoch, string? master, bool holdsLease, DateTimeOffset? leaseUntil = null)
    {
        Interlocked.Exchange(ref _leaseUntilTicks, (holdsLease ? leaseUntil ?? DateTimeOffset.MaxValue : DateTimeOffset.MinValue).UtcTicks);
        // A lease that lapses and comes back within the same epoch (a slow singleton hand-over)
        // does not make the edits made in between a standby's.
        if (holdsLease && !_snapshot.HoldsLease && epoch != _masterSinceEpoch)
        {
            MasterSinceUtc = DateTime.UtcNow;
            _masterSinceEpoch = epoch;
        }
        _snapshot = _snapshot with { Epoch = epoch, Master = master, HoldsLease = holdsLease };
        NodeMetrics.IsMaster.Set(holdsLease ? 1 : 0);
        NodeMetrics.Epoch.Set(epoch);
    }

    public void SetStatus(MasterStatus status)
    {
        _snapshot = _snapshot with { Status = status };
        NodeMetrics.Paused.Set(status.Maintenance is { Paused: true } ? 1 : 0);
        // Remembered after the member leaves: a pair cut in two finds its peer's API by this.
        foreach (var n in status.Nodes)
            if (n is { Address: { } address, ApiUrl: { Length: > 0 } api } && n.Node != NodeName) _peerApis[address] = (n.Node, api);
    }

    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, (string Node, string Url)> _peerApis = new();

    /// <summary>The node name and HTTP API last seen for a peer's cluster address (host:port).</summary>
    public (string Node, string Url)? PeerApi(string address) => _peerApis.TryGetValue(address, out var p) ? p : null;

    private volatile SplitView? _split;

    /// <summary>Another master seen outside this node's cluster (a pure pair whose link was cut), or null.</summary>
    public SplitView? Split
    {
        get => _split;
        set
        {
            _split = value;
            NodeMetrics.SplitBrain.Set(value is null ? 0 : 1);
        }
    }

    public void SetHealth(NodeHealth health)
    {
        _snapshot = _snapshot with { Health = health };
        NodeMetrics.PrometheusHealthy.Set(health.PrometheusHealthy ? 1 : 0);
        NodeMetrics.AlertmanagerHealthy.Set(health.AlertmanagerHealthy ? 1 : 0);
    }
}

/// <summary>PromHa's own metrics on /metrics.</summary>
public static class NodeMetrics
{
    public static readonly Gauge IsMaster = Metrics.CreateGauge("promha_is_master", "1 while this node holds the master lease.");
    public static readonly Gauge Epoch = Metrics.CreateGauge("promha_epoch", "The leadership epoch this node knows.");
    public static readonly Counter Failovers = Metrics.CreateCounter("promha_failovers_total",
        "Role changes this node saw after the first master of the cluster.", "reason");
    public static readonly Gauge PrometheusHealthy = Metrics.CreateGauge("promha_prometheus_healthy", "1 while the local Prometheus answers /-/healthy and /-/ready.");
    public static readonly Gauge AlertmanagerHealthy = Metrics.CreateGauge("promha_alertmanager_healthy", "1 while the local Alertmanager answers /-/healthy.");
    public static readonly Counter ServerRestarts = Metrics.CreateCounter("promha_server_restarts_total",
        "Restarts of a supervised server after it exited.", "server");
    public static readonly Gauge SplitBrain = Metrics.CreateGauge("promha_split_brain",
        "1 while this node sees another master outside its cluster (a pure pair whose link was cut); the lower epoch rejoins as standby when the link returns.");
    public static readonly Gauge LeaseDenials = Metrics.CreateGauge("promha_lease_denied", "1 while the singleton refuses this node's lease.");
    public static readonly Gauge LifelineOpen = Metrics.CreateGauge("promha_peer_lifeline_open",
        "1 while this node holds an open lifeline to the peer's API: the peer's process exiting is seen at once (fast failover); 0 while it is being opened again.", "peer");
    public static readonly Gauge Paused = Metrics.CreateGauge("promha_paused",
        "1 while the cluster is paused (maintenance): the role moves only on an operator's switchover or failover.");
}
