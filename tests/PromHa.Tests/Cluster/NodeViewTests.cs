using PromHa.Node.Cluster;

namespace PromHa.Tests.Cluster;

public class NodeViewTests
{
    [Fact]
    public void A_lease_that_comes_back_within_the_same_epoch_keeps_the_master_since_time()
    {
        var v = new NodeView("node1", false);
        v.SetRole(1, "node1", true);
        var since = v.MasterSinceUtc;
        Assert.NotNull(since);
        Thread.Sleep(20);
        v.SetRole(1, "node1", false); // singleton hand-over: the lease lapsed for a moment
        v.SetRole(1, "node1", true);
        Assert.Equal(since, v.MasterSinceUtc);

        v.SetRole(2, "node2", false);
        Thread.Sleep(20);
        v.SetRole(3, "node1", true); // master again in a later epoch: edits before now were a standby's
        Assert.True(v.MasterSinceUtc > since);
    }
}
