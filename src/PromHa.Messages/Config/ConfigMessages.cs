namespace PromHa.Messages.Config;

/// <summary>
/// A committed configuration version: from now on <see cref="Version"/> always names the bundle whose
/// content hash is <see cref="BundleHash"/>. The file list itself lives in the bundle (content
/// addressed by that hash), so this event stays small enough for one remoting frame even for a tree
/// of 10,000 files. Journaled on every node's ledger, like role changes.
/// </summary>
public sealed record ConfigVersionCommitted(
    long Version,
    string BundleHash,
    int FileCount,
    long Bytes,
    string Source,
    string Author,
    string Origin,
    DateTimeOffset At) : IPromHaMessage;

/// <summary>
/// A node validated a candidate bundle, stored it and asks the singleton to commit it as the next
/// version. <see cref="Origin"/> is the node that holds the bundle for others to fetch.
/// </summary>
public sealed record SubmitCandidate(string BundleHash, int FileCount, long Bytes, string Source, string Author, string Origin)
    : IPromHaMessage;

/// <summary>The singleton's answer: the version that names the bundle (a new one, or the latest when unchanged).</summary>
public sealed record CandidateCommitted(long Version, string BundleHash, bool Created) : IPromHaMessage;

/// <summary>The singleton could not commit now (recovering, no majority); nothing changed, try again.</summary>
public sealed record CandidateNotCommitted(string BundleHash, string Reason) : IPromHaMessage;

/// <summary>A candidate that failed validation; reported to the singleton so every node's status shows it.</summary>
public sealed record CandidateRejected(string Node, string BundleHash, string Source, string Author, string Reason, DateTimeOffset At)
    : IPromHaMessage;

/// <summary>Published on <see cref="ConfigTopics.Config"/> and sent to every member after a commit.</summary>
public sealed record ConfigVersionAvailable(long Version, string BundleHash, string Origin) : IPromHaMessage;

/// <summary>Ask a node for a slice of a stored bundle (remoting frames are small, bundles are not).</summary>
public sealed record FetchBundleChunk(string BundleHash, long Offset, int MaxBytes) : IPromHaMessage;

public sealed record BundleChunk(string BundleHash, long Offset, long Total, byte[] Data) : IPromHaMessage;

public sealed record BundleUnavailable(string BundleHash, string Node) : IPromHaMessage;

/// <summary>A node verified that its Prometheus and Alertmanager run this version.</summary>
public sealed record ConfigApplied(string Node, long Version, string BundleHash, double Seconds, DateTimeOffset At) : IPromHaMessage;

/// <summary>A node could not apply this version and rolled back to what it ran before.</summary>
public sealed record ConfigApplyFailed(string Node, long Version, string Reason, DateTimeOffset At) : IPromHaMessage;

public sealed record GetConfigStatus : IPromHaMessage
{
    public static readonly GetConfigStatus Instance = new();
}

/// <summary>
/// One node's configuration as the singleton last heard it. <see cref="State"/>: current, fetching,
/// applying, failed or behind; <see cref="BehindSince"/>: since when it has not run the latest
/// version; <see cref="FailedSince"/>: since when the step it is retrying has failed.
/// </summary>
public sealed record NodeConfigView(string Node, long Applied, long? FailedVersion, string? FailedReason, DateTimeOffset? At,
    string? State = null, DateTimeOffset? BehindSince = null, DateTimeOffset? FailedSince = null);

/// <summary>
/// A node's own account of how far it is from the latest version (what it runs, what it is doing,
/// its last fetch or apply error and since when), sent to the config-versions singleton on every
/// change and every few seconds, so that a new singleton knows it too.
/// </summary>
public sealed record ConfigNodeState(string Node, long Applied, long Latest, string State, string? Error, long? ErrorVersion,
    DateTimeOffset? ErrorSince, DateTimeOffset? BehindSince, DateTimeOffset At) : IPromHaMessage;

public sealed record ConfigStatus(
    ConfigVersionCommitted? Latest,
    IReadOnlyList<NodeConfigView> Nodes,
    IReadOnlyList<CandidateRejected> Rejected) : IPromHaMessage;

/// <summary>
/// The config-versions singleton's heartbeat, every second and on every change: nodes compare
/// <see cref="Latest"/> with what they run (anti-entropy) and their ledgers catch up from
/// <see cref="SingletonAddress"/>'s; <see cref="Nodes"/> is what each node reported it runs.
/// </summary>
public sealed record ConfigHeartbeat(
    ConfigVersionCommitted? Latest,
    string SingletonAddress,
    IReadOnlyList<NodeConfigView> Nodes,
    DateTimeOffset At) : IPromHaMessage;

public static class ConfigTopics
{
    /// <summary>New config versions and the config-versions singleton's heartbeat.</summary>
    public const string Config = "promha.config";
}
