using PromHa.Messages.Cluster;
using PromHa.Node.Cluster;

namespace PromHa.Tests.Cluster;

/// <summary>
/// What a node may conclude from a peer's answer about its cluster: pure rules, apart from
/// MembershipTests' actor system (whose every test instance took 5 s to tear down).
/// </summary>
public class OutsiderProbeTests
{
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
