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
[TestCaseOrderer("PromHa.EndToEnd.CaseOrderer", "PromHa.EndToEnd")]
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
    [Fact, CaseOrder(1)]
    public async Task A_groups_master_cut_until_it_restarts_into_an_island_moves_its_groups_role_leaves_the_other_group_alone_and_rejoins()
    {
        var c = lab.Cluster;
        output.WriteLine($"[{lab.Topology}] started in {lab.StartedIn.TotalSeconds:F1} s; files in {lab.Dir}");
        var first = c.Nodes[0];
        var (a, b) = (first.Group!, c.Nodes.First(n => n.Group is { } g && g != first.Group).Group!);
        await WholeCluster(Generous);
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
        var island = first.Restarts;
        await WholeCluster(Rejoin);
        output.WriteLine($"one cluster of all {c.Nodes.Count} nodes {(DateTimeOffset.Now - healAt).TotalSeconds:F1} s after the heal");
        Assert.True(first.Restarts > island, $"{first.Name} rejoined without leaving its island");
        Assert.Equal(newA, await c.WaitForSingleMaster(Generous, group: a));
        Assert.Equal(masterB, await c.WaitForSingleMaster(Generous, group: b));
        await observeA.StopAsync();
        await observeB.StopAsync();

        NeverTwoMasters(a, observeA, cutAt);
        NeverTwoMasters(b, observeB, cutAt);
        MasterAnsweredThroughout(b, observeB, masterB, cutAt, $"only {a}'s master was cut");
    }

    /// <summary>
    /// The witness serves both groups (and may host both singletons): cut until it is downed, it
    /// takes no group's role with it. Both masters answer throughout and stay; it rejoins after the heal.
    /// </summary>
    [Fact, CaseOrder(2)]
    public async Task Cutting_the_shared_witness_until_it_is_downed_leaves_both_groups_masters_alone()
    {
        var c = lab.Cluster;
        var witness = c.Nodes.Single(n => n.Witness);
        var groups = c.Nodes.Where(n => n.Group is not null).GroupBy(n => n.Group!).ToDictionary(g => g.Key, g => g.ToList());
        await WholeCluster(Rejoin);
        var masters = new Dictionary<string, LocalNode>();
        foreach (var g in groups.Keys) masters[g] = await c.WaitForSingleMaster(Generous, group: g);
        var hosts = string.Join(", ", await Task.WhenAll(groups.Keys.Select(async g => $"{g}'s singleton on {(await c.Status(masters[g]))?.SingletonNode}")));
        output.WriteLine($"masters {string.Join(", ", masters.Select(m => $"{m.Key}: {m.Value.Name}"))}; {hosts}");
        var observers = groups.ToDictionary(g => g.Key, g => new PrimaryObserver(g.Value));
        try
        {
            foreach (var o in observers.Values) o.Start();
            await Task.Delay(300);
            var restarts = witness.Restarts;
            var cutAt = DateTimeOffset.Now;
            lab.Lab.Cut(witness);
            try
            {
                await c.WaitUntil(() => Task.FromResult(witness.Restarts > restarts), Generous, default, $"{witness.Name} to be downed and started again while cut");
                output.WriteLine($"{witness.Name} downed and restarted {(DateTimeOffset.Now - cutAt).TotalSeconds:F1} s after the cut");
            }
            finally
            {
                lab.Lab.Heal(witness);
            }
            var healAt = DateTimeOffset.Now;
            await WholeCluster(Rejoin);
            output.WriteLine($"one cluster of all {c.Nodes.Count} nodes {(DateTimeOffset.Now - healAt).TotalSeconds:F1} s after the heal");
            foreach (var (g, m) in masters) Assert.Equal(m, await c.WaitForSingleMaster(Generous, group: g));
            foreach (var o in observers.Values) await o.StopAsync();
            foreach (var (g, o) in observers)
            {
                NeverTwoMasters(g, o, cutAt);
                MasterAnsweredThroughout(g, o, masters[g], cutAt, $"only the witness was cut");
            }
        }
        finally
        {
            foreach (var o in observers.Values) await o.DisposeAsync();
        }
    }

    /// <summary>Every node running and an Up, reachable member of one cluster of all of them (a node between two processes does not count as settled).</summary>
    private Task WholeCluster(TimeSpan timeout)
    {
        var c = lab.Cluster;
        var seen = "";
        return c.WaitUntil(async () =>
        {
            if (c.Nodes.FirstOrDefault(n => !n.Running) is { } stopped)
            {
                seen = $"{stopped.Name} not running";
                return false;
            }
            var statuses = await Task.WhenAll(c.Nodes.Select(c.Status));
            seen = string.Join("; ", statuses.Select((st, i) => $"{c.Nodes[i].Name}: {(st is null ? "no answer" : string.Join(",", st.Members.Select(m => $"{m.Node} {m.Status}{(m.Reachable ? "" : " unreachable")}")))}"));
            return statuses.All(st => st is not null && st.Members.Count == c.Nodes.Count && st.Members.All(m => m.Status == "Up" && m.Reachable));
        }, timeout, default, () => $"all {c.Nodes.Count} nodes Up in one cluster (last seen: {seen})");
    }

    private static void NeverTwoMasters(string group, PrimaryObserver observer, DateTimeOffset cutAt)
    {
        var doubles = observer.Rounds.Where(r => r.Masters >= 2).ToList();
        Assert.True(doubles.Count == 0, $"{group}: {doubles.Count} round(s) with two masters, the first at {doubles.FirstOrDefault()?.At:HH:mm:ss.fff}\n" +
                                        observer.Timeline(cutAt.AddSeconds(-1), DateTimeOffset.Now));
    }

    /// <summary>The group's master answered 200 throughout (polls that timed out on a loaded machine aside), and nobody else did.</summary>
    private void MasterAnsweredThroughout(string group, PrimaryObserver observer, LocalNode master, DateTimeOffset cutAt, string while_)
    {
        var index = observer.Nodes.ToList().IndexOf(master);
        var quiet = ObserverTimeline.LongestWithout200(observer.Rounds, index);
        var misses = observer.Rounds.Where(r => r.Codes[index] != 200).GroupBy(r => PrimaryObserver.Show(r.Codes[index])).Select(g => $"{g.Key} x{g.Count()}");
        output.WriteLine($"{group}: {master.Name} longest without 200: {quiet.TotalSeconds:F2} s; polls without 200: {string.Join(", ", misses.DefaultIfEmpty("none"))} of {observer.Rounds.Count}");
        // It never said it was not master; a poll that timed out (300 ms) says nothing but the machine's load.
        var otherwise = observer.Rounds.FirstOrDefault(r => r.Codes[index] is not (200 or -1));
        Assert.True(otherwise is null && quiet < TimeSpan.FromSeconds(3),
            $"{group}'s master {master.Name} answered {(otherwise is null ? "200 or nothing" : PrimaryObserver.Show(otherwise.Codes[index]) + $" at {otherwise.At:HH:mm:ss.fff}")} " +
            $"and went {quiet.TotalSeconds:F2} s without 200 while {while_}\n" + observer.Timeline(cutAt.AddSeconds(-1), DateTimeOffset.Now));
        Assert.All(observer.Rounds, r => Assert.True(r.Codes.Where((code, i) => i != index && code == 200).Count() == 0,
            $"another node of {group} answered 200 at {r.At:HH:mm:ss.fff}"));
    }
}
