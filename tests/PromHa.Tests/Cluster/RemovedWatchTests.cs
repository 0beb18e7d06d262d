using PromHa.Node.Cluster;
using PromHa.Node.Http;

namespace PromHa.Tests.Cluster;

public class RemovedWatchTests
{
    private static StatusResponse Peer(params (string Node, string Status, bool Reachable)[] members) =>
        new("node1", "master", true, 2, "node1", "node1", false, null,
            members.Select((m, i) => new MemberInfo(m.Node, $"akka.ssl.tcp://promha@10.0.0.{i + 1}:4053", m.Status, m.Reachable, [])).ToList(),
            []);

    [Fact]
    public void A_majority_cluster_without_this_node_proves_it_removed()
    {
        Assert.True(RemovedWatchActor.ProvesRemoved(Peer(("node1", "Up", true), ("witness1", "Up", true)), "node2", "10.0.0.9:4053", 3));
    }

    [Fact]
    public void A_cluster_that_still_lists_this_node_in_any_state_or_has_no_majority_proves_nothing()
    {
        Assert.False(RemovedWatchActor.ProvesRemoved(Peer(("node1", "Up", true), ("node2", "Down", false), ("witness1", "Up", true)), "node2", "10.0.0.2:4053", 3));
        // listed by address under another name (a node renamed in its promha.yml): still there
        Assert.False(RemovedWatchActor.ProvesRemoved(Peer(("node1", "Up", true), ("old-name", "Up", true)), "node2", "10.0.0.2:4053", 3));
        // the peer alone, or with an unreachable member: not a majority of three, maybe the minority itself
        Assert.False(RemovedWatchActor.ProvesRemoved(Peer(("node1", "Up", true)), "node2", "10.0.0.9:4053", 3));
        Assert.False(RemovedWatchActor.ProvesRemoved(Peer(("node1", "Up", true), ("witness1", "Up", false)), "node2", "10.0.0.9:4053", 3));
        Assert.False(RemovedWatchActor.ProvesRemoved(Peer(("node1", "Up", true), ("witness1", "Joining", true)), "node2", "10.0.0.9:4053", 3));
    }
}
