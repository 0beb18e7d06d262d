using System.Net.ServerSentEvents;
using System.Runtime.CompilerServices;
using System.Text.Json;
using Akka.Actor;
using Microsoft.Extensions.FileProviders;
using PromHa.Node.Cluster;
using PromHa.Node.Http;

namespace PromHa.Node.Web;

/// <summary>
/// The operator's page, served by every node at `/`: its files are embedded in the executable (no
/// CDN, nothing fetched from the internet), and it follows the cluster through server-sent events.
/// It reads the same admin API as the console; its actions send the admin token like the console.
/// </summary>
public static class WebPage
{
    /// <summary>How often the event stream looks for a change of the node's status.</summary>
    public static readonly TimeSpan Tick = TimeSpan.FromMilliseconds(500);

    /// <summary>Every page response: no inline script, no other origin, never inside a frame (its buttons change the cluster).</summary>
    private const string Csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
                               "frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

    public static void MapWebPage(this WebApplication app)
    {
        // The files are flat (no folders), so the plain provider finds them by resource name; the
        // manifest provider parsed an XML manifest at start (Akka and linq2db still load the XML
        // assemblies, docs/failover.md: this only spares the parse).
        var files = new EmbeddedFileProvider(typeof(WebPage).Assembly, "PromHa.Node.Web.ui");
        app.UseWhen(http => http.Request.Path == "/" || http.Request.Path.StartsWithSegments("/ui"), page => page.Use(async (http, next) =>
        {
            http.Response.Headers.ContentSecurityPolicy = Csp;
            http.Response.Headers.XFrameOptions = "DENY";
            http.Response.Headers.XContentTypeOptions = "nosniff";
            http.Response.Headers["Referrer-Policy"] = "no-referrer";
            await next(http);
        }));
        app.UseStaticFiles(new StaticFileOptions { FileProvider = files, RequestPath = "/ui" });
        app.MapGet("/", async http =>
        {
            http.Response.ContentType = "text/html; charset=utf-8";
            http.Response.Headers.CacheControl = "no-cache";
            await http.Response.SendFileAsync(files.GetFileInfo("index.html"));
        });
        // The node's status as it changes: what the page's cluster view shows, within a tick of a failover.
        // Ends with the request or when the node stops: an open page must not hold a graceful stop up.
        app.MapGet("/api/v1/events", (NodeView v, ActorSystem system, IHostApplicationLifetime life, CancellationToken ct) =>
            TypedResults.ServerSentEvents(StatusEvents(v, system, ct, life.ApplicationStopping)));
    }

    private static async IAsyncEnumerable<SseItem<string>> StatusEvents(NodeView v, ActorSystem system, CancellationToken request,
        CancellationToken stopping, [EnumeratorCancellation] CancellationToken enumeration = default)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(request, stopping, enumeration);
        var ct = linked.Token;
        string? last = null;
        var quietSince = DateTime.UtcNow;
        using var timer = new PeriodicTimer(Tick);
        do
        {
            var json = JsonSerializer.Serialize(HttpEndpoints.Status(v, system), PageJson.Default.StatusResponse);
            // a status that did not change is sent again every 10 s, so a proxy keeps the stream open
            if (json != last || DateTime.UtcNow - quietSince > TimeSpan.FromSeconds(10))
            {
                last = json;
                quietSince = DateTime.UtcNow;
                yield return new SseItem<string>(json, "status") { ReconnectionInterval = TimeSpan.FromSeconds(1) };
            }
        } while (await WaitTick(timer, ct));
    }

    private static async Task<bool> WaitTick(PeriodicTimer timer, CancellationToken ct)
    {
        try
        {
            return await timer.WaitForNextTickAsync(ct);
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }
}

/// <summary>One line per event: SSE data fields cannot hold the API's indented JSON as one line.</summary>
[System.Text.Json.Serialization.JsonSerializable(typeof(StatusResponse))]
[System.Text.Json.Serialization.JsonSourceGenerationOptions(JsonSerializerDefaults.Web)]
public sealed partial class PageJson : System.Text.Json.Serialization.JsonSerializerContext;
