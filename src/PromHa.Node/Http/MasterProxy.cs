using System.Net;
using PromHa.Node.Cluster;
using PromHa.Node.Groups;
using PromHa.Node.Settings;
using Yarp.ReverseProxy.Forwarder;

namespace PromHa.Node.Http;

/// <summary>
/// The stable endpoint that replaces the VIP: every node forwards /prometheus/... to the current
/// master's Prometheus and /alertmanager/... to its Alertmanager (Yarp's direct forwarder), so that
/// Grafana, amtool and people can point at any node, or at a load balancer that asks /primary.
/// Lifecycle endpoints (/-/reload, /-/quit) and Prometheus's admin API are not forwarded: PromHa owns
/// those servers' lifecycle, and the proxy must not let anyone who reaches it stop the master's.
/// </summary>
public static class MasterProxy
{
    public const string PrometheusPrefix = "/prometheus";
    public const string AlertmanagerPrefix = "/alertmanager";

    private static readonly HttpMessageInvoker Client = new(new SocketsHttpHandler
    {
        UseProxy = false,
        AllowAutoRedirect = false,
        AutomaticDecompression = DecompressionMethods.None,
        UseCookies = false,
        ConnectTimeout = TimeSpan.FromSeconds(5),
    });

    public static IServiceCollection AddMasterProxy(this IServiceCollection services) => services.AddHttpForwarder();

    public static void MapMasterProxy(this WebApplication app)
    {
        // Prometheus: POSTs are queries (Grafana sends them so); open like the reads.
        Map(app, PrometheusPrefix, (s, _) => s.Prometheus, n => n.PrometheusUrl, writesNeedToken: false);
        // Alertmanager: a POST or DELETE makes or expires silences and alerts; through this port
        // (often reachable from more places than Alertmanager's own) it needs the admin token.
        Map(app, AlertmanagerPrefix, (s, _) => s.Alertmanager, n => n.AlertmanagerUrl, writesNeedToken: true);
    }

    private static void Map(WebApplication app, string prefix, Func<NodeSettings, NodeView, ManagedServer> local,
        Func<Messages.Roles.NodeHealthView, string?> remote, bool writesNeedToken)
    {
        var handler = async (HttpContext ctx, IHttpForwarder forwarder, NodeView view, NodeSettings s) =>
        {
            if (await Admitted(ctx, prefix, writesNeedToken) is not { } rest) return;
            var snap = view.Current;
            var target = view.IsMaster
                ? local(s, view) is { Mode: not ServerMode.None } own ? own.EffectiveUrl : null
                : snap.Master is { } m ? snap.Status?.Nodes.FirstOrDefault(n => n.Node == m) is { } node ? remote(node) : null : null;
            await Forward(ctx, forwarder, prefix, rest, snap.Master, target);
        };
        app.Map(prefix, handler);
        app.Map(prefix + "/{**rest}", handler);
    }

    /// <summary>
    /// Any group's master through any node: /groups/&lt;name&gt;/prometheus/... and
    /// /groups/&lt;name&gt;/alertmanager/..., the stable endpoint a global Prometheus federates
    /// (its master from the group's singleton heartbeat, <see cref="GroupsView"/>).
    /// </summary>
    public static void MapGroupProxy(this WebApplication app)
    {
        MapGroup(app, "prometheus", n => n.PrometheusUrl, writesNeedToken: false);
        MapGroup(app, "alertmanager", n => n.AlertmanagerUrl, writesNeedToken: true);
    }

    private static void MapGroup(WebApplication app, string server, Func<Messages.Roles.NodeHealthView, string?> url, bool writesNeedToken)
    {
        var handler = async (HttpContext ctx, string group, IHttpForwarder forwarder, GroupsView groups) =>
        {
            var prefix = $"/groups/{group}/{server}";
            if (await Admitted(ctx, prefix, writesNeedToken) is not { } rest) return;
            if (groups.Find(group) is null)
            {
                ctx.Response.StatusCode = 404;
                await ctx.Response.WriteAsync($"404: no group '{group}' in cluster.groups (groups: {string.Join(", ", groups.Groups.Select(g => g.Name))})\n");
                return;
            }
            var master = groups.Master(group);
            await Forward(ctx, forwarder, prefix, rest, master?.Node, master is null ? null : url(master));
        };
        app.Map($"/groups/{{group}}/{server}", handler);
        app.Map($"/groups/{{group}}/{server}/{{**rest}}", handler);
    }

    /// <summary>
    /// The path under <paramref name="prefix"/> to forward, or null when the request was answered
    /// here: a write without the token (401), a lifecycle or admin call (403).
    /// </summary>
    private static async Task<string?> Admitted(HttpContext ctx, string prefix, bool writesNeedToken)
    {
        if (writesNeedToken && !await WriteAllowed(ctx)) return null;
        var rest = ctx.Request.Path.Value is { } p && p.Length > prefix.Length ? p[prefix.Length..] : "/";
        if (Refused(ctx.Request.Method, rest) is not { } why) return rest;
        ctx.Response.StatusCode = 403;
        await ctx.Response.WriteAsync($"403: {why}\n");
        return null;
    }

    private static async Task<bool> WriteAllowed(HttpContext ctx)
    {
        if (HttpMethods.IsGet(ctx.Request.Method) || HttpMethods.IsHead(ctx.Request.Method) ||
            ctx.RequestServices.GetService<AdminToken>() is not { } token) return true;
        if (!token.Matches(AdminToken.Presented(ctx.Request)))
        {
            ctx.Response.StatusCode = 401;
            ctx.Response.Headers.WWWAuthenticate = "Bearer realm=\"promha\"";
            await ctx.Response.WriteAsync("401 unauthorized: changing silences or alerts through PromHa needs the admin token " +
                                          "(amtool: --http.config.file with authorization credentials)\n");
            return false;
        }
        ctx.Request.Headers.Authorization = default; // Alertmanager has no use for PromHa's token
        return true;
    }

    private static async Task Forward(HttpContext ctx, IHttpForwarder forwarder, string prefix, string rest, string? master, string? target)
    {
        if (target is null)
        {
            ctx.Response.StatusCode = 503;
            ctx.Response.Headers.RetryAfter = "1";
            await ctx.Response.WriteAsync(master is null ? "503: no master right now\n" : $"503: the master {master} runs no such server, or its URL is not known yet\n");
            return;
        }
        ctx.Response.Headers["X-PromHa-Master"] = master ?? "";
        var error = await forwarder.SendAsync(ctx, target, Client, ForwarderRequestConfig.Empty, new PrefixTransformer(prefix, target, rest));
        if (error != ForwarderError.None && !ctx.Response.HasStarted)
        {
            ctx.Response.StatusCode = 502;
            await ctx.Response.WriteAsync($"502: the master's server at {target} did not answer ({error})\n");
        }
    }

    /// <summary>Why a request is not forwarded, or null.</summary>
    public static string? Refused(string method, string path)
    {
        var p = path.TrimStart('/');
        if (p.StartsWith("-/", StringComparison.Ordinal) && !(HttpMethods.IsGet(method) || HttpMethods.IsHead(method)))
            return "lifecycle endpoints (/-/reload, /-/quit) are not forwarded; PromHa reloads and runs the servers";
        if (p.StartsWith("api/v1/admin", StringComparison.Ordinal))
            return "Prometheus's admin API is not forwarded";
        return null;
    }

    /// <summary>Strips the prefix on the way in; puts it back in redirects on the way out.</summary>
    private sealed class PrefixTransformer(string prefix, string target, string rest) : HttpTransformer
    {
        public override async ValueTask TransformRequestAsync(HttpContext ctx, HttpRequestMessage proxyRequest, string destinationPrefix,
            CancellationToken cancellationToken)
        {
            await base.TransformRequestAsync(ctx, proxyRequest, destinationPrefix, cancellationToken);
            proxyRequest.RequestUri = new Uri(target.TrimEnd('/') + rest + ctx.Request.QueryString.Value);
            proxyRequest.Headers.Host = null; // the server's own
        }

        public override async ValueTask<bool> TransformResponseAsync(HttpContext ctx, HttpResponseMessage? proxyResponse, CancellationToken cancellationToken)
        {
            var result = await base.TransformResponseAsync(ctx, proxyResponse, cancellationToken);
            if (ctx.Response.Headers.Location.ToString() is { Length: > 0 } location && location.StartsWith('/') && !location.StartsWith("//"))
                ctx.Response.Headers.Location = prefix + location;
            return result;
        }
    }
}
