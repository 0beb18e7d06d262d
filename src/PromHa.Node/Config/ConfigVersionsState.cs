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

    /// <summary>Starts from the newest version any ledger read holds, and skips every number one discarded.</summary>
    public ConfigVersionsState Recover(IEnumerable<LedgerHead> heads)
    {
        var read = heads.ToList();
        var latest = read.Select(h => h.LastConfig).Where(c => c is not null).MaxBy(c => c!.Version);
        return this with
        {
            Recovered = true,
            Latest = Newer(Latest, latest),
            NumberedUpTo = Math.Max(NumberedUpTo, read.Select(h => h.DiscardedConfigVersion).DefaultIfEmpty(0).Max()),
        };
    }

    /// <summary>A member that joined later may hold a newer version than the ledgers recovered from.</summary>
    public (ConfigVersionsState State, bool Learned) Learn(LedgerHead head)
    {
        var state = this with { NumberedUpTo = Math.Max(NumberedUpTo, head.DiscardedConfigVersion) };
        return head.LastConfig is { } c && c.Version > (Latest?.Version ?? 0)
            ? (state with { Latest = c }, true)
            : (state, false);
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
