using System.Text.Json.Serialization;
using Akka.Actor;
using Akka.Hosting;
using PromHa.Messages.Alerts;
using PromHa.Node.Config;
using PromHa.Node.Http;
using PromHa.Node.Settings;

namespace PromHa.Node.Alerts;

public sealed record NotificationInfo(
    string Id, string Receiver, int Target, string GroupKey, int Firing, int Resolved, DateTimeOffset AcceptedAt, string AcceptedBy,
    long Epoch, string State, string? Reason, string? DeliveredBy, DateTimeOffset? SettledAt, int Attempts, string? Error,
    string? DuplicateOf);

public sealed record NotificationsResponse(IReadOnlyList<string> DirectIntegrations, IReadOnlyList<NotificationInfo> Notifications);

[JsonSerializable(typeof(NotificationsResponse))]
[JsonSourceGenerationOptions(System.Text.Json.JsonSerializerDefaults.Web, WriteIndented = true)]
public sealed partial class GateJson : JsonSerializerContext;

/// <summary>
/// The gate's HTTP side: the webhook every receiver of the local Alertmanager points at
/// (/gate/{receiver}/{index}, rendered into alertmanager.yml with a secret derived from the admin
/// token), and the outbox as operators read it (/api/v1/notifications).
/// </summary>
public static class GateEndpoints
{
    public const string Path = "/gate";

    public static void MapGateEndpoints(this WebApplication app)
    {
        app.MapPost($"{Path}/{{receiver}}/{{target:int}}", async (HttpContext http, ActorRegistry registry, NodeSettings s, string receiver, int target) =>
        {
            if (http.RequestServices.GetService<AdminToken>() is { } token)
            {
                if (!token.MatchesGate(AdminToken.Presented(http.Request)))
                    return Results.Text("401 unauthorized: the gate takes notifications from this node's Alertmanager only (credentials rendered into alertmanager.yml)\n",
                        statusCode: 401);
            }
            var limit = s.Alerts.MaxPayloadBytes;
            if (http.Request.ContentLength > limit)
                return Results.Text($"413: the notification is larger than alerts.maxPayloadBytes ({limit}); set max_alerts on the webhook\n", statusCode: 413);
            using var buffer = new MemoryStream();
            var chunk = new byte[81920];
            int n;
            while ((n = await http.Request.Body.ReadAsync(chunk)) > 0)
            {
                buffer.Write(chunk, 0, n);
                if (buffer.Length > limit)
                    return Results.Text($"413: the notification is larger than alerts.maxPayloadBytes ({limit}); set max_alerts on the webhook\n", statusCode: 413);
            }
            try
            {
                var answer = await registry.Get<GateKey>().Ask<AcceptAnswer>(new AcceptNotification(receiver, target, buffer.ToArray()), TimeSpan.FromSeconds(15));
                return Results.Text(answer.Message + "\n", statusCode: answer.Status);
            }
            catch (AskTimeoutException)
            {
                return Results.Text("503: the gate did not store the notification within 15 s; Alertmanager retries\n", statusCode: 503);
            }
        });

        app.MapGet("/api/v1/notifications", async (ActorRegistry registry, GateRoutes routes, int? limit) =>
        {
            var recent = await registry.Get<OutboxKey>().Ask<RecentNotifications>(new GetRecentNotifications(Math.Clamp(limit ?? 100, 1, 1000)), TimeSpan.FromSeconds(5));
            return Results.Json(new NotificationsResponse(routes.Table.Direct, recent.Entries.Select(e => new NotificationInfo(
                e.Record.Id, e.Record.Receiver, e.Record.Target, e.Record.GroupKey, e.Record.Firing.Count, e.Record.Resolved.Count,
                e.Record.AcceptedAt, e.Record.AcceptedBy, e.Record.Epoch, (e.Outcome?.State ?? DeliveryState.Pending).ToString().ToLowerInvariant(),
                e.Outcome?.Reason, e.Outcome?.By, e.Outcome?.At, e.Outcome?.Attempts ?? 0, e.Outcome?.Error, e.Outcome?.DuplicateOf)).ToList()), GateJson.Default.NotificationsResponse);
        });
    }

    /// <summary>How this node's Alertmanager reaches the gate: the node's own HTTP listener, seen from the same host.</summary>
    public static GateRendering? Rendering(NodeSettings s, AdminToken? token) =>
        s.Alertmanager.Mode == ServerMode.None ? null : LocalApi(s, token, Path);

    /// <summary>A path of this node's API as its own servers reach it, with the gate's secret.</summary>
    public static GateRendering? LocalApi(NodeSettings s, AdminToken? token, string path)
    {
        var ca = s.Tls.Http && s.Tls.CaFile.Length > 0 ? s.Tls.CaFile : null;
        // A server in another container (the sidecar layout) reaches the node by its name.
        if (s.Alerts.GateUrl.Length > 0) return new GateRendering($"{s.Alerts.GateUrl.TrimEnd('/')}{path}", token?.GateSecret(), ca);
        if (!SettingsLoader.TryHostPort(s.Http.Listen, out var host, out var port)) return null;
        if (SettingsLoader.IsAnyAddress(host) || host == "localhost") host = "127.0.0.1";
        var scheme = s.Tls.Http ? "https" : "http";
        return new GateRendering($"{scheme}://{(host.Contains(':') ? $"[{host}]" : host)}:{port}{path}", token?.GateSecret(), ca);
    }
}
