using Akka.Actor;
using Akka.Configuration;
using Akka.TestKit.Xunit;
using PromHa.Messages.Cluster;
using PromHa.Node.Cluster;
using PromHa.Node.Replication;

namespace PromHa.Tests.Cluster;

/// <summary>What a node tells a possible island about its cluster, on a real one-node cluster.</summary>
public class MembershipTests() : TestKit(ConfigurationFactory.ParseString("""
    akka.actor.provider = cluster
    akka.remote.dot-netty.tcp { hostname = 127.0.0.1, port = 0 }
    akka.loglevel = WARNING
    """))
{
    [Fact]
    public void A_node_counts_its_up_members_and_says_whether_it_holds_the_asker()
    {
        var cluster = Akka.Cluster.Cluster.Get(Sys);
        var membership = Sys.ActorOf(Props.Create(() => new MembershipActor("node1")));

        // not Up yet: it claims no cluster, so that a node still joining never proves an island
        membership.Tell(new GetMembership("akka.tcp://promha@127.0.0.1:1#1"), TestActor);
        var me = LedgerMembers.Incarnation(cluster.SelfMember);
        Assert.Equal(new Membership("node1", 0, false, me), ExpectMsg<Membership>());

        cluster.Join(cluster.SelfAddress);
        AwaitCondition(() => cluster.SelfMember.Status == Akka.Cluster.MemberStatus.Up, TimeSpan.FromSeconds(15));

        membership.Tell(new GetMembership("akka.tcp://promha@127.0.0.1:1#1"), TestActor);
        Assert.Equal(new Membership("node1", 1, false, me), ExpectMsg<Membership>());
        membership.Tell(new GetMembership(me), TestActor);
        Assert.Equal(new Membership("node1", 1, true, me), ExpectMsg<Membership>());
        // the same address with another UID is another incarnation: an old one is not the asker
        var other = $"{cluster.SelfAddress}#{cluster.SelfUniqueAddress.Uid + 1}";
        membership.Tell(new GetMembership(other), TestActor);
        Assert.False(ExpectMsg<Membership>().HoldsAsker);
    }

    [Theory]
    [InlineData(3, 2, false, true)]   // the other two of three, Up together: the asker is on an island
    [InlineData(3, 1, false, false)]  // one of three is no majority: maybe a cut side, maybe a first seed alone
    [InlineData(3, 3, true, false)]   // a cluster that holds the asker: a view that lags, not an island
    [InlineData(5, 3, false, true)]
    [InlineData(5, 2, false, false)]
    [InlineData(2, 2, false, true)]   // a pure pair whose peer is Up with an old incarnation of the asker
    [InlineData(2, 1, false, false)]
    [InlineData(3, 0, false, false)]  // not Up itself: still joining
    public void Only_a_majority_without_the_asker_proves_an_island(int configured, int up, bool holdsAsker, bool island) =>
        Assert.Equal(island, OutsiderProbe.ProvesIsland(new Membership("b", up, holdsAsker, "akka.tcp://promha@b:1#2"), configured));

    [Theory]
    [InlineData("b", "akka.tcp://promha@10.0.0.2:4053#7", true)]   // another process holds b's port: the old one is gone
    [InlineData("b", "akka.tcp://promha@10.0.0.2:4053#1", false)]  // the very process the role was granted to
    [InlineData("b", "akka.tcp://promha@10.0.0.2:4054#7", false)]  // another port: both may be running
    [InlineData("c", "akka.tcp://promha@10.0.0.2:4053#7", false)]  // another node's answer says nothing of b
    public void Only_another_process_on_the_masters_own_address_proves_it_gone(string node, string answeredAs, bool gone) =>
        Assert.Equal(gone, OutsiderProbe.ProvesGone(new Membership(node, 0, false, answeredAs), "b", "akka.tcp://promha@10.0.0.2:4053#1"));
}
