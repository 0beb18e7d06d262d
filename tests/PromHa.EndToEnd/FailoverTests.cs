using System.Text.Json;
using Microsoft.Playwright;
using PromHa.Node.Console;
using PromHa.Node.Http;
using PromHa.Lab;
using PromHa.Node.Sink;
using Xunit.Abstractions;
using static Microsoft.Playwright.Assertions;

namespace PromHa.EndToEnd;

/// <summary>Three promha nodes beside three real Prometheus servers.</summary>
[Collection(Lanes.Loopback)]
public class FailoverTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Generous = RealCluster.Generous;

    /// <summary>
    /// The failover path as an operator sees it, with the page open in a real browser (served by a
    /// node that stays up) and the console: one master; kill -9 moves it and the page follows without
    /// a reload; the old master returns as a standby; a dead Prometheus moves the role again; a
    /// switchover from the page is refused with a wrong token and done with the right one; the page
    /// diffs two versions; paused from the page, a dead Prometheus does not move the role until the
    /// console resumes the cluster; the console's read verbs give JSON, a dry run commits nothing, and
    /// a node leaves the cluster for good; the Grafana dashboard's queries run on a real Prometheus.
    /// </summary>
    [Fact]
    public async Task One_master_then_kill_9_moves_it_the_old_master_returns_as_standby_a_dead_prometheus_moves_it_again_and_the_page_and_console_follow()
    {
        await using var rc = await RealCluster.Start(output, nodes: 3, journals: JournalMix.Mixed);
        var c = rc.Cluster;
        var first = await c.WaitForSingleMaster(Generous);
        var firstStatus = await c.Status(first);
        Assert.Equal("master", firstStatus!.Role);
        foreach (var n in c.Nodes.Where(n => n != first))
        {
            await c.WaitUntil(async () => (await c.Status(n))?.Master == first.Name, Generous, default, $"{n.Name} to learn the master");
            Assert.Equal(503, await c.PrimaryCode(n));
            Assert.Equal(3, (await c.Status(n))!.Members.Count);
        }

        // the page, from a node that stays up throughout
        var viewer = c.Nodes.First(n => n != first);
        await using var browser = await Browser.Open(output);
        var page = browser.Page;
        try
        {
            await page.GotoAsync(viewer.HttpUrl + "/");
            await Expect(page.Locator("#live")).ToHaveTextAsync("live");
            await Expect(page.Locator("#master")).ToHaveTextAsync(first.Name);
            await Expect(page.Locator($"#nodes tr[data-node={first.Name}] td.role")).ToHaveTextAsync("master");
            foreach (var n in c.Nodes.Where(n => n != first))
                await Expect(page.Locator($"#nodes tr[data-node={n.Name}] td.role")).ToHaveTextAsync("standby");
            await Expect(page.Locator("#history li")).Not.ToHaveCountAsync(0);
            await browser.Shot("1-cluster");
            var documentStarted = await page.EvaluateAsync<double>("performance.timeOrigin");

            c.Kill(first);
            var killedAt = System.Diagnostics.Stopwatch.StartNew();
            var second = await c.WaitForSingleMaster(Generous, n => n != first);
            var failedOver = killedAt.Elapsed;
            // the open page shows the new master by itself
            await Expect(page.Locator("#master")).ToHaveTextAsync(second.Name);
            output.WriteLine($"/primary moved {failedOver.TotalSeconds:F1} s after the kill -9 of {first.Name}; the page showed {second.Name} " +
                             $"{(killedAt.Elapsed - failedOver).TotalSeconds:F1} s after that");
            var secondStatus = await c.Status(second);
            Assert.True(secondStatus!.Epoch > firstStatus.Epoch);
            await Expect(page.Locator($"#nodes tr[data-node={first.Name}] td")).Not.ToHaveCountAsync(0);
            await browser.Shot("2-after-kill-9");

            c.StartNode(first);
            await c.WaitForMembers(Generous);
            await c.WaitUntil(async () => (await c.Status(first))?.Master == second.Name, Generous, default, "the old master to rejoin");
            // Non-preemptive: the old master stays a standby, and the role does not move back.
            await Task.Delay(TimeSpan.FromSeconds(5));
            Assert.Equal(503, await c.PrimaryCode(first));
            Assert.Equal([second.Name], (await c.Masters()).Select(n => n.Name));
            Assert.Equal(200, await HttpCode($"{first.HttpUrl}/standby"));

            using (var api = c.Api(first))
            {
                var history = await api.History(10);
                Assert.Equal(second.Name, history![0].Node);
                Assert.Equal(first.Name, history[0].Previous);
                Assert.Equal(history.Select(h => h.Epoch).OrderDescending(), history.Select(h => h.Epoch));
            }

            // When the master's Prometheus dies, the role moves while its node stays.
            var master = second;
            master.ExternalPrometheus!.Kill();

            var next = await c.WaitForSingleMaster(Generous, n => n != master);
            Assert.True(master.Running);
            var s = await c.Status(master);
            Assert.Equal("standby", s!.Role);
            Assert.Equal(next.Name, s.Master);
            Assert.Equal(503, await HttpCode($"{master.HttpUrl}/health"));
            Assert.Equal(503, await HttpCode($"{master.HttpUrl}/standby"));
            var last = await c.Api(next).History(1);
            // killed, its port refuses: the fast path, not the unhealthy threshold
            Assert.Equal("prometheus-down", last![0].Reason);
            await Expect(page.Locator("#master")).ToHaveTextAsync(next.Name);
            await Expect(page.Locator("#history li").First).ToContainTextAsync($"{next.Name} became master (prometheus-down)");
            Assert.Equal(documentStarted, await page.EvaluateAsync<double>("performance.timeOrigin")); // never reloaded

            // A switchover from the page to the healthy standby: without a token nothing is sent ...
            var target = c.Nodes.Single(n => n != next && n != master);
            await page.SelectOptionAsync("#switchover-to", target.Name);
            await page.ClickAsync("#switchover");
            await Expect(page.Locator("#token-dialog")).ToBeVisibleAsync();
            await page.ClickAsync("#token-dialog button[value=cancel]");
            await Expect(page.Locator("#action-result")).ToContainTextAsync("not sent: an action needs the admin token");
            // ... and a wrong token is refused by the node
            await page.SelectOptionAsync("#switchover-to", target.Name);
            await page.ClickAsync("#switchover");
            await page.FillAsync("#token-input", "not-the-admin-token-at-all");
            await page.ClickAsync("#token-ok");
            // the node answered 401, so the page asks again; the operator gives up
            await Expect(page.Locator("#token-dialog")).ToBeVisibleAsync();
            await page.ClickAsync("#token-dialog button[value=cancel]");
            await Expect(page.Locator("#action-result")).ToContainTextAsync("HTTP 401");
            await browser.Shot("3-switchover-refused");
            await Task.Delay(TimeSpan.FromSeconds(2));
            Assert.Equal(next.Name, (await c.Status(viewer))!.Master);
            await page.ClickAsync("#token-forget");
            // with the token it moves to the chosen node
            await page.SelectOptionAsync("#switchover-to", target.Name);
            await page.ClickAsync("#switchover");
            await page.FillAsync("#token-input", c.Access.Token!);
            await page.ClickAsync("#token-ok");
            await Expect(page.Locator("#action-result")).ToContainTextAsync("done");
            await Expect(page.Locator("#master")).ToHaveTextAsync(target.Name);
            Assert.Equal(target, await c.WaitForSingleMaster(Generous, n => n == target));
            await Expect(page.Locator("#history li").First).ToContainTextAsync($"{target.Name} became master (switchover)");
            await browser.Shot("4-switched-over");

            // A second config version (an edit in the master's conf dir): the page diffs the two.
            File.AppendAllText(Path.Combine(target.ConfDir, "prometheus.yml"), "# edited for the page test\n");
            await Expect(page.Locator("#versions tbody tr")).ToHaveCountAsync(2);
            await page.ClickAsync("#diff");
            await Expect(page.Locator("#diff-out pre.diff .add")).ToContainTextAsync("+# edited for the page test");
            await page.CheckAsync("input[name=diff-view][value=split]");
            await Expect(page.Locator("#diff-out table.diff td.add")).ToContainTextAsync("# edited for the page test");
            await browser.Shot("5-diff");

            // Maintenance, paused from the page: the master's Prometheus dies and nothing moves ...
            await page.ClickAsync("#pause");
            await Expect(page.Locator("#banners")).ToContainTextAsync("Paused since");
            await Expect(page.Locator("#resume")).ToBeVisibleAsync();
            target.ExternalPrometheus!.Kill();
            await Task.Delay(TimeSpan.FromSeconds(10)); // when not paused, 3 s unhealthy moves the role
            Assert.Equal([target.Name], (await c.Masters()).Select(n => n.Name));
            Assert.True((await c.Status(next))!.Paused);
            Assert.Matches(@"(?m)^promha_paused 1", await new HttpClient().GetStringAsync($"{next.HttpUrl}/metrics"));
            await browser.Shot("6-paused");
            // ... until the cluster is resumed, here from the console
            var (resumed, resumeOut, resumeErr) = await PromhaConsole.Run(["resume", "--api", next.HttpUrl],
                new Dictionary<string, string> { ["PROMHA_TOKEN_FILE"] = c.TokenFile });
            Assert.True(resumed == 0, resumeOut + resumeErr);
            Assert.Equal(next, await c.WaitForSingleMaster(Generous, n => n == next));
            await Expect(page.Locator("#master")).ToHaveTextAsync(next.Name);
            await Expect(page.Locator("#pause")).ToBeVisibleAsync();
            Assert.DoesNotContain(browser.Errors, e => !e.Contains("401"));

            await ConsoleVerbs(c, next, master);
            // the Grafana dashboard's queries, against a Prometheus that scrapes this cluster
            await DashboardQueriesRun(next);
        }
        catch
        {
            await browser.Shot("failed");
            throw;
        }
    }

    /// <summary>
    /// Every query of deploy/grafana/promha.json (panels and annotations), with Grafana's variables
    /// filled in, runs without an error on a real Prometheus scraping the cluster; the role panels return data.
    /// </summary>
    private async Task DashboardQueriesRun(LocalNode n)
    {
        var path = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "../../../../../deploy/grafana/promha.json"));
        using var dashboard = JsonDocument.Parse(File.ReadAllText(path));
        var queries = dashboard.RootElement.GetProperty("panels").EnumerateArray()
            .SelectMany(p => p.TryGetProperty("targets", out var t)
                ? t.EnumerateArray().Select(x => (Where: $"panel '{p.GetProperty("title").GetString()}'", Expr: x.GetProperty("expr").GetString()!))
                : [])
            .Concat(dashboard.RootElement.GetProperty("annotations").GetProperty("list").EnumerateArray()
                .Select(a => (Where: $"annotation '{a.GetProperty("name").GetString()}'", Expr: a.GetProperty("expr").GetString()!)))
            .ToList();
        Assert.True(queries.Count >= 15, $"only {queries.Count} queries in {path}");
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        foreach (var (where, expr) in queries)
        {
            var promql = expr.Replace("$__rate_interval", "1m").Replace("$job", "promha");
            using var r = await http.GetAsync($"{n.PrometheusUrl}/api/v1/query?query={Uri.EscapeDataString(promql)}");
            var body = await r.Content.ReadAsStringAsync();
            Assert.True(r.IsSuccessStatusCode && body.Contains("\"status\":\"success\""), $"{where}: {promql}\n-> HTTP {(int)r.StatusCode} {body}");
            if (where.StartsWith("panel") && (expr.Contains("promha_is_master") || expr.Contains("promha_epoch")))
                Assert.DoesNotContain("\"result\":[]", body);
        }
        output.WriteLine($"{queries.Count} dashboard queries ran on {n.Name}'s Prometheus");
    }

    /// <summary>The console's verbs against the same cluster: JSON for scripts, a dry run, a node that leaves.</summary>
    private async Task ConsoleVerbs(LocalCluster c, LocalNode master, LocalNode leaving)
    {
        var env = new Dictionary<string, string> { ["PROMHA_TOKEN_FILE"] = c.TokenFile };
        async Task<string> Ok(params string[] args)
        {
            var (code, stdout, stderr) = await PromhaConsole.Run([.. args, "--api", master.HttpUrl], env);
            Assert.True(code == 0, $"promha {string.Join(' ', args)} exited {code}: {stderr}");
            return stdout;
        }

        using (var status = JsonDocument.Parse(await Ok("status", "--output", "json")))
        {
            Assert.Equal(master.Name, status.RootElement.GetProperty("master").GetString());
            Assert.True(status.RootElement.GetProperty("leaseLeftSeconds").GetDouble() > 0);
        }
        using (var history = JsonDocument.Parse(await Ok("history", "-o", "json", "--limit", "3")))
        {
            // the role moved on resume because the old master's Prometheus was dead (refused: prometheus-down)
            Assert.Equal(master.Name, history.RootElement[0].GetProperty("node").GetString());
            Assert.Contains(history.RootElement[0].GetProperty("reason").GetString(), new[] { "prometheus-down", "prometheus-unhealthy" });
        }
        using (var versions = JsonDocument.Parse(await Ok("config", "versions", "-o", "json")))
            Assert.Equal(2, versions.RootElement.GetArrayLength());

        // a dry run validates and shows the diff, and commits nothing
        var tree = Directory.CreateTempSubdirectory("promha-dry").FullName;
        try
        {
            foreach (var f in Directory.GetFiles(master.ConfDir, "*", SearchOption.AllDirectories))
            {
                var to = Path.Combine(tree, Path.GetRelativePath(master.ConfDir, f));
                Directory.CreateDirectory(Path.GetDirectoryName(to)!);
                File.Copy(f, to);
            }
            File.AppendAllText(Path.Combine(tree, "prometheus.yml"), "# a dry run\n");
            var dry = await Ok("config", "apply", "--dry-run", tree);
            Assert.Contains("nothing committed", dry);
            Assert.Contains("+# a dry run", dry);
            File.WriteAllText(Path.Combine(tree, "prometheus.yml"), "scrape_configs: [{job_name: x, scrape_interval: nonsense}]\n");
            var (code, _, stderr) = await PromhaConsole.Run(["config", "apply", "--dry-run", tree, "--api", master.HttpUrl], env);
            Assert.Equal(1, code);
            Assert.Contains("prometheus.yml", stderr);
        }
        finally
        {
            Directory.Delete(tree, true);
        }
        using (var versions = JsonDocument.Parse(await Ok("config", "versions", "-o", "json")))
            Assert.Equal(2, versions.RootElement.GetArrayLength());
        using (var status = JsonDocument.Parse(await Ok("config", "status", "-o", "json")))
            Assert.Empty(status.RootElement.GetProperty("rejected").EnumerateArray()); // a dry run is no rejected candidate

        // a node taken out of the cluster for good: its service is disabled, then it leaves and exits 0
        c.Disable(leaving);
        Assert.Contains($"{leaving.Name}", await Ok("cluster", "leave", leaving.Name));
        await c.WaitUntil(async () => (await c.Status(master))?.Members.Count == 2, Generous, default, $"{leaving.Name} to leave");
        await c.WaitUntil(() => Task.FromResult(leaving.Process is { HasExited: true }), Generous, default, $"{leaving.Name} to exit");
        Assert.Equal(0, leaving.Process!.ExitCode);
        using (var members = JsonDocument.Parse(await Ok("cluster", "show", "-o", "json")))
            Assert.DoesNotContain(members.RootElement.EnumerateArray(), m => m.GetProperty("node").GetString() == leaving.Name);
        var (unknown, _, why) = await PromhaConsole.Run(["cluster", "down", "nobody", "--api", master.HttpUrl], env);
        Assert.Equal(1, unknown);
        Assert.Contains("no member named 'nobody'", why);
        Assert.Equal(master, await c.WaitForSingleMaster(Generous));

        // failover onto the last standby, whose Prometheus is dead: refused, then forced (and it stays master)
        var standby = c.Nodes.Single(n => n != master && n != leaving && n.Running);
        var (refused, _, reason) = await PromhaConsole.Run(["failover", "--to", standby.Name, "--api", master.HttpUrl], env);
        Assert.Equal(1, refused);
        Assert.Contains("--force", reason);
        Assert.Contains("failing over", await Ok("failover", "--to", standby.Name, "--force"));
        Assert.Equal(standby, await c.WaitForSingleMaster(Generous, n => n == standby));
        await Task.Delay(TimeSpan.FromSeconds(5)); // longer than an unhealthy master is kept otherwise
        Assert.Equal([standby.Name], (await c.Masters()).Select(n => n.Name));
        using (var history = JsonDocument.Parse(await Ok("history", "-o", "json", "--limit", "1")))
            Assert.Equal((standby.Name, "forced-failover"),
                (history.RootElement[0].GetProperty("node").GetString(), history.RootElement[0].GetProperty("reason").GetString()));
    }

    [Fact]
    public async Task Killing_the_singletons_host_right_after_a_failover_never_reuses_an_epoch()
    {
        // five nodes, so that three of five remain after two crashes
        await using var rc = await RealCluster.Start(output, nodes: 5, journals: JournalMix.Mixed);
        var c = rc.Cluster;
        var master = await c.WaitForSingleMaster(Generous);
        c.Kill(master);
        var next = await c.WaitForSingleMaster(Generous, n => n != master);
        var afterFailover = (await c.Status(next))!;
        // wait only until the crashed node is gone from the cluster, so the singleton can move
        await c.WaitUntil(async () => (await c.Status(next))?.Members.Count == 4, Generous, default, "the crashed node to be removed");
        var singleton = rc.Node(afterFailover.SingletonNode!);
        Assert.NotEqual(next, singleton); // the singleton prefers a master away from its own node
        // A master outlives any standby: while the singleton's host dies and the singleton moves,
        // the master's lease rests on the votes of the majority, and /primary never blinks.
        var poll = new CancellationTokenSource();
        var polling = PollPrimary(c, next, poll.Token);
        c.Kill(singleton);

        var survivors = c.Nodes.Where(n => n.Running).ToList();
        await c.WaitUntil(async () => (await c.Status(next))?.SingletonNode is { } s && s != singleton.Name,
            Generous, default, "the singleton to move");
        await Task.Delay(TimeSpan.FromSeconds(1));
        await poll.CancelAsync();
        var (polls, misses) = await polling;
        output.WriteLine($"{polls} polls of {next.Name}'s /primary while {singleton.Name} (singleton host) died: {misses.Count} not 200");
        Assert.True(misses.Count == 0, $"the master's /primary answered {string.Join(", ", misses.Take(10))} while a standby died");
        var current = await c.WaitForSingleMaster(Generous);
        Assert.Equal(next, current);
        // one more role change, decided by the new singleton
        var r = await c.Api(current).Switchover(null);
        Assert.True(r.Accepted, r.Message);
        var last = await c.WaitForSingleMaster(Generous, n => n != current);
        var lastStatus = (await c.Status(last))!;
        Assert.True(lastStatus.Epoch > afterFailover.Epoch, $"epoch {lastStatus.Epoch} after epoch {afterFailover.Epoch}");

        foreach (var n in survivors)
        {
            var history = (await c.Api(n).History(50))!;
            var epochs = history.Select(h => h.Epoch).Reverse().ToList();
            Assert.Equal(Enumerable.Range(1, epochs.Count).Select(i => (long)i), epochs); // no gaps, no repeats
            Assert.Equal(lastStatus.Epoch, epochs[^1]);
        }
        await rc.CheckJournals(output);
    }

    /// <summary>Polls a node's /primary every 50 ms until cancelled; returns how many polls and the ones not 200.</summary>
    internal static async Task<(int Polls, List<string> Misses)> PollPrimary(LocalCluster c, LocalNode n, CancellationToken ct)
    {
        var misses = new List<string>();
        var polls = 0;
        var started = System.Diagnostics.Stopwatch.StartNew();
        while (!ct.IsCancellationRequested)
        {
            var code = await c.PrimaryCode(n);
            polls++;
            if (code != 200) misses.Add($"{code} at +{started.ElapsedMilliseconds} ms");
            try { await Task.Delay(50, ct); } catch (OperationCanceledException) { }
        }
        return (polls, misses);
    }

    internal static async Task<int> HttpCode(string url)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        try { return (int)(await http.GetAsync(url)).StatusCode; }
        catch (HttpRequestException) { return 0; }
    }
}
