using PromHa.Node.Master;

namespace PromHa.Tests.Master;

/// <summary>
/// The master keeps its role on a majority's vouches while the singleton is away, and a new master is
/// announced only once the old one can no longer count a majority.
/// </summary>
public class LeaseVoteTests
{
    private static readonly DateTimeOffset T0 = new(2026, 11, 30, 12, 0, 0, TimeSpan.Zero);
    private static readonly TimeSpan Term = TimeSpan.FromSeconds(2);

    private static DateTimeOffset At(double seconds) => T0 + TimeSpan.FromSeconds(seconds);

    /// <summary>A ledger started long ago whose head is epoch 4, master b (incarnation b#1).</summary>
    private static VoterState Voter() => VoterState.Start(Term, At(-60)).AtHead(4, "b", "b#1");

    [Fact]
    public void A_ledger_vouches_only_for_the_reign_at_its_head()
    {
        var v = Voter();
        Assert.Null(v.Vouch(4, "b", "b#1", At(0)).Refusal);
        Assert.Contains("epoch 4", v.Vouch(3, "b", "b#1", At(0)).Refusal);
        Assert.Contains("not the master", v.Vouch(4, "c", "c#1", At(0)).Refusal);
        // the same node restarted is a new reign, which needs a new epoch
        Assert.Contains("restarted", v.Vouch(4, "b", "b#2", At(0)).Refusal);
        Assert.Equal(At(2), v.Vouch(4, "b", "b#1", At(0)).State.VouchedUntil);
    }

    [Fact]
    public void A_newer_head_ends_the_vouches_and_reports_how_long_the_old_ones_run()
    {
        var v = Voter().Vouch(4, "b", "b#1", At(10)).State;           // vouched until 12
        Assert.Equal(TimeSpan.Zero, v.EarlierVouchesRemaining(At(10.5)));
        var moved = v.AtHead(5, "c", "c#1");
        Assert.Equal(TimeSpan.FromSeconds(1.5), moved.EarlierVouchesRemaining(At(10.5)));
        Assert.NotNull(moved.Vouch(4, "b", "b#1", At(10.6)).Refusal); // the old master gets no more
        Assert.Equal(TimeSpan.Zero, moved.EarlierVouchesRemaining(At(12)));
        // the same head again changes nothing
        Assert.Equal(moved, moved.AtHead(5, "c", "c#1"));
    }

    [Fact]
    public void A_withdrawn_reign_leaves_nothing_to_wait_for()
    {
        var v = Voter().Vouch(4, "b", "b#1", At(10)).State.Withdraw(4, "b");
        Assert.Equal(TimeSpan.Zero, v.AtHead(5, "c", "c#1").EarlierVouchesRemaining(At(10.1)));
        // a withdrawal for another reign is ignored
        var other = Voter().Vouch(4, "b", "b#1", At(10)).State.Withdraw(3, "b");
        Assert.Equal(At(12), other.VouchedUntil);
    }

    [Fact]
    public void A_restarted_ledger_assumes_it_vouched_for_one_term()
    {
        var fresh = VoterState.Start(Term, At(10)).AtHead(4, "b", "b#1").AtHead(5, "c", "c#1");
        Assert.Equal(TimeSpan.FromSeconds(1), fresh.EarlierVouchesRemaining(At(11)));
        Assert.Equal(TimeSpan.Zero, fresh.EarlierVouchesRemaining(At(12)));
    }

    [Fact]
    public void After_a_discard_the_head_goes_back_and_the_old_master_is_vouched_for_again()
    {
        var v = Voter().AtHead(5, "a", "a#1").AtHead(4, "b", "b#1");
        Assert.Null(v.Vouch(4, "b", "b#1", At(0)).Refusal);
    }

    private static LeaseState Master(int voters = 3) => LeaseState.Initial("b", voters).NewReign(4, "b");

    [Fact]
    public void A_majority_of_votes_carries_the_master_without_the_singleton()
    {
        var s = Master().Granted(At(2)).Vouched("b", At(2.5)).Vouched("c", At(2.4));
        Assert.True(s.Holds(At(1)));
        Assert.Equal(At(2.4), s.VotedUntil);    // the second-longest of three votes
        Assert.True(s.Holds(At(2.3)));          // the singleton's grant ran out, the votes did not
        Assert.False(s.Holds(At(2.4)));
        // one vote is not a majority of three
        Assert.Equal(DateTimeOffset.MinValue, Master().Vouched("b", At(5)).VotedUntil);
    }

    [Fact]
    public void A_binding_refusal_ends_grant_and_votes_a_withheld_one_only_the_grant()
    {
        var s = Master().Granted(At(2)).Vouched("b", At(2)).Vouched("a", At(2));
        var withheld = s.Denied(binding: false);
        Assert.True(withheld.Holds(At(1)));
        Assert.True(withheld.AsksVoters);
        var refused = s.Denied(binding: true);
        Assert.False(refused.Holds(At(1)));
        Assert.False(refused.AsksVoters);
        Assert.False(refused.Vouched("c", At(3)).Holds(At(1))); // late votes do not bring it back
        Assert.True(refused.Granted(At(3)).AsksVoters);          // the singleton granted again
    }

    [Fact]
    public void A_pair_relies_on_the_singleton_alone()
    {
        var s = Master(voters: 2).Vouched("b", At(5)).Vouched("a", At(5));
        Assert.False(s.AsksVoters);
        Assert.False(s.Holds(At(1)));
        Assert.True(s.Granted(At(2)).Holds(At(1)));
    }

    [Fact]
    public void Giving_up_or_a_new_reign_holds_nothing()
    {
        var s = Master().Granted(At(2)).Vouched("b", At(2)).Vouched("a", At(2));
        Assert.False(s.GiveUp().Holds(At(1)));
        Assert.False(s.NewReign(5, "c").Holds(At(1)));
        Assert.False(s.NewReign(5, "b").Holds(At(1))); // a new epoch starts from nothing
    }

    [Fact]
    public void The_singleton_waits_for_the_vouches_of_a_majority_to_run_out()
    {
        var s = MasterState.Initial("a", MasterTimings.Default with { ConfiguredNodes = 3 });
        var ms = (double[] v) => v.Select(TimeSpan.FromMilliseconds).ToList();
        Assert.Equal(TimeSpan.FromMilliseconds(300), s.VouchesRunOutIn(ms([1500, 0, 300])));
        Assert.Equal(TimeSpan.FromMilliseconds(1500), s.VouchesRunOutIn(ms([1500, 300])));
        Assert.Equal(TimeSpan.Zero, s.VouchesRunOutIn(ms([0, 0, 2000])));
        var pair = MasterState.Initial("a", MasterTimings.Default with { ConfiguredNodes = 2 });
        Assert.Equal(TimeSpan.Zero, pair.VouchesRunOutIn(ms([2000, 2000])));
    }
}
