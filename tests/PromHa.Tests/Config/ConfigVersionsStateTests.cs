using PromHa.Messages.Config;
using PromHa.Messages.Ledger;
using PromHa.Node.Config;
using PromHa.Node.Replication;

namespace PromHa.Tests.Config;

public class ConfigVersionsStateTests
{
    private static readonly DateTimeOffset T0 = new(2026, 11, 30, 12, 0, 0, TimeSpan.Zero);

    private static ConfigVersionCommitted V(long version, string hash) =>
        new(version, hash, 1, 10, "test", "tester", "n1", T0);

    private static SubmitCandidate Candidate(string hash) => new(hash, 1, 10, "test", "tester", "n1");

    private static LedgerHead Head(string node, ConfigVersionCommitted? last, long discarded = 0) =>
        new(node, 0, null, last?.Version ?? 0, last, 0, discarded);

    [Fact]
    public void Recovers_the_newest_version_and_never_reuses_a_discarded_number()
    {
        var s = ConfigVersionsState.Initial.Recover([Head("a", V(3, "h3")), Head("b", V(4, "h4"), discarded: 6)], clusterSize: 2);
        Assert.Equal(4, s.Latest!.Version);
        Assert.Equal(7, s.NextNumber);
    }

    [Fact]
    public void Numbers_one_version_at_a_time()
    {
        var s = ConfigVersionsState.Initial.Recover([Head("a", V(1, "h1"))], clusterSize: 1);
        var (busy, first) = s.Submit(Candidate("h2"), majorityUp: true, T0);
        Assert.Equal(2, Assert.IsType<Commit>(first).Version.Version);
        Assert.IsType<WaitTurn>(busy.Submit(Candidate("h3"), true, T0).Decision);
        // the same content as the latest is not a new version
        Assert.IsType<AlreadyLatest>(s.Submit(Candidate("h1"), true, T0).Decision);
    }

    [Fact]
    public void Refuses_before_recovery_and_without_a_majority()
    {
        Assert.IsType<Refuse>(ConfigVersionsState.Initial.Submit(Candidate("h"), true, T0).Decision);
        var s = ConfigVersionsState.Initial.Recover([], clusterSize: 3);
        Assert.Contains("majority", Assert.IsType<Refuse>(s.Submit(Candidate("h"), false, T0).Decision).Reason);
    }

    [Fact]
    public void A_version_counts_only_on_a_majority_and_its_number_is_used_up_either_way()
    {
        var s = ConfigVersionsState.Initial.Recover([Head("a", V(1, "h1"))], clusterSize: 1);
        var (committing, d) = s.Submit(Candidate("h2"), true, T0);
        var v2 = ((Commit)d).Version;

        var (lost, why) = committing.Journaled(v2, ledgers: 1, clusterSize: 3);
        Assert.Contains("1 of the 3", why);
        Assert.Equal(1, lost.Latest!.Version);
        Assert.Equal(3, lost.NextNumber);       // 2 is never handed out again
        Assert.Null(lost.Committing);

        var (won, none) = committing.Journaled(v2, ledgers: 2, clusterSize: 3);
        Assert.Null(none);
        Assert.Equal(2, won.Latest!.Version);
    }

    [Fact]
    public void A_newest_version_on_too_few_ledgers_is_journaled_again_before_it_counts()
    {
        var s = ConfigVersionsState.Initial.Recover([Head("a", V(5, "h5")), Head("b", V(4, "h4"))], clusterSize: 3);
        Assert.Equal(4, s.Latest!.Version);          // what a majority may hold
        Assert.Equal(5, s.Committing!.Version);      // to be confirmed on a majority
        Assert.IsType<WaitTurn>(s.Submit(Candidate("h6"), true, T0).Decision);
        Assert.Equal(5, s.Journaled(s.Committing, ledgers: 2, clusterSize: 3).State.Latest!.Version);
        var (dropped, why) = s.Journaled(s.Committing, ledgers: 1, clusterSize: 3);
        Assert.NotNull(why);
        Assert.Equal(4, dropped.Latest!.Version);
        Assert.Equal(6, dropped.NextNumber);
        // on a majority it is the latest at once
        Assert.Null(ConfigVersionsState.Initial.Recover([Head("a", V(5, "h5")), Head("b", V(5, "h5"))], 3).Committing);
    }

    [Fact]
    public void A_newer_version_on_a_later_member_is_dropped_once_a_majority_was_read()
    {
        var s = ConfigVersionsState.Initial.Recover([Head("a", V(1, "h1")), Head("b", V(1, "h1"))], clusterSize: 3);
        var (after, outcome) = s.Learn(Head("c", V(5, "h5")), clusterSize: 3, knewLatest: true);
        Assert.Equal(LearnedVersion.NeverCommitted, outcome);
        Assert.Equal(1, after.Latest!.Version);
        Assert.Equal(6, after.NextNumber);           // its number is never handed out
        var (confirming, confirm) = s.Learn(Head("c", V(5, "h5")), clusterSize: 3, knewLatest: false);
        Assert.Equal(LearnedVersion.Confirm, confirm);
        Assert.Equal(5, confirming.Committing!.Version);
        Assert.Equal(LearnedVersion.Adopted, s.Learn(Head("c", V(5, "h5")), clusterSize: 2, knewLatest: true).Outcome);
        Assert.Equal(LearnedVersion.Nothing, s.Learn(Head("d", V(1, "h1")), clusterSize: 3, knewLatest: true).Outcome);
    }

    [Fact]
    public void Keeps_what_each_node_runs_and_the_last_rejections()
    {
        var s = ConfigVersionsState.Initial
            .Applied(new ConfigApplied("n1", 3, "h3", 0.2, T0))
            .ApplyFailed(new ConfigApplyFailed("n1", 4, "promtool said no", T0));
        var n1 = s.Status().Nodes.Single();
        Assert.Equal((3L, 4L, "promtool said no"), (n1.Applied, n1.FailedVersion!.Value, n1.FailedReason!));
        for (var i = 0; i < 25; i++) s = s.CandidateRejected(new CandidateRejected("n1", $"h{i}", "s", "a", "bad", T0));
        Assert.Equal(ConfigVersionsState.KeepRejected, s.Rejected.Count);
        Assert.Equal("h24", s.Rejected[0].BundleHash);
    }

    [Theory]
    [InlineData(1, 1, true)]
    [InlineData(2, 1, true)]   // a pair's survivor commits alone (the documented exception)
    [InlineData(3, 1, false)]
    [InlineData(3, 2, true)]
    [InlineData(4, 2, false)]
    [InlineData(5, 3, true)]
    public void Majorities(int size, int ledgers, bool majority) =>
        Assert.Equal(majority, Quorum.IsMajority(ledgers, size));

    [Fact]
    public void The_latest_is_known_once_a_majority_of_heads_is_read()
    {
        Assert.False(Quorum.KnowsLatest(headsRead: 1, reachableMissing: 1, size: 3));
        Assert.True(Quorum.KnowsLatest(headsRead: 2, reachableMissing: 1, size: 3));
        Assert.False(Quorum.KnowsLatest(headsRead: 1, reachableMissing: 1, size: 2)); // a pair waits for both
        Assert.True(Quorum.KnowsLatest(headsRead: 1, reachableMissing: 0, size: 2));
    }
}
