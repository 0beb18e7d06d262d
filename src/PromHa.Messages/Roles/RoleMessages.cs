namespace PromHa.Messages.Roles;

/// <summary>
/// A role change decided by the master singleton: from <see cref="Epoch"/> on, <see cref="Node"/> is
/// the master. Persisted on every node's ledger and published on <see cref="Topics.Roles"/>.
/// <see cref="Incarnation"/> names the process that was granted the role (address and UID): a
/// node that restarts is a new reign and gets a new epoch, whichever singleton notices it.
/// </summary>
public sealed record MasterChanged(long Epoch, string Node, string Reason, DateTimeOffset At, string? Previous, string? Incarnation = null)
    : IEpochMessage;

/// <summary>The master node asks the singleton to extend its lease for this epoch.</summary>
public sealed record RenewLease(long Epoch, string Node, long RequestId) : IEpochMessage;

/// <summary>
/// The singleton granted the lease. The node counts the duration from when it *sent* the request,
/// so its own view of the lease always ends before the singleton's does.
/// </summary>
public sealed record LeaseGranted(long Epoch, string Node, long RequestId, long DurationMs) : IEpochMessage;

/// <summary>
/// The singleton refused the lease. <see cref="Binding"/>: the role is moving or belongs to another
/// reign, so the node stops acting as master at once and no longer leans on its voters. A
/// non-binding refusal (the singleton lost its majority) only ends the singleton's grant: the
/// votes of a majority may still carry the master.
/// </summary>
public sealed record LeaseDenied(long Epoch, string Node, string Reason, bool Binding = true) : IEpochMessage;

/// <summary>
/// The master asks a member's ledger to vouch for its reign for one lease term. A ledger vouches
/// only for the reign at its journaled head (epoch, node and incarnation all match). A master
/// vouched for by a majority of the configured nodes keeps the role while the singleton is away.
/// </summary>
public sealed record VouchForMaster(long Epoch, string Node, string Incarnation, long RequestId) : IEpochMessage;

/// <summary>
/// A ledger vouches for <see cref="Node"/>'s reign for <see cref="DurationMs"/>, counted by the
/// master from when it asked. Until then that ledger acknowledges a newer epoch only together
/// with how long this vouch still runs, and the singleton waits that long before announcing it.
/// </summary>
public sealed record Vouched(long Epoch, string Node, string Voter, long RequestId, long DurationMs) : IEpochMessage;

/// <summary>The master gave up its reign (switchover, shutdown, binding refusal): its vouches end now.</summary>
public sealed record WithdrawVouch(long Epoch, string Node) : IEpochMessage;

/// <summary>The singleton asks the master to step down now (switchover).</summary>
public sealed record RevokeLease(long Epoch, string Node) : IEpochMessage;

/// <summary>The master gave up its lease (after a revoke, or when it shuts down gracefully).</summary>
public sealed record LeaseReleased(long Epoch, string Node) : IEpochMessage;

/// <summary>
/// An operator asks for a graceful switchover, to <see cref="Target"/> or to the best standby; or,
/// with <see cref="Failover"/>, for a failover that needs no healthy master (and with
/// <see cref="Force"/> may name a node whose Prometheus is reported unhealthy).
/// </summary>
public sealed record RequestSwitchover(string? Target, bool Failover = false, bool Force = false) : IPromHaMessage;

public sealed record SwitchoverResult(bool Accepted, string Message) : IPromHaMessage;

/// <summary>An operator pauses (maintenance: no automatic failover) or resumes the cluster; answered with <see cref="SwitchoverResult"/>.</summary>
public sealed record RequestMaintenance(bool Paused, string By) : IPromHaMessage;

/// <summary>
/// What the master singleton knows, published every second and on every change.
/// <see cref="LeaseExpiresAt"/>: until when the singleton counts the announced master's lease.
/// </summary>
public sealed record MasterStatus(
    long Epoch,
    string? Master,
    string SingletonNode,
    string SingletonAddress,
    bool Recovered,
    IReadOnlyList<NodeHealthView> Nodes,
    DateTimeOffset At,
    DateTimeOffset? LeaseExpiresAt = null,
    Ledger.MaintenanceChanged? Maintenance = null) : IEpochMessage;

/// <summary>One node's health as the singleton last heard it.</summary>
public sealed record NodeHealthView(
    string Node,
    bool Witness,
    bool Reachable,
    bool PrometheusHealthy,
    bool AlertmanagerHealthy,
    double? LastReportAgeSeconds,
    string? Detail,
    long? ConfigVersion = null,   // filled in by the HTTP API from the config-versions heartbeat
    string? ConfigError = null,
    string? PrometheusUrl = null,
    string? ApiUrl = null,
    string? Address = null,
    string? AlertmanagerUrl = null,
    string? ConfigState = null,   // current, fetching, applying, failed, behind (the node's own account)
    DateTimeOffset? ConfigBehindSince = null);

public sealed record GetMasterStatus : IPromHaMessage
{
    public static readonly GetMasterStatus Instance = new();
}

public static class Topics
{
    /// <summary>Role changes and the singleton's status heartbeat.</summary>
    public const string Roles = "promha.roles";
}
