using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using PromHa.Node.Supervision;

namespace PromHa.Lab;

/// <summary>
/// A real remote-write receiver of a test's own on a claimed loopback port: Debian's VictoriaMetrics
/// (deduplicating at <c>-dedup.minScrapeInterval</c> when given one) or a Prometheus started with
/// <c>--web.enable-remote-write-receiver</c>. Stopped by its PID. <see cref="Samples"/> reads back
/// every sample it keeps of one series, raw, to count gaps, doubles and counter resets.
/// </summary>
public sealed class RemoteWriteReceiver : IDisposable
{
    public enum Kind { VictoriaMetrics, Prometheus }

    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(10) };
    private readonly Process _process;

    public Kind Type { get; }
    public int Port { get; }
    public string Url => $"http://127.0.0.1:{Port}";
    /// <summary>Where a Prometheus writes to it.</summary>
    public string WriteUrl => Type == Kind.VictoriaMetrics ? $"{Url}/api/v1/write" : $"{Url}/api/v1/write";
    public string LogPath { get; }

    private RemoteWriteReceiver(Kind type, int port, Process process, string logPath)
    {
        Type = type;
        Port = port;
        _process = process;
        LogPath = logPath;
    }

    public const string VictoriaMetricsBinary = "/usr/bin/victoria-metrics";

    /// <param name="prometheusConfig">A Prometheus's own prometheus.yml (e.g. a global one that federates groups); default: scrapes nothing.</param>
    public static async Task<RemoteWriteReceiver> Start(Kind type, string parentDir, TimeSpan? dedup = null, string prometheusBinary = "/usr/bin/prometheus",
        string? prometheusConfig = null)
    {
        var dir = Path.Combine(parentDir, type == Kind.VictoriaMetrics ? "victoria-metrics" : prometheusConfig is null ? "receiver-prometheus" : "global-prometheus");
        Directory.CreateDirectory(dir);
        var port = LoopbackPorts.Claim(1)[0];
        var log = Path.Combine(dir, "receiver.log");
        Process p;
        if (type == Kind.VictoriaMetrics)
        {
            if (!File.Exists(VictoriaMetricsBinary)) throw new InvalidOperationException("VictoriaMetrics is not installed: apt-get install -y victoria-metrics");
            List<string> args =
            [
                $"-httpListenAddr=127.0.0.1:{port}", $"-storageDataPath={Path.Combine(dir, "data")}", "-retentionPeriod=1d",
                // what was written is visible at once (the default hides the last 30 s)
                "-search.latencyOffset=0s", "-search.disableCache",
            ];
            if (dedup is { } d) args.Add($"-dedup.minScrapeInterval={(int)d.TotalMilliseconds}ms");
            p = LoggedProcess.Start(VictoriaMetricsBinary, args, log);
        }
        else
        {
            var config = Path.Combine(dir, "prometheus.yml");
            File.WriteAllText(config, prometheusConfig ?? "global:\n  scrape_interval: 1m\n");
            p = LoggedProcess.Start(prometheusBinary,
            [
                $"--config.file={config}", $"--storage.tsdb.path={Path.Combine(dir, "data")}",
                $"--web.listen-address=127.0.0.1:{port}", "--web.enable-remote-write-receiver",
            ], log);
        }
        var r = new RemoteWriteReceiver(type, port, p, log);
        var until = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                var ready = type == Kind.VictoriaMetrics ? $"{r.Url}/health" : $"{r.Url}/-/ready";
                if ((await Http.GetAsync(ready)).IsSuccessStatusCode) return r;
            }
            catch (HttpRequestException) { }
            if (p.HasExited || until.Elapsed > TimeSpan.FromSeconds(30))
            {
                r.Dispose();
                throw new InvalidOperationException($"{type} did not become ready on {r.Url}:\n{ProcessRun.Last(File.ReadAllText(log), 2000)}");
            }
            await Task.Delay(200);
        }
    }

    /// <summary>Every sample of the series <paramref name="selector"/> between two times, oldest first (Unix ms, value).</summary>
    public async Task<IReadOnlyList<(long Ms, double Value)>> Samples(string selector, DateTimeOffset from, DateTimeOffset to)
    {
        // A range selector at one instant returns the raw samples it covers, in both servers.
        var seconds = Math.Max(1, (int)Math.Ceiling((to - from).TotalSeconds));
        var query = Uri.EscapeDataString($"{selector}[{seconds}s]");
        var at = to.ToUnixTimeMilliseconds() / 1000.0;
        using var doc = JsonDocument.Parse(await Http.GetStringAsync($"{Url}/api/v1/query?query={query}&time={at.ToString(CultureInfo.InvariantCulture)}"));
        var result = doc.RootElement.GetProperty("data").GetProperty("result");
        if (result.GetArrayLength() == 0) return [];
        if (result.GetArrayLength() > 1) throw new InvalidOperationException($"{selector} names {result.GetArrayLength()} series at {Url}: {result}");
        return result[0].GetProperty("values").EnumerateArray()
            .Select(v => ((long)Math.Round(v[0].GetDouble() * 1000), double.Parse(v[1].GetString()!, CultureInfo.InvariantCulture)))
            .ToList();
    }

    /// <summary>The label sets of the series matching a selector now.</summary>
    public async Task<IReadOnlyList<Dictionary<string, string>>> Series(string selector)
    {
        using var doc = JsonDocument.Parse(await Http.GetStringAsync($"{Url}/api/v1/series?match[]={Uri.EscapeDataString(selector)}&start={DateTimeOffset.UtcNow.AddMinutes(-10).ToUnixTimeSeconds()}"));
        return doc.RootElement.GetProperty("data").EnumerateArray()
            .Select(s => s.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!)).ToList();
    }

    public void Dispose() => ServerSupervisorActor.Terminate(_process, TimeSpan.FromSeconds(10));
}

/// <summary>The remote-write gates of a lab cluster, as their metrics show them.</summary>
public static class RemoteWriteGates
{
    /// <summary>Waits until <paramref name="master"/>'s gate alone forwards to the master-only receiver <paramref name="receiver"/>.</summary>
    public static Task WaitForwarding(LocalCluster c, LocalNode master, TimeSpan timeout, string receiver = "promha-1") =>
        c.WaitUntil(async () =>
        {
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
            foreach (var n in c.Nodes.Where(n => n.Running))
            {
                string metrics;
                try { metrics = await http.GetStringAsync($"{n.HttpUrl}/metrics"); }
                catch (Exception e) when (e is HttpRequestException or TaskCanceledException) { return false; }
                if (metrics.Contains($"promha_remote_write_forwarding{{receiver=\"{receiver}\"}} 1") != (n == master)) return false;
            }
            return true;
        }, timeout, default, $"{master.Name}'s remote-write gate alone to forward");
}

/// <summary>What a series at a receiver says about its writers: gaps, crowding, writer changes, counter resets.</summary>
public sealed record SeriesContinuity(int Samples, TimeSpan LongestGap, int MissingIntervals, int Doubled, int WriterChanges, int CounterResets)
{
    /// <summary>
    /// Reads a series' samples against its scrape interval. A gap of more than 1.5 intervals misses
    /// round(gap / interval) - 1 of them. Two samples closer than half an interval are counted as
    /// doubled: both replicas' scrapes of one round (each replica scrapes a target at a moment of
    /// its own within the interval), or one written twice. A writer change is a change of that
    /// moment (replicas differ in it, by more than 50 ms here). A counter that goes down was reset.
    /// </summary>
    public static SeriesContinuity Of(IReadOnlyList<(long Ms, double Value)> samples, TimeSpan interval, bool counter)
    {
        var ms = (long)interval.TotalMilliseconds;
        long longest = 0;
        int missing = 0, doubled = 0, changes = 0, resets = 0;
        for (var i = 1; i < samples.Count; i++)
        {
            var gap = samples[i].Ms - samples[i - 1].Ms;
            longest = Math.Max(longest, gap);
            if (gap > 1.5 * ms) missing += (int)Math.Round(gap / (double)ms) - 1;
            if (gap < 0.5 * ms) doubled++;
            var shift = Math.Abs(samples[i].Ms % ms - samples[i - 1].Ms % ms);
            if (Math.Min(shift, ms - shift) > 50) changes++;
            if (counter && samples[i].Value < samples[i - 1].Value) resets++;
        }
        return new SeriesContinuity(samples.Count, TimeSpan.FromMilliseconds(longest), missing, doubled, changes, resets);
    }

    /// <summary>The samples taken from <paramref name="from"/> to <paramref name="to"/>, both included.</summary>
    public static List<(long Ms, double Value)> Between(IEnumerable<(long Ms, double Value)> samples, DateTimeOffset from, DateTimeOffset to) =>
        samples.Where(s => s.Ms >= from.ToUnixTimeMilliseconds() && s.Ms <= to.ToUnixTimeMilliseconds()).ToList();

    public override string ToString() =>
        $"{Samples} samples, longest gap {LongestGap.TotalSeconds:F1} s, {MissingIntervals} scrape interval(s) missing, {Doubled} doubled, " +
        $"{WriterChanges} writer change(s), {CounterResets} counter reset(s)";
}
