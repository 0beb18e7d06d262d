using PromHa.Messages.Config;

namespace PromHa.Node.Config;

/// <summary>
/// How far one node is from the latest committed version, as the node itself sees it: what it runs,
/// what it is doing about the latest, the last error on the way (a fetch or an apply that failed)
/// and since when. A pure value: ConfigSyncActor feeds it what happens and reports
/// <see cref="Report"/> to the config-versions singleton, which shows it in `promha config status`,
/// the page and /metrics (promha_config_behind_seconds, alert PromHaConfigBehind).
/// </summary>
public sealed record Convergence(
    long Applied,
    long Latest,
    DateTimeOffset? BehindSince,
    long? ErrorVersion,
    string? Error,
    DateTimeOffset? ErrorSince,
    bool Fetching,
    bool Applying)
{
    public static readonly Convergence Initial = new(0, 0, null, null, null, null, false, false);

    public static Convergence Start(long applied) => Initial with { Applied = applied, Latest = applied };

    public bool Behind => Latest > Applied;

    /// <summary>current, fetching, applying, failed (the last try for the latest failed; it is tried again) or behind.</summary>
    public string State => !Behind && Error is null ? "current"
        : Applying ? "applying"
        : Fetching ? "fetching"
        : Error is not null ? "failed"
        : "behind";

    public TimeSpan BehindFor(DateTimeOffset now) => BehindSince is { } since && Behind ? now - since : TimeSpan.Zero;

    /// <summary>A newer latest version was learnt: behind from now, unless behind already.</summary>
    public Convergence LatestIs(long version, DateTimeOffset now)
    {
        if (version <= Latest) return this;
        var next = this with { Latest = version };
        return next.Behind && BehindSince is null ? next with { BehindSince = now } : next;
    }

    public Convergence FetchStarted() => this with { Fetching = true };

    public Convergence ApplyStarted() => this with { Applying = true, Fetching = false };

    /// <summary>
    /// A step towards <paramref name="version"/> failed. The first failure of a version sets the
    /// time; a retry that fails again keeps it (the error is as old as the first), with the newest words.
    /// </summary>
    public Convergence Failed(long version, string error, DateTimeOffset now) =>
        this with
        {
            Fetching = false,
            Applying = false,
            ErrorVersion = version,
            Error = error,
            ErrorSince = ErrorVersion == version && ErrorSince is { } since ? since : now,
        };

    /// <summary>The fetch ended without an error of its own (the bundle is here, or it was given up for a newer one).</summary>
    public Convergence FetchEnded() => this with { Fetching = false };

    /// <summary>A version runs here now: an error for it or an older one is over.</summary>
    public Convergence AppliedVersion(long version)
    {
        var next = this with { Applied = Math.Max(Applied, version), Applying = false };
        if (next.ErrorVersion is { } ev && ev <= next.Applied) next = next with { ErrorVersion = null, Error = null, ErrorSince = null };
        return next.Behind ? next : next with { BehindSince = null };
    }

    /// <summary>A re-render of the running version failed: the node runs its previous files, and says so.</summary>
    public Convergence ApplyEnded() => this with { Applying = false };

    public ConfigNodeState Report(string node, DateTimeOffset now) =>
        new(node, Applied, Latest, State, Error, ErrorVersion, ErrorSince, Behind ? BehindSince : null, now);

    /// <summary>What a report says that a listener would care about (not its time).</summary>
    public (long, long, string, string?) Gist => (Applied, Latest, State, Error);
}
