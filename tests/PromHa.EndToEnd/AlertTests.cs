using System.Text.Json;
using PromHa.Lab;
using PromHa.Node.Sink;
using Xunit.Abstractions;

namespace PromHa.EndToEnd;

/// <summary>
/// Alerting end to end: real Prometheus and Alertmanager on every node, their webhooks through the
/// nodes' notification gates, and a real webhook receiver that records every delivery.
/// </summary>
[Collection(Lanes.Loopback)]
public class AlertTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Generous = RealCluster.Generous;
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(5) };
    /// <summary>Alertmanager's peer timeout here (15 s by default): the n-th Alertmanager sends n x this after the first, unless gossip told it the first did.</summary>
    internal const int PeerTimeoutSeconds = 2;
    /// <summary>Long enough for the other Alertmanagers to send what they would.</summary>
    private static readonly TimeSpan PeersWouldHaveSent = TimeSpan.FromSeconds(3 * PeerTimeoutSeconds + 3);

    [Fact]
    public async Task An_alert_from_every_replica_is_one_notification_and_across_a_kill_9_of_the_master_each_arrives_once_gates_never_overlap_silences_hold()
    {
        using var sink = new WebhookSink(LoopbackPorts.Claim(1)[0]);
        // an on-role-change hook, slow enough that role changes queue behind it
        var hookDir = Directory.CreateTempSubdirectory("promha-hook").FullName;
        var hook = Path.Combine(hookDir, "on-role-change.sh");
        File.WriteAllText(hook, $"#!/bin/sh\necho \"$PROMHA_NODE start $1 $2 $3\" >> {hookDir}/runs.log\nsleep 1\necho \"$PROMHA_NODE end $1\" >> {hookDir}/runs.log\necho ran as $1\n");
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(hook, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        await using var rc = await RealCluster.Start(output, nodes: 3, servers: LocalServers.Supervised, alertmanager: true,
            alerting: new PromHa.Lab.LocalAlerting(sink.WebhookUrl, sink.Target, PeerTimeout: $"{PeerTimeoutSeconds}s"), hooks: [hook]);
        var c = rc.Cluster;
        try
        {
            var master = await c.WaitForSingleMaster(Generous);
            foreach (var n in c.Nodes)
                await c.WaitUntil(async () => await ActiveAlertmanagers(n) == c.Nodes.Count, Generous, default,
                    $"{n.Name}'s Prometheus to send to all {c.Nodes.Count} Alertmanagers");

            // A silence made on a standby's Alertmanager reaches every Alertmanager (their gossip).
            var keeper = c.Nodes.First(n => n != master);
            await CreateSilence(keeper, "quiet");
            foreach (var n in c.Nodes)
                await c.WaitUntil(async () => (await Get($"{n.AlertmanagerUrl}/api/v2/silences")).Contains("\"quiet\""), Generous, default,
                    $"the silence to reach {n.Name}'s Alertmanager");
            sink.Triggers["quiet"] = 1;
            sink.Triggers["a"] = 1;
            await WaitFor(c, sink, "a", "firing");
            // Every replica evaluated the rule, and every Alertmanager holds one alert, without the replica label.
            foreach (var n in c.Nodes)
            {
                await c.WaitUntil(async () => (await Get($"{n.PrometheusUrl}/api/v1/alerts")).Contains("\"a\""), Generous, default,
                    $"{n.Name}'s Prometheus to fire the rule too");
                var alerts = JsonDocument.Parse(await Get($"{n.AlertmanagerUrl}/api/v2/alerts?filter=name%3D%22a%22")).RootElement;
                Assert.Equal(1, alerts.GetArrayLength());
                Assert.False(alerts[0].GetProperty("labels").TryGetProperty("promha_replica", out _), "the replica label reached Alertmanager");
            }
            // the other Alertmanagers would have sent by now; gossip or the gate kept it to one
            await Task.Delay(PeersWouldHaveSent);
            Assert.Single(sink.Deliveries, d => d.Name == "a");

            // Any node is the stable endpoint for the master's Prometheus and Alertmanager (the VIP's job).
            await AssertProxied(keeper, master);
            var quit = await Http.PostAsync($"{keeper.HttpUrl}/prometheus/-/quit", null);
            Assert.Equal(403, (int)quit.StatusCode); // nobody stops the master's Prometheus through it
            // silences through the proxy need the admin token
            using var anonymous = await Http.PostAsync($"{keeper.HttpUrl}/alertmanager/api/v2/silences", new StringContent("{}"));
            Assert.Equal(401, (int)anonymous.StatusCode);

            // The node that holds the silence dies for good, Alertmanager and all (a lost host); it comes back empty-handed.
            var amPid = SupervisedTests.Pid(keeper, "alertmanager");
            c.Kill(keeper);
            System.Diagnostics.Process.GetProcessById(amPid).Kill();
            Directory.Delete(Path.Combine(keeper.DataDir, "alertmanager"), true);
            c.StartNode(keeper);
            await c.WaitForMembers(Generous);

            // kill -9 of the master while one alert resolves and another fires.
            c.Kill(master);
            var killedAt = DateTimeOffset.UtcNow;
            sink.Triggers["a"] = 0;
            sink.Triggers["b"] = 1;
            var next = await c.WaitForSingleMaster(Generous, n => n != master);
            await WaitFor(c, sink, "a", "resolved");
            await WaitFor(c, sink, "b", "firing");
            sink.Triggers["b"] = 0;
            await WaitFor(c, sink, "b", "resolved");
            await Task.Delay(PeersWouldHaveSent);

            // PromHa's own alerts fire too (the master changed, a node is missing): count the trigger's
            var all = sink.Deliveries.Where(d => d.Alerts.Any(a => a.Alert == "DemoTrigger")).ToList();
            output.WriteLine(sink.Describe());
            // every notification once, each first sent for its reason; the silenced alert never.
            // One thing is not the gate's to hide: a replica whose scrape of the trigger failed (a busy
            // host) resolves `a` in every Alertmanager, which take a resolution from any replica, and
            // fires it again a scrape later (seen in CI). Such a pair is allowed only when a replica's
            // Prometheus recorded the failed scrape.
            var flaps = all.Count(d => d.Name == "a" && d.Status == "firing") - 1;
            if (flaps > 0)
            {
                var failed = await TriggerScrapeFailed(c);
                Assert.True(failed.Count > 0, $"`a` fired {flaps + 1} times, and no replica's scrape of the trigger failed\n{sink.Describe()}");
                output.WriteLine($"`a` resolved and fired again {flaps} time(s): the trigger's scrape failed on {string.Join(", ", failed)}");
            }
            foreach (var (name, status) in new[] { ("a", "firing"), ("a", "resolved"), ("b", "firing"), ("b", "resolved") })
                Assert.Equal(name == "a" ? 1 + flaps : 1, all.Count(d => d.Name == name && d.Status == status));
            Assert.Equal(4 + 2 * flaps, all.Count);
            Assert.DoesNotContain(all, d => d.Alerts.Any(a => a.Name == "quiet"));
            Assert.Equal(all.Count, all.Select(d => d.Id).Distinct().Count());
            // the old master's deliveries all came before the new one's first, and the epochs only rise
            Assert.All(all.Where(d => d.Node == master.Name), d => Assert.True(d.At < killedAt, $"{master.Name} delivered after it was killed"));
            var newFirst = all.Where(d => d.Node == next.Name).Min(d => d.At);
            Assert.True(all.Where(d => d.Node == master.Name).Max(d => d.At) < newFirst);
            Assert.Equal(all.OrderBy(d => d.At).Select(d => d.Epoch), all.OrderBy(d => d.At).Select(d => d.Epoch).Order());
            // and by the gates' own logs: the old master's last delivery before the new one's gate opened
            var lastOld = LogTimes(master, "/user/gate] Delivered ").Max();
            var opened = LogTimes(next, $"/user/gate] Gate open for epoch {all.Max(d => d.Epoch)}").Min();
            Assert.True(lastOld < opened, $"{master.Name} delivered at {lastOld}, {next.Name}'s gate opened at {opened}");
            Assert.Equal(("first", master.Name), (all[0].Reason, all[0].Node));
            // The new master delivers what changed across the kill. Whether a notification the old
            // master had not sent yet is "after-failover" or "first" depends on how fast the role
            // moved (a killed promha is replaced in well under a second now, before Alertmanager
            // hands the change to anyone): either reason, never another.
            Assert.Contains(all, d => d.Node == next.Name && d.Reason is "after-failover" or "first");
            Assert.All(all, d => Assert.Contains(d.Reason, flaps > 0 ? ["first", "after-failover", "resolved", "refired"] : new[] { "first", "after-failover", "resolved" }));
            Assert.Equal(("resolved", next.Name), (all[^1].Reason, all[^1].Node));
            // the change of master is an alert like any other, delivered once, naming both nodes
            await c.WaitUntil(() => Task.FromResult(sink.Deliveries.Any(d => d.Alerts.Any(a => a.Alert == "PromHaMasterChanged"))), Generous, default,
                "the PromHaMasterChanged notification");
            var changed = Assert.Single(sink.Deliveries, d => d.Alerts.Any(a => a.Alert == "PromHaMasterChanged"));
            Assert.Equal((next.Name, "firing"), (changed.Node, changed.Status));
            Assert.Contains($"from {master.Name} to {next.Name}", changed.Summary);
            await AssertProxied(keeper, next);
            // PromHa's own rules (deploy/rules) are loaded
            Assert.Contains("PromHaNoMaster", await Get($"{next.PrometheusUrl}/api/v1/rules"));
            // The new master ran its on-role-change hook as master for the new epoch; the history shows it.
            await c.WaitUntil(async () => (await c.Api(next).History(5))!.Any(h => h.Epoch == changed.Epoch && h.Hooks is { Count: > 0 } ran &&
                    ran.Any(r => r.Role == "master" && r.ExitCode == 0)), Generous, default, "the new master's hook run in its history");
            var runs = File.ReadAllLines(Path.Combine(hookDir, "runs.log")).Where(l => l.StartsWith(next.Name + " ")).ToList();
            Assert.Contains($"{next.Name} start master {changed.Epoch} {next.Name}", runs);
            // one at a time: every start is followed by its end before the next start
            for (var i = 0; i + 1 < runs.Count; i += 2)
                Assert.Equal(runs[i].Replace(" start ", " end ").Split(' ')[..3], runs[i + 1].Split(' ')[..3]);
            // the silence still holds on every Alertmanager still running, the restarted one included
            foreach (var n in c.Nodes.Where(n => n != master))
                Assert.Contains("\"quiet\"", await Get($"{n.AlertmanagerUrl}/api/v2/silences"));
        }
        catch
        {
            output.WriteLine(sink.Describe());
            throw;
        }
    }

    /// <summary>
    /// Alerts in a pure pair (run by the tie-breaker pair test, on its cluster): a Slack receiver added on the master runs on the master's Alertmanager only and is
    /// listed by the standby's API; the receiver is down for 30 s while one alert resolves and another
    /// fires, and gets each once when it is back.
    /// </summary>
    internal static async Task InAPair(LocalCluster c, WebhookSink sink, ITestOutputHelper output)
    {
        try
        {
            var master = await c.WaitForSingleMaster(Generous);
            var standby = c.Nodes.Single(n => n != master);
            foreach (var n in c.Nodes)
                await c.WaitUntil(async () => await ActiveAlertmanagers(n) == c.Nodes.Count, Generous, default,
                    $"{n.Name}'s Prometheus to send to both Alertmanagers");

            var reloadedAt = await Task.WhenAll(c.Nodes.Select(PrometheusReloadedAt));
            Assert.All(reloadedAt, Assert.NotEmpty);
            // The operator adds a Slack receiver on the master (the seeds' workflow: edit its conf dir).
            var authored = File.ReadAllText(Path.Combine(master.ConfDir, "alertmanager.yml"));
            File.WriteAllText(Path.Combine(master.ConfDir, "alertmanager.yml"), authored + """
                  - name: ops
                    slack_configs:
                      - api_url: http://127.0.0.1:9/slack
                        channel: '#ops'

                """);
            await c.WaitUntil(async () => (await Task.WhenAll(c.Nodes.Select(c.Status))).All(st => st is { ConfigApplied: >= 2 }), Generous, default,
                "both nodes to run the version with the Slack receiver");
            Assert.Contains("slack_configs", File.ReadAllText(Path.Combine(master.LiveDir, "alertmanager.yml")));
            var standbyLive = File.ReadAllText(Path.Combine(standby.LiveDir, "alertmanager.yml"));
            Assert.DoesNotContain("slack_configs", standbyLive);
            Assert.Contains($"/gate/sink/0", standbyLive);
            Assert.Contains("ops: slack", await c.Api(standby).GetText("api/v1/notifications"));
            // only the Alertmanagers reloaded: a Prometheus reload would drop the alerts of its next seconds
            Assert.Equal(reloadedAt, await Task.WhenAll(c.Nodes.Select(PrometheusReloadedAt)));

            sink.Triggers["a"] = 1;
            await WaitFor(c, sink, "a", "firing");

            // The receiver goes down for 30 s while one alert resolves and another fires.
            sink.Failing = true;
            sink.Triggers["a"] = 0;
            sink.Triggers["b"] = 1;
            await Task.Delay(TimeSpan.FromSeconds(30));
            Assert.True(sink.Refused > 0, "the gate never tried the receiver while it was down");
            sink.Failing = false;
            await WaitFor(c, sink, "a", "resolved");
            await WaitFor(c, sink, "b", "firing");
            await Task.Delay(PeersWouldHaveSent);

            var all = sink.Deliveries.Where(d => d.Alerts.Any(a => a.Alert == "DemoTrigger")).ToList();
            output.WriteLine(sink.Describe());
            // As in the three-node test: a replica whose scrape of the trigger failed (a busy host)
            // resolves an alert in every Alertmanager and fires it again a scrape later; such a
            // resolved + refired pair is allowed only when a Prometheus recorded the failed scrape.
            var flaps = new Dictionary<string, int>();
            foreach (var name in new[] { "a", "b" })
                flaps[name] = all.Count(d => d.Name == name && d.Status == "firing") - 1;
            if (flaps.Values.Sum() > 0)
            {
                var failed = await TriggerScrapeFailed(c);
                Assert.True(failed.Count > 0, $"an alert fired again and no replica's scrape of the trigger failed\n{sink.Describe()}");
                output.WriteLine($"resolved and fired again: a {flaps["a"]}, b {flaps["b"]} time(s); the trigger's scrape failed on {string.Join(", ", failed)}");
            }
            foreach (var (name, status) in new[] { ("a", "firing"), ("a", "resolved"), ("b", "firing") })
                Assert.Equal(1 + flaps[name], all.Count(d => d.Name == name && d.Status == status));
            Assert.Equal(flaps["b"], all.Count(d => d.Name == "b" && d.Status == "resolved"));
            Assert.Equal(3 + 2 * flaps.Values.Sum(), all.Count);
            Assert.All(all, d => Assert.Equal(master.Name, d.Node));
            Assert.Equal(all.Count, all.Select(d => d.Id).Distinct().Count());
            var metrics = await Get($"{master.HttpUrl}/metrics");
            Assert.Matches(@"promha_notifications_retried_total\{receiver=""sink""\} [1-9]", metrics);
        }
        catch
        {
            output.WriteLine(sink.Describe());
            throw;
        }
    }

    /// <summary>The times (of day, from the log's own stamp) of a node's log lines that contain a text.</summary>
    private static List<TimeSpan> LogTimes(LocalNode n, string text)
    {
        using var fs = new FileStream(n.LogPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        using var reader = new StreamReader(fs);
        var times = new List<TimeSpan>();
        while (reader.ReadLine() is { } line)
            if (line.Contains(text, StringComparison.Ordinal) && TimeSpan.TryParse(line[..12], System.Globalization.CultureInfo.InvariantCulture, out var t))
                times.Add(t);
        Assert.NotEmpty(times);
        return times;
    }

    /// <summary>/prometheus/ and /alertmanager/ on a node reach the master's servers.</summary>
    private static async Task AssertProxied(LocalNode via, LocalNode master)
    {
        using var q = await Http.GetAsync($"{via.HttpUrl}/prometheus/api/v1/query?query=up");
        Assert.Equal(200, (int)q.StatusCode);
        Assert.Equal(master.Name, q.Headers.GetValues("X-PromHa-Master").Single());
        Assert.Contains("\"status\":\"success\"", await q.Content.ReadAsStringAsync());
        using var s = await Http.GetAsync($"{via.HttpUrl}/alertmanager/api/v2/status");
        Assert.Equal(200, (int)s.StatusCode);
        Assert.Equal(master.Name, s.Headers.GetValues("X-PromHa-Master").Single());
        using var noRedirects = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false });
        using var ui = await noRedirects.GetAsync($"{via.HttpUrl}/prometheus/");
        // the UI's redirect (Debian's build: /classic/graph) keeps the prefix
        Assert.StartsWith("/prometheus/", ui.Headers.Location?.ToString());
        using var page = await Http.GetAsync($"{via.HttpUrl}{ui.Headers.Location}");
        Assert.Equal(200, (int)page.StatusCode);
    }

    private static async Task WaitFor(LocalCluster c, WebhookSink sink, string name, string status)
    {
        try
        {
            // the receiver's last word on the alert, not any earlier one: after a resolved-and-fired-again
            // flap (a failed scrape, allowed below) an earlier resolution must not pass for the final one
            await c.WaitUntil(() => Task.FromResult(sink.Deliveries.Where(d => d.Name == name).MaxBy(d => d.At)?.Status == status), Generous, default,
                $"a {status} notification for {name}\n{sink.Describe()}");
        }
        catch (TimeoutException e)
        {
            // where the alert stopped: the trigger's scrape, the rule, the Alertmanagers
            var where = new List<string>();
            foreach (var n in c.Nodes.Where(n => !n.Witness))
            {
                where.Add($"{n.Name} trigger target: {await Try($"{n.PrometheusUrl}/api/v1/targets?scrapePool=trigger")}");
                where.Add($"{n.Name} alerts: {await Try($"{n.PrometheusUrl}/api/v1/alerts")}");
                where.Add($"{n.Name} alertmanager: {await Try($"{n.AlertmanagerUrl}/api/v2/alerts")}");
            }
            throw new TimeoutException(e.Message + "\n" + string.Join("\n", where), e);
        }
    }

    private static async Task<string> Try(string url)
    {
        try
        {
            var text = await Get(url);
            return text.Length > 1500 ? text[..1500] : text;
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            return e.Message;
        }
    }

    private static async Task CreateSilence(LocalNode n, string name)
    {
        var body = $$"""
            {"matchers":[{"name":"name","value":"{{name}}","isRegex":false,"isEqual":true}],
             "startsAt":"{{DateTimeOffset.UtcNow.AddSeconds(-5):O}}","endsAt":"{{DateTimeOffset.UtcNow.AddHours(1):O}}",
             "createdBy":"e2e","comment":"PromHa test: silences survive a failover"}
            """;
        using var r = await Http.PostAsync($"{n.AlertmanagerUrl}/api/v2/silences", new StringContent(body, System.Text.Encoding.UTF8, "application/json"));
        Assert.True(r.IsSuccessStatusCode, $"creating a silence on {n.Name}: HTTP {(int)r.StatusCode} {await r.Content.ReadAsStringAsync()}");
    }

    internal static async Task<string> Get(string url)
    {
        using var r = await Http.GetAsync(url);
        return await r.Content.ReadAsStringAsync();
    }

    private static async Task<string> PrometheusReloadedAt(LocalNode n) =>
        System.Text.RegularExpressions.Regex.Match(await Get($"{n.PrometheusUrl}/metrics"),
            @"^prometheus_config_last_reload_success_timestamp_seconds (\S+)", System.Text.RegularExpressions.RegexOptions.Multiline).Groups[1].Value;

    /// <summary>The nodes whose Prometheus recorded a failed scrape of the trigger in the last 10 minutes.</summary>
    private static async Task<List<string>> TriggerScrapeFailed(LocalCluster c)
    {
        var failed = new List<string>();
        foreach (var n in c.Nodes.Where(n => !n.Witness))
        {
            var text = await Try($"{n.PrometheusUrl}/api/v1/query?query={Uri.EscapeDataString("min_over_time(up{job=\"trigger\"}[10m])")}");
            if (text.Contains("\"0\"]")) failed.Add(n.Name);
        }
        return failed;
    }

    /// <summary>Every Prometheus sends to every node's Alertmanager.</summary>
    internal static async Task WaitForAllAlertmanagers(LocalCluster c)
    {
        foreach (var n in c.Nodes.Where(n => !n.Witness))
            await c.WaitUntil(async () => await ActiveAlertmanagers(n) == c.Nodes.Count(o => !o.Witness), Generous, default,
                $"{n.Name}'s Prometheus to send to every Alertmanager");
    }

    private static async Task<int> ActiveAlertmanagers(LocalNode n)
    {
        try
        {
            using var doc = JsonDocument.Parse(await Get($"{n.PrometheusUrl}/api/v1/alertmanagers"));
            return doc.RootElement.GetProperty("data").GetProperty("activeAlertmanagers").GetArrayLength();
        }
        catch (Exception e) when (e is HttpRequestException or JsonException or KeyNotFoundException or TaskCanceledException)
        {
            return -1;
        }
    }
}
