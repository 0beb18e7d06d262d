using System.Diagnostics;
using System.Text;
using PromHa.Lab;
using PromHa.Node.Sink;
using PromHa.Node.Http;
using PromHa.Node.Supervision;
using Xunit.Abstractions;
using Xunit.Sdk;

namespace PromHa.EndToEnd;

/// <summary>
/// A cluster whose nodes each run in a network namespace of their own (<see cref="NetnsLab"/>),
/// with supervised Prometheus, kept for all the partition cases of one topology. Needs root: when
/// the lab cannot be built, every case fails with the reason.
/// </summary>
public abstract class PartitionLab : IAsyncLifetime
{
    public abstract int DataNodes { get; }
    public abstract int Witnesses { get; }
    public abstract string Topology { get; }
    /// <summary>The HA groups (cluster.groups), none by default.</summary>
    public virtual IReadOnlyList<(string Name, int Nodes)> Groups => [];
    public NetnsLab Lab { get; private set; } = null!;
    public LocalCluster Cluster { get; private set; } = null!;
    /// <summary>How long building the lab and starting the cluster took.</summary>
    public TimeSpan StartedIn { get; private set; }
    private string? _dir;
    private bool _disposed;
    /// <summary>The cluster's files and logs (kept after the run with KEEP_E2E_DIRS=1).</summary>
    public string? Dir => _dir;

    public async Task InitializeAsync()
    {
        var sw = Stopwatch.StartNew();
        var options = new LocalClusterOptions
        {
            Nodes = DataNodes,
            Witnesses = Witnesses,
            Groups = Groups,
            Servers = LocalServers.Supervised,
            // Alertmanager plays no part in who is master; two cores are better spent on the nodes.
            Alertmanager = false,
        };
        var missing = LocalCluster.MissingBinaries(options);
        if (missing.Count > 0)
            throw new InvalidOperationException($"Partition tests need {string.Join(", ", missing)}: bash deploy/install-deps.sh");
        Lab = NetnsLab.Create(DataNodes + Witnesses);
        try
        {
            _dir = Directory.CreateTempSubdirectory("promha-netns").FullName;
            Cluster = LocalCluster.Create(_dir, options with { Netns = Lab });
            await Cluster.StartAll();
        }
        catch
        {
            await DisposeAsync();
            throw;
        }
        StartedIn = sw.Elapsed;
    }

    /// <summary>Every process by PID (LocalCluster), then the lab's namespaces and links.</summary>
    public async Task DisposeAsync()
    {
        if (_disposed) return;
        _disposed = true;
        try
        {
            if (Cluster is not null)
            {
                // kill -9 by PID: nothing here needs a graceful leave, and one at a time costs ~7 s
                foreach (var n in Cluster.Nodes) Cluster.Kill(n);
                await Cluster.DisposeAsync(); // and the servers they left running, by their pid files
            }
        }
        finally
        {
            Lab?.Dispose();
            if (_dir is not null && Environment.GetEnvironmentVariable("KEEP_E2E_DIRS") != "1")
                try { Directory.Delete(_dir, true); } catch (IOException) { }
        }
    }
}

public sealed class ThreeNodeLab : PartitionLab
{
    public override int DataNodes => 3;
    public override int Witnesses => 0;
    public override string Topology => "3 nodes";
}

public sealed class PairWitnessLab : PartitionLab
{
    public override int DataNodes => 2;
    public override int Witnesses => 1;
    public override string Topology => "pair + witness";
}

[TestCaseOrderer("PromHa.EndToEnd.CaseOrderer", "PromHa.EndToEnd")]
[Collection(Lanes.Netns)]
public sealed class ThreeNodePartitionTests(ThreeNodeLab lab, ITestOutputHelper output)
    : PartitionCases(lab, output), IClassFixture<ThreeNodeLab>;

[TestCaseOrderer("PromHa.EndToEnd.CaseOrderer", "PromHa.EndToEnd")]
[Collection(Lanes.Netns)]
public sealed class PairWitnessPartitionTests(PairWitnessLab lab, ITestOutputHelper output)
    : PartitionCases(lab, output), IClassFixture<PairWitnessLab>
{
    /// <summary>
    /// In a pair the master is cut while it hosts the singleton: the pair's usual state after a
    /// failover (the witness cannot be master). The old master keeps its lease (its own singleton
    /// grants it) until it sees it lost quorum; the majority side promotes only once the singleton
    /// moved, ~14 s after the cut, so the cut is not required to outlast that. The 3-node class
    /// cuts a master that does not host the singleton (the usual state there): between them both
    /// paths run, in the time one would take.
    /// </summary>
    protected override Task CutTheMaster() =>
        RunCase("cut the master's link (it hosts the singleton)", Kind.MasterLate, MasterHostingSingleton,
            (run, target) => CutFor(run, target!, SingletonMasterCut));

    /// <summary>
    /// The first seed, master, cut for longer than it takes to be downed and started again: it
    /// restarts while still cut, finds no seed and starts a cluster of its own, an island, while the
    /// other side names a new master. After the heal the island's singleton sees the other nodes up
    /// outside its cluster and restarts the node into theirs (its island guard), and the other side's
    /// singleton may have sent a hand-over to the old incarnation's address, which the new one takes
    /// (the singleton watch restarts it then). Neither may leave two masters or a cluster without one.
    /// </summary>
    [Fact, CaseOrder(8)]
    public Task A_first_seed_cut_until_it_restarts_into_an_island_rejoins_the_majority() =>
        RunCase($"cut the first seed (master) for {IslandCut.TotalSeconds:F0} s: it restarts into an island", Kind.Master, FirstSeedAsMaster,
            (run, target) => CutFor(run, target!, IslandCut));
}

/// <summary>
/// Partitions made by cutting nodes' cluster links in a network namespace lab, with real promha
/// processes and real Prometheus servers, watched from outside by polling every node's /primary
/// every 50 ms. What must hold in every case:
/// (a) no observer round ever sees two nodes answering 200;
/// (b) the master does not move, and answers 200 at every poll, unless the master itself was cut off
///     (a lone poll that timed out between two 200s is reported but not counted: CPU noise);
///     when the master is cut, another node takes over (before the heal, or once settled) and
///     keeps the role, answering 200 at every poll from then on;
/// (c) every epoch in any node's ledger (/api/v1/history) is in the ledgers of a majority of the
///     configured nodes, naming the same master;
/// (d) every supervised Prometheus keeps its PID (it outlives its promha being downed and restarted).
/// A downed node exits and is started again after 2 s, as systemd's Restart=always would.
/// Each case starts and ends with one cluster of every node, all Up, and exactly one master.
/// </summary>
public abstract class PartitionCases(PartitionLab fx, ITestOutputHelper output)
{
    // Cuts last past the downing (failure detector ~3.5 s + split-brain resolver stable-after 3 s):
    // the cut node is downed and restarted, as after a real outage, not merely unreachable for a while.
    /// <summary>A master that does not host the singleton is replaced in ~5 s (measured).</summary>
    private static readonly TimeSpan MasterCut = TimeSpan.FromSeconds(10);
    /// <summary>
    /// A master that hosts the singleton is replaced only after the singleton moved, ~14 s after the
    /// cut (measured). The cut is not made that long: a first seed cut for more than ~13 s restarts
    /// while still cut and forms an island of its own, a different case (measured with an 18 s cut:
    /// once the island recovered through its 20 s island guard, once it stayed an island for good,
    /// its singleton handed over to the other side's oldest node by a HandOverToMe sent to its old
    /// incarnation's address).
    /// </summary>
    protected static readonly TimeSpan SingletonMasterCut = TimeSpan.FromSeconds(12);
    private static readonly TimeSpan StandbyCut = TimeSpan.FromSeconds(10);
    /// <summary>Downed ~7 s after the cut, started again 2 s later, alone 5 s after that (seed-node-timeout): an island by ~15 s.</summary>
    protected static readonly TimeSpan IslandCut = TimeSpan.FromSeconds(25);
    private static readonly TimeSpan AllCut = TimeSpan.FromSeconds(12);
    /// <summary>
    /// A standby's link down 4 s and up 4 s, three times: each cut outlasts the failure detector's
    /// pause, so the standby and the others mark each other unreachable, and each heal comes while
    /// the split-brain resolver's stable-after runs. With Akka's own resolver this downed the witness
    /// or the master in about a third of the runs (docs/failover.md, "A flapping standby"); 2 s
    /// stayed under the detector's pause on an idle machine, not always under load.
    /// </summary>
    protected static readonly TimeSpan FlapFor = TimeSpan.FromSeconds(24);
    protected static readonly TimeSpan FlapEvery = TimeSpan.FromSeconds(4);
    /// <summary>The failure detector's worst period (the benchmark's matrix also flaps 2 s and 15 s, for 60 s).</summary>
    private static readonly TimeSpan MasterFlapEvery = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan MasterFlapFor = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan SettleTimeout = TimeSpan.FromSeconds(120);
    /// <summary>Before a case: the previous case settled the cluster or failed trying.</summary>
    private static readonly TimeSpan SettleBeforeTimeout = TimeSpan.FromSeconds(20);

    private LocalCluster C => fx.Cluster;

    /// <summary>
    /// Master: the master is cut and another node must be master before the heal; MasterLate: the
    /// master is cut and another node must be master once the cluster settled; NonMaster: a node
    /// that is not master is cut and the master must stay, answering 200 throughout; All: every link.
    /// </summary>
    /// Restart: the master is killed and started again at once; another node must take over.
    /// MasterFlap: the master's link goes down and up again and again; the role may move (the
    /// master is cut off from the majority half the time) but never to two nodes at once, and the
    /// cluster must settle to one master after the last heal.
    protected enum Kind { Master, MasterLate, NonMaster, All, Restart, MasterFlap }

    [Fact, CaseOrder(1)]
    public Task Cutting_the_masters_link_moves_the_role_to_the_majority_side() => CutTheMaster();

    /// <summary>The master, not hosting the singleton, is replaced in ~5 s: before the heal.</summary>
    protected virtual Task CutTheMaster() =>
        RunCase("cut the master's link (it does not host the singleton)", Kind.Master, MasterNotHostingSingleton,
            (run, target) => CutFor(run, target!, MasterCut));

    [Fact, CaseOrder(3)]
    public Task Cutting_a_standbys_link_leaves_the_master_alone() =>
        RunCase("cut a standby's link", Kind.NonMaster, PlainStandby, (run, target) => CutFor(run, target!, StandbyCut));

    [Fact, CaseOrder(4)]
    public Task Cutting_the_singletons_host_while_it_is_not_master_leaves_the_master_alone() =>
        RunCase("cut the singleton's host (not master)", Kind.NonMaster, SingletonHostNotMaster,
            (run, target) => CutFor(run, target!, StandbyCut));

    [Fact, CaseOrder(6)]
    public Task A_flapping_standby_link_leaves_the_master_alone() =>
        RunCase($"flap a standby's link every {FlapEvery.TotalSeconds:F0} s for {FlapFor.TotalSeconds:F0} s", Kind.NonMaster,
            PlainStandby, (run, target) => Flap(run, target!, FlapEvery, FlapFor));

    /// <summary>
    /// The master's link flapping with a period the failure detector handles worst: each cut is long
    /// enough to mark the master unreachable (~3 s) and too short for the resolver to down it
    /// (stable-after 3 s), so the role may move on one cut and the old master come back on the next
    /// heal. A pair + witness once lost its master for 23 s this way (the resolver downed both data
    /// nodes as indirectly connected); the singleton watch and the island exit bound it now.
    /// </summary>
    [Fact, CaseOrder(6)]
    public Task A_flapping_master_link_never_gives_two_masters_and_settles_to_one() =>
        RunCase($"flap the master's link every {MasterFlapEvery.TotalSeconds:F0} s for {MasterFlapFor.TotalSeconds:F0} s", Kind.MasterFlap,
            MasterNotHostingSingleton, (run, target) => Flap(run, target!, MasterFlapEvery, MasterFlapFor));

    /// <summary>No side has a majority: every node downs itself, restarts, and they form one cluster again after the heal.</summary>
    [Fact, CaseOrder(5)]
    public Task Cutting_every_link_leaves_no_two_masters_and_heals_to_one() =>
        RunCase("cut every link", Kind.All, s => Task.FromResult(((LocalNode?)null, s)),
            async (run, _) =>
            {
                run.CutAll();
                await Task.Delay(AllCut);
                run.HealAll();
            });

    /// <summary>
    /// A firewall on the master that resets every TCP connection on its cluster link (what `ufw
    /// reject` does), while the observer still reaches its HTTP port on its other link: its peers
    /// see both its ports refuse, exactly as if its process had died. A refusal is evidence a
    /// firewall forges, so the role may move only once the old master's lease is over.
    /// </summary>
    [Fact, CaseOrder(2)]
    public Task A_firewall_rejecting_with_resets_at_the_master_moves_the_role_without_two_masters() =>
        RunCase("reject TCP with resets on the master's link", Kind.Master, MasterNotHostingSingleton,
            (run, target) => FaultFor(run, target!, LinkFault.RejectTcpReset, MasterCut));

    /// <summary>
    /// Every packet on the master's cluster link dropped by a filter rather than the link set down:
    /// ARP still answers and the node's own sends fail at once (EPERM), the rest is silence.
    /// </summary>
    [Fact, CaseOrder(2)]
    public Task A_firewall_dropping_everything_at_the_master_moves_the_role_to_the_majority_side() =>
        RunCase("drop every packet on the master's link", Kind.Master, MasterNotHostingSingleton,
            (run, target) => FaultFor(run, target!, LinkFault.Drop, MasterCut));

    /// <summary>
    /// The master's promha killed and started again at once on the same address (a container or
    /// systemd restart): the role moves on the lifeline's proof, and the new incarnation is a standby
    /// again; the time it took is in the report (`promha-lab bench failover --partitions-only` measures it).
    /// </summary>
    [Fact, CaseOrder(7)]
    public Task A_master_killed_and_started_again_at_once_comes_back_as_a_standby() =>
        RunCase("kill -9 the master's promha and start it again at once", Kind.Restart, MasterNotHostingSingleton,
            async (run, target) =>
            {
                run.Restart(target!);
                await C.WaitForStandbyAgain(target!, RestartedWithin);
                run.Rejoined(target!);
            });

    /// <summary>
    /// The singleton's host (in a pair + witness usually the witness) killed and started again at
    /// once: the singletons move to the next oldest node, the master keeps its lease on the others'
    /// votes and answers 200 throughout, and the new incarnation is a standby again (a restarted
    /// witness was once refused for over a minute).
    /// </summary>
    [Fact, CaseOrder(7)]
    public Task The_singletons_host_killed_and_started_again_at_once_comes_back_and_leaves_the_master_alone() =>
        RunCase("kill -9 the singleton's host (not master) and start it again at once", Kind.NonMaster, SingletonHostNotMaster,
            async (run, target) =>
            {
                run.Restart(target!);
                await C.WaitForStandbyAgain(target!, RestartedWithin);
                run.Rejoined(target!);
            });

    /// <summary>
    /// A restarted node is a standby again well within 15 s (measured 2-6 s). Under CI load one was
    /// downed 6 s after it joined (it and a peer missed each other's heartbeats while it started),
    /// exited 3, was started again and was a standby 25 s after the first restart: the safe path,
    /// slower. A minute before it counts as never; the time taken is in the report.
    /// </summary>
    private static readonly TimeSpan RestartedWithin = TimeSpan.FromSeconds(60);

    protected static async Task FaultFor(CaseRun run, LocalNode target, LinkFault fault, TimeSpan howLong)
    {
        run.Apply(target, fault);
        await Task.Delay(howLong);
        run.Clear(target);
    }

    protected static async Task CutFor(CaseRun run, LocalNode target, TimeSpan howLong)
    {
        run.Cut(target);
        await Task.Delay(howLong);
        run.Heal(target);
    }

    /// <summary>Down for <paramref name="every"/>, up for as long, ... for <paramref name="total"/> in all, ending up.</summary>
    protected static async Task Flap(CaseRun run, LocalNode target, TimeSpan every, TimeSpan total)
    {
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed + every <= total)
        {
            run.Cut(target);
            await Task.Delay(every);
            run.Heal(target);
            if (sw.Elapsed + every > total) break;
            await Task.Delay(every);
        }
    }

    private LocalNode Node(string? name) => C.Nodes.Single(n => n.Name == name);

    /// <summary>The first seed (the one that starts a cluster alone when no other seed answers), made master.</summary>
    protected async Task<(LocalNode?, Settled)> FirstSeedAsMaster(Settled s)
    {
        var first = C.Nodes[0];
        if (s.Master != first) s = await SwitchTo(s, first, "so that the master is the first seed");
        return (first, s);
    }

    /// <summary>The master, after a switchover away from the singleton's host when the master is that host.</summary>
    private async Task<(LocalNode?, Settled)> MasterNotHostingSingleton(Settled s)
    {
        if (s.Master.Name != s.SingletonNode) return (s.Master, s);
        s = await SwitchTo(s, C.Nodes.First(n => n != s.Master && !n.Witness), "so that the master does not host the singleton");
        return (s.Master, s);
    }

    /// <summary>
    /// The master, arranged to host the singleton: a switchover to the singleton's host, or, when a
    /// witness hosts it, the witness stopped (gracefully) and started again first so that the
    /// singleton moves to a data node (the next oldest).
    /// </summary>
    protected async Task<(LocalNode?, Settled)> MasterHostingSingleton(Settled s)
    {
        if (Node(s.SingletonNode).Witness)
        {
            var w = Node(s.SingletonNode);
            output.WriteLine($"the witness {w.Name} hosts the singleton: restart it so that the singleton moves to a data node");
            await C.Stop(w);
            C.StartNode(w);
            s = await Settle("after restarting the witness");
        }
        if (s.Master.Name != s.SingletonNode)
            s = await SwitchTo(s, Node(s.SingletonNode), "so that the master hosts the singleton");
        Assert.Equal(s.Master.Name, s.SingletonNode);
        return (s.Master, s);
    }

    /// <summary>
    /// A data node that is neither master nor the singleton's host. In a pair whose standby hosts
    /// the singleton, a switchover to that standby first (the master then hosts the singleton, and
    /// the old master is the plain standby).
    /// </summary>
    private async Task<(LocalNode?, Settled)> PlainStandby(Settled s)
    {
        bool Plain(LocalNode n, Settled st) => !n.Witness && n != st.Master && n.Name != st.SingletonNode;
        if (!C.Nodes.Any(n => Plain(n, s)))
            s = await SwitchTo(s, Node(s.SingletonNode), "so that a standby is neither master nor the singleton's host");
        return (C.Nodes.First(n => Plain(n, s)), s);
    }

    /// <summary>The singleton's host, after a switchover away from it when it is the master.</summary>
    private async Task<(LocalNode?, Settled)> SingletonHostNotMaster(Settled s)
    {
        var host = Node(s.SingletonNode);
        if (host != s.Master) return (host, s);
        s = await SwitchTo(s, C.Nodes.First(n => n != host && !n.Witness), "so that the singleton's host is not master");
        Assert.Equal(host.Name, s.SingletonNode);
        return (host, s);
    }

    private async Task<Settled> SwitchTo(Settled s, LocalNode to, string why)
    {
        output.WriteLine($"master {s.Master.Name}, singleton on {s.SingletonNode}: switchover to {to.Name} {why}");
        // A settled cluster right after its start (or a case's restarts) may not have a fresh health
        // report from the target yet, and a switchover goes only to a node that reported healthy in
        // the last 3 s: the status can show the last report while it is already too old. A refusal
        // for that reason is the product's right answer, so ask again; any other refusal fails.
        // The role may also come back: a target that turns unreachable during the hand-over (seen once
        // in CI, node2 silent for 5 s right after a flap case) is replaced by the old master, which is
        // the product's right answer; the arrangement is then asked for again, at most three times.
        for (var attempt = 1; ; attempt++)
        {
            using var api = C.Api(s.Master);
            await C.WaitUntil(async () =>
                {
                    if ((await C.Status(s.Master))?.Nodes.FirstOrDefault(n => n.Node == to.Name) is not { Reachable: true, PrometheusHealthy: true })
                        return false;
                    var r = await api.Switchover(to.Name);
                    if (r.Accepted) return true;
                    Assert.Contains("not eligible", r.Message);
                    return false;
                },
                RealCluster.Generous, default, $"{to.Name} to be healthy in {s.Master.Name}'s view and the switchover accepted");
            var after = await Settle($"after the switchover to {to.Name}");
            if (after.Master == to) return after;
            output.WriteLine($"the switchover to {to.Name} (from epoch {s.Epoch}) ended with {after.Master.Name} as master at epoch {after.Epoch}: asking again");
            if (attempt == 3) Assert.Fail($"three switchovers to {to.Name} ended elsewhere, the last with {after.Master.Name} as master");
            s = after;
        }
    }

    private Task<Settled> Settle(string when, TimeSpan? timeout = null) => C.Settle(timeout ?? SettleTimeout, when);

    /// <summary>
    /// Settles, or, when the previous case left the cluster broken (it failed for that already),
    /// restarts the nodes outside the largest cluster and settles again, so that this case tests
    /// what it names and not the last one's leftovers.
    /// </summary>
    private async Task<Settled> SettleOrRepair(string when)
    {
        try
        {
            return await Settle(when, SettleBeforeTimeout);
        }
        catch (TimeoutException)
        {
            var (largest, outside) = await C.OutsideLargestCluster();
            output.WriteLine($"REPAIR: the cluster did not settle before this case within {SettleBeforeTimeout.TotalSeconds:F0} s " +
                             $"(the previous case left it so); largest cluster {string.Join(",", largest)}; restarting " +
                             $"{(outside.Count == 0 ? "nothing" : string.Join(", ", outside.Select(n => n.Name)))}");
            foreach (var n in outside.Where(n => n.Running)) await C.Stop(n, TimeSpan.FromSeconds(10));
            foreach (var n in outside.Where(n => !n.Running)) C.StartNode(n);
            return await Settle($"{when}, after the repair");
        }
    }

    /// <summary>Cuts and heals through the lab, each marked in the observer's timeline.</summary>
    protected sealed class CaseRun(PrimaryObserver observer, NetnsLab lab, LocalCluster cluster)
    {
        public DateTimeOffset? FirstCut { get; private set; }
        public DateTimeOffset? LastHeal { get; private set; }
        public int Cuts { get; private set; }

        public void Cut(LocalNode n)
        {
            lab.Cut(n);
            Cuts++;
            FirstCut ??= DateTimeOffset.Now;
            observer.Mark($"cut {n.Name}'s cluster link");
        }

        public void Heal(LocalNode n)
        {
            lab.Heal(n);
            LastHeal = DateTimeOffset.Now;
            observer.Mark($"healed {n.Name}'s cluster link");
        }

        /// <summary>A packet filter on the node's cluster link (the link itself stays up).</summary>
        public void Apply(LocalNode n, LinkFault fault)
        {
            lab.Apply(n, fault);
            Cuts++;
            FirstCut ??= DateTimeOffset.Now;
            observer.Mark($"{fault} on {n.Name}'s cluster link");
        }

        public void Clear(LocalNode n)
        {
            lab.Clear(n);
            LastHeal = DateTimeOffset.Now;
            observer.Mark($"cleared {n.Name}'s cluster link");
        }

        /// <summary>kill -9 and start again at once, on the same address.</summary>
        public void Restart(LocalNode n)
        {
            Cuts++;
            FirstCut ??= DateTimeOffset.Now;
            observer.Mark($"kill -9 {n.Name} and start it again");
            cluster.Kill(n);
            cluster.StartNode(n);
        }

        public void Rejoined(LocalNode n)
        {
            LastHeal = DateTimeOffset.Now;
            observer.Mark($"{n.Name} is a standby again, {(LastHeal - FirstCut)!.Value.TotalSeconds:F1} s after its restart");
        }

        public void CutAll()
        {
            lab.CutAll();
            Cuts++;
            FirstCut ??= DateTimeOffset.Now;
            observer.Mark("cut every cluster link");
        }

        public void HealAll()
        {
            lab.HealAll();
            LastHeal = DateTimeOffset.Now;
            observer.Mark("healed every cluster link");
        }
    }

    protected async Task RunCase(string name, Kind kind, Func<Settled, Task<(LocalNode? Target, Settled Before)>> choose,
        Func<CaseRun, LocalNode?, Task> act)
    {
        var total = Stopwatch.StartNew();
        output.WriteLine($"[{fx.Topology}] cluster of {string.Join(", ", C.Nodes.Select(n => $"{n.Name} ({n.ClusterHost}, observed at {n.ObserverHost})"))} " +
                         $"started in {fx.StartedIn.TotalSeconds:F1} s; files in {fx.Dir}");
        var (target, before) = await choose(await SettleOrRepair($"before '{name}'"));
        var prepared = total.Elapsed;
        output.WriteLine($"before: master {before.Master.Name} at epoch {before.Epoch}, singleton on {before.SingletonNode}" +
                         (target is null ? "" : $"; target {target.Name}"));
        var knownEpochs = (await Ledgers()).Values.SelectMany(h => h).Select(e => e.Epoch).ToHashSet();
        var pids = PrometheusPids();
        var restarts = C.Nodes.ToDictionary(n => n, n => (n.Restarts, n.Exits.Count));

        await using var observer = new PrimaryObserver(C.Nodes);
        var run = new CaseRun(observer, fx.Lab, C);
        observer.Start();
        var failures = new List<(string What, DateTimeOffset? At)>();
        Settled? after = null;
        await Task.Delay(300); // some steady state first
        try
        {
            await act(run, target);
            observer.Mark("waiting for one cluster and one master");
            after = await Settle($"after '{name}'");
            observer.Mark("settled");
        }
        catch (TimeoutException e)
        {
            failures.Add(($"the cluster did not settle within {SettleTimeout.TotalSeconds:F0} s after the heal: {e.Message.Split('\n')[0]}", DateTimeOffset.Now));
        }
        finally
        {
            // whatever happened, leave the links whole for the next case
            if (run.Cuts > 0) fx.Lab.HealAll();
        }
        await observer.StopAsync();
        var rounds = observer.Rounds;
        var names = C.Nodes.Select(n => n.Name).ToList();

        // (a) never two masters at one poll
        var doubles = rounds.Where(r => r.Masters >= 2).ToList();
        if (doubles.Count > 0)
            failures.Add(($"(a) {doubles.Count} observer round(s) saw two or more nodes answer 200; the first at {doubles[0].At:HH:mm:ss.fff}: " +
                          string.Join(" ", doubles[0].Codes.Select((c, i) => $"{names[i]}={PrimaryObserver.Show(c)}")), doubles[0].At));

        // the longest stretch with no master
        var (gap, gapAt) = ObserverTimeline.LongestWithoutMaster(rounds);

        // (b) the master stays where it is, and answers at every poll, unless it was cut itself
        var moved = after is not null && after.Master != before.Master;
        var masterIndex = names.IndexOf(before.Master.Name);
        var (masterMisses, tolerated) = Misses(rounds, masterIndex, 0);
        string Phase(ObserverRound r) => run.FirstCut is null || r.At < run.FirstCut ? "before the cut"
            : run.LastHeal is null || r.At < run.LastHeal ? (run.Cuts > 1 ? "while flapping" : "while cut") : "after the heal";
        if (kind == Kind.NonMaster)
        {
            if (moved)
                failures.Add(($"(b) the master moved from {before.Master.Name} to {after!.Master.Name} although only {target!.Name} (not master) was cut off",
                    rounds.FirstOrDefault(r => r.Codes[masterIndex] != 200)?.At));
            if (masterMisses.Count > 0)
            {
                var byPhase = masterMisses.GroupBy(Phase).Select(g => $"{g.Key}: {g.Count()}");
                var byCode = masterMisses.GroupBy(r => PrimaryObserver.Show(r.Codes[masterIndex])).Select(g => $"{g.Key} x{g.Count()}");
                failures.Add(($"(b) the master {before.Master.Name} did not answer 200 at {masterMisses.Count} of {rounds.Count} polls while only " +
                              $"{target!.Name} (not master) was cut off ({string.Join(", ", byPhase)}; {string.Join(", ", byCode)}); " +
                              $"the first at {masterMisses[0].At:HH:mm:ss.fff}, the longest run without its 200 {ObserverTimeline.LongestWithout200(rounds, masterIndex).TotalSeconds:F2} s",
                    masterMisses[0].At));
            }
        }
        TimeSpan? failover = null;
        if (kind is Kind.Master or Kind.MasterLate or Kind.Restart && run.FirstCut is { } cutAt && run.LastHeal is { } healAt)
        {
            var first = rounds.FirstOrDefault(r => r.At >= cutAt && r.Codes.Where((c, i) => i != masterIndex && c == 200).Any());
            failover = first?.At - cutAt;
            if (kind is Kind.Master or Kind.Restart && (first is null || first.At > healAt))
                failures.Add(($"no other node became master during the {(healAt - cutAt).TotalSeconds:F0} s that {before.Master.Name}'s link was cut " +
                              "(the majority side must fail over)", healAt));
            if (kind == Kind.MasterLate && after is not null && after.Master == before.Master)
                failures.Add(($"{before.Master.Name} is master again after its link was cut for {(healAt - cutAt).TotalSeconds:F0} s: " +
                              "the majority side never failed over", first?.At ?? healAt));
            // The role moves once: the new master was never cut, and the old one's return must not disturb it.
            if (first is not null)
            {
                var next = first.Codes.Select((c, i) => (c, i)).First(x => x.i != masterIndex && x.c == 200).i;
                var (misses, _) = Misses(rounds, next, rounds.ToList().IndexOf(first));
                if (misses.Count > 0)
                    failures.Add(($"(b) the new master {names[next]} did not answer 200 at {misses.Count} poll(s) after it took over " +
                                  $"{failover!.Value.TotalSeconds:F2} s after the cut ({string.Join(", ", misses.GroupBy(Phase).Select(g => $"{g.Key}: {g.Count()}"))}; " +
                                  $"{string.Join(", ", misses.GroupBy(r => PrimaryObserver.Show(r.Codes[next])).Select(g => $"{g.Key} x{g.Count()}"))}); " +
                                  $"the first at {misses[0].At:HH:mm:ss.fff}", misses[0].At));
                if (after is not null && after.Master.Name != names[next])
                    failures.Add(($"(b) the role moved twice: {before.Master.Name} -> {names[next]} -> {after.Master.Name}", misses.FirstOrDefault()?.At));
            }
        }

        // (c) every epoch is in a majority of the configured nodes' ledgers
        var ledgers = await Ledgers();
        var majority = C.Nodes.Count / 2 + 1;
        foreach (var (node, history) in ledgers.Where(l => l.Value.Count == 0 && C.Nodes.Count > 0))
            failures.Add(($"(c) {node}'s /api/v1/history is empty or did not answer", null));
        var entries = ledgers.SelectMany(l => l.Value.Select(e => (Ledger: l.Key, Entry: e))).ToList();
        var epochs = entries.GroupBy(x => x.Entry.Epoch).OrderBy(g => g.Key).ToList();
        var newEpochs = epochs.Where(g => !knownEpochs.Contains(g.Key)).ToList();
        foreach (var epoch in epochs)
        {
            var age = knownEpochs.Contains(epoch.Key) ? "from before this case" : "new in this case";
            var holders = epoch.GroupBy(x => x.Entry.Node).ToList();
            if (holders.Count > 1)
                failures.Add(($"(c) epoch {epoch.Key} ({age}) names different masters in different ledgers: " +
                              string.Join("; ", holders.Select(h => $"{h.Key} in {string.Join(",", h.Select(x => x.Ledger))}")), epoch.First().Entry.At));
            foreach (var h in holders)
            {
                var ledgersWithIt = h.Select(x => x.Ledger).Distinct().ToList();
                if (ledgersWithIt.Count < majority)
                    failures.Add(($"(c) epoch {epoch.Key} ({age}: {h.Key}, {h.First().Entry.Reason}, {h.First().Entry.At:HH:mm:ss.fff}) is in the ledger of " +
                                  $"{string.Join(", ", ledgersWithIt)} only: fewer than {majority} of {C.Nodes.Count}", h.First().Entry.At));
            }
        }

        // (d) Prometheus outlives promha: same PIDs, still running
        var pidsAfter = PrometheusPids();
        foreach (var (node, pid) in pids)
        {
            pidsAfter.TryGetValue(node, out var now);
            if (pid is null)
                failures.Add(($"(d) {node} had no running Prometheus before the case", null));
            else if (now != pid)
                failures.Add(($"(d) {node}'s Prometheus was pid {pid} before the case, now {(now is null ? "none runs" : $"pid {now}")} " +
                              $"(pid {pid} {(DetachedServer.IsRunning(pid.Value) ? "still runs" : "is gone")})", null));
        }

        // (e) a master cut off for longer than the downing takes is downed and says so: exit code 3
        // (docs/reference.md, Exit codes), after which it was started again like systemd would
        if (kind is Kind.Master or Kind.MasterLate && target is not null && after is not null &&
            !target.Exits.Skip(restarts[target].Item2).Contains(PromHa.Node.Cluster.ExitCodes.Downed))
            failures.Add(($"(e) {target.Name} was cut off past the downing but exited with " +
                          $"[{string.Join(",", target.Exits.Skip(restarts[target].Item2))}], not {PromHa.Node.Cluster.ExitCodes.Downed} (downed)", null));

        // the report
        var nodeEvents = C.Nodes.Where(n => n.Restarts != restarts[n].Restarts || n.Exits.Count != restarts[n].Item2)
            .Select(n => $"{n.Name} restarted {n.Restarts - restarts[n].Restarts}x (exit codes {string.Join(",", n.Exits.Skip(restarts[n].Item2))})");
        var summary = new StringBuilder()
            .AppendLine($"[{fx.Topology}] {name}{(target is null ? "" : $" ({target.Name})")}: {total.Elapsed.TotalSeconds:F1} s in all " +
                        $"({prepared.TotalSeconds:F1} s to settle/prepare, {after?.Took.TotalSeconds ?? double.NaN:F1} s to settle after the heal)")
            .AppendLine($"  polls: {rounds.Count} rounds x {names.Count} nodes; rounds with two masters: {doubles.Count}")
            .AppendLine($"  longest with no master: {gap.TotalSeconds:F2} s{(gapAt is { } g ? $" (from {g:HH:mm:ss.fff})" : "")}" +
                        (failover is { } f ? $"; first other master {f.TotalSeconds:F2} s after the cut" : ""))
            .AppendLine($"  master: {before.Master.Name} (epoch {before.Epoch}) -> {after?.Master.Name ?? "?"} (epoch {after?.Epoch.ToString() ?? "?"}); moved: {(moved ? "yes" : "no")}; " +
                        $"polls where {before.Master.Name} did not answer 200: {masterMisses.Count} (+{tolerated.Count} lone timeouts) " +
                        $"({string.Join(", ", masterMisses.GroupBy(Phase).Select(g => $"{g.Key}: {g.Count()}"))})")
            .AppendLine($"  singleton: {before.SingletonNode} -> {after?.SingletonNode ?? "?"}; new epochs: " +
                        $"{string.Join(", ", newEpochs.Select(e => $"{e.Key}:{e.First().Entry.Node}:{e.First().Entry.Reason} in {e.Select(x => x.Ledger).Distinct().Count()}/{C.Nodes.Count}"))}")
            .AppendLine($"  nodes: {(nodeEvents.Any() ? string.Join("; ", nodeEvents) : "none restarted")}");
        output.WriteLine(summary.ToString());
        var start = rounds.Count > 0 ? rounds[0].At : DateTimeOffset.Now;
        var end = rounds.Count > 0 ? rounds[^1].At : DateTimeOffset.Now;
        output.WriteLine(observer.Timeline(start, end, doubles.ToHashSet()));
        if (failures.Count == 0) return;

        var message = new StringBuilder($"[{fx.Topology}] {name}: {failures.Count} violation(s):\n");
        foreach (var (what, _) in failures) message.AppendLine($" - {what}");
        var at = failures.Select(f => f.At).FirstOrDefault(a => a is not null) ?? start;
        message.AppendLine().AppendLine(summary.ToString())
            .AppendLine(observer.Timeline(at - TimeSpan.FromSeconds(4), at + TimeSpan.FromSeconds(4), doubles.ToHashSet()))
            .AppendLine(C.LogTails(40));
        output.WriteLine(C.LogTails(60));
        // last, so that a CI log that keeps only the tail of the output still says what failed
        output.WriteLine(message.ToString().Split('\n')[0] + "\n" + string.Join("\n", failures.Select(f => $" - {f.What}")));
        throw new XunitException(message.ToString());
    }

    /// <summary>
    /// The polls from <paramref name="from"/> on at which node <paramref name="i"/> did not answer 200.
    /// A lone timed-out poll between two 200s is CPU noise on a small host (a 300 ms stall), not the
    /// master letting go: it is returned apart (reported, not held against it). A 503, a refused
    /// connection, or two silent polls in a row are misses.
    /// </summary>
    private static (List<ObserverRound> Misses, List<ObserverRound> Tolerated) Misses(IReadOnlyList<ObserverRound> rounds, int i, int from)
    {
        var tolerated = new List<ObserverRound>();
        var misses = new List<ObserverRound>();
        for (var k = Math.Max(from, 0); k < rounds.Count; k++)
        {
            var code = rounds[k].Codes[i];
            if (code == 200) continue;
            var lone = code == -1 && (k == 0 || rounds[k - 1].Codes[i] == 200) && (k == rounds.Count - 1 || rounds[k + 1].Codes[i] == 200);
            (lone ? tolerated : misses).Add(rounds[k]);
        }
        return (misses, tolerated);
    }

    private async Task<Dictionary<string, List<HistoryEntry>>> Ledgers()
    {
        var result = new Dictionary<string, List<HistoryEntry>>();
        foreach (var n in C.Nodes)
        {
            try
            {
                using var api = C.Api(n);
                result[n.Name] = await api.History(1000) ?? [];
            }
            catch (Exception) { result[n.Name] = []; }
        }
        return result;
    }

    private Dictionary<string, int?> PrometheusPids() =>
        C.Nodes.Where(n => !n.Witness).ToDictionary(n => n.Name, LocalCluster.PrometheusPid);
}

/// <summary>The partition cases of one topology share a cluster: run them in the order written.</summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class CaseOrderAttribute(int order) : Attribute
{
    public int Order { get; } = order;
}

public sealed class CaseOrderer : ITestCaseOrderer
{
    public IEnumerable<TTestCase> OrderTestCases<TTestCase>(IEnumerable<TTestCase> testCases) where TTestCase : ITestCase =>
        testCases.OrderBy(t => t.TestMethod.Method.GetCustomAttributes(typeof(CaseOrderAttribute).AssemblyQualifiedName)
            .Select(a => a.GetConstructorArguments().First() as int?).FirstOrDefault() ?? int.MaxValue)
            .ThenBy(t => t.TestMethod.Method.Name, StringComparer.Ordinal);
}
