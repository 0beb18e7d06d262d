using System.Diagnostics;
using System.Globalization;
using PromHa.Lab;
using PromHa.Node.Sink;

using PromHa.Node.Console;

namespace PromHa.LabTool;

/// <summary>
/// The partition cases of `promha-lab bench failover` (root only): a 3-node cluster with supervised
/// Prometheus, each node in a network namespace of its own (<see cref="NetnsLab"/>), whose cluster
/// links are cut and healed while a <see cref="PrimaryObserver"/> polls every node's /primary
/// every 50 ms from outside. The same cases as tests/PromHa.EndToEnd/PartitionTests.cs, once each,
/// measured rather than asserted (two masters at one poll, or a master that moved although it was
/// not cut, count as anomalies).
/// </summary>
internal static class PartitionBench
{
    /// <summary>Not the tests' prefix ("phc"): a bench and a test run may share a host.</summary>
    public const string LabPrefix = "phb";

    private static readonly TimeSpan MasterCut = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan StandbyCut = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan AllCut = TimeSpan.FromSeconds(12);
    private static readonly TimeSpan AllCutLong = TimeSpan.FromSeconds(25);
    private static readonly TimeSpan FlapFor = TimeSpan.FromSeconds(20);
    private static readonly TimeSpan FlapEvery = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan SettleTimeout = TimeSpan.FromSeconds(120);
    private static readonly TimeSpan SettleBeforeTimeout = TimeSpan.FromSeconds(30);

    /// <summary>One case's figures. <paramref name="MasterCut"/>: the case cuts the master (so it may move).</summary>
    public sealed record Case(string Name, string Target, bool MasterCut, double LongestWithoutMaster, bool Moved, int TwoMasters,
        double? SettledAfterHeal, string? Error, double? RejoinedAfter = null, double? MasterAfterHeal = null,
        IReadOnlyList<string>? PrometheusRestarted = null)
    {
        public int Anomalies => TwoMasters + (Error is null ? 0 : 1) + (Moved && !MasterCut ? 1 : 0) + (PrometheusRestarted?.Count ?? 0) +
                                (RejoinedAfter is { } r && r > RejoinWithin.TotalSeconds ? 1 : 0);
    }

    public sealed record Section(IReadOnlyList<Case> Cases, string? Skipped = null, string? Failed = null)
    {
        public int Anomalies => Cases.Sum(c => c.Anomalies) + (Failed is null ? 0 : 1);

        public void Print()
        {
            if (Skipped is not null)
            {
                Say($"partition cases skipped: {Skipped}");
                return;
            }
            var width = Cases.Count == 0 ? 0 : Cases.Max(c => c.Name.Length);
            foreach (var c in Cases)
                Say($"partition: {c.Name.PadRight(width)}   longest without a master {F(c.LongestWithoutMaster, "0.00"),5} s   " +
                    $"master moved: {(c.Moved ? "yes" : "no ")}{(c.Moved && !c.MasterCut ? " (ANOMALY: it was not cut)" : "")}   " +
                    $"two masters: {c.TwoMasters}   " +
                    (c.MasterAfterHeal is { } mh ? $"a master {F(mh, "0.0")} s after the heal   " : "") +
                    (c.RejoinedAfter is { } r ? $"standby again after {F(r, "0.0")} s{(r > RejoinWithin.TotalSeconds ? " (ANOMALY: over 15 s)" : "")}   " : "") +
                    (c.SettledAfterHeal is { } s ? $"settled after heal {F(s, "0.0")} s" : "did not settle") +
                    (c.PrometheusRestarted is { Count: > 0 } pr ? $"   ANOMALY: Prometheus restarted on {string.Join(", ", pr)}" : "") +
                    (c.Error is null ? "" : $"   ERROR {c.Error}"));
            if (Failed is not null) Say($"partition cases failed: {Failed}");
        }
    }

    public static Section NotRoot() =>
        new([], Skipped: "they need root and network namespaces (run `promha-lab bench failover` as root; --no-partitions to leave them out)");

    /// <summary>How long a fault on the master lasts: past the downing (failure detector ~3.5 s + stable-after 3 s).</summary>
    private static readonly TimeSpan FaultFor = TimeSpan.FromSeconds(10);
    /// <summary>A flapping link: down and up with these half-periods for <see cref="FlapLong"/>.</summary>
    private static readonly TimeSpan[] FlapPeriods = [TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(15)];
    private static readonly TimeSpan FlapLong = TimeSpan.FromSeconds(60);
    /// <summary>A node killed and started again at once must be a standby within this (issue: containers that come back).</summary>
    private static readonly TimeSpan RejoinWithin = TimeSpan.FromSeconds(15);

    /// <summary>Every fault a packet filter can make on the master's cluster link, as the tests' lab applies them.</summary>
    private static readonly LinkFault[] MasterFaults =
    [
        LinkFault.Drop, LinkFault.RejectTcpReset, LinkFault.RejectPortUnreachable, LinkFault.RejectHostProhibited,
        LinkFault.DropInbound, LinkFault.DropOutbound, LinkFault.Loss30,
    ];

    /// <summary>Runs the cases in both topologies (3 nodes; a pair and a witness), one lab and cluster each.</summary>
    public static async Task<Section> Run(string baseDir, LocalClusterOptions template, string? only, CancellationToken ct)
    {
        var cases = new List<Case>();
        foreach (var (data, witnesses, topology) in new[] { (3, 0, "3 nodes"), (2, 1, "pair + witness") })
        {
            var failed = await RunTopology(baseDir, template, data, witnesses, topology, only, cases, ct);
            if (failed is not null) return new Section(cases, Failed: failed);
        }
        return new Section(cases);
    }

    private static async Task<string?> RunTopology(string baseDir, LocalClusterOptions template, int data, int witnesses, string topology,
        string? only, List<Case> cases, CancellationToken ct)
    {
        Say($"partition cases [{topology}]: building the network namespace lab '{LabPrefix}' for {data + witnesses} nodes");
        NetnsLab lab;
        try
        {
            lab = NetnsLab.Create(data + witnesses, LabPrefix, waitForLock: TimeSpan.FromMinutes(2));
        }
        catch (Exception e) when (e is NetnsLabException or IOException or UnauthorizedAccessException)
        {
            Say($"  the lab could not be built: {e.Message}");
            return $"the network namespace lab could not be built: {e.Message}";
        }
        LocalCluster? cluster = null;
        try
        {
            var options = template with
            {
                Nodes = data,
                Witnesses = witnesses,
                Servers = LocalServers.Supervised,
                Alertmanager = false,
                Netns = lab,
            };
            cluster = LocalCluster.Create(Path.Combine(baseDir, $"partitions-{data}-{witnesses}"), options);
            Say($"partition cases [{topology}]: starting the nodes (supervised Prometheus) in the lab");
            await cluster.StartAll(ct);
            var run = new Runner(cluster, lab, topology, only, ct);
            Keep(cases, await run.Case($"cut the master's link ({MasterCut.TotalSeconds:F0} s)", true, run.MasterNotHostingSingleton,
                t => run.FaultFor(t!, LinkFault.Down, MasterCut)));
            Keep(cases, await run.Case($"cut a standby's link ({StandbyCut.TotalSeconds:F0} s)", false, run.PlainStandby,
                t => run.FaultFor(t!, LinkFault.Down, StandbyCut)));
            Keep(cases, await run.Case($"cut the singleton's host, not master ({StandbyCut.TotalSeconds:F0} s)", false, run.SingletonHostNotMaster,
                t => run.FaultFor(t!, LinkFault.Down, StandbyCut)));
            // 12 s: the nodes, downed while cut, are restarting at the heal; 25 s: they are started
            // again and waiting for it.
            foreach (var cut in new[] { AllCut, AllCutLong })
                Keep(cases, await run.Case($"cut every link ({cut.TotalSeconds:F0} s)", true, s => Task.FromResult(((LocalNode?)null, s)),
                    async _ =>
                    {
                        lab.CutAll();
                        await Task.Delay(cut, ct);
                    }));
            Keep(cases, await run.Case($"flap a standby's link every {FlapEvery.TotalSeconds:F0} s for {FlapFor.TotalSeconds:F0} s", false,
                run.PlainStandby, t => run.Flap(t!, FlapEvery, FlapFor)));
            foreach (var fault in MasterFaults)
                Keep(cases, await run.Case($"{fault} on the master's link ({FaultFor.TotalSeconds:F0} s)", true, run.MasterNotHostingSingleton,
                    t => run.FaultFor(t!, fault, FaultFor)));
            foreach (var period in FlapPeriods)
                Keep(cases, await run.Case($"flap the master's link every {period.TotalSeconds:F0} s for {FlapLong.TotalSeconds:F0} s", true,
                    run.MasterNotHostingSingleton, t => run.Flap(t!, period, FlapLong)));
            Keep(cases, await run.Case("kill -9 the master's promha and start it again at once", true, run.MasterNotHostingSingleton,
                t => run.RestartAtOnce(t!)));
            // the oldest member hosts the singletons: in a pair + witness often the witness
            Keep(cases, await run.Case("kill -9 the singleton's host (not master) and start it again at once", false, run.SingletonHostNotMaster,
                t => run.RestartAtOnce(t!)));
            return null;
        }
        catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            Say($"  partition cases stopped: {e.Message.Split('\n')[0]}");
            return $"[{topology}] {e.GetType().Name}: {e.Message.Split('\n')[0]}";
        }
        finally
        {
            try
            {
                if (cluster is not null)
                {
                    Say($"partition cases [{topology}]: stopping the cluster by PID");
                    // kill -9 by PID (no graceful leave needed), then the servers by their pid files
                    foreach (var n in cluster.Nodes) cluster.Kill(n);
                    await cluster.DisposeAsync();
                }
            }
            finally
            {
                lab.Dispose(); // namespaces, links and the lock
            }
        }
    }

    private static void Keep(List<Case> cases, Case? c)
    {
        if (c is not null) cases.Add(c);
    }

    private static void Say(string line) => System.Console.WriteLine(line);

    private static string F(double v, string format) => v.ToString(format, CultureInfo.InvariantCulture);

    /// <summary>One cluster of every node, all Up and reachable, exactly one master that every node names.</summary>

    private sealed class Runner(LocalCluster c, NetnsLab lab, string topology, string? only, CancellationToken ct)
    {
        /// <summary>Set by a case that restarts a node: how long until it was a standby in every node's view.</summary>
        private double? _rejoined;

        private LocalNode Node(string? name) => c.Nodes.Single(n => n.Name == name);

        public async Task<Case?> Case(string name, bool masterCut, Func<Settled, Task<(LocalNode? Target, Settled Before)>> choose,
            Func<LocalNode?, Task> act)
        {
            name = $"[{topology}] {name}";
            if (only is not null && !only.Split('|').Any(o => name.Contains(o, StringComparison.OrdinalIgnoreCase))) return null;
            _rejoined = null;
            var (target, before) = await choose(await SettleOrRepair());
            Say($"partition: {name}: master {before.Master.Name}, singleton on {before.SingletonNode}" +
                (target is null ? "" : $", target {target.Name}"));
            // Prometheus is supervised detached: no fault, no promha restart may restart it
            var pidsBefore = c.Nodes.ToDictionary(n => n.Name, LocalCluster.PrometheusPid);
            await using var observer = new PrimaryObserver(c.Nodes);
            observer.Start();
            Settled? after = null;
            string? error = null;
            try
            {
                await Task.Delay(500, ct); // some steady state first
                try
                {
                    observer.Mark("cut");
                    await act(target);
                }
                finally
                {
                    lab.HealAll(); // whatever happened, the links are whole again
                    observer.Mark("healed");
                }
                after = await Settle(SettleTimeout);
            }
            catch (TimeoutException e)
            {
                error = $"did not settle within {SettleTimeout.TotalSeconds:F0} s after the heal: {e.Message.Split('\n')[0]}";
            }
            await observer.StopAsync();
            var restarted = c.Nodes.Select(n => (n.Name, Before: pidsBefore[n.Name], After: LocalCluster.PrometheusPid(n)))
                .Where(p => p.Before is not null && p.After != p.Before)
                .Select(p => $"{p.Name} (PID {p.Before} -> {p.After?.ToString(CultureInfo.InvariantCulture) ?? "none"})").ToList();
            var rounds = observer.Rounds;
            var result = new Case(name, target?.Name ?? "all", masterCut, ObserverTimeline.LongestWithoutMaster(rounds).Longest.TotalSeconds,
                after is not null && after.Master != before.Master, rounds.Count(r => r.Masters >= 2), after?.Took.TotalSeconds, error, _rejoined,
                ObserverTimeline.MasterAfterHeal(rounds, observer.MarkTime("healed")), restarted);
            Say($"  {rounds.Count} polls; longest without a master {F(result.LongestWithoutMaster, "0.00")} s; master {before.Master.Name} -> " +
                $"{after?.Master.Name ?? "?"}; two masters at {result.TwoMasters} polls; " +
                (after is null ? error : $"settled {F(after.Took.TotalSeconds, "0.0")} s after the heal") +
                (restarted.Count > 0 ? $"; Prometheus restarted on {string.Join(", ", restarted)}" : "; Prometheus kept its PID on every node"));
            return result;
        }

        public async Task FaultFor(LocalNode target, LinkFault fault, TimeSpan howLong)
        {
            lab.Apply(target, fault);
            await Task.Delay(howLong, ct);
            lab.Clear(target);
        }

        /// <summary>Down for <paramref name="every"/>, up for as long, ... for <paramref name="total"/> in all, ending up.</summary>
        public async Task Flap(LocalNode target, TimeSpan every, TimeSpan total)
        {
            var sw = Stopwatch.StartNew();
            while (sw.Elapsed + every <= total)
            {
                lab.Cut(target);
                await Task.Delay(every, ct);
                lab.Heal(target);
                if (sw.Elapsed + every > total) break;
                await Task.Delay(every, ct);
            }
        }

        /// <summary>kill -9 and start at once on the same address, as a container restart or systemd does; times the rejoin.</summary>
        public async Task RestartAtOnce(LocalNode target)
        {
            var sw = Stopwatch.StartNew();
            c.Kill(target);
            c.StartNode(target);
            try
            {
                await c.WaitForStandbyAgain(target, TimeSpan.FromSeconds(90), ct);
                _rejoined = sw.Elapsed.TotalSeconds;
            }
            catch (TimeoutException)
            {
                _rejoined = sw.Elapsed.TotalSeconds;
            }
        }

        /// <summary>The master, after a switchover away from the singleton's host when the master is that host.</summary>
        public async Task<(LocalNode?, Settled)> MasterNotHostingSingleton(Settled s)
        {
            if (s.Master.Name != s.SingletonNode) return (s.Master, s);
            s = await SwitchTo(s, c.Nodes.First(n => n != s.Master && !n.Witness));
            return (s.Master, s);
        }

        /// <summary>A node that is neither master nor the singleton's host.</summary>
        public async Task<(LocalNode?, Settled)> PlainStandby(Settled s)
        {
            bool Plain(LocalNode n, Settled st) => !n.Witness && n != st.Master && n.Name != st.SingletonNode;
            if (!c.Nodes.Any(n => Plain(n, s))) s = await SwitchTo(s, Node(s.SingletonNode));
            return (c.Nodes.First(n => Plain(n, s)), s);
        }

        /// <summary>The singleton's host, after a switchover away from it when it is the master.</summary>
        public async Task<(LocalNode?, Settled)> SingletonHostNotMaster(Settled s)
        {
            var host = Node(s.SingletonNode);
            if (host != s.Master) return (host, s);
            s = await SwitchTo(s, c.Nodes.First(n => n != host && !n.Witness));
            return (Node(s.SingletonNode), s);
        }

        private async Task<Settled> SwitchTo(Settled s, LocalNode to)
        {
            Say($"  master {s.Master.Name} hosts the singleton: switchover to {to.Name} first");
            using var api = c.Api(s.Master);
            // Right after a case (or a restart) the master may not hold a fresh health report of the
            // target yet, and a switchover goes only to a node reported healthy in the last 3 s: that
            // refusal is the product's right answer, so ask again; any other refusal stops the run.
            await c.WaitUntil(async () =>
            {
                var r = await api.Switchover(to.Name, ct);
                if (r.Accepted) return true;
                if (!r.Message.Contains("not eligible")) throw new InvalidOperationException($"switchover to {to.Name} refused: {r.Message}");
                return false;
            }, TimeSpan.FromSeconds(60), ct, $"{to.Name} to be eligible and the switchover accepted");
            await c.WaitForSingleMaster(TimeSpan.FromSeconds(60), n => n == to, ct);
            return await Settle(SettleTimeout);
        }

        /// <summary>Settles; when the last case left the cluster broken, restarts the nodes outside the largest cluster first.</summary>
        private async Task<Settled> SettleOrRepair()
        {
            try
            {
                return await Settle(SettleBeforeTimeout);
            }
            catch (TimeoutException)
            {
                var (_, outside) = await c.OutsideLargestCluster();
                Say($"  not settled within {SettleBeforeTimeout.TotalSeconds:F0} s; restarting {(outside.Count == 0 ? "nothing" : string.Join(", ", outside.Select(n => n.Name)))}");
                foreach (var n in outside.Where(n => n.Running)) c.Kill(n);
                foreach (var n in outside.Where(n => !n.Running)) c.StartNode(n);
                return await Settle(SettleTimeout);
            }
        }

        // three checks in a row: a benchmark run is long, and a downing already decided must not slip through
        private Task<Settled> Settle(TimeSpan timeout) => c.Settle(timeout, "partition bench", inARow: 3, ct);
    }
}
