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
}
