using PromHa.Lab;
using Xunit.Abstractions;

namespace PromHa.EndToEnd;

public sealed class GroupsLab : PartitionLab
{
    public override int DataNodes => 4;
    public override int Witnesses => 1;
    public override string Topology => "two groups of two + a shared witness";
    public override IReadOnlyList<(string Name, int Nodes)> Groups => [("shard-a", 2), ("shard-b", 2)];
}

/// <summary>
/// Several HA groups in one cluster, cut apart in network namespaces (<see cref="NetnsLab"/>): a
/// group's majority counts its own nodes, the split-brain resolver and islands count the cluster's.
/// </summary>
[Collection(Lanes.Netns)]
public sealed class GroupPartitionTests(GroupsLab lab, ITestOutputHelper output) : IClassFixture<GroupsLab>
{
    private static readonly TimeSpan Generous = RealCluster.Generous;
    private static readonly TimeSpan Rejoin = TimeSpan.FromSeconds(120);

    /// <summary>
    /// The first seed, master of its group, is cut off until it is downed and started again while
    /// still cut: it finds no seed and starts a cluster of its own, an island. Its group fails over
    /// to its other server (with the witness, a majority of the group); the other group's master
    /// answers throughout and never changes; neither group ever has two masters. After the heal the
    /// island learns that a majority of the cluster is up elsewhere, restarts and rejoins as a standby.
    /// </summary>
    [Fact]
    public async Task A_groups_master_cut_until_it_restarts_into_an_island_moves_its_groups_role_leaves_the_other_group_alone_and_rejoins()
    {
        var c = lab.Cluster;
        output.WriteLine($"[{lab.Topology}] started in {lab.StartedIn.TotalSeconds:F1} s; files in {lab.Dir}");
        var first = c.Nodes[0];
        var (a, b) = (first.Group!, c.Nodes.First(n => n.Group is { } g && g != first.Group).Group!);
        await c.WaitForMembers(Generous);
        var masterB = await c.WaitForSingleMaster(Generous, group: b);
        var masterA = await c.WaitForSingleMaster(Generous, group: a);
        if (masterA != first)
        {
            // the first seed made its group's master (a switchover goes to a node that reported healthy lately)
            using var api = c.Api(masterA);
            await c.WaitUntil(async () => (await api.Switchover(first.Name)).Accepted, Generous, default, $"a switchover of {a} to {first.Name}");
            masterA = await c.WaitForSingleMaster(Generous, n => n == first, group: a);
        }
        var groupA = c.Nodes.Where(n => n.Group == a).ToList();
        var groupB = c.Nodes.Where(n => n.Group == b).ToList();
        await using var observeA = new PrimaryObserver(groupA);
        await using var observeB = new PrimaryObserver(groupB);
        observeA.Start();
        observeB.Start();
        await Task.Delay(300);

        var restarts = first.Restarts;
        var cutAt = DateTimeOffset.Now;
        lab.Lab.Cut(first);
        LocalNode newA;
        try
        {
            newA = await c.WaitForSingleMaster(Generous, n => n != first, group: a);
            output.WriteLine($"{a}: {newA.Name} master {(DateTimeOffset.Now - cutAt).TotalSeconds:F1} s after {first.Name} was cut");
            await c.WaitUntil(() => Task.FromResult(first.Restarts > restarts), Generous, default, $"{first.Name} to be downed and started again while cut");
            await c.WaitUntil(async () => (await c.Status(first))?.Members is [{ Status: "Up" }], Generous, default, $"{first.Name} to start a cluster of its own");
            output.WriteLine($"{first.Name} on an island {(DateTimeOffset.Now - cutAt).TotalSeconds:F1} s after the cut");
        }
        finally
        {
            lab.Lab.Heal(first);
        }
        var healAt = DateTimeOffset.Now;
        await c.WaitForMembers(Rejoin);
        output.WriteLine($"one cluster of all {c.Nodes.Count} nodes {(DateTimeOffset.Now - healAt).TotalSeconds:F1} s after the heal");
        Assert.Equal(newA, await c.WaitForSingleMaster(Generous, group: a));
        Assert.Equal(masterB, await c.WaitForSingleMaster(Generous, group: b));
        await observeA.StopAsync();
        await observeB.StopAsync();

        foreach (var (g, observer) in new[] { (a, observeA), (b, observeB) })
        {
            var doubles = observer.Rounds.Where(r => r.Masters >= 2).ToList();
            Assert.True(doubles.Count == 0, $"{g}: {doubles.Count} round(s) with two masters, the first at {doubles.FirstOrDefault()?.At:HH:mm:ss.fff}\n" +
                                            observer.Timeline(cutAt.AddSeconds(-1), DateTimeOffset.Now));
        }
        // the other group's master answered throughout (a lone slow poll on a loaded machine aside)
        var bIndex = groupB.IndexOf(masterB);
        var quiet = ObserverTimeline.LongestWithout200(observeB.Rounds, bIndex);
        output.WriteLine($"{b}: {masterB.Name} longest without 200: {quiet.TotalSeconds:F2} s");
        Assert.True(quiet < TimeSpan.FromSeconds(1), $"{b}'s master {masterB.Name} went {quiet.TotalSeconds:F2} s without answering 200 while only {a}'s master was cut\n" +
                                                     observeB.Timeline(cutAt.AddSeconds(-1), DateTimeOffset.Now));
        Assert.All(observeB.Rounds, r => Assert.True(r.Codes.Where((code, i) => i != bIndex && code == 200).Count() == 0, $"another node of {b} answered 200 at {r.At:HH:mm:ss.fff}"));
    }
}
