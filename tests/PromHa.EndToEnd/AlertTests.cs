using System.Text.Json;
using PromHa.Node.Demo;
using Xunit.Abstractions;

namespace PromHa.EndToEnd;

/// <summary>
/// Alerting end to end: real Prometheus and Alertmanager on every node, their webhooks through the
/// nodes' notification gates, and a real webhook receiver that records every delivery.
/// </summary>
public class AlertTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Generous = RealCluster.Generous;
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(5) };
    /// <summary>Alertmanager's peer timeout here (15 s by default): the n-th Alertmanager sends n x this after the first, unless gossip told it the first did.</summary>
    private const int PeerTimeoutSeconds = 3;
    /// <summary>Long enough for the other Alertmanagers to send what they would.</summary>
    private static readonly TimeSpan PeersWouldHaveSent = TimeSpan.FromSeconds(3 * PeerTimeoutSeconds + 3);

    [Fact]
    public async Task An_alert_every_replica_evaluates_reaches_the_receiver_once_firing_and_once_resolved_from_the_master()
    {
        using var sink = new WebhookSink();
        await using var rc = await RealCluster.Start(output, nodes: 3, servers: LocalServers.Supervised, alertmanager: true,
            alerting: new LocalAlerting(sink.WebhookUrl, sink.Target, PeerTimeout: $"{PeerTimeoutSeconds}s"));
        var c = rc.Cluster;
        try
        {
            var master = await c.WaitForSingleMaster(Generous);
            // Rendered: every Prometheus sends to every node's Alertmanager.
            foreach (var n in c.Nodes)
                await c.WaitUntil(async () => await ActiveAlertmanagers(n) == c.Nodes.Count, Generous, default,
                    $"{n.Name}'s Prometheus to send to all {c.Nodes.Count} Alertmanagers");

            sink.Trigger = 1;
            await c.WaitUntil(() => Task.FromResult(sink.Deliveries.Any(d => d.Status == "firing")), Generous, default, "the firing notification");
            // Every replica evaluated the rule, and every Alertmanager holds one alert, without the replica label.
            foreach (var n in c.Nodes)
            {
                Assert.Contains("DemoTrigger", await Get($"{n.PrometheusUrl}/api/v1/alerts"));
                var alerts = JsonDocument.Parse(await Get($"{n.AlertmanagerUrl}/api/v2/alerts?filter=alertname%3D%22DemoTrigger%22")).RootElement;
                Assert.Equal(1, alerts.GetArrayLength());
                Assert.False(alerts[0].GetProperty("labels").TryGetProperty("promha_replica", out _), "the replica label reached Alertmanager");
            }
            await Task.Delay(PeersWouldHaveSent);

            sink.Trigger = 0;
            await c.WaitUntil(() => Task.FromResult(sink.Deliveries.Any(d => d.Status == "resolved")), Generous, default, "the resolved notification");
            await Task.Delay(PeersWouldHaveSent);

            var all = sink.Deliveries;
            output.WriteLine(sink.Describe());
            Assert.Equal(2, all.Count);
            Assert.Equal(("firing", "first"), (all[0].Status, all[0].Reason));
            Assert.Equal(("resolved", "resolved"), (all[1].Status, all[1].Reason));
            Assert.All(all, d => Assert.Equal(master.Name, d.Node));
            Assert.All(all, d => Assert.False(string.IsNullOrEmpty(d.Id)));
            Assert.NotEqual(all[0].Id, all[1].Id);
            Assert.Single(all[0].Alerts);
        }
        catch
        {
            output.WriteLine(sink.Describe());
            throw;
        }
    }

    internal static async Task<string> Get(string url)
    {
        using var r = await Http.GetAsync(url);
        return await r.Content.ReadAsStringAsync();
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
