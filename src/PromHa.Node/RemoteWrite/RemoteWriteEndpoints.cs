using Akka.Actor;
using Akka.Hosting;
using PromHa.Node.Config;
using PromHa.Node.Http;
using PromHa.Node.Settings;

namespace PromHa.Node.RemoteWrite;

/// <summary>
/// Where the local Prometheus writes for a master-only receiver: /api/v1/remote-write/{receiver},
/// rendered into prometheus.yml with the gate's secret (derived from the admin token).
/// </summary>
public static class RemoteWriteEndpoints
{
    public const string Path = "/api/v1/remote-write";
    /// <summary>A remote-write request, compressed; Prometheus sends a few hundred KiB at most.</summary>
    public const int MaxBodyBytes = 32 * 1024 * 1024;

    public static void MapRemoteWriteEndpoints(this WebApplication app)
    {
        app.MapPost($"{Path}/{{receiver}}", async (HttpContext http, ActorRegistry registry, string receiver) =>
        {
            if (http.RequestServices.GetService<AdminToken>() is { } token && !token.MatchesGate(AdminToken.Presented(http.Request)))
                return Results.Text("401 unauthorized: the remote-write gate takes batches from this node's Prometheus only (credentials rendered into prometheus.yml)\n",
                    statusCode: 401);
            if (http.Request.ContentLength > MaxBodyBytes)
                return Results.Text($"413: a remote-write request over {MaxBodyBytes} bytes\n", statusCode: 413);
            using var buffer = new MemoryStream();
            await http.Request.Body.CopyToAsync(buffer);
            if (buffer.Length > MaxBodyBytes) return Results.Text($"413: a remote-write request over {MaxBodyBytes} bytes\n", statusCode: 413);
            WriteBatch batch;
            try
            {
                batch = WriteRequestCodec.Batch(buffer.ToArray());
            }
            catch (InvalidDataException e)
            {
                return Results.Text($"400: {e.Message}\n", statusCode: 400);
            }
            try
            {
                var answer = await registry.Get<RemoteWriteGateKey>().Ask<AcceptWriteAnswer>(new AcceptWrite(receiver, batch), TimeSpan.FromSeconds(5));
                return answer.Status == 204 ? Results.NoContent() : Results.Text(answer.Message + "\n", statusCode: answer.Status);
            }
            catch (AskTimeoutException)
            {
                return Results.Text("503: the remote-write gate did not answer within 5 s; Prometheus retries\n", statusCode: 503);
            }
        });
    }

    /// <summary>How this node's Prometheus reaches the gate (the node's own HTTP listener, or alerts.gateUrl from another container).</summary>
    public static GateRendering? Rendering(NodeSettings s, AdminToken? token)
    {
        if (s.Prometheus.Mode == ServerMode.None) return null;
        return Alerts.GateEndpoints.LocalApi(s, token, Path);
    }
}
