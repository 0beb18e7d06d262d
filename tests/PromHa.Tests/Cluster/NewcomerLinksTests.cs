using Akka.Actor;
using Akka.Cluster;
using Akka.Configuration;
using PromHa.Node.Cluster;

namespace PromHa.Tests.Cluster;

/// <summary>
/// Which broken links are a newcomer's own fault (so that it, not the master at the other end,
/// leaves), and that the gossip's reachability records can still be read from this Akka version.
/// </summary>
public sealed class NewcomerLinksTests
{
    private static readonly UniqueAddress Self = new(new Address("akka.tcp", "promha", "10.0.0.1", 1), 1);
    private static readonly UniqueAddress Master = new(new Address("akka.tcp", "promha", "10.0.0.2", 1), 2);
    private static readonly UniqueAddress Witness = new(new Address("akka.tcp", "promha", "10.0.0.3", 1), 3);

    private static ReachabilityRecord Down(UniqueAddress observer, UniqueAddress subject) => new(observer, subject, true);

    [Fact]
    public void A_link_broken_between_self_and_one_member_that_the_others_reach_is_selfs_to_leave()
    {
        // each end finds the other unreachable; the witness reaches both: indirectly connected
        Assert.Equal([Master], NewcomerLinks.BrokenOnlyWithSelf(Self, [Down(Self, Master), Down(Master, Self)]));
        // only one side noticed yet
        Assert.Equal([Master], NewcomerLinks.BrokenOnlyWithSelf(Self, [Down(Master, Self)]));
        Assert.Equal([Master], NewcomerLinks.BrokenOnlyWithSelf(Self, [Down(Self, Master)]));
        // a reachable record is no opinion against anyone
        Assert.Empty(NewcomerLinks.BrokenOnlyWithSelf(Self, [new ReachabilityRecord(Self, Master, false)]));
    }

    [Fact]
    public void A_member_that_others_find_unreachable_too_is_cut_off_itself_and_self_stays()
    {
        // the master is cut off from everyone: the majority must keep this node, not lose it
        Assert.Empty(NewcomerLinks.BrokenOnlyWithSelf(Self, [Down(Self, Master), Down(Witness, Master)]));
        // this node is cut off from everyone: the resolver's ordinary downing handles it
        Assert.Empty(NewcomerLinks.BrokenOnlyWithSelf(Self, [Down(Master, Self), Down(Witness, Self)]));
        // a broken link between two others is not this node's
        Assert.Empty(NewcomerLinks.BrokenOnlyWithSelf(Self, [Down(Master, Witness), Down(Witness, Master)]));
    }

    [Fact]
    public async Task The_gossips_reachability_records_are_readable_from_this_akka_version()
    {
        var system = ActorSystem.Create("promha", ConfigurationFactory.ParseString("""
            akka.actor.provider = cluster
            akka.remote.dot-netty.tcp { hostname = 127.0.0.1, port = 0 }
            akka.coordinated-shutdown.exit-clr = off
            """));
        try
        {
            var records = GossipReachability.Records(Akka.Cluster.Cluster.Get(system));
            Assert.NotNull(records); // null: Akka's internals changed, and the newcomer watch does nothing
            Assert.Empty(records);
        }
        finally
        {
            await system.Terminate();
        }
    }
}
