using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using PromHa.Node.Demo;
using PromHa.Node.Http;

namespace PromHa.Node.Console;

/// <summary>
/// `promha bench config`: config propagation latency on real nodes, each with its own real
/// Prometheus and Alertmanager: from a file saved in the master's conf dir until every node has
/// reloaded both servers and verified the reload (the time each node reports, same clock).
/// </summary>
public static class ConfigBenchCommand
{
    public static Command Create()
    {
        var rounds = new Option<int>("--rounds") { Description = "Edits to measure", DefaultValueFactory = _ => 30 };
        var nodes = new Option<int>("--nodes") { Description = "PromHa nodes", DefaultValueFactory = _ => 3 };
        var files = new Option<int>("--files") { Description = "Extra file_sd files in the tree (e.g. 10000)", DefaultValueFactory = _ => 0 };
        var dir = new Option<string?>("--dir") { Description = "Directory for the nodes (default: a new temp directory, deleted afterwards)" };
        var keep = new Option<bool>("--keep") { Description = "Keep the directory afterwards" };
        var noTls = new Option<bool>("--no-tls") { Description = "Plain TCP between the nodes (default: mutual TLS, as the demo runs)" };
        var cmd = new Command("config", "Measure config propagation: file saved on the master -> every node reloaded and verified")
            { rounds, nodes, files, dir, keep, noTls };
        cmd.SetAction((p, ct) => Run(p.GetValue(rounds), p.GetValue(nodes), p.GetValue(files), p.GetValue(dir), p.GetValue(keep),
            !p.GetValue(noTls), ct));
        return cmd;
    }

    private static async Task<int> Run(int rounds, int nodes, int files, string? dir, bool keep, bool tls, CancellationToken ct)
    {
        if (rounds < 1 || nodes < 1 || files < 0)
        {
            await System.Console.Error.WriteLineAsync("promha bench config: --rounds and --nodes must be >= 1, --files >= 0");
            return 64;
        }
        var options = new LocalClusterOptions { Nodes = nodes, Servers = LocalServers.Supervised, Alertmanager = true, Tls = tls };
        if (LocalCluster.MissingBinaries(options) is { Count: > 0 } missing)
        {
            await System.Console.Error.WriteLineAsync($"promha bench: missing {string.Join(", ", missing)}: apt-get install -y prometheus prometheus-alertmanager");
            return 3;
        }
        var baseDir = dir is null ? Directory.CreateTempSubdirectory("promha-bench-config").FullName : Path.GetFullPath(dir);
        var commandLine = "promha " + string.Join(' ', Environment.GetCommandLineArgs().Skip(1));
        Say($"{commandLine}\n{nodes} nodes, each with its own Prometheus and Alertmanager, {(tls ? "mutual TLS" : "plain TCP")} between them; {rounds} edits; {files} extra file_sd files; " +
            $"{Environment.ProcessorCount} CPUs; dir {baseDir}");
        var latencies = new List<double>();
        var ok = false;
        try
        {
            await using var cluster = LocalCluster.Create(baseDir, options);
            if (files > 0) AddFileSdTree(cluster.ConfDir, cluster.Nodes.Select(n => n.ConfDir), files);
            var sw = Stopwatch.StartNew();
            await cluster.StartAll(ct);
            var master = await cluster.WaitForSingleMaster(TimeSpan.FromSeconds(120), ct: ct);
            using var api = cluster.Api(master);
            await WaitAllApplied(cluster, api, 1, ct);
            Say($"cluster up, master {master.Name}, version 1 on every node after {sw.Elapsed.TotalSeconds:F1} s");

            var file = Path.Combine(master.ConfDir, "business", "demo", "job", "bench.yml");
            for (var i = 1; i <= rounds; i++)
            {
                var expected = i + 1;
                await File.WriteAllTextAsync(file, $"- targets: ['127.0.0.1:{20000 + i}']\n  labels:\n    round: '{i}'\n", ct);
                var saved = DateTimeOffset.UtcNow;
                var status = await WaitAllApplied(cluster, api, expected, ct);
                var done = status.Nodes.Max(n => n.At!.Value);
                var ms = (done - saved).TotalMilliseconds;
                latencies.Add(ms);
                Say($"round {i,3}: version {expected} on {status.Nodes.Count} nodes after {ms:F0} ms");
                await Task.Delay(300, ct); // separate edits, not one debounced burst
            }
            ok = true;
        }
        catch (TimeoutException e)
        {
            await System.Console.Error.WriteLineAsync($"promha bench config: {e.Message}");
            return 1;
        }
        finally
        {
            if (ok && dir is null && !keep)
                try { Directory.Delete(baseDir, true); } catch (IOException) { }
            else Say($"kept {baseDir}");
        }

        var sorted = latencies.Order().ToList();
        double P(double q) => sorted[Math.Clamp((int)Math.Ceiling(q * sorted.Count) - 1, 0, sorted.Count - 1)];
        Say("\n=== config propagation (saved on the master -> every node reloaded and verified) ===");
        Say(string.Create(CultureInfo.InvariantCulture,
            $"{nodes} nodes, {files} extra files, {rounds} edits: p50 {P(0.50):F0} ms   p99 {P(0.99):F0} ms   min {sorted[0]:F0} ms   max {sorted[^1]:F0} ms"));
        Say($"command: {commandLine}");
        return 0;
    }

    /// <summary>Every node reports the version as applied; returns the singleton's view with each node's time.</summary>
    private static async Task<ConfigStatusResponse> WaitAllApplied(LocalCluster cluster, ApiClient api, long version, CancellationToken ct)
    {
        var sw = Stopwatch.StartNew();
        var timeout = TimeSpan.FromSeconds(120);
        while (sw.Elapsed < timeout)
        {
            try
            {
                var s = await api.ConfigStatus(ct);
                if (s is not null && s.Nodes.Count == cluster.Nodes.Count && s.Nodes.All(n => n.Applied >= version && n.At is not null))
                    return s;
            }
            catch (Exception e) when (e is HttpRequestException or System.Text.Json.JsonException or TaskCanceledException && !ct.IsCancellationRequested) { }
            await Task.Delay(20, ct);
        }
        throw new TimeoutException($"version {version} not applied on every node within {timeout.TotalSeconds:F0} s\n{cluster.LogTails(10)}");
    }

    /// <summary>A file_sd job over many small files, in the template and every node's conf dir.</summary>
    private static void AddFileSdTree(string template, IEnumerable<string> confDirs, int count)
    {
        foreach (var root in confDirs.Prepend(template))
        {
            var prom = Path.Combine(root, "prometheus.yml");
            // scraped rarely: the point is loading the files, not scraping 10,000 closed ports
            File.AppendAllText(prom, """
                  - job_name: bench
                    scrape_interval: 1h
                    scrape_timeout: 10s
                    file_sd_configs:
                      - files: ['business/bench/job/*.yml']

                """);
            var dir = Path.Combine(root, "business", "bench", "job");
            Directory.CreateDirectory(dir);
            for (var i = 0; i < count; i++)
                File.WriteAllText(Path.Combine(dir, $"t{i:D5}.yml"), $"- targets: ['127.0.0.1:9']\n  labels:\n    shard: 's{i}'\n");
        }
    }

    private static void Say(string line) => System.Console.WriteLine(line);
}
