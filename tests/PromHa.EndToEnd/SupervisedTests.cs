using PromHa.Node.Demo;
using Xunit.Abstractions;

namespace PromHa.EndToEnd;

/// <summary>Nodes that run their own Prometheus and Alertmanager, as `promha demo` does.</summary>
public class SupervisedTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Supervised_servers_run_and_a_graceful_stop_hands_over_and_stops_them()
    {
        await using var rc = await RealCluster.Start(output, nodes: 2, servers: LocalServers.Supervised, alertmanager: true);
        var c = rc.Cluster;
        var master = await c.WaitForSingleMaster(RealCluster.Generous);
        foreach (var n in c.Nodes)
        {
            Assert.Equal(200, await FailoverTests.HttpCode($"{n.PrometheusUrl}/-/ready"));
            Assert.Equal(200, await FailoverTests.HttpCode($"{n.AlertmanagerUrl}/-/ready"));
        }
        var pidFile = Path.Combine(master.DataDir, "prometheus.pid");
        var prometheusPid = int.Parse(File.ReadAllLines(pidFile)[0]);

        await c.Stop(master); // SIGTERM
        Assert.True(master.Process!.HasExited);
        Assert.Equal(0, master.Process.ExitCode); // a requested stop (README, Exit codes)
        var next = await c.WaitForSingleMaster(RealCluster.Generous, n => n != master);
        Assert.NotEqual(master, next);
        Assert.False(File.Exists(pidFile));
        Assert.False(Directory.Exists($"/proc/{prometheusPid}"), $"prometheus pid {prometheusPid} still running");
        Assert.Equal(0, await FailoverTests.HttpCode($"{master.PrometheusUrl}/-/ready"));
        // the stopping master gave its lease back, so the standby did not have to wait it out
        var last = (await new PromHa.Node.Console.ApiClient(next.HttpUrl).History(1))![0];
        Assert.Equal("master-left", last.Reason);
        Assert.Equal(master.Name, last.Previous);
    }
}
