using PromHa.Node.Console;
using PromHa.Node.Http;
using PromHa.Node.Demo;
using Xunit.Abstractions;

namespace PromHa.EndToEnd;

/// <summary>Three promha nodes beside three real Prometheus servers.</summary>
public class FailoverTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Generous = RealCluster.Generous;

    [Fact]
    public async Task One_master_then_kill_9_moves_it_the_old_master_returns_as_standby_and_a_dead_prometheus_moves_it_again()
    {
        await using var rc = await RealCluster.Start(output, nodes: 3);
        var c = rc.Cluster;
        var first = await c.WaitForSingleMaster(Generous);
        var firstStatus = await c.Status(first);
        Assert.Equal("master", firstStatus!.Role);
        foreach (var n in c.Nodes.Where(n => n != first))
        {
            await c.WaitUntil(async () => (await c.Status(n))?.Master == first.Name, Generous, default, $"{n.Name} to learn the master");
            Assert.Equal(503, await c.PrimaryCode(n));
            Assert.Equal(3, (await c.Status(n))!.Members.Count);
        }

        c.Kill(first);
        var second = await c.WaitForSingleMaster(Generous, n => n != first);
        var secondStatus = await c.Status(second);
        Assert.True(secondStatus!.Epoch > firstStatus.Epoch);

        c.StartNode(first);
        await c.WaitForMembers(Generous);
        await c.WaitUntil(async () => (await c.Status(first))?.Master == second.Name, Generous, default, "the old master to rejoin");
        // Non-preemptive: the old master stays a standby, and the role does not move back.
        await Task.Delay(TimeSpan.FromSeconds(5));
        Assert.Equal(503, await c.PrimaryCode(first));
        Assert.Equal([second.Name], (await c.Masters()).Select(n => n.Name));
        Assert.Equal(200, await HttpCode($"{first.HttpUrl}/standby"));

        using (var api = c.Api(first))
        {
            var history = await api.History(10);
            Assert.Equal(second.Name, history![0].Node);
            Assert.Equal(first.Name, history[0].Previous);
            Assert.Equal(history.Select(h => h.Epoch).OrderDescending(), history.Select(h => h.Epoch));
        }

        // When the master's Prometheus dies, the role moves while its node stays.
        var master = second;
        master.ExternalPrometheus!.Kill();

        var next = await c.WaitForSingleMaster(Generous, n => n != master);
        Assert.True(master.Running);
        var s = await c.Status(master);
        Assert.Equal("standby", s!.Role);
        Assert.Equal(next.Name, s.Master);
        Assert.Equal(503, await HttpCode($"{master.HttpUrl}/health"));
        Assert.Equal(503, await HttpCode($"{master.HttpUrl}/standby"));
        var last = await c.Api(next).History(1);
        Assert.Equal("prometheus-unhealthy", last![0].Reason);
    }

    [Fact]
    public async Task Killing_the_singletons_host_right_after_a_failover_never_reuses_an_epoch()
    {
        // five nodes, so that three of five remain after two crashes
        await using var rc = await RealCluster.Start(output, nodes: 5);
        var c = rc.Cluster;
        var master = await c.WaitForSingleMaster(Generous);
        c.Kill(master);
        var next = await c.WaitForSingleMaster(Generous, n => n != master);
        var afterFailover = (await c.Status(next))!;
        // wait only until the crashed node is gone from the cluster, so the singleton can move
        await c.WaitUntil(async () => (await c.Status(next))?.Members.Count == 4, Generous, default, "the crashed node to be removed");
        var singleton = rc.Node(afterFailover.SingletonNode!);
        Assert.NotEqual(next, singleton); // the singleton prefers a master away from its own node
        // A master outlives any standby: while the singleton's host dies and the singleton moves,
        // the master's lease rests on the votes of the majority, and /primary never blinks.
        var poll = new CancellationTokenSource();
        var polling = PollPrimary(c, next, poll.Token);
        c.Kill(singleton);

        var survivors = c.Nodes.Where(n => n.Running).ToList();
        await c.WaitUntil(async () => (await c.Status(next))?.SingletonNode is { } s && s != singleton.Name,
            Generous, default, "the singleton to move");
        await Task.Delay(TimeSpan.FromSeconds(1));
        await poll.CancelAsync();
        var (polls, misses) = await polling;
        output.WriteLine($"{polls} polls of {next.Name}'s /primary while {singleton.Name} (singleton host) died: {misses.Count} not 200");
        Assert.True(misses.Count == 0, $"the master's /primary answered {string.Join(", ", misses.Take(10))} while a standby died");
        var current = await c.WaitForSingleMaster(Generous);
        Assert.Equal(next, current);
        // one more role change, decided by the new singleton
        var r = await c.Api(current).Switchover(null);
        Assert.True(r.Accepted, r.Message);
        var last = await c.WaitForSingleMaster(Generous, n => n != current);
        var lastStatus = (await c.Status(last))!;
        Assert.True(lastStatus.Epoch > afterFailover.Epoch, $"epoch {lastStatus.Epoch} after epoch {afterFailover.Epoch}");

        foreach (var n in survivors)
        {
            var history = (await c.Api(n).History(50))!;
            var epochs = history.Select(h => h.Epoch).Reverse().ToList();
            Assert.Equal(Enumerable.Range(1, epochs.Count).Select(i => (long)i), epochs); // no gaps, no repeats
            Assert.Equal(lastStatus.Epoch, epochs[^1]);
        }
    }

    /// <summary>Polls a node's /primary every 50 ms until cancelled; returns how many polls and the ones not 200.</summary>
    internal static async Task<(int Polls, List<string> Misses)> PollPrimary(LocalCluster c, LocalNode n, CancellationToken ct)
    {
        var misses = new List<string>();
        var polls = 0;
        var started = System.Diagnostics.Stopwatch.StartNew();
        while (!ct.IsCancellationRequested)
        {
            var code = await c.PrimaryCode(n);
            polls++;
            if (code != 200) misses.Add($"{code} at +{started.ElapsedMilliseconds} ms");
            try { await Task.Delay(50, ct); } catch (OperationCanceledException) { }
        }
        return (polls, misses);
    }

    internal static async Task<int> HttpCode(string url)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        try { return (int)(await http.GetAsync(url)).StatusCode; }
        catch (HttpRequestException) { return 0; }
    }
}
