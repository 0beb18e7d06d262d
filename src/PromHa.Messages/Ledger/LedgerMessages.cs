using PromHa.Messages.Config;
using PromHa.Messages.Roles;

namespace PromHa.Messages.Ledger;

/// <summary>Persist this role change in the receiving node's journal; answered with <see cref="Recorded"/>.</summary>
public sealed record RecordMasterChanged(MasterChanged Change) : IEpochMessage
{
    public long Epoch => Change.Epoch;
}

/// <param name="VouchRemainingMs">How long a vouch this ledger gave for an earlier reign may still
/// count (see <see cref="Roles.Vouched"/>): a new master is announced only after it ran out.</param>
public sealed record Recorded(string Node, long Epoch, long VouchRemainingMs = 0) : IEpochMessage;

/// <summary>
/// A role change the singleton journaled but could not get onto a majority of the configured
/// nodes' ledgers: it was never committed nor announced, so the ledgers that hold it drop it
/// (journaled as this record, so a restart drops it again). Its number is not used again.
/// </summary>
public sealed record DiscardMasterChanged(long Epoch, string Reason, string? Node = null) : IEpochMessage;

/// <summary>The same for a config version that did not reach a majority of the configured nodes.</summary>
public sealed record DiscardConfigVersion(long Version, string Reason, string? BundleHash = null) : IPromHaMessage;

/// <summary>Asks a ledger for its highest epoch; a starting singleton asks every member.</summary>
public sealed record GetLedgerHead : IPromHaMessage
{
    public static readonly GetLedgerHead Instance = new();
}

/// <summary>
/// A ledger's highest epoch and highest config version, with the events that carry them, and the
/// highest numbers it saw discarded: a singleton never hands those out again.
/// </summary>
public sealed record LedgerHead(string Node, long Epoch, MasterChanged? Last, long ConfigVersion = 0, ConfigVersionCommitted? LastConfig = null,
    long DiscardedEpoch = 0, long DiscardedConfigVersion = 0, MaintenanceChanged? Maintenance = null, long DiscardedMaintenance = 0)
    : IEpochMessage;

/// <summary>
/// Maintenance mode (Patroni's pause): while <see cref="Paused"/>, the master singleton moves the
/// role only when an operator asks (switchover, failover). The fourth kind of record that must reach
/// a majority of the ledgers before it counts; <see cref="Seq"/> rises with every change.
/// </summary>
public sealed record MaintenanceChanged(long Seq, bool Paused, string By, DateTimeOffset At) : IPromHaMessage;

/// <summary>Persist this maintenance change in the receiving node's journal; answered with <see cref="MaintenanceRecorded"/>.</summary>
public sealed record RecordMaintenance(MaintenanceChanged Change) : IPromHaMessage;

public sealed record MaintenanceRecorded(string Node, long Seq) : IPromHaMessage;

/// <summary>A maintenance change that did not reach a majority: dropped, its number never used again.</summary>
public sealed record DiscardMaintenance(long Seq, string Reason) : IPromHaMessage;

/// <summary>Persist this config version in the receiving node's journal; answered with <see cref="ConfigRecorded"/>.</summary>
public sealed record RecordConfigVersion(ConfigVersionCommitted Committed) : IPromHaMessage;

public sealed record ConfigRecorded(string Node, long Version) : IPromHaMessage;

/// <summary>Committed config versions, newest first.</summary>
public sealed record GetConfigVersions(int Limit) : IPromHaMessage;

public sealed record GetConfigVersion(long Version) : IPromHaMessage;

/// <summary>The answer to <see cref="GetConfigVersion"/>: null when this ledger has no such version.</summary>
public sealed record ConfigVersionLookup(long Version, ConfigVersionCommitted? Committed) : IPromHaMessage;

/// <summary>Anti-entropy between ledgers: "I have up to <see cref="Epoch"/>; send me what is newer".</summary>
public sealed record LedgerSync(string Node, long Epoch, long ConfigVersion) : IEpochMessage;

public sealed record LedgerEvents(string Node, IReadOnlyList<MasterChanged> Events, IReadOnlyList<ConfigVersionCommitted>? Configs = null)
    : IPromHaMessage;

public sealed record GetHistory(int Limit) : IPromHaMessage;
