using System.CommandLine;
using System.Diagnostics;
using PromHa.Node.Demo;

namespace PromHa.Node.Console;

/// <summary>
/// `promha bench alerts`: the notification gate's soak. A steady stream of alerts fires and
/// resolves (one new alert every interval, each resolving five intervals later) on a local cluster
/// with real Prometheus and Alertmanager, while the master's promha is killed with -9 round after
/// round (and started again, as systemd would). At the end every notification the stream caused is
/// looked up at a real webhook receiver: lost, doubled with the same delivery id (a crash in
/// mid-delivery), doubled by content (the gate's failure), failover times, and the latency the gate
/// adds (its acceptance from Alertmanager to the receiver's receipt) outside failovers.
/// </summary>
public static class AlertsBenchCommand
{
    public static Command Create()
    {
        var rounds = new Option<int>("--rounds") { Description = "How many times the master is killed", DefaultValueFactory = _ => 20 };
        var nodes = new Option<int>("--nodes") { Description = "PromHa nodes", DefaultValueFactory = _ => 3 };
        var interval = new Option<int>("--interval-ms") { Description = "A new alert fires (and one resolves) this often", DefaultValueFactory = _ => 2000 };
        var between = new Option<int>("--between-seconds") { Description = "Quiet time between two kills", DefaultValueFactory = _ => 20 };
        var dir = new Option<string?>("--dir") { Description = "Directory for the nodes' files (default: a new temp directory)" };
        var cmd = new Command("alerts", "Soak: kill -9 the master repeatedly while alerts fire and resolve; print lost, doubled, failover times and added latency")
            { rounds, nodes, interval, between, dir };
        cmd.SetAction((p, ct) => Run(p.GetValue(rounds), p.GetValue(nodes), TimeSpan.FromMilliseconds(p.GetValue(interval)),
            TimeSpan.FromSeconds(p.GetValue(between)), p.GetValue(dir), ct));
        return cmd;
    }

    private static async Task<int> Run(int rounds, int nodeCount, TimeSpan interval, TimeSpan between, string? dir, CancellationToken ct)
    {
        var baseDir = dir ?? Directory.CreateTempSubdirectory("promha-bench-alerts").FullName;
        Directory.CreateDirectory(baseDir);
        using var sink = new WebhookSink(Path.Combine(baseDir, "notifications.log"));
        var options = new LocalClusterOptions
        {
            Nodes = nodeCount,
            Alerting = new LocalAlerting(sink.WebhookUrl, sink.Target, GroupInterval: "1s"),
        };
        if (LocalCluster.MissingBinaries(options) is { Count: > 0 } missing)
        {
            await System.Console.Error.WriteLineAsync($"promha bench alerts: missing {string.Join(", ", missing)} ({DemoCommand.InstallHint})");
            return 3;
        }
        await using var cluster = LocalCluster.Create(baseDir, options);
        System.Console.WriteLine($"bench alerts: {nodeCount} nodes in {baseDir}, {rounds} kill -9 rounds, an alert every {interval.TotalSeconds:F1} s");
        await cluster.StartAll(ct);
        var master = await cluster.WaitForSingleMaster(TimeSpan.FromSeconds(60), ct: ct);
        // every Alertmanager in every Prometheus's list before the stream starts
        await Task.Delay(TimeSpan.FromSeconds(15), ct);

        var fired = new List<string>();
        var resolved = new List<string>();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var stream = Task.Run(async () =>
        {
            for (var k = 0; !stop.IsCancellationRequested; k++)
            {
                lock (fired)
                {
                    sink.Triggers[$"s{k}"] = 1;
                    fired.Add($"s{k}");
                    if (k >= 5)
                    {
                        sink.Triggers[$"s{k - 5}"] = 0;
                        resolved.Add($"s{k - 5}");
                    }
                }
                try { await Task.Delay(interval, stop.Token); } catch (OperationCanceledException) { }
            }
        }, CancellationToken.None);

        var failovers = new List<double>();
        var windows = new List<(DateTimeOffset From, DateTimeOffset To)>();
        var twoMasters = 0;
        for (var round = 1; round <= rounds && !ct.IsCancellationRequested; round++)
        {
            await Task.Delay(between, ct);
            master = await cluster.WaitForSingleMaster(TimeSpan.FromSeconds(60), ct: ct);
            var killedAt = DateTimeOffset.UtcNow;
            var sw = Stopwatch.StartNew();
            cluster.Kill(master);
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
            System.Console.WriteLine($"round {round,2}: killed {master.Name}, {(next is null ? "NO new master" : $"{next.Name} master")} after {took:F2} s; " +
                                     $"{sink.Deliveries.Count} deliveries so far");
            cluster.StartNode(master);
            await cluster.WaitForMembers(TimeSpan.FromSeconds(90), ct);
        }
        await stop.CancelAsync();
        await stream;
        // the last ones fire first (a rule evaluation and a group wait), then everything resolves
        await Task.Delay(TimeSpan.FromSeconds(10), ct);
        lock (fired)
            foreach (var name in fired.Except(resolved).ToList())
            {
                sink.Triggers[name] = 0;
                resolved.Add(name);
            }
        System.Console.WriteLine("stream stopped; waiting 60 s for the last notifications (peers wait up to 30 s, retries) ...");
        await Task.Delay(TimeSpan.FromSeconds(60), ct);

        var deliveries = sink.Deliveries.Where(d => d.Alerts.Any(a => a.Alert == "DemoTrigger")).ToList();
        var expected = fired.Select(n => (n, "firing")).Concat(resolved.Select(n => (n, "resolved"))).ToHashSet();
        var got = deliveries.GroupBy(d => (d.Name, d.Status)).ToDictionary(g => g.Key, g => g.ToList());
        var lost = expected.Where(e => !got.ContainsKey(e)).ToList();
        var sameId = deliveries.GroupBy(d => d.Id).Count(g => g.Count() > 1);
        var byContent = got.Count(g => g.Value.Select(d => d.Id).Distinct().Count() > 1);
        var latencies = deliveries.Where(d => d.AcceptedAt is { } a && !windows.Any(w => a >= w.From && a <= w.To))
            .Select(d => (d.At - d.AcceptedAt!.Value).TotalMilliseconds).Order().ToList();
        System.Console.WriteLine($"""

            notifications expected {expected.Count} (fired {fired.Count}, resolved {resolved.Count}), delivered {deliveries.Count}
            lost                      {lost.Count}{(lost.Count > 0 ? $"  ({string.Join(", ", lost.Take(10).Select(l => $"{l.Item1}:{l.Item2}"))})" : "")}
            doubled, same delivery id {sameId}
            doubled by content        {byContent}
            failover (s)              min {failovers.DefaultIfEmpty().Min():F2}  median {Median(failovers):F2}  max {failovers.DefaultIfEmpty().Max():F2}
            polls with two masters    {twoMasters}
            added latency (ms)        p50 {Pct(latencies, 0.5):F1}  p99 {Pct(latencies, 0.99):F1}  max {latencies.DefaultIfEmpty().Max():F1}  (gate acceptance to receipt, {latencies.Count} deliveries outside failovers)
            receiver log              {Path.Combine(baseDir, "notifications.log")}
            """);
        return lost.Count == 0 && byContent == 0 && twoMasters == 0 ? 0 : 1;
    }

    private static double Median(List<double> xs) => Pct(xs.Order().ToList(), 0.5);

    private static double Pct(List<double> sorted, double p) => sorted.Count == 0 ? 0 : sorted[Math.Min(sorted.Count - 1, (int)Math.Ceiling(p * sorted.Count) - 1)];
}
