using System.Net;
using System.Net.Sockets;
using PromHa.Node.Cluster;
using PromHa.Node.Settings;

namespace PromHa.Tests.Cluster;

/// <summary>
/// A node downed while cut off waits, at its next start, until a seed's host answers on the
/// cluster link: not at all after an ordinary stop, at once when a seed's host refuses or accepts.
/// (Waiting while the link is cut needs a cut link: the partition tests in network namespaces.)
/// </summary>
public sealed class SeedLinkTests : IDisposable
{
    private readonly string _data = Directory.CreateTempSubdirectory("promha-seedlink").FullName;

    public void Dispose() => Directory.Delete(_data, true);

    private NodeSettings Settings(params string[] seeds) => new()
    {
        Node = new NodeSection { Name = "n1" },
        DataDir = _data,
        Cluster = new ClusterSection { Host = "127.0.0.1", Port = 1, Seeds = ["127.0.0.1:1", .. seeds] },
    };

    private static int ClosedPort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port; // closed again once disposed: a refusal
    }

    [Fact]
    public async Task Without_a_downing_the_start_does_not_wait()
    {
        Assert.Null(await SeedLink.WaitAfterDowning(Settings($"127.0.0.1:{ClosedPort()}"), default));
    }

    [Fact]
    public async Task After_a_downing_a_seed_host_that_refuses_ends_the_wait_and_the_marker_is_used_once()
    {
        var s = Settings($"127.0.0.1:{ClosedPort()}");
        SeedLink.RememberDowned(s);
        var waited = await SeedLink.WaitAfterDowning(s, default);
        Assert.NotNull(waited);
        Assert.True(waited < TimeSpan.FromSeconds(5), $"waited {waited}");
        Assert.Null(await SeedLink.WaitAfterDowning(s, default)); // the next start is an ordinary one
    }
}
