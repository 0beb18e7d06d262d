using System.Net;
using System.Text.Json;
using PromHa.Lab;
using PromHa.Node.Groups;
using static Microsoft.Playwright.Assertions;
using PromHa.Node.Sink;
using Xunit.Abstractions;

namespace PromHa.EndToEnd;

/// <summary>
/// Several HA groups in one cluster (functional shards, seeds 003): two groups of two servers and
/// a witness that serves both, on real Prometheus, with a real global Prometheus federating every
/// group's master through one node's stable endpoint.
/// </summary>
[Collection(Lanes.Netns)] // the lane with time to spare (see Lanes)
public class GroupTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Generous = RealCluster.Generous;
    private static readonly TimeSpan Interval = TimeSpan.FromSeconds(5); // the lab's scrape interval
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(5) };
    private static readonly string[] Groups = ["shard-a", "shard-b"];

    /// <summary>
    /// Each group elects its own master among its nodes (the witness votes in both); every node, of
    /// either group or none, names each group's master. The host of one group's master dies: that
    /// group fails over and the other keeps its master; then the other's. A global Prometheus that
    /// federates /groups/&lt;name&gt;/prometheus/federate on the witness keeps one series per target
    /// and group across both failovers, with no gap longer than two scrape intervals.
    /// </summary>
    [Fact]
    public async Task Two_groups_with_a_shared_witness_fail_over_each_on_their_own_and_a_global_prometheus_federating_them_sees_no_gap()
    {
        var dir = Directory.CreateTempSubdirectory("promha-groups").FullName;
        try
        {
            using var sink = new WebhookSink(LoopbackPorts.Claim(1)[0]);
            // remote storage with one writer per group: each group's master forwards its own group's samples
            using var storage = await RemoteWriteReceiver.Start(RemoteWriteReceiver.Kind.Prometheus, dir);
            await using var rc = await RealCluster.Start(output, nodes: 4, witnesses: 1, servers: LocalServers.Supervised,
                groups: [(Groups[0], 2), (Groups[1], 2)], alertmanager: true,
                alerting: new LocalAlerting(sink.WebhookUrl, sink.Target, PeerTimeout: $"{AlertTests.PeerTimeoutSeconds}s"), scrapeInterval: "5s",
                remoteWrite: [(storage.WriteUrl, "master-only")]);
            var c = rc.Cluster;
            var witness = c.Nodes.Single(n => n.Witness);
            var masters = new Dictionary<string, LocalNode>();
            foreach (var g in Groups) masters[g] = await c.WaitForSingleMaster(Generous, group: g);
            Assert.NotEqual(masters[Groups[0]].Group, masters[Groups[1]].Group);
            await EveryNodeNames(c, masters);
            using (var groups = JsonDocument.Parse(await Http.GetStringAsync($"{witness.HttpUrl}/api/v1/groups")))
                Assert.Equal(Groups, groups.RootElement.EnumerateArray().Select(g => g.GetProperty("name").GetString()));
            Assert.Equal(Groups[0], (await c.Status(masters[Groups[0]]))!.Group);

            // Notifications are the group's: both groups fire the same rule to the same receiver (one
            // conf tree); each group's master delivers its own, neither is taken for the other's copy
            foreach (var n in c.Nodes.Where(n => !n.Witness))
                await c.WaitUntil(async () => await ActiveAlertmanagers(n) == 2, Generous, default, $"{n.Name}'s Prometheus to send to its group's two Alertmanagers");
            sink.Triggers["a"] = 1;
            string Delivered() => string.Join(", ", sink.Deliveries.Where(d => d.Name == "a").Select(d => $"{d.Status} by {d.Node}"));
            bool OnePerGroup() => sink.Deliveries.Where(d => d.Name == "a" && d.Status == "firing")
                .Select(d => c.Nodes.SingleOrDefault(n => n.Name == d.Node)?.Group).Order().SequenceEqual(Groups);
            await c.WaitUntil(() => Task.FromResult(OnePerGroup()), Generous, default, () => $"one notification of a from each group's master (got: {Delivered()})");
            await Task.Delay(TimeSpan.FromSeconds(3 * AlertTests.PeerTimeoutSeconds + 3)); // when the other Alertmanagers would have sent
            Assert.True(OnePerGroup(), $"one notification of a per group, no more: {Delivered()}");

            // Each group has its own conf tree and versions: an edit on one group's master is that
            // group's version 2; the other group stays at 1 and never scrapes the new target
            foreach (var n in c.Nodes)
                await c.WaitUntil(async () => (await c.Status(n))?.ConfigApplied == 1, Generous, default, $"{n.Name} to run its group's version 1");
            File.WriteAllText(Path.Combine(masters[Groups[0]].ConfDir, "business", "demo", "job", "only-a.yml"), "- targets: ['127.0.0.1:10009']\n");
            foreach (var n in c.Nodes.Where(n => n.Group == Groups[0]))
            {
                await c.WaitUntil(async () => (await c.Status(n))?.ConfigApplied == 2, Generous, default, $"{n.Name} to run {Groups[0]}'s version 2");
                await c.WaitUntil(async () => (await Http.GetStringAsync($"{n.PrometheusUrl}/api/v1/targets")).Contains("127.0.0.1:10009"), Generous, default,
                    $"{n.Name}'s Prometheus to scrape the new target");
            }
            foreach (var n in c.Nodes.Where(n => n.Group == Groups[1]))
            {
                var st = (await c.Status(n))!;
                Assert.Equal((1L, 1L), (st.ConfigApplied, st.ConfigLatest));
                Assert.DoesNotContain("127.0.0.1:10009", await Http.GetStringAsync($"{n.PrometheusUrl}/api/v1/targets"));
            }
            // every series a node serves names its group: rules count masters per group
            Assert.Contains($"promha_is_master{{promha_group=\"{Groups[0]}\"}} 1", await Http.GetStringAsync($"{masters[Groups[0]].HttpUrl}/metrics"));

            // a group that does not exist is named as such, not proxied anywhere
            var unknown = await Http.GetAsync($"{witness.HttpUrl}/groups/nope/prometheus/federate");
            Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);

            using var global = await RemoteWriteReceiver.Start(RemoteWriteReceiver.Kind.Prometheus, dir, prometheusConfig: GlobalConfig(witness));
            var started = DateTimeOffset.UtcNow;
            // the series of a target that stays up throughout (the witness's own /metrics), in each group
            string Selector(string g) => $"up{{job=\"promha\",instance=\"127.0.0.1:{witness.HttpPort}\",group=\"{g}\"}}";
            foreach (var g in Groups)
                await c.WaitUntil(async () => (await global.Series(Selector(g))).Count == 1, Generous, default, $"the global Prometheus to federate {g}");
            Assert.All(await global.Series("up{job=\"promha\"}"), s => Assert.False(s.ContainsKey("promha_replica"), string.Join(",", s)));
            // each group's master writes its group's series (its tree's external label shard), without the replica label
            string Written(string g) => $"up{{job=\"promha\",instance=\"127.0.0.1:{witness.HttpPort}\",shard=\"{g}\"}}";
            foreach (var g in Groups)
                await c.WaitUntil(async () => (await storage.Series(Written(g))).Count == 1, Generous, default, $"{g}'s master to write to remote storage");
            Assert.All(await storage.Series("up{job=\"promha\"}"), s => Assert.False(s.ContainsKey("promha_replica"), string.Join(",", s)));
            await Task.Delay(3 * Interval);

            // one group's master host dies: that group fails over, the other keeps its master
            var events = new List<(string Group, DateTimeOffset At)>();
            foreach (var g in Groups)
            {
                var old = masters[g];
                events.Add((g, DateTimeOffset.UtcNow));
                c.KillHost(old);
                masters[g] = await c.WaitForSingleMaster(Generous, n => n != old, group: g);
                foreach (var other in Groups.Where(o => o != g))
                    Assert.Equal([masters[other]], await c.Masters(skip: n => n.Group != other));
                await EveryNodeNames(c, masters);
                await Task.Delay(4 * Interval);
            }
            var end = DateTimeOffset.UtcNow;

            // the console and the page show every group's master, from a node of neither group
            var (code, table, stderr) = await PromhaConsole.Run(["groups", "--api", witness.HttpUrl]);
            Assert.True(code == 0, stderr);
            foreach (var g in Groups) Assert.Matches($@"(?m)^{g}\s+{masters[g].Name}\s", table);
            await using (var browser = await Browser.Open(output))
            {
                var page = browser.Page;
                await page.GotoAsync(witness.HttpUrl + "/");
                await Expect(page.Locator("#groups-section")).ToBeVisibleAsync();
                foreach (var g in Groups)
                    await Expect(page.Locator($"#groups tr[data-group={g}] td").Nth(1)).ToHaveTextAsync(masters[g].Name);
            }

            foreach (var g in Groups)
            {
                var samples = await global.Samples(Selector(g), started, end);
                var run = SeriesContinuity.Of(samples, Interval, counter: false);
                output.WriteLine($"{g} at the global Prometheus: {run}; failovers at {string.Join(", ", events.Select(e => $"{e.Group} {e.At:mm:ss.fff}"))}");
                output.WriteLine($"  samples: {string.Join(" ", samples.Select(x => DateTimeOffset.FromUnixTimeMilliseconds(x.Ms).ToString("mm:ss.fff")))}");
                Assert.True(run.LongestGap <= 2 * Interval, $"{g}: {run}");
                Assert.Contains(samples, s => s.Ms > events[^1].At.ToUnixTimeMilliseconds() + 2 * (long)Interval.TotalMilliseconds);

                // remote storage: the group's one crash costs at most one interval, and its new master goes on writing
                var written = await storage.Samples(Written(g), started, end);
                var stored = SeriesContinuity.Of(written, Interval, counter: false);
                output.WriteLine($"{g} at remote storage (master-only): {stored}");
                Assert.True(stored.MissingIntervals <= 1 && stored.WriterChanges <= 1, $"{g} at remote storage: {stored}");
                Assert.Contains(written, s => s.Ms > events.Single(e => e.Group == g).At.ToUnixTimeMilliseconds() + 2 * (long)Interval.TotalMilliseconds);
            }
        }
        finally
        {
            try { Directory.Delete(dir, true); } catch (IOException) { }
        }
    }

    /// <summary>
    /// Growing into groups without losing history: a cluster of two servers and a witness (no
    /// groups) commits a config version, then every node stops and starts again with cluster.groups,
    /// its group named `default`, beside a new group of two. The default group still has its role
    /// history and its versions (its journal names never changed); the new group numbers its own
    /// from 1 and has a history of its own.
    /// </summary>
    [Fact]
    public async Task A_cluster_grown_into_groups_keeps_its_role_history_and_its_versions_as_the_default_group()
    {
        await using var rc = await RealCluster.Start(output, nodes: 4, witnesses: 1, servers: LocalServers.Supervised,
            start: n => n.Name is not ("node3" or "node4"));
        var c = rc.Cluster;
        var master = await c.WaitForSingleMaster(Generous);
        // the first version first: an edit made before it is not authoritative and is replaced by it
        foreach (var n in c.Nodes.Where(n => n.Running))
            await c.WaitUntil(async () => (await c.Status(n))?.ConfigApplied == 1, Generous, default, $"{n.Name} to run version 1");
        File.WriteAllText(Path.Combine(master.ConfDir, "business", "demo", "job", "two.yml"), "- targets: ['127.0.0.1:10002']\n");
        foreach (var n in c.Nodes.Where(n => n.Running))
            await c.WaitUntil(async () => (await c.Status(n))?.ConfigApplied == 2, Generous, default, $"{n.Name} to run version 2");
        List<PromHa.Node.Http.HistoryEntry> history;
        List<PromHa.Node.Http.ConfigVersionInfo> versions;
        using (var api = c.Api(master))
        {
            history = (await api.History(50))!;
            versions = (await api.ConfigVersions(50))!;
        }

        foreach (var n in c.Nodes.Where(n => n.Running)) await c.Stop(n);
        c.Regroup([(GroupScope.DefaultName, 2), ("shard-b", 2)]);
        foreach (var n in c.Nodes) c.StartNode(n);
        await c.WaitForMembers(Generous);
        var a = await c.WaitForSingleMaster(Generous, group: GroupScope.DefaultName);
        var b = await c.WaitForSingleMaster(Generous, group: "shard-b");

        using (var api = c.Api(a))
        {
            var after = (await api.History(50))!;
            Assert.All(history, h => Assert.Contains(after, x => (x.Epoch, x.Node, x.At) == (h.Epoch, h.Node, h.At)));
            Assert.Equal(versions.Select(v => (v.Version, v.BundleHash)), (await api.ConfigVersions(50))!.Select(v => (v.Version, v.BundleHash)));
        }
        // the new group commits its first version once its nodes are up (seconds after its master)
        foreach (var n in c.Nodes.Where(n => n.Group == "shard-b"))
            await c.WaitUntil(async () => (await c.Status(n))?.ConfigApplied == 1, Generous, default, $"{n.Name} to run shard-b's version 1");
        using (var api = c.Api(b))
        {
            Assert.Equal([1L], (await api.ConfigVersions(50))!.Select(v => v.Version));
            Assert.All(await api.History(50) ?? [], h => Assert.Contains(h.Node, new[] { "node3", "node4" }));
        }
    }

    private static async Task<int> ActiveAlertmanagers(LocalNode n)
    {
        try
        {
            using var doc = JsonDocument.Parse(await Http.GetStringAsync($"{n.PrometheusUrl}/api/v1/alertmanagers"));
            return doc.RootElement.GetProperty("data").GetProperty("activeAlertmanagers").GetArrayLength();
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException) { return -1; }
    }

    /// <summary>Every running node answers /groups/&lt;name&gt;/primary with each group's master.</summary>
    private static async Task EveryNodeNames(LocalCluster c, IReadOnlyDictionary<string, LocalNode> masters)
    {
        foreach (var n in c.Nodes.Where(n => n.Running))
        foreach (var (g, m) in masters)
        {
            var said = "";
            await c.WaitUntil(async () =>
            {
                try
                {
                    var r = await Http.GetAsync($"{n.HttpUrl}/groups/{g}/primary");
                    said = $"{(int)r.StatusCode} {(await r.Content.ReadAsStringAsync()).Trim()}";
                    return r.IsSuccessStatusCode && said.EndsWith(" " + m.Name);
                }
                catch (Exception e) when (e is HttpRequestException or TaskCanceledException) { return false; }
            }, Generous, default, () => $"{n.Name} to name {m.Name} as {g}'s master (it said: {said})");
        }
    }

    /// <summary>
    /// The functional-shards layout's global Prometheus: one job per group, federating the group's
    /// master through the witness; the group label tells the groups' copies of a target apart, the
    /// replica label (the group's current master) is dropped so that a failover keeps the series.
    /// </summary>
    private static string GlobalConfig(LocalNode via) =>
        "global:\n  scrape_interval: 1s\nscrape_configs:\n" + string.Concat(Groups.Select(g => $$"""
              - job_name: federate-{{g}}
                honor_labels: true
                metrics_path: /groups/{{g}}/prometheus/federate
                params:
                  'match[]': ['{job="promha"}']
                static_configs:
                  - targets: ['127.0.0.1:{{via.HttpPort}}']
                    labels:
                      group: {{g}}
                metric_relabel_configs:
                  - action: labeldrop
                    regex: promha_replica

            """));
}
