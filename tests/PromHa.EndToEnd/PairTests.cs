using System.Text.Json;
using PromHa.Node.Alerts;
using PromHa.Node.Cluster;
using PromHa.Lab;
using PromHa.Node.Sink;
using Xunit.Abstractions;

namespace PromHa.EndToEnd;

/// <summary>The seeds' two-host topology: with a tie-breaker, and with a witness.</summary>
[Collection(Lanes.Netns)]
public class PairTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Generous = RealCluster.Generous;

    /// <summary>
    /// A pure pair with a tie-breaker, each node supervising its Prometheus and Alertmanager: alerts
    /// first (<see cref="AlertTests.InAPair"/>), then it fails over whichever node crashes, and every
    /// change of master reaches the receiver as one PromHaMasterChanged notification.
    /// </summary>
    [Fact]
    public async Task A_pair_with_a_tie_breaker_delivers_each_notification_once_and_fails_over_whichever_node_crashes()
    {
        using var sink = new WebhookSink(LoopbackPorts.Claim(1)[0]);
        await using var rc = await RealCluster.Start(output, nodes: 2, tieBreaker: true, servers: LocalServers.Supervised, alertmanager: true,
            alerting: new LocalAlerting(sink.WebhookUrl, sink.Target, PeerTimeout: $"{AlertTests.PeerTimeoutSeconds}s"));
        await AlertTests.InAPair(rc.Cluster, sink, output);
        await CrashEitherSide(rc.Cluster, rc.Cluster.Nodes, alerting: true);
        // CrashEitherSide failed over twice: each change is one notification, none twice. Once (1 run in 3) the first
        // change's notification came ~60 s late: posted while one node's promha was down, it waited in Alertmanager's
        // retries (not lost, not doubled; cause not pinned down yet), so this waits twice as long as the other steps.
        await rc.Cluster.WaitUntil(() => Task.FromResult(sink.Deliveries.Count(d => d.Alerts.Any(a => a.Alert == "PromHaMasterChanged")) >= 2),
            2 * Generous, default, $"a PromHaMasterChanged notification for each failover\n{sink.Describe()}");
        var changes = sink.Deliveries.Where(d => d.Alerts.Any(a => a.Alert == "PromHaMasterChanged")).ToList();
        output.WriteLine(string.Join("\n", changes.Select(d => d.Summary)));
        Assert.Equal(changes.Count, changes.Select(d => d.Summary).Distinct().Count());
    }

    /// <summary>
    /// A pair with a witness fails over whichever data node crashes, and the witness never becomes
    /// master. Then one reign, one epoch: the master also hosts the singleton (the usual state of a
    /// pair after its first failover), is killed and back within a second. The singleton moves, reads
    /// the epoch granted to the old incarnation, and must not hand it to the new one: the role goes
    /// on under a new, higher epoch with its own history entry.
    /// </summary>
    [Fact]
    public async Task A_pair_with_a_witness_fails_over_and_a_master_hosting_the_singleton_that_restarts_at_once_comes_back_under_a_new_epoch()
    {
        await using var rc = await RealCluster.Start(output, nodes: 2, witnesses: 1);
        var c = rc.Cluster;
        var witness = c.Nodes.Single(n => n.Witness);
        using var watch = new CancellationTokenSource();
        var witnessWasMaster = WatchWitness(c, witness, watch.Token);
        var pair = c.Nodes.Where(n => !n.Witness).ToList();
        await CrashEitherSide(c, pair);
        // the standby CrashEitherSide killed last comes back for the second half
        foreach (var n in pair.Where(n => !n.Running)) c.StartNode(n);
        await c.WaitForMembers(Generous);
        await watch.CancelAsync();
        Assert.False(await witnessWasMaster);
        Assert.Equal("witness", (await c.Status(witness))!.Role);

        var master = await c.WaitForSingleMaster(Generous);
        // Move things until the master also hosts the singleton: kill the master (or, when the
        // witness hosts the singleton, the witness) and start it again.
        for (var i = 0; i < 4; i++)
        {
            var host = (await c.Status(master))!.SingletonNode;
            if (host == master.Name) break;
            var victim = c.Nodes.Single(n => n.Name == (host == c.Nodes.Single(w => w.Witness).Name ? host : master.Name));
            // the witness leaves gracefully (it is not what this test is about); a witness killed and
            // restarted at once was once refused by the cluster for over a minute (seen in CI, not understood yet)
            if (victim.Witness) await c.Stop(victim);
            else c.Kill(victim);
            master = await c.WaitForSingleMaster(Generous, n => n != victim);
            c.StartNode(victim);
            await c.WaitForMembers(Generous);
            await c.WaitUntil(async () => (await c.Status(master))?.SingletonNode is not null, Generous, default, "a singleton");
        }
        var before = (await c.Status(master))!;
        Assert.Equal(master.Name, before.SingletonNode);
        output.WriteLine($"{master.Name} is master at epoch {before.Epoch} and hosts the singleton; kill -9 and restart it at once");

        c.Kill(master);
        c.StartNode(master);
        var next = await c.WaitForSingleMaster(TimeSpan.FromSeconds(90), n => true);
        await c.WaitUntil(async () => (await c.Status(next))?.Epoch > before.Epoch, Generous, default,
            $"a new epoch after {master.Name} restarted (it held epoch {before.Epoch})");
        var history = (await c.Api(next).History(5))!;
        output.WriteLine(string.Join("\n", history.Select(h => $"epoch {h.Epoch} {h.Node} {h.Reason} previous {h.Previous}")));
        Assert.True(history[0].Epoch > before.Epoch);
        Assert.Equal((await c.Status(next))!.Epoch, history[0].Epoch);
        Assert.Single(await c.Masters());
    }

    /// <summary>
    /// The pure pair's known gap (docs/architecture.md, Topologies): a cut link between two hosts that both still
    /// reach the tie-breaker gives a master on each side. Both sides say so, and when the link
    /// returns the losing claim (lower epoch) rejoins as a standby of the other.
    /// </summary>
    [Fact]
    public async Task A_cut_link_in_a_pure_pair_shows_two_masters_on_both_sides_and_heals_to_one()
    {
        await using var rc = await RealCluster.Start(output, nodes: 2, tieBreaker: true, cuttableLinks: true);
        var c = rc.Cluster;
        var first = await c.WaitForSingleMaster(Generous);
        var other = c.Nodes.Single(n => n != first);
        var epochBefore = (await c.Status(first))!.Epoch;

        rc.CutLinks();
        await c.WaitUntil(async () => await c.PrimaryCode(first) == 200 && await c.PrimaryCode(other) == 200,
            Generous, default, "a master on each side of the cut link");
        await c.WaitUntil(async () => (await c.Status(first))?.Split is not null && (await c.Status(other))?.Split is not null,
            Generous, default, "both sides to report the other master");
        var a = (await c.Status(first))!;
        var b = (await c.Status(other))!;
        Assert.True(Math.Max(a.Epoch, b.Epoch) > epochBefore); // the side that lost its master promoted its own
        var keeperStatus = new MasterClaim(a.Epoch, a.Master).Beats(new MasterClaim(b.Epoch, b.Master)) ? a : b;
        var keeper = c.Nodes.Single(n => n.Name == keeperStatus.Node);
        var loser = c.Nodes.Single(n => n != keeper);
        Assert.True(keeperStatus.Split!.ThisSideKeeps);
        Assert.False((await c.Status(loser))!.Split!.ThisSideKeeps);
        Assert.Equal(loser.Name, keeperStatus.Split.PeerMaster);
        using (var http = new HttpClient())
            Assert.Contains("promha_split_brain 1", await http.GetStringAsync($"{loser.HttpUrl}/metrics"));

        rc.RestoreLinks();
        await c.WaitUntil(async () => (await c.Status(loser)) is { Master: { } m, Split: null } s && m == keeper.Name && s.Members.Count == 2,
            TimeSpan.FromSeconds(120), default, $"{loser.Name} to rejoin {keeper.Name}'s cluster as standby");
        Assert.True(loser.Restarts >= 1);
        Assert.Contains(75, loser.Exits); // "leave to restart" (docs/reference.md, Exit codes), which a supervisor's on-failure restarts
        Assert.Equal(keeper, await c.WaitForSingleMaster(Generous));
        var healed = (await c.Status(loser))!;
        Assert.Equal(keeperStatus.Epoch, healed.Epoch);
        await c.WaitUntil(async () => (await c.Status(keeper))?.Split is null, Generous, default, "the keeper to clear its split report");
    }

    /// <summary>
    /// A pure pair whose tie-breaker is a lease row in PostgreSQL (its journals there too): it fails
    /// over whichever node crashes; a cut link between the two hosts, both still reaching the
    /// database, leaves one master and never two (both /primary polled every 100 ms), and the side
    /// that lost the row rejoins as a standby when the link returns. Then the database stops
    /// answering and the link is cut again: neither side can take the row, both step down, and the
    /// pair has no master (rather than two) until the database and the link are back.
    /// </summary>
    [Fact]
    public async Task A_pure_pair_with_a_database_lease_fails_over_either_crash_and_a_cut_link_never_gives_two_masters()
    {
        // Crashes first, without the link proxies: a proxy answers for a dead node's port, and a
        // survivor that sees its peer's port answer will not take the role alone (the island guard).
        await using (var crashes = await RealCluster.Start(output, nodes: 2, databaseTieBreaker: true, journals: JournalMix.Postgres))
            await CrashEitherSide(crashes.Cluster, crashes.Cluster.Nodes);

        await using var rc = await RealCluster.Start(output, nodes: 2, cuttableLinks: true, databaseTieBreaker: true, journals: JournalMix.Postgres);
        var c = rc.Cluster;
        var before = await c.WaitForSingleMaster(Generous);
        await c.WaitUntil(async () => (await c.Status(c.Nodes.Single(n => n != before)))?.Master == before.Name, Generous, default, "the standby to follow");

        await using var observer = new PrimaryObserver(c.Nodes, TimeSpan.FromMilliseconds(100));
        observer.Start();
        var exits = c.Nodes.ToDictionary(n => n, n => n.Exits.Count);
        rc.CutLinks();
        observer.Mark("cut");
        // the side that lost the row downs itself (exit 3) and, restarted, waits for its seed
        await c.WaitUntil(() => Task.FromResult(c.Nodes.Any(n => n.Exits.Skip(exits[n]).Contains(3))), Generous, default, "one side to down itself");
        var keeper = await c.WaitForSingleMaster(Generous);
        var loser = c.Nodes.Single(n => n != keeper);
        Assert.DoesNotContain(3, keeper.Exits.Skip(exits[keeper]));
        await Task.Delay(TimeSpan.FromSeconds(10)); // and it stays so
        Assert.Equal(keeper, await c.WaitForSingleMaster(Generous));
        var overlaps = observer.Rounds.Where(r => r.Masters > 1).ToList();
        if (overlaps.Count > 0) Assert.Fail($"two masters in {overlaps.Count} polls:\n{observer.Timeline(overlaps[0].At.AddSeconds(-2), overlaps[^1].At.AddSeconds(2))}");
        output.WriteLine($"cut link: {keeper.Name} kept or took the role (was {before.Name}); {loser.Name} downed itself; longest without a master " +
                         $"{ObserverTimeline.LongestWithoutMaster(observer.Rounds).Longest.TotalSeconds:F1} s");
        var held = await rc.Postgres!.Query($"SELECT owner FROM {DatabaseLease.Table}");
        Assert.EndsWith($":{keeper.PublicClusterPort}", held); // the last to take the row (SBR's owner: system@host:port)

        rc.RestoreLinks();
        observer.Mark("healed");
        await c.WaitUntil(async () => (await c.Status(loser))?.Master == keeper.Name, TimeSpan.FromSeconds(120), default, $"{loser.Name} to rejoin as standby");
        Assert.Equal(keeper, await c.WaitForSingleMaster(Generous));

        // without its tie-breaker the pair chooses no master over two
        rc.Postgres.Freeze();
        exits = c.Nodes.ToDictionary(n => n, n => n.Exits.Count);
        rc.CutLinks();
        observer.Mark("database frozen, cut");
        try
        {
            await c.WaitUntil(() => Task.FromResult(c.Nodes.All(n => n.Exits.Skip(exits[n]).Contains(3))), Generous, default,
                "both sides to down themselves, neither reaching the database");
            await c.WaitUntil(async () => (await c.Masters()).Count == 0, Generous, default, "no master on either side");
        }
        finally
        {
            rc.Postgres.Thaw();
            rc.RestoreLinks();
        }
        observer.Mark("database back, healed");
        var after = await c.WaitForSingleMaster(TimeSpan.FromSeconds(120));
        await c.WaitForMembers(Generous);
        await observer.StopAsync();
        overlaps = observer.Rounds.Where(r => r.Masters > 1).ToList();
        if (overlaps.Count > 0) Assert.Fail($"two masters in {overlaps.Count} polls:\n{observer.Timeline(overlaps[0].At.AddSeconds(-2), overlaps[^1].At.AddSeconds(2))}");
        output.WriteLine($"database frozen and link cut: no master until both were back; then {after.Name}");
    }

    /// <summary>
    /// Crash the master (it may host the singleton, the case Akka's own strategies lose), then the
    /// standby, and the master must stay; each crashed node comes back as a standby.
    /// </summary>
    private static async Task CrashEitherSide(LocalCluster c, IReadOnlyList<LocalNode> pair, bool alerting = false)
    {
        for (var round = 0; round < 2; round++)
        {
            var master = await c.WaitForSingleMaster(Generous);
            c.Kill(master);
            var survivor = await c.WaitForSingleMaster(Generous, n => n != master);
            Assert.Contains(survivor, pair);
            HashSet<string> delivered = [];
            if (alerting)
            {
                // the survivor delivers its PromHaMasterChanged while the other node is down (see the caller on why 2x)
                var reign = (await c.Status(survivor))!.Epoch;
                await c.WaitUntil(async () => (await Notifications(c, survivor)).Any(x => x.Epoch == reign && x.State == "delivered"),
                    2 * Generous, default, $"{survivor.Name} to deliver a notification of epoch {reign}");
                delivered = (await Notifications(c, survivor)).Where(x => x.State == "delivered").Select(x => x.Id).ToHashSet();
            }
            c.StartNode(master);
            // Up, not only joining: a joining member does not count in the split-brain resolver's majority
            await c.WaitForMembers(Generous);
            await c.WaitUntil(async () => (await c.Status(master))?.Master == survivor.Name, Generous, default, $"{master.Name} to rejoin");
            // What was settled while it was down reaches its outbox once it is back: promoted before that, it would
            // send those notifications again (the next round kills the survivor right away).
            await c.WaitUntil(async () => delivered.IsSubsetOf((await Notifications(c, master)).Where(x => x.State == "delivered").Select(x => x.Id)),
                TimeSpan.FromSeconds(15), default, $"{master.Name}'s outbox to hold the {delivered.Count} notification(s) {survivor.Name} delivered meanwhile");
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

    internal static async Task<IReadOnlyList<NotificationInfo>> Notifications(LocalCluster c, LocalNode n)
    {
        using var api = c.Api(n);
        return JsonSerializer.Deserialize(await api.GetText("api/v1/notifications?limit=1000"), GateJson.Default.NotificationsResponse)!.Notifications;
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
