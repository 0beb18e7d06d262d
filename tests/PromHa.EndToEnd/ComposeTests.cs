using System.Diagnostics;
using System.Net;
using System.Text.Json;
using PromHa.Lab;
using PromHa.Node.Sink;
using Xunit.Abstractions;

namespace PromHa.EndToEnd;

/// <summary>
/// The three-node compose demo (deploy/compose/three-nodes) on a real Docker engine, built from
/// deploy/docker/Dockerfile: every node a container that supervises its own Prometheus and
/// Alertmanager, mutual TLS between them and the admin token on. The test reaches the containers
/// only through the ports the compose file publishes on 127.0.0.1.
/// </summary>
[Collection(Lanes.Loopback)]
public class ComposeTests(DockerLab lab, ITestOutputHelper output) : IClassFixture<DockerLab>
{
    private static readonly TimeSpan Generous = TimeSpan.FromSeconds(120);
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(2) };

    /// <summary>One compose demo brought up under a project name of its own, its ports chosen at run time.</summary>
    private sealed class ComposeDemo(DockerLab lab, string demo, IReadOnlyList<string> portVariables)
    {
        public readonly string File = Path.Combine(DockerLab.RepoRoot, "deploy/compose", demo, "docker-compose.yml");
        public readonly string Project = "promhae2e" + Guid.NewGuid().ToString("N")[..8];
        private readonly int[] _ports = LoopbackPorts.Claim(portVariables.Count);
        public string Url(string variable) => $"http://127.0.0.1:{_ports[IndexOf(variable)]}";
        private int IndexOf(string variable) => portVariables.ToList().IndexOf(variable) is var i and >= 0 ? i : throw new ArgumentException(variable);

        private Dictionary<string, string> Env => portVariables.Select((v, i) => (v, _ports[i].ToString()))
            .ToDictionary(x => x.v, x => x.Item2).Append(KeyValuePair.Create("PROMHA_IMAGE", DockerLab.PromhaImage)).ToDictionary();

        public Task<(int Code, string Stdout, string Stderr)> Run(params string[] args) => lab.ComposeRun(Project, File, Env, args);

        /// <summary>The services' last log lines when the test failed, then everything removed, volumes included.</summary>
        public async Task Down(bool passed, ITestOutputHelper output)
        {
            // A node that cannot join logs two InitJoin lines every 5 s on each seed: they would fill the
            // tail. The whole log is kept as an artifact, and the last InitJoin lines of each service are
            // shown apart (whether the seeds heard a restarted node and answered it).
            if (!passed)
            {
                var all = (await lab.ComposeRun(Project, File, Env, ["logs", "--no-color"], check: false)).Stdout.Split('\n');
                var dir = Path.Combine(AppContext.BaseDirectory, "artifacts", "compose");
                Directory.CreateDirectory(dir);
                var file = Path.Combine(dir, $"{Project}.log");
                await System.IO.File.WriteAllLinesAsync(file, all);
                output.WriteLine($"the whole log: {file}");
                output.WriteLine(string.Join('\n', all.Where(l => !l.Contains("InitJoin")).TakeLast(400)));
                output.WriteLine("--- the last InitJoin lines of each service ---");
                foreach (var service in all.Where(l => l.Contains("InitJoin")).GroupBy(l => l.Split('|')[0].Trim()))
                    output.WriteLine(string.Join('\n', service.TakeLast(6)));
            }
            await lab.ComposeRun(Project, File, Env, ["down", "-v", "-t", "5"], check: false);
        }
    }

    [Fact]
    public async Task The_three_node_demo_elects_one_master_fails_over_when_its_container_is_killed_and_takes_it_back_as_a_standby()
    {
        output.WriteLine(lab.Log);
        string[] nodes = ["node-a", "node-b", "node-c"];
        var demo = new ComposeDemo(lab, "three-nodes", ["NODE_A_PORT", "NODE_B_PORT", "NODE_C_PORT", "SINK_PORT"]);
        var url = new Dictionary<string, string> { ["node-a"] = demo.Url("NODE_A_PORT"), ["node-b"] = demo.Url("NODE_B_PORT"), ["node-c"] = demo.Url("NODE_C_PORT") };
        var sink = demo.Url("SINK_PORT") + "/";
        var passed = false;
        try
        {
            var sw = Stopwatch.StartNew();
            await demo.Run(["up", "-d", "--no-build", "init", .. nodes, "sink"]);
            var master = await OneMaster(url, exclude: null);
            output.WriteLine($"compose up -> one master ({master}) in {sw.Elapsed.TotalSeconds:F1} s");
            // A cluster of three over mutual TLS, every node's servers healthy, and the token asked for.
            foreach (var n in nodes)
                await Until(async () => await Status(url[n]) is { } s && s.GetProperty("master").GetString() == master &&
                                         s.GetProperty("members").EnumerateArray().Count(m => m.GetProperty("status").GetString() == "Up") == 3 &&
                                         s.GetProperty("nodes").EnumerateArray().All(x => x.GetProperty("prometheusHealthy").GetBoolean() &&
                                                                                          x.GetProperty("alertmanagerHealthy").GetBoolean()),
                    $"{n} to see three members up with healthy servers and {master} as master");
            var members = (await Status(url["node-a"]))!.Value.GetProperty("members").EnumerateArray()
                .Select(m => m.GetProperty("address").GetString()!).ToList();
            Assert.All(members, a => Assert.StartsWith("akka.ssl.tcp://promha@node-", a));
            using (var noToken = await Http.PostAsync($"{url[master]}/api/v1/switchover", null))
                Assert.Equal(HttpStatusCode.Unauthorized, noToken.StatusCode);
            // /prometheus/ on any node is the master's Prometheus, which sends to every node's Alertmanager
            var standby = nodes.First(n => n != master);
            await Until(async () => (await Http.GetStringAsync($"{url[standby]}/prometheus/api/v1/alertmanagers"))
                .Split("/api/v2/alerts").Length - 1 == 3, "the master's Prometheus to send to three Alertmanagers");

            // DemoTrigger fires from the start: delivered once, by the master's gate
            await Until(async () => (await Http.GetStringAsync(sink)).Contains("DemoTrigger"), "DemoTrigger at the sink");

            // Kill the master's container (its promha, Prometheus and Alertmanager at once: a lost host)
            using var watch = new MasterWatch(url.Values);
            var killed = Stopwatch.StartNew();
            await demo.Run("kill", master);
            var second = await OneMaster(url, exclude: master);
            output.WriteLine($"docker kill {master} -> {second} answers 200 on /primary after {killed.Elapsed.TotalSeconds:F1} s");
            await Until(async () => (await Http.GetStringAsync(sink)).Contains("PromHaMasterChanged"), "PromHaMasterChanged at the sink");

            // Start it again: it rejoins as a standby, the master stays
            await demo.Run("start", master);
            var restarted = Stopwatch.StartNew();
            await Until(async () => await Status(url[master]) is { } s && s.GetProperty("role").GetString() == "standby" &&
                                     s.GetProperty("master").GetString() == second &&
                                     s.GetProperty("members").EnumerateArray().Count(m => m.GetProperty("status").GetString() == "Up") == 3 &&
                                     await Code($"{url[master]}/standby") == 200,
                $"{master} to rejoin as a standby of {second}");
            var firstRejoin = restarted.Elapsed.TotalSeconds;
            output.WriteLine($"{master} started again -> standby of {second} after {firstRejoin:F1} s");
            Assert.Equal(200, await Code($"{url[second]}/primary"));
            Assert.Equal(0, watch.TwoMasters);
            output.WriteLine($"polls of the three /primary while it moved: {watch.Polls}, two masters at once: {watch.TwoMasters}");

            // each notification once: the trigger by the first master, the change of master by the second
            await Task.Delay(TimeSpan.FromSeconds(5));
            var lines = (await Http.GetStringAsync(sink)).Split('\n', StringSplitOptions.RemoveEmptyEntries);
            output.WriteLine("sink:\n" + string.Join("\n", lines));
            var trigger = Assert.Single(lines, l => l.Contains("DemoTrigger/demo:firing"));
            Assert.Contains($"from {master} ", trigger);
            var changed = Assert.Single(lines, l => l.Contains("PromHaMasterChanged") && l.Contains(":firing"));
            Assert.Contains($"from {second} ", changed);

            // Containers that come back: nine more kill + start at once, of the standbys in turn (the
            // master's was the first), each a standby again well within 15 s and the master untouched.
            var standbys = nodes.Where(n => n != second).ToList();
            var rejoins = new List<double> { firstRejoin };
            for (var i = 0; i < 9; i++)
            {
                var node = standbys[i % standbys.Count];
                await demo.Run("kill", node);
                await demo.Run("start", node);
                var again = Stopwatch.StartNew();
                await Until(async () => await Status(url[node]) is { } s && s.GetProperty("role").GetString() == "standby" &&
                                         s.GetProperty("master").GetString() == second &&
                                         s.GetProperty("members").EnumerateArray().Count(m => m.GetProperty("status").GetString() == "Up") == 3 &&
                                         await Status(url[second]) is { } ms &&
                                         ms.GetProperty("members").EnumerateArray().Count(m => m.GetProperty("status").GetString() == "Up") == 3,
                    $"{node} to rejoin as a standby after restart {i + 2} of 10", RejoinTimeout);
                rejoins.Add(again.Elapsed.TotalSeconds);
            }
            output.WriteLine($"10 restarts, standby again after (s): {string.Join(", ", rejoins.Select(r => r.ToString("F1")))}");
            Assert.Equal(0, watch.TwoMasters);
            Assert.Equal(200, await Code($"{url[second]}/primary"));
            passed = true;
        }
        finally
        {
            await demo.Down(passed, output);
        }
    }

    /// <summary>
    /// The federate demo: promha as a sidecar (external mode) of separate Prometheus and
    /// Alertmanager containers that read the config it renders, federate mode, and a global
    /// Prometheus that federates the group's master through the witness's stable endpoint. Killing
    /// the master's promha container (its servers keep running) moves the role; the global keeps
    /// federating, now from the new master, and no false alert comes from the old master's copies.
    /// </summary>
    [Fact]
    public async Task The_federate_demo_runs_promha_as_a_sidecar_and_the_global_prometheus_federates_the_master_across_a_failover()
    {
        output.WriteLine(lab.Log);
        var demo = new ComposeDemo(lab, "federate", ["NODE_A_PORT", "NODE_B_PORT", "WITNESS_PORT", "SINK_PORT", "GLOBAL_PORT"]);
        var url = new Dictionary<string, string> { ["node-a"] = demo.Url("NODE_A_PORT"), ["node-b"] = demo.Url("NODE_B_PORT"), ["witness"] = demo.Url("WITNESS_PORT") };
        var sink = demo.Url("SINK_PORT") + "/";
        var global = demo.Url("GLOBAL_PORT");
        var passed = false;
        try
        {
            var sw = Stopwatch.StartNew();
            await demo.Run("up", "-d", "--no-build", "init", "node-a", "prometheus-a", "alertmanager-a", "node-b", "prometheus-b", "alertmanager-b",
                "witness", "global", "sink");
            var master = await OneMaster(url, exclude: null);
            Assert.NotEqual("witness", master);
            output.WriteLine($"compose up -> one master ({master}) in {sw.Elapsed.TotalSeconds:F1} s");
            foreach (var n in url.Keys)
                await Until(async () => await Status(url[n]) is { } s && s.GetProperty("master").GetString() == master &&
                                         s.GetProperty("nodes").EnumerateArray().Where(x => x.GetProperty("node").GetString() != "witness")
                                             .All(x => x.GetProperty("prometheusHealthy").GetBoolean() && x.GetProperty("alertmanagerHealthy").GetBoolean()),
                    $"{n} to see {master} as master and both external Prometheus and Alertmanager containers healthy");
            // the external Alertmanager posts to its node's gate by name (alerts.gateUrl): delivered once, by the master
            await Until(async () => (await Http.GetStringAsync(sink)).Contains("DemoTrigger"), "DemoTrigger at the sink");
            // the global Prometheus sees the group through the witness: every node's promha_is_master, one of them 1
            await Until(async () => await GlobalMasters(global) is { Count: 3 } all && all.Count(x => x.Value == 1) == 1 && all[$"{master}:8480"] == 1,
                "the global Prometheus to federate the group's three promha_is_master series through the witness");

            await demo.Run("kill", master);
            var second = await OneMaster(url, exclude: master);
            output.WriteLine($"docker kill {master} (its Prometheus and Alertmanager keep running) -> {second} is master");
            await Until(async () => (await Http.GetStringAsync(sink)).Contains("PromHaMasterChanged"), "PromHaMasterChanged at the sink");
            // the global keeps federating, now the new master's Prometheus, which says it is master
            await Until(async () => await GlobalMasters(global) is { } all && all.GetValueOrDefault($"{second}:8480") == 1,
                $"the global Prometheus to federate {second} as master");
            // The new master's Prometheus federated the old master until the failover; those copies go
            // stale two scrape intervals after the federate target leaves (a copy kept five minutes would
            // make its rules see two masters, PromHaSplitBrain), so within the 120 s wait it counts one.
            var masters = "";
            try
            {
                await Until(async () =>
                {
                    masters = await Http.GetStringAsync($"{url[second]}/prometheus/api/v1/query?query=promha_is_master%7Bjob%3D%22promha%22%7D%3D%3D1");
                    return JsonDocument.Parse(masters).RootElement.GetProperty("data").GetProperty("result").GetArrayLength() == 1;
                }, "the new master's Prometheus to count one master, not the old master's federated copy too");
            }
            catch (TimeoutException e)
            {
                throw new TimeoutException($"{e.Message}; last answer: {masters}");
            }
            output.WriteLine($"promha_is_master == 1 on the new master: {masters}");
            Assert.Contains($"{second}:8480", masters);
            var lines = (await Http.GetStringAsync(sink)).Split('\n', StringSplitOptions.RemoveEmptyEntries);
            output.WriteLine("sink:\n" + string.Join("\n", lines));
            Assert.Contains($"from {master} ", Assert.Single(lines, l => l.Contains("DemoTrigger/demo:firing")));
            Assert.Contains($"from {second} ", Assert.Single(lines, l => l.Contains("PromHaMasterChanged") && l.Contains(":firing")));
            Assert.DoesNotContain(lines, l => l.Contains("PromHaSplitBrain"));
            passed = true;
        }
        finally
        {
            await demo.Down(passed, output);
        }
    }

    /// <summary>promha_is_master per instance as the global Prometheus has it from the federation.</summary>
    private static async Task<Dictionary<string, double>> GlobalMasters(string global)
    {
        using var doc = JsonDocument.Parse(await Http.GetStringAsync($"{global}/api/v1/query?query=promha_is_master%7Bgroup%3D%22group1%22%7D"));
        return doc.RootElement.GetProperty("data").GetProperty("result").EnumerateArray()
            .ToDictionary(r => r.GetProperty("metric").GetProperty("instance").GetString()!,
                r => double.Parse(r.GetProperty("value")[1].GetString()!, System.Globalization.CultureInfo.InvariantCulture));
    }

    private async Task<string> OneMaster(Dictionary<string, string> url, string? exclude)
    {
        string? found = null;
        await Until(async () =>
        {
            var masters = new List<string>();
            foreach (var (n, u) in url)
                if (n != exclude && await Code($"{u}/primary") == 200) masters.Add(n);
            found = masters.Count == 1 ? masters[0] : null;
            return found is not null;
        }, exclude is null ? "one master" : $"a master other than {exclude}");
        return found!;
    }

    private static async Task<JsonElement?> Status(string url)
    {
        try
        {
            using var doc = JsonDocument.Parse(await Http.GetStringAsync($"{url}/api/v1/status"));
            return doc.RootElement.Clone();
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or JsonException) { return null; }
    }

    private static async Task<int> Code(string url)
    {
        try
        {
            using var r = await Http.GetAsync(url);
            return (int)r.StatusCode;
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException) { return 0; }
    }

    /// <summary>A restarted container is a standby again within 15 s (measured 5-7 s); twice that before it counts as never.</summary>
    private static readonly TimeSpan RejoinTimeout = TimeSpan.FromSeconds(30);

    private static async Task Until(Func<Task<bool>> condition, string what, TimeSpan? timeout = null)
    {
        var sw = Stopwatch.StartNew();
        var limit = timeout ?? Generous;
        while (true)
        {
            try
            {
                if (await condition()) return;
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException) { }
            if (sw.Elapsed > limit) throw new TimeoutException($"waited {limit.TotalSeconds} s for {what}");
            await Task.Delay(250);
        }
    }

    /// <summary>Polls every node's /primary every 100 ms and counts the polls where two answered 200.</summary>
    private sealed class MasterWatch : IDisposable
    {
        private readonly CancellationTokenSource _stop = new();
        private readonly Task _loop;
        public int Polls, TwoMasters;

        public MasterWatch(IEnumerable<string> urls)
        {
            var all = urls.ToList();
            _loop = Task.Run(async () =>
            {
                while (!_stop.IsCancellationRequested)
                {
                    var codes = await Task.WhenAll(all.Select(u => Code($"{u}/primary")));
                    Interlocked.Increment(ref Polls);
                    if (codes.Count(c => c == 200) > 1) Interlocked.Increment(ref TwoMasters);
                    try { await Task.Delay(100, _stop.Token); } catch (OperationCanceledException) { }
                }
            });
        }

        public void Dispose()
        {
            _stop.Cancel();
            _loop.Wait(TimeSpan.FromSeconds(5));
        }
    }
}

/// <summary>
/// Every compose file parses and resolves (`docker-compose config`, no engine needed), and the
/// conf tree the demos share is valid for promtool and amtool; its copy of PromHa's rules is the one
/// deploy/rules ships.
/// </summary>
[Collection(Lanes.Loopback)]
public class ComposeFileTests(ITestOutputHelper output)
{
    private static string Compose => Path.Combine(DockerLab.RepoRoot, "deploy/compose");

    public static TheoryData<string> Files() => new(Directory.GetFiles(Path.Combine(DockerLab.RepoRoot, "deploy/compose"), "docker-compose.yml",
        SearchOption.AllDirectories).Select(f => Path.GetRelativePath(DockerLab.RepoRoot, f)).Order());

    [Theory]
    [MemberData(nameof(Files))]
    public async Task Compose_file_is_valid(string file)
    {
        Assert.True(File.Exists(DockerLab.Compose), "docker-compose is missing: bash deploy/install-deps.sh --tests");
        var (code, stdout, stderr) = await ProcessRun.Exec(DockerLab.Compose, ["-f", Path.Combine(DockerLab.RepoRoot, file), "config"]);
        Assert.True(code == 0, $"docker-compose config {file}: {stderr}");
        // every published port is on loopback only
        var published = stdout.Split('\n').Where(l => System.Text.RegularExpressions.Regex.IsMatch(l, @"^\s*- [\d.:]*\d+:\d+/(tcp|udp)\s*$")).ToList();
        Assert.NotEmpty(published);
        Assert.All(published, l => Assert.Contains("- 127.0.0.1:", l));
        output.WriteLine($"{file}: ok");
    }

    [Fact]
    public async Task The_demos_conf_tree_is_valid_and_carries_the_shipped_rules()
    {
        Assert.Equal(await File.ReadAllTextAsync(Path.Combine(DockerLab.RepoRoot, "deploy/rules/promha.rules.yml")),
            await File.ReadAllTextAsync(Path.Combine(Compose, "conf/business/promha/rule/promha.rules")));
        var tree = Directory.CreateTempSubdirectory("promha-compose-conf").FullName;
        try
        {
            LocalCluster.CopyTree(Path.Combine(Compose, "conf"), tree);
            File.Copy(Path.Combine(Compose, "three-nodes/nodes.yml"), Path.Combine(tree, "business/promha/job/nodes.yml"), overwrite: true);
            var prom = await ProcessRun.Exec("/usr/bin/promtool", ["check", "config", Path.Combine(tree, "prometheus.yml")]);
            Assert.True(prom.Code == 0, prom.Stdout + prom.Stderr);
            var am = await ProcessRun.Exec("/usr/bin/amtool", ["check-config", Path.Combine(tree, "alertmanager.yml")]);
            Assert.True(am.Code == 0, am.Stdout + am.Stderr);
        }
        finally
        {
            Directory.Delete(tree, true);
        }
    }
}
