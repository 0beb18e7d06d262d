using PromHa.Messages.Roles;
using PromHa.Node.Cluster;
using PromHa.Node.Http;

namespace PromHa.Tests.Cluster;

public class SplitBrainTests
{
    private static readonly DateTimeOffset Now = new(2026, 11, 23, 22, 0, 0, TimeSpan.Zero);

    private static StatusResponse Peer(string? master, long epoch, params string[] members) =>
        new("node2", master == "node2" ? "master" : "standby", master == "node2", epoch, master, "node2", false, null,
            members.Select(m => new MemberInfo(m, $"akka.tcp://promha@127.0.0.1:{(m == "node1" ? 4053 : 4054)}", "Up", true, [])).ToList(),
            new List<NodeHealthView>());

    private static SplitBrain.Verdict Decide(MasterClaim ours, StatusResponse peer, bool reachable, SplitView? previous = null) =>
        SplitBrain.Decide("node1", "127.0.0.1:4053", ours, "node2", peer, reachable, previous, Now);

    [Fact]
    public void The_higher_epoch_keeps_the_role()
    {
        Assert.True(new MasterClaim(6, "node2").Beats(new MasterClaim(5, "node1")));
        Assert.False(new MasterClaim(5, "node1").Beats(new MasterClaim(6, "node2")));
    }

    [Fact]
    public void Equal_epochs_are_settled_by_name_the_same_way_on_both_sides()
    {
        var a = new MasterClaim(7, "node1");
        var b = new MasterClaim(7, "node2");
        Assert.True(a.Beats(b));
        Assert.False(b.Beats(a));
    }

    [Fact]
    public void A_peer_master_outside_this_cluster_with_a_higher_epoch_makes_this_node_rejoin_once_the_link_answers()
    {
        var peer = Peer("node2", 6, "node2");
        var cut = Decide(new MasterClaim(5, "node1"), peer, reachable: false);
        Assert.NotNull(cut.View);
        Assert.False(cut.View!.ThisSideKeeps);
        Assert.False(cut.Rejoin); // the link is still cut: a restart would only form another cluster of one

        var back = Decide(new MasterClaim(5, "node1"), peer, reachable: true, cut.View);
        Assert.True(back.Rejoin);
        Assert.Equal(cut.View.Since, back.View!.Since);
    }

    [Fact]
    public void The_winning_side_shows_the_split_and_stays()
    {
        var v = Decide(new MasterClaim(6, "node1"), Peer("node2", 5, "node2"), reachable: true);
        Assert.True(v.View!.ThisSideKeeps);
        Assert.False(v.Rejoin);
        Assert.Equal("node2", v.View.PeerMaster);
    }

    [Fact]
    public void A_side_without_a_master_joins_a_peer_that_has_one()
    {
        var v = Decide(new MasterClaim(3, null), Peer("node2", 4, "node2"), reachable: true);
        Assert.True(v.Rejoin);
    }

    [Fact]
    public void No_split_when_the_peer_has_no_master_agrees_or_already_counts_this_node_as_member()
    {
        Assert.Null(Decide(new MasterClaim(5, "node1"), Peer(null, 0, "node2"), true).View);
        Assert.Null(Decide(new MasterClaim(5, "node1"), Peer("node1", 5, "node2"), true).View);
        Assert.Null(Decide(new MasterClaim(5, "node1"), Peer("node2", 6, "node1", "node2"), true).View);
    }
}
