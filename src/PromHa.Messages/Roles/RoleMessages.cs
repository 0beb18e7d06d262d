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

/// <summary>The singleton refused the lease: the node must not act as master for this epoch.</summary>
public sealed record LeaseDenied(long Epoch, string Node, string Reason) : IEpochMessage;

/// <summary>The singleton asks the master to step down now (switchover).</summary>
public sealed record RevokeLease(long Epoch, string Node) : IEpochMessage;

/// <summary>The master gave up its lease (after a revoke, or when it shuts down gracefully).</summary>
public sealed record LeaseReleased(long Epoch, string Node) : IEpochMessage;

/// <summary>An operator asks for a graceful switchover, to <see cref="Target"/> or to the best standby.</summary>
public sealed record RequestSwitchover(string? Target) : IPromHaMessage;

public sealed record SwitchoverResult(bool Accepted, string Message) : IPromHaMessage;

/// <summary>
/// What the singleton knows, published every second and on every change. Nodes compare
/// <see cref="LatestConfig"/> with what they applied (config anti-entropy).
/// </summary>
public sealed record MasterStatus(
    long Epoch,
    string? Master,
    string SingletonNode,
    string SingletonAddress,
    bool Recovered,
    IReadOnlyList<NodeHealthView> Nodes,
    DateTimeOffset At,
    Config.ConfigVersionCommitted? LatestConfig = null) : IEpochMessage;

/// <summary>One node's health as the singleton last heard it.</summary>
public sealed record NodeHealthView(
    string Node,
    bool Witness,
    bool Reachable,
    bool PrometheusHealthy,
    bool AlertmanagerHealthy,
    double? LastReportAgeSeconds,
    string? Detail,
    long? ConfigVersion = null,
    string? ConfigError = null,
    string? PrometheusUrl = null,
    string? ApiUrl = null,
    string? Address = null);

public sealed record GetMasterStatus : IPromHaMessage
{
    public static readonly GetMasterStatus Instance = new();
}

public static class Topics
{
    /// <summary>Role changes and the singleton's status heartbeat.</summary>
    public const string Roles = "promha.roles";
}
