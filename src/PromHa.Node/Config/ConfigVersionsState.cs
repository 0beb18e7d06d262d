using System.Collections.Immutable;
using PromHa.Messages.Config;
using PromHa.Messages.Ledger;
using PromHa.Node.Replication;

namespace PromHa.Node.Config;

/// <summary>What to do with a submitted candidate.</summary>
public abstract record SubmitDecision;
/// <summary>The candidate is the latest version already: nothing new.</summary>
public sealed record AlreadyLatest(ConfigVersionCommitted Latest) : SubmitDecision;
/// <summary>Another version is being journaled: this one waits its turn.</summary>
public sealed record WaitTurn : SubmitDecision;
public sealed record Refuse(string Reason) : SubmitDecision;
/// <summary>Journal this version on the ledgers; it counts once a majority holds it.</summary>
public sealed record Commit(ConfigVersionCommitted Version) : SubmitDecision;

/// <summary>What a newer version on a later member's ledger means (<see cref="ConfigVersionsState.Learn"/>).</summary>
public enum LearnedVersion { Nothing, Adopted, NeverCommitted, Confirm, Later }

/// <summary>
/// The config-versions singleton's state as a pure value: which version is the latest, which
/// number comes next (never one handed out before, committed or not), what each node runs, and the
/// recent rejections. Versions are numbered one at a time; the actor journals each through the
/// <see cref="ReplicatedLog{TEntry,TAck}"/> and feeds the result back.
/// </summary>
public sealed record ConfigVersionsState(
    bool Recovered,
    ConfigVersionCommitted? Latest,
    long NumberedUpTo,
    ConfigVersionCommitted? Committing,
    ImmutableDictionary<string, NodeConfigView> Nodes,
    ImmutableList<CandidateRejected> Rejected)
{
    public const int KeepRejected = 20;

    public static readonly ConfigVersionsState Initial = new(false, null, 0, null,
        ImmutableDictionary<string, NodeConfigView>.Empty, ImmutableList<CandidateRejected>.Empty);

    /// <summary>
    /// Starts from the newest version the ledgers read hold, and skips every number one discarded.
    /// With three or more nodes, a newest version on fewer ledgers than a majority may never have
    /// been committed (its singleton stopped before discarding it): it becomes
    /// <see cref="Committing"/>, to be journaled again, and counts only once a majority holds it.
    /// </summary>
    public ConfigVersionsState Recover(IEnumerable<LedgerHead> heads, int clusterSize)
    {
        var read = heads.ToList();
        var versions = read.Select(h => h.LastConfig).OfType<ConfigVersionCommitted>().ToList();
        var newest = versions.MaxBy(c => c.Version);
        var state = this with
        {
            Recovered = true,
            NumberedUpTo = Math.Max(NumberedUpTo, read.Select(h => h.DiscardedConfigVersion).DefaultIfEmpty(0).Max()),
        };
        if (newest is null) return state;
        var holders = read.Count(h => h.ConfigVersion >= newest.Version);
        if (clusterSize <= 2 || Quorum.IsMajority(holders, clusterSize)) return state with { Latest = Newer(Latest, newest) };
        return state with
        {
            Latest = Newer(Latest, versions.Where(c => c.Version < newest.Version).MaxBy(c => c.Version)),
            Committing = newest,
        };
    }

    /// <summary>
    /// A member that joined later holds a newer version than the ledgers recovered from. Once a
    /// majority's heads were read it cannot be committed (a committed one is on a majority, which
    /// shares a ledger with those read): drop it. Before that it may be: journal it again. A pair
    /// adopts it.
    /// </summary>
    public (ConfigVersionsState State, LearnedVersion Outcome) Learn(LedgerHead head, int clusterSize, bool knewLatest)
    {
        var state = this with { NumberedUpTo = Math.Max(NumberedUpTo, head.DiscardedConfigVersion) };
        if (head.LastConfig is not { } c || c.Version <= Math.Max(Latest?.Version ?? 0, Committing?.Version ?? 0))
            return (state, LearnedVersion.Nothing);
        if (clusterSize <= 2) return (state with { Latest = c }, LearnedVersion.Adopted);
        if (knewLatest) return (state with { NumberedUpTo = Math.Max(state.NumberedUpTo, c.Version) }, LearnedVersion.NeverCommitted);
        if (Committing is not null) return (state, LearnedVersion.Later);
        return (state with { Committing = c }, LearnedVersion.Confirm);
    }

    public long NextNumber => Math.Max(Latest?.Version ?? 0, NumberedUpTo) + 1;

    /// <param name="majorityUp">Whether a majority of the configured nodes is up and its ledgers were read.</param>
    public (ConfigVersionsState State, SubmitDecision Decision) Submit(SubmitCandidate c, bool majorityUp, DateTimeOffset now)
    {
        if (!Recovered) return (this, new Refuse("the config singleton is still recovering; try again in a few seconds"));
        if (Committing is null && Latest is { } latest && latest.BundleHash == c.BundleHash) return (this, new AlreadyLatest(latest));
        if (!majorityUp) return (this, new Refuse("no majority of the configured nodes is up; nothing was committed"));
        if (Committing is not null) return (this, new WaitTurn());
        var version = new ConfigVersionCommitted(NextNumber, c.BundleHash, c.FileCount, c.Bytes, c.Source, c.Author, c.Origin, now);
        return (this with { Committing = version }, new Commit(version));
    }

    /// <summary>
    /// The journaling of <see cref="Committing"/> ended with <paramref name="ledgers"/> ledgers holding
    /// it: with a majority it is the latest version; without, it never was, and its number is used up.
    /// </summary>
    public (ConfigVersionsState State, string? NotCommitted) Journaled(ConfigVersionCommitted version, int ledgers, int clusterSize)
    {
        var state = this with { Committing = null, NumberedUpTo = Math.Max(NumberedUpTo, version.Version) };
        return Quorum.IsMajority(ledgers, clusterSize)
            ? (state with { Latest = Newer(Latest, version) }, null)
            : (state, Quorum.NotCommitted(ledgers, clusterSize));
    }

    /// <summary>This node's journal failed: the version was not committed, and its number may be on no ledger at all.</summary>
    public ConfigVersionsState JournalFailed(ConfigVersionCommitted version) =>
        this with { Committing = null, NumberedUpTo = Math.Max(NumberedUpTo, version.Version) };

    public ConfigVersionsState Applied(ConfigApplied a) =>
        this with { Nodes = Nodes.SetItem(a.Node, new NodeConfigView(a.Node, a.Version, null, null, a.At)) };

    public ConfigVersionsState ApplyFailed(ConfigApplyFailed f) =>
        this with
        {
            Nodes = Nodes.SetItem(f.Node, new NodeConfigView(f.Node,
                Nodes.TryGetValue(f.Node, out var v) ? v.Applied : 0, f.Version, f.Reason, f.At)),
        };

    /// <summary>A node's own account of its convergence: it replaces what the singleton knew of it.</summary>
    public ConfigVersionsState NodeReported(ConfigNodeState r) =>
        this with
        {
            Nodes = Nodes.SetItem(r.Node, new NodeConfigView(r.Node, r.Applied, r.Error is null ? null : r.ErrorVersion, r.Error, r.At,
                r.State, r.BehindSince, r.ErrorSince)),
        };

    public ConfigVersionsState CandidateRejected(CandidateRejected r)
    {
        var rejected = Rejected.Insert(0, r);
        return this with { Rejected = rejected.Count > KeepRejected ? rejected.RemoveRange(KeepRejected, rejected.Count - KeepRejected) : rejected };
    }

    public ConfigStatus Status() =>
        new(Latest, Nodes.Values.OrderBy(v => v.Node, StringComparer.Ordinal).ToList(), Rejected);

    private static ConfigVersionCommitted? Newer(ConfigVersionCommitted? a, ConfigVersionCommitted? b) =>
        b is not null && b.Version > (a?.Version ?? 0) ? b : a;
}
