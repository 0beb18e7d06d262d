using PromHa.Node.Demo;
using Xunit.Abstractions;

namespace PromHa.EndToEnd;

/// <summary>The seeds' two-host topology: with a tie-breaker, and with a witness.</summary>
public class PairTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Generous = RealCluster.Generous;

    [Fact]
    public async Task A_pair_with_a_tie_breaker_fails_over_whichever_node_crashes()
    {
        await using var rc = await RealCluster.Start(output, nodes: 2, tieBreaker: true);
        await CrashEitherSide(rc.Cluster, rc.Cluster.Nodes);
    }

    [Fact]
    public async Task A_pair_with_a_witness_fails_over_and_the_witness_never_becomes_master()
    {
        await using var rc = await RealCluster.Start(output, nodes: 2, witnesses: 1);
        var c = rc.Cluster;
        var witness = c.Nodes.Single(n => n.Witness);
        using var watch = new CancellationTokenSource();
        var witnessWasMaster = WatchWitness(c, witness, watch.Token);
        await CrashEitherSide(c, c.Nodes.Where(n => !n.Witness).ToList());
        await watch.CancelAsync();
        Assert.False(await witnessWasMaster);
        Assert.Equal("witness", (await c.Status(witness))!.Role);
    }

    /// <summary>
    /// Crash the master (it may host the singleton, the case Akka's own strategies lose), then the
    /// standby, and the master must stay; each crashed node comes back as a standby.
    /// </summary>
    private static async Task CrashEitherSide(LocalCluster c, IReadOnlyList<LocalNode> pair)
    {
        for (var round = 0; round < 2; round++)
        {
            var master = await c.WaitForSingleMaster(Generous);
            c.Kill(master);
            var survivor = await c.WaitForSingleMaster(Generous, n => n != master);
            Assert.Contains(survivor, pair);
            c.StartNode(master);
            // Up, not only joining: a joining member does not count in the split-brain resolver's majority
            await c.WaitForMembers(Generous);
            await c.WaitUntil(async () => (await c.Status(master))?.Master == survivor.Name, Generous, default, $"{master.Name} to rejoin");
        }

        var keeper = await c.WaitForSingleMaster(Generous);
        var epoch = (await c.Status(keeper))!.Epoch;
        var standby = pair.Single(n => n != keeper);
        c.Kill(standby);
        // the master keeps the role through the standby's crash and its removal
        var until = DateTime.UtcNow + TimeSpan.FromSeconds(15);
        while (DateTime.UtcNow < until)
        {
            Assert.Equal(200, await c.PrimaryCode(keeper));
            await Task.Delay(250);
        }
        var status = (await c.Status(keeper))!;
        Assert.Equal(epoch, status.Epoch);
        Assert.DoesNotContain(status.Members, m => m.Node == standby.Name); // downed and removed
    }

    private static async Task<bool> WatchWitness(LocalCluster c, LocalNode witness, CancellationToken ct)
    {
        try
        {
            while (!ct.IsCancellationRequested)
            {
                if (await c.PrimaryCode(witness) == 200) return true;
                if ((await c.Status(witness))?.Master == witness.Name) return true;
                await Task.Delay(200, ct);
            }
        }
        catch (OperationCanceledException) { }
        return false;
    }
}
