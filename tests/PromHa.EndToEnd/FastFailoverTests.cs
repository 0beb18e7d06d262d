using System.Diagnostics;
using PromHa.Lab;
using PromHa.Node.Sink;
using PromHa.Node.Master;
using Xunit.Abstractions;

namespace PromHa.EndToEnd;

/// <summary>
/// Which path a failover took, on three real promha nodes beside real Prometheus servers: a killed
/// master's promha is proven dead by its lifeline (the kernel ended it with a FIN) and replaced without waiting for the failure
/// detector or the lease (the history says master-process-died), also when it ran the singleton; a
/// SIGSTOPped master is replaced on the lease path, never answers 200 beside the new master, and
/// comes back as a standby after SIGCONT. Timings are the benchmark's (`promha-lab bench failover`).
/// </summary>
[Collection(Lanes.Loopback)]
public class FastFailoverTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Generous = RealCluster.Generous;

    [Fact]
    public async Task A_killed_master_is_replaced_on_the_fast_path_also_with_the_singleton_and_a_frozen_one_on_the_lease_path_without_two_masters()
    {
        await using var rc = await RealCluster.Start(output, nodes: 3);
        var c = rc.Cluster;
        await using var observer = new PrimaryObserver(c.Nodes, TimeSpan.FromMilliseconds(50));
        observer.Start();

        // 1. the master's promha killed while the singleton runs elsewhere
        var master = await Arrange(c, onSingleton: false);
        var (next, reason, took) = await KillAndWait(c, master, observer);
        output.WriteLine($"kill -9 {master.Name} (singleton elsewhere): {next.Name} master after {took.TotalSeconds:F2} s, reason {reason}");
        Assert.Equal(MasterState.MasterProcessDied, reason);
        await Rejoin(c, master, next);

        // 2. the master also runs the singleton: the singleton moves first, on the same fast path
        master = await Arrange(c, onSingleton: true);
        (next, reason, took) = await KillAndWait(c, master, observer);
        output.WriteLine($"kill -9 {master.Name} (it ran the singleton): {next.Name} master after {took.TotalSeconds:F2} s, reason {reason}");
        Assert.Equal(MasterState.MasterProcessDied, reason);
        await Rejoin(c, master, next);

        // 3. frozen: nothing proves it dead; its lease runs out, then the role moves
        master = await Arrange(c, onSingleton: false);
        observer.Mark($"STOP {master.Name}");
        Signal(master, "STOP");
        try
        {
            next = await c.WaitForSingleMaster(Generous, n => n != master);
            reason = await LatestReason(c, next);
            output.WriteLine($"kill -STOP {master.Name}: {next.Name} master, reason {reason}");
            Assert.NotEqual(MasterState.MasterProcessDied, reason);
        }
        finally
        {
            Signal(master, "CONT");
            observer.Mark($"CONT {master.Name}");
        }
        // resumed: a standby (it may also have been downed meanwhile and restarted as a new member)
        await Rejoin(c, master, next);
        await Task.Delay(TimeSpan.FromSeconds(3));
        await observer.StopAsync();

        var two = observer.Rounds.Where(r => r.Masters > 1).ToList();
        if (two.Count > 0) output.WriteLine(observer.Timeline(two[0].At.AddSeconds(-3), two[^1].At.AddSeconds(3), two.ToHashSet()));
        Assert.Empty(two);
        Assert.Equal([next.Name], (await c.Masters()).Select(n => n.Name));
    }

    /// <summary>
    /// The settled master, moved by a switchover onto the singleton's node or off it, once every
    /// other node holds its lifeline: before that its death is seen only as silence (the slow path,
    /// as it should be), which is not what this test is about.
    /// </summary>
    private static async Task<LocalNode> Arrange(LocalCluster c, bool onSingleton)
    {
        var master = await c.WaitForSingleMaster(Generous);
        await c.WaitUntil(async () => await AllHealthy(c, master), Generous, default, "every node healthy in the master's view");
        var singleton = (await c.Status(master))!.SingletonNode!;
        var target = onSingleton ? singleton : c.Nodes.First(n => n.Name != singleton).Name;
        if (target != master.Name && (onSingleton || master.Name == singleton))
        {
            using var api = c.Api(master);
            var answer = await api.Switchover(target);
            Assert.True(answer.Accepted, answer.Message);
            master = await c.WaitForSingleMaster(Generous, n => n.Name == target);
            await c.WaitUntil(async () => await AllHealthy(c, master), Generous, default, "every node healthy after the switchover");
        }
        foreach (var other in c.Nodes.Where(n => n != master))
            await c.WaitUntil(async () => (await AlertTests.Get($"{other.HttpUrl}/metrics")).Contains($"promha_peer_lifeline_open{{peer=\"{master.Name}\"}} 1"),
                Generous, default, $"{other.Name}'s lifeline to {master.Name} open");
        return master;
    }

    private static async Task<bool> AllHealthy(LocalCluster c, LocalNode master) =>
        await c.Status(master) is { IsMaster: true } s && s.Members.Count == c.Nodes.Count &&
        s.Members.All(m => m is { Status: "Up", Reachable: true }) && s.Nodes.Count == c.Nodes.Count &&
        s.Nodes.All(n => n is { Reachable: true, PrometheusHealthy: true });

    private static async Task<(LocalNode Next, string Reason, TimeSpan Took)> KillAndWait(LocalCluster c, LocalNode master, PrimaryObserver observer)
    {
        observer.Mark($"kill -9 {master.Name}");
        var sw = Stopwatch.StartNew();
        c.Kill(master);
        var next = await c.WaitForSingleMaster(Generous, n => n != master);
        var took = sw.Elapsed;
        return (next, await LatestReason(c, next), took);
    }

    private static async Task<string> LatestReason(LocalCluster c, LocalNode node)
    {
        using var api = c.Api(node);
        var history = await api.History(1);
        return Assert.Single(history!).Reason;
    }

    /// <summary>The node is running, a member, and a standby of <paramref name="master"/>.</summary>
    private static async Task Rejoin(LocalCluster c, LocalNode node, LocalNode master)
    {
        if (!node.Running) c.StartNode(node);
        await c.WaitUntil(async () => (await c.Status(node)) is { Master: { } m, IsMaster: false } && m == master.Name &&
                                      await c.PrimaryCode(node) == 503, Generous, default, $"{node.Name} back as a standby of {master.Name}");
    }

    private static void Signal(LocalNode n, string signal) => ProcessRun.Signal(n.Process!.Id, signal);
}
