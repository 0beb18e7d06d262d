using System.CommandLine;
using PromHa.Lab;

namespace PromHa.LabTool;

/// <summary>
/// `promha-lab bench remote-write`: what a receiver keeps of a group's series across switchovers and
/// kill -9 of the master's host. Three nodes with supervised Prometheus write to a master-only
/// receiver (a receiving Prometheus, or VictoriaMetrics without deduplication) through the gates,
/// and to VictoriaMetrics in all-replicas mode with deduplication. Per event, over every `up` and
/// `process_cpu_seconds_total` series of a node that stayed up: scrape intervals missing, samples
/// doubled (closer than half an interval), writer changes and counter resets.
/// </summary>
public static class RemoteWriteBenchCommand
{
    private static readonly TimeSpan Interval = TimeSpan.FromSeconds(5); // the lab's scrape interval

    public static Command Create()
    {
        var rounds = new Option<int>("--rounds") { Description = "Switchovers, and as many host kills", DefaultValueFactory = _ => 3 };
        var receiverKind = new Option<string>("--receiver") { Description = "The master-only receiver: prometheus or victoria-metrics", DefaultValueFactory = _ => "prometheus" };
        var verbose = new Option<bool>("--samples") { Description = "Print every sample time of every series in each event's window" };
        var cmd = new Command("remote-write", "Measure samples missing and doubled at remote storage per switchover and per kill -9 of the master's host")
            { rounds, receiverKind, verbose };
        cmd.SetAction((p, ct) => Run(p.GetValue(rounds), p.GetValue(receiverKind)!, p.GetValue(verbose), ct));
        return cmd;
    }

    private sealed record Event(string Kind, string From, string To, DateTimeOffset At, IReadOnlyList<LocalNode> Involved);

    private static async Task<int> Run(int rounds, string kind, bool verbose, CancellationToken ct)
    {
        if (kind is not ("prometheus" or "victoria-metrics"))
        {
            await System.Console.Error.WriteLineAsync("promha-lab bench remote-write: --receiver is prometheus or victoria-metrics");
            return 64;
        }
        var dir = Directory.CreateTempSubdirectory("promha-bench-rw").FullName;
        Say($"promha-lab bench remote-write --rounds {rounds} --receiver {kind}; {Environment.ProcessorCount} CPUs; dir {dir}");
        try
        {
            using var dedup = await RemoteWriteReceiver.Start(RemoteWriteReceiver.Kind.VictoriaMetrics, Path.Combine(dir, "dedup"), dedup: Interval);
            using var receiver = await RemoteWriteReceiver.Start(kind == "prometheus" ? RemoteWriteReceiver.Kind.Prometheus : RemoteWriteReceiver.Kind.VictoriaMetrics,
                Path.Combine(dir, "master-only"));
            var options = new LocalClusterOptions
            {
                Nodes = 3, Servers = LocalServers.Supervised, Alertmanager = false,
                RemoteWrite = [(dedup.WriteUrl, "all-replicas"), (receiver.WriteUrl, "master-only")],
            };
            await using var c = LocalCluster.Create(Path.Combine(dir, "cluster"), options);
            await c.StartAll();
            var generous = TimeSpan.FromSeconds(90);
            var master = await c.WaitForSingleMaster(generous);
            await RemoteWriteGates.WaitForwarding(c, master, generous);
            var start = DateTimeOffset.UtcNow;
            await Task.Delay(4 * Interval, ct);
            var events = new List<Event>();
            for (var i = 0; i < rounds; i++)
            {
                var target = c.Nodes.First(n => n != master);
                var at = DateTimeOffset.UtcNow;
                var answer = await c.Api(master).Switchover(target.Name);
                if (!answer.Accepted) throw new InvalidOperationException($"switchover refused: {answer.Message}");
                var next = await c.WaitForSingleMaster(generous, n => n == target);
                await RemoteWriteGates.WaitForwarding(c, next, generous);
                events.Add(new Event("switchover", master.Name, next.Name, at, []));
                Say($"{at:HH:mm:ss.fff} switchover {master.Name} -> {next.Name}");
                master = next;
                await Task.Delay(6 * Interval, ct);

                at = DateTimeOffset.UtcNow;
                c.KillHost(master);
                next = await c.WaitForSingleMaster(generous, n => n != master);
                await RemoteWriteGates.WaitForwarding(c, next, generous);
                events.Add(new Event("kill -9 host", master.Name, next.Name, at, [master]));
                Say($"{at:HH:mm:ss.fff} kill -9 of {master.Name}'s host -> {next.Name}");
                await Task.Delay(6 * Interval, ct);
                c.StartNode(master);
                await c.WaitForStandbyAgain(master, generous);
                master = next;
                await Task.Delay(6 * Interval, ct);
            }
            var end = DateTimeOffset.UtcNow;

            Say("");
            Say($"master-only ({kind}), per event, over the series of nodes that stayed up (window: 2 intervals before to 4 after):");
            Say("event                          series  missing  doubled  writer-changes  counter-resets");
            int totalMissing = 0, totalDoubled = 0, totalResets = 0;
            foreach (var e in events)
            {
                int series = 0, missing = 0, doubled = 0, changes = 0, resets = 0;
                foreach (var n in c.Nodes.Where(n => !e.Involved.Contains(n)))
                    foreach (var (metric, counter) in new[] { ("up", false), ("process_cpu_seconds_total", true) })
                    {
                        var samples = await receiver.Samples($"{metric}{{job=\"promha\",instance=\"127.0.0.1:{n.HttpPort}\"}}", start, end);
                        var window = SeriesContinuity.Between(samples, e.At - 2 * Interval, e.At + 4 * Interval);
                        var sc = SeriesContinuity.Of(window, Interval, counter);
                        if (verbose)
                            Say($"  {metric}@{n.Name}: {string.Join(" ", window.Select(x => DateTimeOffset.FromUnixTimeMilliseconds(x.Ms).ToString("mm:ss.fff")))}  ({sc})");
                        series++;
                        missing += sc.MissingIntervals;
                        doubled += sc.Doubled;
                        changes += sc.WriterChanges;
                        resets += sc.CounterResets;
                    }
                totalMissing += missing;
                totalDoubled += doubled;
                totalResets += resets;
                Say($"{$"{e.Kind} {e.From}->{e.To}",-30} {series,6} {missing,8} {doubled,8} {changes,15} {resets,15}");
            }
            Say($"total: {totalMissing} interval(s) missing, {totalDoubled} doubled, {totalResets} counter reset(s) in {events.Count} events");
            var vm = SeriesContinuity.Of(await dedup.Samples($"up{{job=\"promha\",instance=\"127.0.0.1:{c.Nodes[0].HttpPort}\"}}", start, end), Interval, counter: false);
            Say($"all-replicas at VictoriaMetrics (-dedup.minScrapeInterval={Interval.TotalSeconds:F0}s), {c.Nodes[0].Name}'s up series over the whole run: {vm}");
            return 0;
        }
        finally
        {
            try { Directory.Delete(dir, true); } catch (IOException) { }
        }
    }

    private static void Say(string line) => System.Console.WriteLine(line);
}
