using System.CommandLine;
using System.Diagnostics;
using System.Text.RegularExpressions;
using PromHa.Lab;
using PromHa.Node.Sink;

using PromHa.Node.Console;

namespace PromHa.LabTool;

/// <summary>
/// `promha-lab bench alerts`: the notification gate's soak, with the alert shapes production has, on a
/// local cluster with real Prometheus and Alertmanager: flapping alerts (each its own group, on and
/// off every period), groups whose alerts join and leave at random, and every few rounds a burst of
/// 200+ groups firing at once; meanwhile the master is killed with -9 round after round, every other
/// round its whole host (promha, Prometheus, Alertmanager), and started again as systemd would. At
/// the end the receiver's deliveries are counted per alert and per firing cycle (the alerts'
/// startsAt): firings and resolutions lost, deliveries doubled by content and by id, suppressions by
/// why, failover times, and the latency the gate adds outside failovers.
/// </summary>
public static class AlertsBenchCommand
{
    public static Command Create()
    {
        var rounds = new Option<int>("--rounds") { Description = "How many times the master is killed", DefaultValueFactory = _ => 20 };
        var nodes = new Option<int>("--nodes") { Description = "PromHa nodes", DefaultValueFactory = _ => 3 };
        var flapping = new Option<int>("--flapping") { Description = "Flapping alerts, each its own group", DefaultValueFactory = _ => 20 };
        var period = new Option<int>("--period-seconds") { Description = "A flapping alert is on, then off, this long", DefaultValueFactory = _ => 8 };
        var groups = new Option<int>("--groups") { Description = "Groups of 4 alerts that join and leave at random", DefaultValueFactory = _ => 10 };
        var burst = new Option<int>("--burst") { Description = "Groups that fire at once every 5th round (and resolve 15 s later)", DefaultValueFactory = _ => 200 };
        var between = new Option<int>("--between-seconds") { Description = "Quiet time between two kills", DefaultValueFactory = _ => 20 };
        var promhaOnly = new Option<bool>("--promha-only") { Description = "Kill only the master's promha, never its whole host" };
        var dir = new Option<string?>("--dir") { Description = "Directory for the nodes' files (default: a new temp directory)" };
        var cmd = new Command("alerts", "Soak: flapping alerts, growing and shrinking groups and bursts while the master (or its host) is killed; " +
                                        "print lost and doubled per alert cycle, suppressions by why, failover times and added latency")
            { rounds, nodes, flapping, period, groups, burst, between, promhaOnly, dir };
        cmd.SetAction((p, ct) => Run(new Shapes(p.GetValue(flapping), TimeSpan.FromSeconds(p.GetValue(period)), p.GetValue(groups), p.GetValue(burst)),
            p.GetValue(rounds), p.GetValue(nodes), TimeSpan.FromSeconds(p.GetValue(between)), !p.GetValue(promhaOnly), p.GetValue(dir), ct));
        return cmd;
    }

    private sealed record Shapes(int Flapping, TimeSpan Period, int Groups, int Burst);

    /// <summary>The triggers the bench drives, and how often each fired and resolved.</summary>
    private sealed class Workload(WebhookSink sink, Shapes shapes)
    {
        private static readonly TimeSpan MinHold = TimeSpan.FromSeconds(4);
        private readonly Random _random = new(23);
        private readonly Dictionary<string, (int Fired, int Resolved, DateTimeOffset Since)> _counts = new();
        private readonly Stopwatch _clock = Stopwatch.StartNew();
        public volatile bool Bursting;

        public IReadOnlyDictionary<string, (int Fired, int Resolved)> Counts
        {
            get
            {
                lock (_counts) return _counts.ToDictionary(c => c.Key, c => (c.Value.Fired, c.Value.Resolved));
            }
        }

        private void Set(string name, bool on)
        {
            lock (_counts)
            {
                var was = sink.Triggers.TryGetValue(name, out var v) && v == 1;
                if (was == on) return;
                var c = _counts.GetValueOrDefault(name);
                _counts[name] = on ? (c.Fired + 1, c.Resolved, DateTimeOffset.UtcNow) : (c.Fired, c.Resolved + 1, DateTimeOffset.UtcNow);
                sink.Triggers[name] = on ? 1 : 0;
            }
        }

        private bool HeldLongEnough(string name)
        {
            lock (_counts) return !_counts.TryGetValue(name, out var c) || DateTimeOffset.UtcNow - c.Since >= MinHold;
        }

        /// <summary>One tick (every second): flapping alerts follow their phase, group members toggle now and then, bursts come and go.</summary>
        public void Tick()
        {
            var t = _clock.Elapsed;
            for (var i = 0; i < shapes.Flapping; i++)
            {
                // each its own phase, so that the flaps do not all change in one evaluation
                var phase = shapes.Period * 2 * i / Math.Max(1, shapes.Flapping);
                Set($"f{i}.a", (int)((t + phase) / shapes.Period) % 2 == 0);
            }
            for (var g = 0; g < shapes.Groups; g++)
                for (var k = 0; k < 4; k++)
                {
                    var name = $"g{g}.{(char)('a' + k)}";
                    if (_random.NextDouble() < 0.15 && HeldLongEnough(name)) Set(name, !(sink.Triggers.TryGetValue(name, out var v) && v == 1));
                }
            for (var w = 0; w < shapes.Burst; w++)
                if (Bursting || HeldLongEnough($"w{w}.a")) Set($"w{w}.a", Bursting);
        }

        public void AllOff()
        {
            foreach (var name in sink.Triggers.Keys.ToList()) Set(name, false);
        }
    }

    private static async Task<int> Run(Shapes shapes, int rounds, int nodeCount, TimeSpan between, bool hostKills, string? dir, CancellationToken ct)
    {
        var baseDir = dir ?? Directory.CreateTempSubdirectory("promha-bench-alerts").FullName;
        Directory.CreateDirectory(baseDir);
        using var sink = new WebhookSink(LoopbackPorts.Claim(1)[0], Path.Combine(baseDir, "notifications.log"));
        var repeat = TimeSpan.FromHours(1);
        var options = new LocalClusterOptions
        {
            Nodes = nodeCount,
            Servers = LocalServers.Supervised,
            Alerting = new LocalAlerting(sink.WebhookUrl, sink.Target, GroupInterval: "1s", RepeatInterval: "1h", GroupBy: "[alertname, set]"),
        };
        if (LocalCluster.MissingBinaries(options) is { Count: > 0 } missing)
        {
            await System.Console.Error.WriteLineAsync($"promha-lab bench alerts: missing {string.Join(", ", missing)} ({DemoCommand.InstallHint})");
            return 3;
        }
        await using var cluster = LocalCluster.Create(baseDir, options);
        System.Console.WriteLine($"bench alerts: {nodeCount} nodes in {baseDir}, {rounds} kill -9 rounds ({(hostKills ? "every other one the whole host" : "promha only")}); " +
                                 $"{shapes.Flapping} flapping alerts ({shapes.Period.TotalSeconds:F0} s on, {shapes.Period.TotalSeconds:F0} s off), " +
                                 $"{shapes.Groups} groups of 4 that grow and shrink, a burst of {shapes.Burst} groups every 5th round");
        await cluster.StartAll(ct);
        var master = await cluster.WaitForSingleMaster(TimeSpan.FromSeconds(60), ct: ct);
        // every Alertmanager in every Prometheus's list before the shapes start
        await Task.Delay(TimeSpan.FromSeconds(15), ct);

        var work = new Workload(sink, shapes);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var driver = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                work.Tick();
                try { await Task.Delay(TimeSpan.FromSeconds(1), stop.Token); } catch (OperationCanceledException) { }
            }
        }, CancellationToken.None);

        var failovers = new List<double>();
        var windows = new List<(DateTimeOffset From, DateTimeOffset To)>();
        var twoMasters = 0;
        var suppressed = new Dictionary<string, double>();
        for (var round = 1; round <= rounds && !ct.IsCancellationRequested; round++)
        {
            work.Bursting = round % 5 == 0;
            await Task.Delay(between, ct);
            work.Bursting = false;
            master = await cluster.WaitForSingleMaster(TimeSpan.FromSeconds(60), ct: ct);
            await AddSuppressions(cluster, master, suppressed); // its counters die with it
            var killedAt = DateTimeOffset.UtcNow;
            var sw = Stopwatch.StartNew();
            var host = hostKills && round % 2 == 0;
            if (host) cluster.KillHost(master);
            else cluster.Kill(master);
            LocalNode? next = null;
            while (next is null && sw.Elapsed < TimeSpan.FromSeconds(90))
            {
                var masters = await cluster.Masters();
                if (masters.Count > 1) twoMasters++;
                next = masters.Count == 1 ? masters[0] : null;
                if (next is null) await Task.Delay(50, ct);
            }
            var took = sw.Elapsed.TotalSeconds;
            failovers.Add(took);
            // notifications accepted between the kill and shortly after the new master's gate opened wait for the failover
            windows.Add((killedAt, DateTimeOffset.UtcNow + TimeSpan.FromSeconds(5)));
            System.Console.WriteLine($"round {round,2}: killed {master.Name}'s {(host ? "host" : "promha")}, " +
                                     $"{(next is null ? "NO new master" : $"{next.Name} master")} after {took:F2} s; {sink.Deliveries.Count} deliveries so far");
            cluster.StartNode(master);
            await cluster.WaitForMembers(TimeSpan.FromSeconds(90), ct);
        }
        await stop.CancelAsync();
        await driver;
        // the last changes reach the receiver (a rule evaluation and a group wait), then everything resolves
        await Task.Delay(TimeSpan.FromSeconds(10), ct);
        work.AllOff();
        System.Console.WriteLine("shapes stopped; waiting 60 s for the last notifications (peers wait up to 30 s, retries) ...");
        await Task.Delay(TimeSpan.FromSeconds(60), ct);
        foreach (var n in cluster.Nodes.Where(n => !n.Witness)) await AddSuppressions(cluster, n, suppressed);

        var deliveries = sink.Deliveries.Where(d => d.Alerts.Any(a => a.Alert == "DemoTrigger")).ToList();
        var counts = work.Counts;
        var report = NotificationLedger.Count(deliveries, counts, repeat);
        var latencies = deliveries.Where(d => d.AcceptedAt is { } a && !windows.Any(w => a >= w.From && a <= w.To))
            .Select(d => (d.At - d.AcceptedAt!.Value).TotalMilliseconds).Order().ToList();
        var lost = report.LostFiring.Concat(report.LostResolved).ToList();
        System.Console.WriteLine($"""

            alerts {counts.Count}: fired {counts.Values.Sum(c => c.Fired)} times, resolved {counts.Values.Sum(c => c.Resolved)} times; cycles seen {report.Cycles.Count}; deliveries {deliveries.Count}
            lost firings              {report.LostFiring.Count}{Sample(report.LostFiring)}
            lost resolutions          {report.LostResolved.Count}{Sample(report.LostResolved)}
            doubled by content        {report.DoubledByContent.Count}{Sample(report.DoubledByContent.Select(d => d.Id ?? ""))}
            doubled by id             {report.DoubledById.Count}
            suppressed, by why        {(suppressed.Count == 0 ? "none" : string.Join("  ", suppressed.OrderBy(s => s.Key).Select(s => $"{s.Key} {s.Value:F0}")))}
            failover (s)              min {failovers.DefaultIfEmpty().Min():F2}  median {Median(failovers):F2}  max {failovers.DefaultIfEmpty().Max():F2}
            polls with two masters    {twoMasters}
            added latency (ms)        p50 {Pct(latencies, 0.5):F1}  p99 {Pct(latencies, 0.99):F1}  max {latencies.DefaultIfEmpty().Max():F1}  (gate acceptance to receipt, {latencies.Count} deliveries outside failovers)
            receiver log              {Path.Combine(baseDir, "notifications.log")}
            """);
        // what the receiver got for the first alerts with a lost cycle: where to look
        foreach (var name in lost.Select(l => l[..l.IndexOf('@')]).Distinct().Take(3))
        {
            System.Console.WriteLine($"\n{name}, as the receiver got it (time, status, the alert's start):");
            foreach (var d in deliveries.Where(d => d.Alerts.Any(a => a.Name == name)))
            {
                var a = d.Alerts.First(a => a.Name == name);
                System.Console.WriteLine($"  {d.At:HH:mm:ss.fff} {a.Status,-8} since {a.StartsAt:HH:mm:ss.fff}  {d.Reason} by {d.Node} (epoch {d.Epoch})");
            }
        }
        return lost.Count == 0 && report.DoubledByContent.Count == 0 && twoMasters == 0 ? 0 : 1;
    }

    /// <summary>Adds a node's promha_notifications_deduplicated_total by why (since its start) to the totals.</summary>
    private static async Task AddSuppressions(LocalCluster cluster, LocalNode n, Dictionary<string, double> into)
    {
        string text;
        try
        {
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(3) };
            text = await http.GetStringAsync($"{n.HttpUrl}/metrics");
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            return;
        }
        foreach (Match m in Regex.Matches(text, @"^promha_notifications_deduplicated_total\{[^}]*why=""([^""]+)""[^}]*\} (\S+)$", RegexOptions.Multiline))
            into[m.Groups[1].Value] = into.GetValueOrDefault(m.Groups[1].Value) + double.Parse(m.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture);
    }

    private static string Sample(IEnumerable<string> xs) => xs.Take(8).ToList() is { Count: > 0 } some ? $"  ({string.Join(", ", some)})" : "";

    private static double Median(List<double> xs) => Pct(xs.Order().ToList(), 0.5);

    internal static double Pct(List<double> sorted, double p) => sorted.Count == 0 ? 0 : sorted[Math.Min(sorted.Count - 1, (int)Math.Ceiling(p * sorted.Count) - 1)];
}
