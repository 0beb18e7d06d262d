using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using PromHa.Node.Config;
using PromHa.Lab;
using PromHa.Node.Sink;
using PromHa.Node.Security;
using PromHa.Node.Supervision;
using Xunit.Abstractions;

namespace PromHa.EndToEnd;

/// <summary>
/// The doors, tried the way an attacker or a careless script would: bombs, links, junk requests,
/// requests without the admin token, and nodes without a certificate of the cluster's CA.
/// </summary>
[Collection(Lanes.Loopback)]
public class SecurityTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Generous = RealCluster.Generous;

    [Fact]
    public async Task Bombs_links_junk_and_missing_tokens_are_refused_with_a_clear_4xx_and_the_node_keeps_its_memory()
    {
        await using var rc = await RealCluster.Start(output, nodes: 3);
        var c = rc.Cluster;
        var master = await c.WaitForSingleMaster(Generous);
        var target = c.Nodes.First(n => n != master);
        await c.WaitUntil(async () => (await Task.WhenAll(c.Nodes.Select(c.Status))).All(s => s?.ConfigApplied >= 1),
            Generous, default, "version 1 (the master's conf dir) on every node");
        using var anonymous = new HttpClient { BaseAddress = new Uri(target.HttpUrl + "/"), Timeout = TimeSpan.FromSeconds(60) };
        using var admin = new HttpClient { BaseAddress = new Uri(target.HttpUrl + "/"), Timeout = TimeSpan.FromSeconds(60) };
        admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", c.Access.Token);

        // The cluster talks TLS (akka.ssl.tcp) as the local cluster sets it up.
        Assert.All((await c.Status(target))!.Members, m => Assert.StartsWith("akka.ssl.tcp://", m.Address));

        // Without the token, nothing that changes or reveals configuration; with a wrong one neither.
        var protectedRequests = new (HttpMethod Method, string Path)[]
        {
            (HttpMethod.Post, "api/v1/config/apply"),
            (HttpMethod.Post, "api/v1/config/rollback/1"),
            (HttpMethod.Post, "api/v1/switchover"),
            (HttpMethod.Post, "api/v1/failover?force=true"),
            (HttpMethod.Post, "api/v1/pause"),
            (HttpMethod.Post, "api/v1/resume"),
            (HttpMethod.Post, "api/v1/cluster/leave?node=node1"),
            (HttpMethod.Post, "api/v1/cluster/down?node=node1"),
            (HttpMethod.Post, "api/v1/config/apply?dryRun=true"),
            (HttpMethod.Get, "api/v1/config/versions/1"),
            (HttpMethod.Get, "api/v1/config/versions/1/files/prometheus.yml"),
            (HttpMethod.Get, "api/v1/config/diff?from=1&to=1"),
        };
        foreach (var (method, path) in protectedRequests)
        {
            foreach (var token in new string?[] { null, "wrong-token-of-some-length" })
            {
                using var req = new HttpRequestMessage(method, path);
                if (token is not null) req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
                using var resp = await anonymous.SendAsync(req);
                var body = await resp.Content.ReadAsStringAsync();
                output.WriteLine($"{method} {path} token={(token is null ? "none" : "wrong")}: {(int)resp.StatusCode} {body.Trim()}");
                Assert.Equal(HttpStatusCode.Unauthorized, resp.StatusCode);
                Assert.Contains("admin token", body);
                Assert.Contains("Bearer", resp.Headers.WwwAuthenticate.ToString());
            }
        }
        // Load balancers, scrapers and dashboards need no token.
        foreach (var open in new[] { "api/v1/status", "api/v1/history", "api/v1/cluster", "api/v1/config/versions", "api/v1/config/status", "health", "metrics", "standby", "", "ui/app.js" })
            Assert.Equal(HttpStatusCode.OK, (await anonymous.GetAsync(open)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await admin.GetAsync("api/v1/config/versions/1")).StatusCode);
        await c.WaitUntil(() => Task.FromResult(File.ReadAllText(target.LogPath).Contains("Refused POST /api/v1/config/apply from 127.0.0.1")),
            Generous, default, "the refusal to be logged with the caller's address");

        // Bombs: a 2 GiB file in a 2 MB gzip, and 2 GiB of 1 MiB files (each under the single-file limit).
        var rssBefore = RssMiB(target);
        foreach (var (what, bomb) in new[] { ("one 2 GiB file", Bombs.OneHugeFile()), ("2048 files of 1 MiB", Bombs.ManyFiles()) })
        {
            // Unauthenticated, it is not even read.
            using (var resp = await anonymous.PostAsync("api/v1/config/apply", new ByteArrayContent(bomb)))
                Assert.Equal(HttpStatusCode.Unauthorized, resp.StatusCode);
            var sw = Stopwatch.StartNew();
            using (var resp = await admin.PostAsync("api/v1/config/apply", new ByteArrayContent(bomb)))
            {
                var body = await resp.Content.ReadAsStringAsync();
                output.WriteLine($"bomb, {what}, {bomb.Length / 1024} KiB gzip: {(int)resp.StatusCode} after {sw.ElapsedMilliseconds} ms: {body.Trim()}");
                Assert.Equal(HttpStatusCode.RequestEntityTooLarge, resp.StatusCode);
                Assert.Contains("config.max", body);
            }
            Assert.True(sw.Elapsed < TimeSpan.FromSeconds(20), $"the bomb took {sw.Elapsed} to refuse");
        }
        var rssAfter = RssMiB(target);
        output.WriteLine($"{target.Name} VmRSS before the bombs {rssBefore:F1} MiB, after {rssAfter:F1} MiB");
        Assert.True(rssAfter - rssBefore < 40, $"VmRSS grew from {rssBefore:F1} to {rssAfter:F1} MiB");
        Assert.Empty(Directory.GetFiles(Path.Combine(target.DataDir, "config", "uploads"))); // spooled uploads are gone

        // A tar with a symlink, junk bytes, an empty body: 400 with the reason.
        var withLink = new MemoryStream();
        using (var w = new System.Formats.Tar.TarWriter(withLink, leaveOpen: true))
        {
            w.WriteEntry(new System.Formats.Tar.PaxTarEntry(System.Formats.Tar.TarEntryType.RegularFile, "prometheus.yml")
                { DataStream = new MemoryStream("global: {}\n"u8.ToArray()) });
            w.WriteEntry(new System.Formats.Tar.PaxTarEntry(System.Formats.Tar.TarEntryType.SymbolicLink, "secrets.yml") { LinkName = "/etc/shadow" });
        }
        foreach (var (what, body, expected) in new[]
                 {
                     ("symlink", withLink.ToArray(), "symlink"),
                     ("junk", "this is not a tar at all, just some text that goes on for a while........."u8.ToArray(), "not a readable tar"),
                     ("empty", Array.Empty<byte>(), "empty body"),
                 })
        {
            using var resp = await admin.PostAsync("api/v1/config/apply", new ByteArrayContent(body));
            var text = await resp.Content.ReadAsStringAsync();
            output.WriteLine($"upload {what}: {(int)resp.StatusCode} {text.Trim()}");
            Assert.Equal(HttpStatusCode.BadRequest, resp.StatusCode);
            Assert.Contains(expected, text);
        }

        // Malformed requests anywhere: a 4xx naming the problem, never a 500 or a stack trace.
        foreach (var (method, path) in new (HttpMethod, string)[]
                 {
                     (HttpMethod.Get, "api/v1/config/diff?from=one&to=2"),
                     (HttpMethod.Get, "api/v1/config/diff"),
                     (HttpMethod.Get, "api/v1/history?limit=lots"),
                     (HttpMethod.Get, "api/v1/config/versions?limit=%ZZ"),
                     (HttpMethod.Get, "api/v1/config/versions/abc"),
                     (HttpMethod.Get, "api/v1/config/versions/999"),
                     (HttpMethod.Get, "api/v1/config/versions/1/files/../../../../etc/passwd"),
                     (HttpMethod.Post, "api/v1/config/rollback/999"),
                     (HttpMethod.Post, "api/v1/switchover?to=nobody"),
                     (HttpMethod.Put, "primary"),
                     (HttpMethod.Get, "api/v1/nothing-here"),
                 })
        {
            using var resp = await admin.SendAsync(new HttpRequestMessage(method, path));
            var text = await resp.Content.ReadAsStringAsync();
            output.WriteLine($"{method} {path}: {(int)resp.StatusCode} {text.Trim()}");
            Assert.InRange((int)resp.StatusCode, 400, 499);
            Assert.False(string.IsNullOrWhiteSpace(text), "an error without a message");
            Assert.DoesNotContain("   at ", text);
            Assert.DoesNotContain("Exception", text);
        }

        // A symlink in the master's conf dir that points outside it is not followed: the edit is
        // shown as a rejected candidate and nothing is applied; removing it makes the tree good again.
        var secret = Path.Combine(c.BaseDir, "secret.txt");
        File.WriteAllText(secret, "password: hunter2\n");
        var link = Path.Combine(master.ConfDir, "business", "demo", "job", "leak.yml");
        File.CreateSymbolicLink(link, secret);
        using var api = c.Api(target);
        await c.WaitUntil(async () => (await api.ConfigStatus())!.Rejected.Any(r => r.Reason.Contains("outside the conf dir")),
            Generous, default, "the outside symlink to show as a rejected candidate");
        Assert.Single((await api.ConfigVersions(10))!);
        foreach (var n in c.Nodes) Assert.False(File.Exists(Path.Combine(n.LiveDir, "business", "demo", "job", "leak.yml")));
        File.Delete(link);

        // The console reads the token from PROMHA_TOKEN_FILE; without it, a clear refusal and exit code 3.
        var (code, stdout, stderr) = await PromhaConsole.Run(["switchover", "--api", target.HttpUrl], new Dictionary<string, string> { ["PROMHA_TOKEN_FILE"] = "" });
        output.WriteLine($"console without token: {code} {stdout} {stderr}");
        Assert.Equal(3, code); // docs/reference.md, Console: 3 = admin token missing or wrong
        Assert.Contains("admin token", stderr);
        (code, stdout, stderr) = await PromhaConsole.Run(["config", "show", "1", "--api", target.HttpUrl], new Dictionary<string, string> { ["PROMHA_TOKEN_FILE"] = "" });
        Assert.Equal(3, code);
        Assert.Contains("admin token", stderr);
        (code, stdout, stderr) = await PromhaConsole.Run(["config", "show", "1", "--api", target.HttpUrl], new Dictionary<string, string> { ["PROMHA_TOKEN_FILE"] = c.TokenFile });
        output.WriteLine($"console with token file: {code} {stdout} {stderr}");
        Assert.Equal(0, code);
        Assert.Contains("prometheus.yml", stdout);
    }

    [Fact]
    public async Task A_node_without_a_certificate_of_the_cluster_CA_cannot_join_and_learns_nothing()
    {
        // Mutual TLS between nodes and HTTPS for the API, with the same certificates.
        await using var rc = await RealCluster.Start(output, nodes: 3, httpsApi: true);
        var c = rc.Cluster;
        var master = await c.WaitForSingleMaster(Generous);
        var seeds = string.Join(", ", c.Nodes.Select(n => $"127.0.0.1:{n.PublicClusterPort}"));

        // A rogue with a certificate from another CA of the same name, and one that speaks plain TCP.
        var rogueDir = Path.Combine(c.BaseDir, "rogue");
        var otherCa = ClusterCerts.CreateCa(Path.Combine(rogueDir, "tls"), "PromHa local cluster CA");
        ClusterCerts.CreateNode(otherCa, Path.Combine(rogueDir, "tls"), "rogue");
        var ports = LoopbackPorts.Claim(4);
        var rogues = new List<(string Name, int HttpPort, string Log)>();
        var processes = new List<Process>();
        try
        {
            foreach (var (name, i, tls) in new[] { ("rogue", 0, true), ("plain", 1, false) })
            {
                var dir = Path.Combine(rogueDir, name);
                Directory.CreateDirectory(dir);
                var yaml = $"""
                    node:
                      name: {name}
                    cluster:
                      host: 127.0.0.1
                      port: {ports[i * 2]}
                      seeds: [{seeds}]
                    http:
                      listen: 127.0.0.1:{ports[i * 2 + 1]}
                    dataDir: {Path.Combine(dir, "data")}

                    """;
                if (tls)
                    yaml += $"""
                        tls:
                          caFile: {Path.Combine(rogueDir, "tls", "ca.crt")}
                          certFile: {Path.Combine(rogueDir, "tls", "rogue.crt")}
                          keyFile: {Path.Combine(rogueDir, "tls", "rogue.key")}

                        """;
                File.WriteAllText(Path.Combine(dir, "promha.yml"), yaml);
                var log = Path.Combine(dir, "promha.log");
                var cmd = LocalClusterOptions.DefaultPromhaCommand();
                processes.Add(LoggedProcess.Start(cmd[0], [.. cmd.Skip(1), "run", "--config", Path.Combine(dir, "promha.yml")], log));
                rogues.Add((name, ports[i * 2 + 1], log));
            }

            // Long enough for several join attempts (a join is retried every 2 s).
            await Task.Delay(TimeSpan.FromSeconds(20));
            foreach (var n in c.Nodes)
            {
                var s = (await c.Status(n))!;
                Assert.Equal(c.Nodes.Select(x => x.Name).Order(), s.Members.Select(m => m.Node).Order());
                Assert.Equal(master.Name, s.Master);
            }
            Assert.Equal([master.Name], (await c.Masters()).Select(m => m.Name));
            var refusals = c.Nodes.Sum(n => File.ReadAllLines(n.LogPath).Count(l => l.Contains("TLS") && (l.Contains("Refused") || l.Contains("Rejected"))));
            output.WriteLine($"TLS refusals logged by the cluster's nodes: {refusals}");
            Assert.True(refusals > 0, "the cluster's nodes logged no refused TLS peer");
            foreach (var (name, httpPort, log) in rogues)
            {
                var text = File.ReadAllText(log);
                output.WriteLine($"--- {name} ---\n{string.Join("\n", text.Split('\n').TakeLast(15))}");
                Assert.DoesNotContain("Welcome from", text);
                Assert.DoesNotContain("is JOINING", text);
                Assert.DoesNotContain("Master role ->", text);
                Assert.False(Directory.Exists(Path.Combine(rogueDir, name, "data", "config", "bundles")) &&
                             Directory.EnumerateFiles(Path.Combine(rogueDir, name, "data", "config", "bundles")).Any(),
                    $"{name} received a config bundle");
                // still running or already stopped: either way it never saw the cluster
                try
                {
                    using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(3) };
                    var status = await http.GetStringAsync($"http://127.0.0.1:{httpPort}/api/v1/status");
                    Assert.DoesNotContain(master.Name, status);
                }
                catch (HttpRequestException) { }
            }
        }
        finally
        {
            foreach (var p in processes) ServerSupervisorActor.Terminate(p, TimeSpan.FromSeconds(10));
        }

        // The API speaks HTTPS with the node's certificate: the console trusts it through the CA file only.
        var (code, stdout, stderr) = await PromhaConsole.Run(["status", "--api", master.HttpUrl, "--ca-file", c.CaFile]);
        Assert.Equal(0, code);
        Assert.Contains($"node      {master.Name} (master)", stdout);
        (code, _, stderr) = await PromhaConsole.Run(["status", "--api", master.HttpUrl], new Dictionary<string, string> { ["PROMHA_CA_FILE"] = "" });
        output.WriteLine($"console without the CA: {code} {stderr}");
        Assert.Equal(2, code);
    }

    private static double RssMiB(LocalNode n) =>
        File.ReadLines($"/proc/{n.Process!.Id}/status").Where(l => l.StartsWith("VmRSS:"))
            .Select(l => double.Parse(l.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) / 1024).Single();
}
