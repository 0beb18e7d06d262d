using PromHa.Node.Settings;
using PromHa.Node.Supervision;

namespace PromHa.Tests.Settings;

public sealed class AlertmanagerGossipTests
{
    [Fact]
    public void A_supervised_alertmanager_waits_3_s_for_its_peers_unless_the_operator_says_otherwise()
    {
        var am = new ManagedServer { ClusterListen = "127.0.0.1:9094", ClusterPeers = ["10.0.0.2:9094"] };
        Assert.Equal(["--cluster.listen-address=127.0.0.1:9094", "--cluster.peer=10.0.0.2:9094", "--cluster.peer-timeout=3s"],
            ServerLaunch.Gossip(am));
        // Alertmanager refuses a flag given twice: the operator's extraArgs win
        am.ExtraArgs = ["--cluster.peer-timeout=10s"];
        Assert.DoesNotContain(ServerLaunch.Gossip(am), a => a.StartsWith("--cluster.peer-timeout"));
        am.ExtraArgs = [];
        am.PeerTimeout = "";
        Assert.DoesNotContain(ServerLaunch.Gossip(am), a => a.StartsWith("--cluster.peer-timeout"));
        // without gossip there is no peer to wait for
        Assert.Equal(["--cluster.listen-address="], ServerLaunch.Gossip(new ManagedServer { ClusterListen = "off" }));
    }
}
