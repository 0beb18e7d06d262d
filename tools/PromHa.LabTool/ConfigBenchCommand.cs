using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using PromHa.Node.Config;
using PromHa.Lab;
using PromHa.Node.Sink;
using PromHa.Node.Http;

using PromHa.Node.Console;

namespace PromHa.LabTool;

/// <summary>
/// `promha-lab bench config`: config propagation latency on real nodes, each with its own real
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
        var uploadFiles = new Option<int>("--upload-files")
            { Description = "Instead of edits: upload trees with this many file_sd files (e.g. 100000) with `config apply`, each a new version", DefaultValueFactory = _ => 0 };
        var uploadMib = new Option<int>("--upload-mib")
            { Description = "Instead of edits: upload trees with one file_sd file of this many MiB (e.g. 40), each a new version", DefaultValueFactory = _ => 0 };
        var cmd = new Command("config", "Measure config propagation: file saved on the master (or a tree uploaded) -> every node reloaded and verified")
            { rounds, nodes, files, dir, keep, noTls, uploadFiles, uploadMib };
        cmd.SetAction((p, ct) => Run(p.GetValue(rounds), p.GetValue(nodes), p.GetValue(files), p.GetValue(dir), p.GetValue(keep),
            !p.GetValue(noTls), p.GetValue(uploadFiles), p.GetValue(uploadMib), ct));
        return cmd;
    }

    private static async Task<int> Run(int rounds, int nodes, int files, string? dir, bool keep, bool tls, int uploadFiles, int uploadMib,
        CancellationToken ct)
    {
        if (rounds < 1 || nodes < 1 || files < 0)
        {
            await System.Console.Error.WriteLineAsync("promha-lab bench config: --rounds and --nodes must be >= 1, --files >= 0");
            return 64;
        }
        var options = new LocalClusterOptions { Nodes = nodes, Servers = LocalServers.Supervised, Alertmanager = true, Tls = tls };
        if (LocalCluster.MissingBinaries(options) is { Count: > 0 } missing)
        {
            await System.Console.Error.WriteLineAsync($"promha-lab bench: missing {string.Join(", ", missing)}: apt-get install -y prometheus prometheus-alertmanager");
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

            if (uploadFiles > 0 || uploadMib > 0)
            {
                // an upload is answered once validated and committed: promtool on a large tree takes seconds
                using var uploadApi = cluster.Api(master, TimeSpan.FromMinutes(5));
                await Uploads(cluster, uploadApi, master, rounds, uploadFiles, uploadMib, latencies, ct);
                ok = true;
                return Summary(latencies, nodes, uploadFiles > 0 ? $"uploads of {uploadFiles} file_sd files" : $"uploads of one {uploadMib} MiB file_sd file",
                    rounds, commandLine, cluster, master);
            }
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
        catch (Exception e) when (e is TimeoutException or ApiException or HttpRequestException or System.Text.Json.JsonException
                                       or TaskCanceledException && !ct.IsCancellationRequested)
        {
            await System.Console.Error.WriteLineAsync($"promha-lab bench config: {e.Message}");
            return 1;
        }
        finally
        {
            if (ok && dir is null && !keep)
                try { Directory.Delete(baseDir, true); } catch (IOException) { }
            else Say($"kept {baseDir}");
        }

        return Summary(latencies, nodes, $"{files} extra files, edits", rounds, commandLine, null, null);
    }

    private static int Summary(List<double> latencies, int nodes, string what, int rounds, string commandLine, LocalCluster? cluster, LocalNode? master)
    {
        var sorted = latencies.Order().ToList();
        double P(double q) => sorted[Math.Clamp((int)Math.Ceiling(q * sorted.Count) - 1, 0, sorted.Count - 1)];
        Say("\n=== config propagation (saved on the master or uploaded -> every node reloaded and verified) ===");
        Say(string.Create(CultureInfo.InvariantCulture,
            $"{nodes} nodes, {what}, {rounds} rounds: p50 {P(0.50):F0} ms   p99 {P(0.99):F0} ms   min {sorted[0]:F0} ms   max {sorted[^1]:F0} ms"));
        if (cluster is not null)
            foreach (var (label, rss) in RssAfter)
                Say($"VmRSS {label}: " + string.Join(", ", cluster.Nodes.Select((n, i) => $"{n.Name}{(n == master ? " (took the uploads)" : "")} " +
                    $"{(rss[i] is { } mib ? $"{mib:F0} MiB" : "?")}")));
        Say($"command: {commandLine}");
        return 0;
    }

    /// <summary>
    /// Each round uploads a new tree to the master's API (`promha config apply`): the demo tree and
    /// either <paramref name="count"/> file_sd files or one file_sd file of <paramref name="mib"/> MiB,
    /// labelled with the round so that every round is a new version; timed from the upload's start
    /// until every node has applied it (commit included).
    /// </summary>
    /// <summary>Each node's VmRSS before the first upload, right after the last one, and a minute later.</summary>
    private static readonly List<(string Label, double?[] Rss)> RssAfter = [];

    private static async Task Uploads(LocalCluster cluster, ApiClient api, LocalNode master, int rounds, int count, int mib, List<double> latencies,
        CancellationToken ct)
    {
        var template = ConfBundle.FromDirectory(master.ConfDir);
        double?[] Rss() => cluster.Nodes.Select(LocalCluster.RssMib).ToArray();
        RssAfter.Add(("before the uploads", Rss()));
        for (var i = 1; i <= rounds; i++)
        {
            var files = template.Files.Values.Select(f => (f.Path, f.Content)).ToDictionary(f => f.Path, f => f.Content);
            files["prometheus.yml"] = System.Text.Encoding.UTF8.GetBytes(System.Text.Encoding.UTF8.GetString(files["prometheus.yml"]) + """

                  - job_name: bench
                    scrape_interval: 1h
                    scrape_timeout: 10s
                    file_sd_configs:
                      - files: ['business/bench/job/*.yml']

                """);
            if (count > 0)
                for (var k = 0; k < count; k++)
                    files[$"business/bench/job/t{k:D6}.yml"] = System.Text.Encoding.UTF8.GetBytes($"- targets: ['127.0.0.1:9']\n  labels:\n    shard: 's{k}'\n    round: '{i}'\n");
            else
            {
                var sb = new System.Text.StringBuilder();
                for (var k = 0; sb.Length < mib * 1024 * 1024; k++)
                    sb.Append($"- targets: ['10.{k / 65536 % 256}.{k / 256 % 256}.{k % 256}:9100']\n  labels:\n    shard: 's{k}'\n    round: '{i}'\n");
                files["business/bench/job/big.yml"] = System.Text.Encoding.UTF8.GetBytes(sb.ToString());
            }
            var tar = ConfBundle.Of(files).ToTarGz();
            var expected = (await api.ConfigStatus(ct))!.Latest + 1;
            var sw = Stopwatch.StartNew();
            var (code, r) = await api.ConfigApply(tar, "bench", "bench", ct);
            var committed = sw.ElapsedMilliseconds;
            if (r.Outcome != "committed") throw new TimeoutException($"round {i}: the upload was not committed ({code} {r.Outcome}: {r.Reason})");
            await WaitAllApplied(cluster, api, r.Version ?? expected, ct, TimeSpan.FromMinutes(5));
            latencies.Add(sw.Elapsed.TotalMilliseconds);
            Say($"round {i,3}: {tar.Length / 1024.0 / 1024:F1} MiB compressed, version {r.Version} committed after {committed} ms, " +
                $"on {cluster.Nodes.Count} nodes after {sw.ElapsedMilliseconds} ms");
        }
        RssAfter.Add(("right after the last upload", Rss()));
        await Task.Delay(TimeSpan.FromSeconds(60), ct); // memory should come back within a minute
        RssAfter.Add(("a minute later", Rss()));
    }

    /// <summary>Every node reports the version as applied; returns the singleton's view with each node's time.</summary>
    private static async Task<ConfigStatusResponse> WaitAllApplied(LocalCluster cluster, ApiClient api, long version, CancellationToken ct,
        TimeSpan? within = null)
    {
        var sw = Stopwatch.StartNew();
        var timeout = within ?? TimeSpan.FromSeconds(120);
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
