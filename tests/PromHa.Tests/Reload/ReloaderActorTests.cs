using System.Text;
using Akka.Actor;
using Akka.TestKit.Xunit;
using PromHa.Node.Config;
using PromHa.Node.Reload;
using PromHa.Node.Settings;

namespace PromHa.Tests.Reload;

/// <summary>
/// ConfigSync applies nothing else until it hears how an apply ended, so the reloader answers every
/// apply, also one that throws (a version once stayed unapplied on two nodes for good when a
/// Prometheus reload outlasted the HTTP timeout and the exception went unanswered).
/// </summary>
public sealed class ReloaderActorTests : TestKit, IDisposable
{
    private readonly string _data = Directory.CreateTempSubdirectory("promha-reloader").FullName;

    public new void Dispose()
    {
        base.Dispose();
        try { Directory.Delete(_data, true); } catch (IOException) { }
    }

    [Fact]
    public void An_apply_that_throws_is_answered_as_failed_with_the_reason()
    {
        var live = Path.Combine(_data, "live");
        File.WriteAllText(live, "a file where the live dir should be");
        var reloader = Sys.ActorOf(Props.Create(() => new ReloaderActor(new NodeSettings
        {
            Node = new NodeSection { Name = "n1" },
            DataDir = _data,
            Prometheus = new ManagedServer { Mode = ServerMode.External, Url = "http://127.0.0.1:9" },
            Config = new ConfigSection { LiveDir = live },
        })));
        var bundle = ConfBundle.Of(new Dictionary<string, byte[]> { ["prometheus.yml"] = Encoding.UTF8.GetBytes("scrape_configs: []\n") });

        reloader.Tell(new ApplyVersion(7, bundle, new RenderContext("n1", ConfigMode.Mirror, "promha_replica", false, null, [])));
        var done = ExpectMsg<ApplyFinished>(TimeSpan.FromSeconds(10));
        Assert.False(done.Ok);
        Assert.Equal(7, done.Version);
        Assert.False(string.IsNullOrEmpty(done.Reason));
    }
}
