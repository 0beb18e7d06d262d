using PromHa.Lab;
using Xunit.Abstractions;

namespace PromHa.EndToEnd;

/// <summary>A group's samples in remote storage: real VictoriaMetrics and a real receiving Prometheus.</summary>
[Collection(Lanes.Loopback)]
public class RemoteWriteTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Generous = RealCluster.Generous;
    private static readonly TimeSpan Interval = TimeSpan.FromSeconds(5); // the lab's scrape interval

    /// <summary>
    /// One cluster writes to two receivers: VictoriaMetrics in all-replicas mode (every replica
    /// writes, VictoriaMetrics deduplicates at the scrape interval) and a Prometheus receiver in
    /// master-only mode (every Prometheus writes to its node's gate; the master's gate forwards).
    /// Both keep one series per target, without the replica label. A switchover leaves no interval
    /// missing and none doubled at the master-only receiver; a crash of the master's host at most one
    /// missing (the figures per event are printed); the deduplicated one has no gap at all.
    /// </summary>
    [Fact]
    public async Task Every_replica_or_only_the_master_writes_one_series_per_target_and_a_new_master_takes_over_the_writing()
    {
        var dir = Directory.CreateTempSubdirectory("promha-rw").FullName;
        try
        {
            using var vm = await RemoteWriteReceiver.Start(RemoteWriteReceiver.Kind.VictoriaMetrics, dir, dedup: Interval);
            using var receiver = await RemoteWriteReceiver.Start(RemoteWriteReceiver.Kind.Prometheus, dir);
            await RunCluster(vm, receiver);
        }
        finally
        {
            try { Directory.Delete(dir, true); } catch (IOException) { }
        }
    }

    private async Task RunCluster(RemoteWriteReceiver vm, RemoteWriteReceiver receiver)
    {
        await using var rc = await RealCluster.Start(output, nodes: 3, servers: LocalServers.Supervised,
            remoteWrite: [(vm.WriteUrl, "all-replicas"), (receiver.WriteUrl, "master-only")]);
        var c = rc.Cluster;
        var master = await c.WaitForSingleMaster(Generous);
        var started = DateTimeOffset.UtcNow;
        // the series of a target that stays up throughout: the promha node that is never killed
        var witness = c.Nodes.First(n => n != master);
        var selector = $"up{{job=\"promha\",instance=\"127.0.0.1:{witness.HttpPort}\"}}";

        foreach (var r in new[] { vm, receiver })
            await c.WaitUntil(async () => (await r.Series("up{job=\"promha\"}")).Count == 3, Generous, default, $"three up series at {r.Type}");
        foreach (var r in new[] { vm, receiver })
            Assert.All(await r.Series("up{job=\"promha\"}"), s => Assert.False(s.ContainsKey("promha_replica"), $"{r.Type} got the replica label: {string.Join(",", s)}"));
        // every Prometheus writes both (promha-1 to its node's gate); only the master's gate forwards
        await c.WaitUntil(async () => (await Queues(c)).All(q => q.Value.Contains("promha-0") && q.Value.Contains("promha-1")),
            Generous, default, "both queues on every Prometheus");
        await WaitForwarding(c, master);

        // a switchover to the witness-named node's peer, then the new master's whole host dies
        await Task.Delay(4 * Interval);
        var target = c.Nodes.Single(n => n != master && n != witness);
        var switchAt = DateTimeOffset.UtcNow;
        var answer = await c.Api(master).Switchover(target.Name);
        Assert.True(answer.Accepted, answer.Message);
        var second = await c.WaitForSingleMaster(Generous, n => n == target);
        await WaitForwarding(c, second);
        await Task.Delay(4 * Interval);

        var crashAt = DateTimeOffset.UtcNow;
        c.KillHost(second);
        var third = await c.WaitForSingleMaster(Generous, n => n != second);
        await WaitForwarding(c, third);
        await Task.Delay(6 * Interval);
        var end = DateTimeOffset.UtcNow;

        var masterOnly = await receiver.Samples(selector, started, end);
        var deduplicated = await vm.Samples(selector, started, end);
        // The new writer goes on from the old one's last acknowledged sample, which is up to an interval
        // (plus the batch deadline) before the event: each window starts two intervals before its event.
        var before = SeriesContinuity.Of(masterOnly.Where(s => s.Ms < (switchAt - Interval * 2).ToUnixTimeMilliseconds()).ToList(), Interval, counter: false);
        var aroundSwitch = SeriesContinuity.Of(SeriesContinuity.Between(masterOnly, switchAt - Interval * 2, crashAt - Interval * 2), Interval, counter: false);
        var aroundCrash = SeriesContinuity.Of(SeriesContinuity.Between(masterOnly, crashAt - Interval * 2, end), Interval, counter: false);
        var vmAll = SeriesContinuity.Of(deduplicated, Interval, counter: false);
        // a counter of the same target, read as one: a reset would be a replica's older value after a newer one
        var cpu = await receiver.Samples($"process_cpu_seconds_total{{job=\"promha\",instance=\"127.0.0.1:{witness.HttpPort}\"}}", started, end);
        var cpuRun = SeriesContinuity.Of(cpu, Interval, counter: true);
        output.WriteLine($"master-only, before the switchover: {before}");
        output.WriteLine($"master-only, switchover {master.Name} -> {second.Name}: {aroundSwitch}");
        output.WriteLine($"master-only, host of {second.Name} killed -> {third.Name}: {aroundCrash}");
        output.WriteLine($"master-only samples (s): {string.Join(" ", masterOnly.Select(x => DateTimeOffset.FromUnixTimeMilliseconds(x.Ms).ToString("mm:ss.fff")))}");
        output.WriteLine($"switchover at {switchAt:mm:ss.fff}, crash at {crashAt:mm:ss.fff}");
        output.WriteLine($"all-replicas at VictoriaMetrics (dedup {Interval.TotalSeconds:F0} s), whole run: {vmAll}");
        output.WriteLine($"master-only, the counter process_cpu_seconds_total of the same target, whole run: {cpuRun}");

        // the new masters write: the series goes on after each change
        Assert.Contains(masterOnly, s => s.Ms > crashAt.ToUnixTimeMilliseconds() + 2 * Interval.TotalMilliseconds);
        Assert.Equal((0, 0), (before.Doubled, before.WriterChanges));
        // a switchover: the new master's gate sends its own samples after the old master's last acknowledged one:
        // nothing missing, one writer after the other, its first sample at least half an interval after the old one's last
        Assert.Equal(0, aroundSwitch.MissingIntervals);
        Assert.True(aroundSwitch.WriterChanges <= 1 && aroundSwitch.Doubled == 0, $"switchover: {aroundSwitch}");
        // a crash: what the dead master sent after its last mark may come twice; at most one interval missing
        Assert.True(aroundCrash.MissingIntervals <= 1 && aroundCrash.WriterChanges <= 1, $"crash: {aroundCrash}");
        Assert.True(cpu.Count >= masterOnly.Count - 2 && cpuRun.CounterResets == 0, $"the counter at the master-only receiver: {cpuRun}");
        // VictoriaMetrics keeps about one sample per interval of all three replicas' writes (one per
        // aligned 5 s bucket: two replicas' samples in neighbouring buckets may be close together), without a gap
        var span = (deduplicated[^1].Ms - deduplicated[0].Ms) / Interval.TotalMilliseconds;
        Assert.InRange(vmAll.Samples, span - 1, span + 3);
        Assert.Equal(0, vmAll.MissingIntervals);
    }

    private static Task WaitForwarding(LocalCluster c, LocalNode master) => RemoteWriteGates.WaitForwarding(c, master, Generous);

    /// <summary>Each running node's Prometheus: the remote_write queues its /metrics shows.</summary>
    private static async Task<Dictionary<LocalNode, HashSet<string>>> Queues(LocalCluster c)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        var result = new Dictionary<LocalNode, HashSet<string>>();
        foreach (var n in c.Nodes.Where(n => n.Running && LocalCluster.PrometheusPid(n) is not null))
        {
            string metrics;
            try { metrics = await http.GetStringAsync($"{n.PrometheusUrl}/metrics"); }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException) { continue; }
            result[n] = System.Text.RegularExpressions.Regex.Matches(metrics, "^prometheus_remote_storage_shards\\{[^}]*remote_name=\"([^\"]+)\"",
                System.Text.RegularExpressions.RegexOptions.Multiline).Select(m => m.Groups[1].Value).ToHashSet();
        }
        return result;
    }
}
