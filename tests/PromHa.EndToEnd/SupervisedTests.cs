using System.Diagnostics;
using System.Text.Json;
using PromHa.Lab;
using PromHa.Node.Sink;
using Xunit.Abstractions;

namespace PromHa.EndToEnd;

/// <summary>Prometheus and Alertmanager started by PromHa, which must outlive PromHa itself.</summary>
[Collection(Lanes.Loopback)]
public class SupervisedTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Generous = RealCluster.Generous;

    [Fact]
    public async Task Supervised_servers_outlive_a_crash_and_a_restart_of_promha_are_adopted_and_stop_only_when_told()
    {
        await using var rc = await RealCluster.Start(output, nodes: 3, servers: LocalServers.Supervised, alertmanager: true);
        var c = rc.Cluster;
        var master = await c.WaitForSingleMaster(Generous);
        foreach (var n in c.Nodes)
        {
            Assert.Equal(200, await FailoverTests.HttpCode($"{n.PrometheusUrl}/-/ready"));
            Assert.Equal(200, await FailoverTests.HttpCode($"{n.AlertmanagerUrl}/-/ready"));
        }
        var standby = c.Nodes.First(n => n != master);
        var since = DateTimeOffset.UtcNow;
        var prometheus = Pid(standby, "prometheus");
        var alertmanager = Pid(standby, "alertmanager");

        // kill -9 of promha: the servers go on; the restarted promha adopts them.
        c.Kill(standby);
        await Task.Delay(TimeSpan.FromSeconds(3));
        Assert.True(Alive(prometheus) && Alive(alertmanager), "a server died with its promha");
        Assert.Equal(200, await FailoverTests.HttpCode($"{standby.PrometheusUrl}/-/ready"));
        c.StartNode(standby);
        await c.WaitForMembers(Generous);
        await c.WaitUntil(() => Task.FromResult(File.ReadAllText(standby.LogPath).Contains($"Adopted prometheus (pid {prometheus})")),
            Generous, default, "the restarted promha to adopt its Prometheus");
        Assert.Equal(prometheus, Pid(standby, "prometheus"));
        Assert.Equal(alertmanager, Pid(standby, "alertmanager"));

        // A graceful stop (SIGTERM, as systemd's stop and restart send) hands the role over and
        // leaves the servers running; the exit code says it was a requested stop.
        var masterPrometheus = Pid(master, "prometheus");
        await c.Stop(master);
        Assert.Equal(0, master.Process!.ExitCode);
        var next = await c.WaitForSingleMaster(Generous, n => n != master);
        var last = (await c.Api(next).History(1))![0];
        Assert.Equal("master-left", last.Reason); // it gave its lease back: nobody waited it out
        Assert.True(Alive(masterPrometheus), "a graceful stop of promha stopped its Prometheus");
        c.StartNode(master);
        await c.WaitForMembers(Generous);
        await c.WaitUntil(() => Task.FromResult(File.ReadAllText(master.LogPath).Contains($"Adopted prometheus (pid {masterPrometheus})")),
            Generous, default, "the restarted old master to adopt its Prometheus");

        // Its Prometheus never stopped scraping: no gap longer than two scrape intervals (5 s) in
        // the samples of a target that stayed up the whole time.
        var other = c.Nodes.First(n => n != standby && n != master);
        var seconds = (int)(DateTimeOffset.UtcNow - since).TotalSeconds + 5;
        var samples = await Samples(standby, $"up{{job=\"promha\",instance=\"127.0.0.1:{other.HttpPort}\"}}[{seconds}s]");
        var gaps = samples.Zip(samples.Skip(1), (a, b) => b - a).DefaultIfEmpty(0).Max();
        output.WriteLine($"{standby.Name}'s Prometheus: {samples.Count} samples of {other.Name}'s up over {seconds} s, longest gap {gaps:F1} s");
        Assert.True(samples.Count >= seconds / 5 - 2, $"only {samples.Count} samples in {seconds} s");
        Assert.True(gaps <= 10.5, $"a gap of {gaps:F1} s in the scrapes");

        // The operator's explicit stop.
        await c.Stop(standby);
        var (code, stdout, _) = await PromhaConsole.Run(["servers", "stop", "--config", standby.ConfigPath]);
        output.WriteLine(stdout);
        Assert.Equal(0, code);
        Assert.Contains($"stopped prometheus (pid {prometheus})", stdout);
        Assert.False(Alive(prometheus));
        Assert.False(Alive(alertmanager));
    }

    internal static int Pid(LocalNode n, string server) =>
        int.Parse(File.ReadAllLines(Path.Combine(n.DataDir, $"{server}.pid"))[0]);

    internal static bool Alive(int pid) => PromHa.Node.Supervision.DetachedServer.IsRunning(pid);

    /// <summary>The timestamps (seconds) of a range vector's raw samples.</summary>
    private static async Task<List<double>> Samples(LocalNode n, string query)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        var json = await http.GetStringAsync($"{n.PrometheusUrl}/api/v1/query?query={Uri.EscapeDataString(query)}");
        using var doc = JsonDocument.Parse(json);
        var result = doc.RootElement.GetProperty("data").GetProperty("result");
        if (result.GetArrayLength() == 0) return [];
        return result[0].GetProperty("values").EnumerateArray().Select(v => v[0].GetDouble()).ToList();
    }
}
