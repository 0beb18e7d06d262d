using PromHa.Node.Alerts;
using PromHa.Lab;
using PromHa.Node.Sink;
using System.Text.Json;
using Xunit.Abstractions;

namespace PromHa.EndToEnd;

/// <summary>
/// The alert shapes a real pager sees, on real Prometheus and Alertmanager: an alert that fires and
/// resolves over and over (with the master's whole host killed in the middle), a group whose alerts
/// join and leave, an alert that keeps firing past repeat_interval. Every change reaches the
/// receiver once, with a reason that says what it is.
/// </summary>
[Collection(Lanes.Loopback)]
public class FlappingAlertTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Generous = RealCluster.Generous;
    private const int Cycles = 6;
    private static readonly TimeSpan Repeat = TimeSpan.FromSeconds(20);
    private static readonly TimeSpan Hold = TimeSpan.FromSeconds(5);

    [Fact]
    public async Task A_flapping_alert_is_paged_every_cycle_across_a_kill_9_of_the_masters_whole_host_and_groups_and_repeats_say_why()
    {
        using var sink = new WebhookSink(LoopbackPorts.Claim(1)[0]);
        // one group for all triggers (group_by: [alertname]), so that alerts join and leave it
        await using var rc = await RealCluster.Start(output, nodes: 3, servers: LocalServers.Supervised, alertmanager: true,
            alerting: new LocalAlerting(sink.WebhookUrl, sink.Target, RepeatInterval: $"{Repeat.TotalSeconds}s",
                PeerTimeout: $"{AlertTests.PeerTimeoutSeconds}s", GroupBy: "[alertname]"));
        var c = rc.Cluster;
        try
        {
            var master = await c.WaitForSingleMaster(Generous);
            await AlertTests.WaitForAllAlertmanagers(c);

            // 1. flapping: on until the receiver has the firing, off until it has the resolution (each at
            //    least 5 s, and until every replica saw the edge), six times; the master's host
            //    (promha, Prometheus, Alertmanager) dies with kill -9 as the third cycle fires
            LocalNode? killed = null, down = null;
            for (var cycle = 1; cycle <= Cycles; cycle++)
            {
                var on = Task.Delay(Hold);
                sink.Triggers["flap"] = 1;
                if (cycle == 3)
                {
                    killed = down = master;
                    c.KillHost(master);
                    master = await c.WaitForSingleMaster(Generous, n => n != killed);
                }
                await WaitForCycles(c, sink, "flap", cycle, "firing");
                if (cycle == 4)
                {
                    c.StartNode(killed!); // the host comes back, disk and all
                    down = null;
                }
                await on;
                await ReplicasAgree(c, "flap", firing: true, down);
                var off = Task.Delay(Hold);
                sink.Triggers["flap"] = 0;
                await WaitForCycles(c, sink, "flap", cycle, "resolved");
                await off;
                await ReplicasAgree(c, "flap", firing: false, down);
            }
            await c.WaitForMembers(Generous);

            // 2. a group whose alerts join and leave (and one fires again while the other stays)
            var steps = new (string Name, int Value, string Expect, string Reason)[]
            {
                ("x", 1, "x+", "alerts-added"),
                ("y", 1, "x+ y+", "alerts-added"),
                ("x", 0, "x- y+", "resolved"),
                ("x", 1, "x+ y+", "refired"),
                ("y", 0, "x+ y-", "resolved"),
                ("x", 0, "x-", "resolved"),
            };
            foreach (var (name, value, expect, reason) in steps)
            {
                var before = sink.Deliveries.Count;
                var earlier = sink.Deliveries.Take(before).ToList();
                var held = Task.Delay(Hold);
                sink.Triggers[name] = value;
                await Until(c, sink, () => sink.Deliveries.Skip(before).Any(d => Shape(d, earlier) == expect), $"a notification [{expect}] after {name}={value}");
                await held;
                var d = sink.Deliveries.Skip(before).First(d => Shape(d, earlier) == expect);
                Assert.True(d.Reason == reason, $"[{expect}] was sent as {d.Reason}, expected {reason}\n{sink.Describe()}");
            }

            // 3. an alert that keeps firing: repeated after repeat_interval, with nothing else in between
            var heldFrom = sink.Deliveries.Count;
            sink.Triggers["hold"] = 1;
            await Until(c, sink, () => sink.Deliveries.Skip(heldFrom).Any(d => d.Reason == "repeat" && d.Alerts.Any(a => a.Name == "hold")),
                "a repeat of the held alert");
            var holding = sink.Deliveries.Skip(heldFrom).Where(d => d.Alerts.Any(a => a.Name == "hold")).ToList();
            Assert.Equal(["alerts-added", "repeat"], holding.Take(2).Select(d => d.Reason));
            // the same alert (fingerprint and start) both times; the first may carry along a
            // resolution a replica had not flushed yet (see Shape)
            string Held(Delivery d) => NotificationLedger.Content(d with { Alerts = d.Alerts.Where(a => a.Name == "hold").ToList() });
            Assert.Equal(Held(holding[0]), Held(holding[1]));
            Assert.InRange(holding[1].At - holding[0].At, Repeat * 0.9, Repeat * 3);
            sink.Triggers["hold"] = 0;
            await WaitForCycles(c, sink, "hold", 1, "resolved");
            await Task.Delay(TimeSpan.FromSeconds(3 * AlertTests.PeerTimeoutSeconds + 3)); // what the other Alertmanagers would send

            output.WriteLine(sink.Describe());
            var all = sink.Deliveries.Where(d => d.Alerts.Any(a => a.Alert == "DemoTrigger")).ToList();
            var report = NotificationLedger.Count(all, new Dictionary<string, (int, int)>
                { ["flap"] = (Cycles, Cycles), ["x"] = (2, 2), ["y"] = (1, 1), ["hold"] = (1, 1) }, Repeat);
            Assert.Empty(report.LostFiring);
            Assert.Empty(report.LostResolved);
            Assert.Empty(report.DoubledByContent);
            // the flapping alert: each cycle once firing and once resolved, refired from the second on
            var flaps = report.Cycles.Where(x => x.Name == "flap").OrderBy(x => x.StartsAt).ToList();
            Assert.Equal(Cycles, flaps.Count);
            foreach (var (cycle, i) in flaps.Select((x, i) => (x, i)))
            {
                Assert.True(cycle.Firing.Select(d => d.Id).Distinct().Count() == 1, $"cycle {i + 1} fired in {cycle.Firing.Count} deliveries");
                // Once, as news. A later notification sent for another alert's news may carry it along
                // as an Alertmanager wrote it: Prometheus resends a resolved alert a minute later and
                // an Alertmanager takes it into the group again (seen in CI: hold's resolution 61 s
                // after the last flap's), and a replica that had not flushed the resolution yet when
                // x fired sends both (seen in CI: 2 s after; a plain Alertmanager cluster does the
                // same). Never on its own.
                Assert.True(cycle.Resolved.Count >= 1 && cycle.Resolved[0].Alerts.Any(a => a.Name == "flap" && a.Status == "resolved"),
                    $"cycle {i + 1} never resolved");
                foreach (var again in cycle.Resolved.Skip(1))
                    Assert.True(again.Alerts.Any(a => a.Name != "flap"), $"cycle {i + 1} resolved again in {again.Id} ({again.Reason}) without other news");
                Assert.Contains(cycle.Firing[0].Reason, i == 0 ? new[] { "first", "alerts-added" } : new[] { "refired", "after-failover" });
            }
            Assert.Contains(flaps, x => x.Firing[0].Node != flaps[0].Firing[0].Node); // delivered by the new master after the kill

            // every suppression explains itself: why, and which delivery it duplicated
            var notifications = await PairTests.Notifications(c, master);
            var delivered = notifications.Where(n => n.State == "delivered").Select(n => n.Id).ToHashSet();
            foreach (var dup in notifications.Where(n => n.State == "duplicate"))
            {
                Assert.Contains(dup.Reason, new[] { DeliveryReasons.Copy, DeliveryReasons.Retry, DeliveryReasons.WithinRepeat, DeliveryReasons.NothingNew, DeliveryReasons.Stale });
                if (dup.Reason != DeliveryReasons.NothingNew) Assert.True(dup.DuplicateOf is { } of && delivered.Contains(of), $"{dup.Id} ({dup.Reason}) names {dup.DuplicateOf}, not a delivered notification");
            }
            // and the master counts its suppressions by why
            var metrics = await AlertTests.Get($"{master.HttpUrl}/metrics");
            foreach (var why in notifications.Where(n => n.State == "duplicate" && n.DeliveredBy == master.Name).Select(n => n.Reason).Distinct())
                Assert.Matches($@"promha_notifications_deduplicated_total\{{receiver=""sink"",why=""{why}""\}} [1-9]", metrics);
        }
        catch
        {
            output.WriteLine(sink.Describe());
            throw;
        }
    }

    /// <summary>
    /// A trigger notification's alerts, by name and state, sorted: "x+ y-"; without resolutions the
    /// receiver already had (<paramref name="earlier"/>), which a replica's notification carries
    /// along when it had not flushed them yet.
    /// </summary>
    private static string Shape(Delivery d, IReadOnlyList<Delivery> earlier) =>
        string.Join(' ', d.Alerts
            .Where(a => a.Alert == "DemoTrigger")
            .Where(a => !(a.Status == "resolved" && earlier.Any(e => e.Alerts.Any(b => b.Fingerprint == a.Fingerprint && b.StartsAt == a.StartsAt && b.Status == "resolved"))))
            .Select(a => $"{a.Name}{(a.Status == "resolved" ? "-" : "+")}").Order(StringComparer.Ordinal));

    /// <summary>
    /// Waits until every running replica's Prometheus has the trigger's alert active (or none has):
    /// the next edge comes after all of them saw this one. A flap shorter than the replicas' scrape
    /// and evaluation phases (seen in CI: one replica resolved while another had not yet fired, and
    /// fired after that end) is an extra cycle for a plain Alertmanager cluster too; this test pages
    /// the cycles every replica saw.
    /// </summary>
    private static async Task ReplicasAgree(LocalCluster c, string name, bool firing, LocalNode? down)
    {
        foreach (var n in c.Nodes.Where(n => n != down))
            await c.WaitUntil(async () =>
            {
                try
                {
                    var alerts = JsonDocument.Parse(await AlertTests.Get($"{n.PrometheusUrl}/api/v1/alerts")).RootElement.GetProperty("data").GetProperty("alerts");
                    var states = alerts.EnumerateArray()
                        .Where(a => a.GetProperty("labels").TryGetProperty("name", out var l) && l.GetString() == name)
                        .Select(a => a.GetProperty("state").GetString()).ToList();
                    return firing ? states.Contains("firing") : states.Count == 0;
                }
                catch (Exception e) when (e is HttpRequestException or JsonException)
                {
                    // a restarted host's Prometheus still starting: refused, or "Service Unavailable"
                    // in plain text while it replays its WAL (seen in CI)
                    return false;
                }
            }, Generous, default, $"{n.Name}'s Prometheus to have {name} {(firing ? "firing" : "resolved")}");
    }

    /// <summary>Waits until the receiver saw <paramref name="count"/> firing cycles of an alert in this state.</summary>
    private static Task WaitForCycles(LocalCluster c, WebhookSink sink, string name, int count, string status) =>
        Until(c, sink, () => NotificationLedger.Count(sink.Deliveries, new Dictionary<string, (int, int)> { [name] = (0, 0) }, Repeat)
            .Cycles.Count(x => x.Name == name && (status == "firing" ? x.Firing : x.Resolved).Count > 0) >= count, $"{count} {status} cycle(s) of {name}");

    /// <summary>Waits for the receiver; a timeout shows what it had received by then.</summary>
    private static async Task Until(LocalCluster c, WebhookSink sink, Func<bool> done, string what)
    {
        try
        {
            await c.WaitUntil(() => Task.FromResult(done()), Generous, default, what);
        }
        catch (TimeoutException e)
        {
            throw new TimeoutException($"{e.Message}\nthe receiver got:\n{sink.Describe()}", e);
        }
    }
}
