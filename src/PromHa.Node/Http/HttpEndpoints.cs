using System.Text.Json;
using System.Text.Json.Serialization;
using Akka.Actor;
using Akka.Hosting;
using PromHa.Messages.Ledger;
using PromHa.Messages.Roles;
using PromHa.Node.Cluster;
using PromHa.Node.Groups;
using PromHa.Node.Master;
using PromHa.Node.Settings;

namespace PromHa.Node.Http;

/// <summary>The JSON the admin API returns; the console reads the same records.</summary>
public sealed record MemberInfo(string Node, string Address, string Status, bool Reachable, IReadOnlyList<string> Roles);

public sealed record LocalHealth(bool PrometheusHealthy, bool AlertmanagerHealthy, string? Detail);

public sealed record StatusResponse(
    string Node,
    string Role,
    bool IsMaster,
    long Epoch,
    string? Master,
    string? SingletonNode,
    bool Witness,
    LocalHealth? Health,
    IReadOnlyList<MemberInfo> Members,
    IReadOnlyList<NodeHealthView> Nodes,
    long ConfigApplied = 0,
    long ConfigLatest = 0,
    SplitView? Split = null,
    double? LeaseLeftSeconds = null,
    bool Paused = false,
    string? PausedBy = null,
    DateTimeOffset? PausedSince = null,
    string Group = GroupScope.DefaultName);

/// <summary>One HA group as this node last heard from its singleton (GET /api/v1/groups).</summary>
public sealed record GroupInfo(string Name, string? Master, long Epoch, IReadOnlyList<string> Nodes, string? PrometheusUrl, double? StatusAgeSeconds);

/// <param name="Hooks">The on-role-change hooks this node ran for the epoch, with their results.</param>
public sealed record HistoryEntry(long Epoch, string Node, string Reason, DateTimeOffset At, string? Previous, IReadOnlyList<HookRun>? Hooks = null);

/// <summary>The answer to an operator's action (switchover, leave, down): taken or not, and why.</summary>
public sealed record ActionResponse(bool Accepted, string Message);

[JsonSerializable(typeof(StatusResponse))]
[JsonSerializable(typeof(List<HistoryEntry>))]
[JsonSerializable(typeof(List<MemberInfo>))]
[JsonSerializable(typeof(ActionResponse))]
[JsonSerializable(typeof(ConfigSubmitResponse))]
[JsonSerializable(typeof(List<ConfigVersionInfo>))]
[JsonSerializable(typeof(ConfigVersionDetail))]
[JsonSerializable(typeof(ConfigStatusResponse))]
[JsonSerializable(typeof(ConfigDiffResponse))]
[JsonSerializable(typeof(List<GroupInfo>))]
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, WriteIndented = true)]
public sealed partial class ApiJson : JsonSerializerContext;

/// <summary>
/// Every node's HTTP surface: load-balancer probes (/primary, /standby, /health) that replace the
/// keepalived VIP, and the admin API the console talks to.
/// </summary>
public static class HttpEndpoints
{
    public static void MapPromHaEndpoints(this WebApplication app)
    {
        // Load balancers: 200 or 503, GET or HEAD, answered from memory.
        app.MapMethods("/primary", ["GET", "HEAD"], (NodeView v) =>
            v.IsMaster ? Results.Text("master\n") : Results.Text("not master\n", statusCode: 503));
        app.MapMethods("/standby", ["GET", "HEAD"], (NodeView v) =>
            !v.IsMaster && !v.Witness && v.PrometheusHealthy
                ? Results.Text("standby\n")
                : Results.Text(v.IsMaster ? "master\n" : "not a healthy standby\n", statusCode: 503));
        app.MapMethods("/health", ["GET", "HEAD"], (NodeView v) =>
            v.Witness || v.PrometheusHealthy
                ? Results.Text("ok\n")
                : Results.Text($"prometheus unhealthy: {v.Current.Health?.Detail ?? "not probed yet"}\n", statusCode: 503));

        app.MapGet("/api/v1/status", (NodeView v, ActorSystem system) => Results.Json(Status(v, system), ApiJson.Default.StatusResponse));
        app.MapGet("/api/v1/cluster", (ActorSystem system) => Results.Json(Members(system), ApiJson.Default.ListMemberInfo));
        app.MapGet("/api/v1/history", async (ActorRegistry registry, int? limit) =>
        {
            var ledger = registry.Get<LedgerKey>();
            var events = await ledger.Ask<List<MasterChanged>>(new GetHistory(limit ?? 100), TimeSpan.FromSeconds(5));
            var hooks = await registry.Get<RoleHooksKey>().Ask<List<HookRun>>(GetHookRuns.Instance, TimeSpan.FromSeconds(5));
            return Results.Json(events.Select(e => new HistoryEntry(e.Epoch, e.Node, e.Reason, e.At, e.Previous,
                    hooks.Where(h => h.Epoch == e.Epoch).ToList() is { Count: > 0 } ran ? ran : null)).ToList(),
                ApiJson.Default.ListHistoryEntry);
        });
        app.MapConfigEndpoints();
        app.MapPost("/api/v1/switchover", (ActorRegistry registry, string? to) => AskMaster(registry, new RequestSwitchover(to))).RequireAdmin();
        // patronictl failover: no healthy master needed; force: onto a node whose Prometheus is reported unhealthy
        app.MapPost("/api/v1/failover", (ActorRegistry registry, string? to, bool? force) =>
            AskMaster(registry, new RequestSwitchover(to, Failover: true, Force: force == true))).RequireAdmin();
        // Patroni's pause: maintenance without automatic failover, recorded on a majority of the ledgers
        app.MapPost("/api/v1/pause", (ActorRegistry registry, string? by) => AskMaster(registry, new RequestMaintenance(true, by ?? "api"))).RequireAdmin();
        app.MapPost("/api/v1/resume", (ActorRegistry registry, string? by) => AskMaster(registry, new RequestMaintenance(false, by ?? "api"))).RequireAdmin();
        // patronictl remove / Petabridge.Cmd's cluster leave and down: a node taken out for good
        // leaves gracefully (hands over what it holds); down is for a node already dead.
        app.MapPost("/api/v1/cluster/leave", (ActorSystem system, string node) => ChangeMembership(system, node, down: false)).RequireAdmin();
        app.MapPost("/api/v1/cluster/down", (ActorSystem system, string node) => ChangeMembership(system, node, down: true)).RequireAdmin();
    }

    private static async Task<IResult> AskMaster(ActorRegistry registry, Messages.IPromHaMessage request)
    {
        try
        {
            var r = await registry.Get<MasterProxyKey>().Ask<SwitchoverResult>(request, TimeSpan.FromSeconds(5));
            return Results.Json(new ActionResponse(r.Accepted, r.Message), ApiJson.Default.ActionResponse, statusCode: r.Accepted ? 202 : 409);
        }
        catch (AskTimeoutException)
        {
            return Results.Json(new ActionResponse(false, "the master singleton did not answer within 5 s"),
                ApiJson.Default.ActionResponse, statusCode: 503);
        }
    }

    private static IResult ChangeMembership(ActorSystem system, string node, bool down)
    {
        var cluster = Akka.Cluster.Cluster.Get(system);
        var member = cluster.State.Members.FirstOrDefault(m => MemberRoles.NodeName(m) == node);
        if (member is null)
            return Results.Json(new ActionResponse(false, $"no member named '{node}' in this node's cluster (promha cluster show lists them)"),
                ApiJson.Default.ActionResponse, statusCode: 404);
        if (down)
        {
            cluster.Down(member.Address);
            return Results.Json(new ActionResponse(true, $"{node} ({member.Address}) is marked down: it is removed from the cluster, " +
                                                         "and the process, if it still runs, stops (exit code 3)"), ApiJson.Default.ActionResponse, statusCode: 202);
        }
        cluster.Leave(member.Address);
        return Results.Json(new ActionResponse(true, $"{node} ({member.Address}) leaves the cluster: it hands over its roles and stops"),
            ApiJson.Default.ActionResponse, statusCode: 202);
    }

    public static StatusResponse Status(NodeView v, ActorSystem system)
    {
        var snap = v.Current;
        var paused = snap.Status?.Maintenance is { Paused: true } m ? m : null;
        var role = v.Witness ? "witness" : snap.HoldsLease ? "master" : "standby";
        return new StatusResponse(v.NodeName, role, snap.HoldsLease, snap.Epoch, snap.Master,
            snap.Status?.SingletonNode, v.Witness,
            snap.Health is { } h ? new LocalHealth(h.PrometheusHealthy, h.AlertmanagerHealthy, h.Detail) : null,
            Members(system), WithConfig(snap.Status?.Nodes ?? [], v.ConfigCluster), v.ConfigApplied,
            Math.Max(v.ConfigLatest, v.ConfigCluster?.Latest?.Version ?? 0),
            v.Split,
            LeaseLeft(v, DateTimeOffset.UtcNow),
            paused is not null, paused?.By, paused?.At, v.Group);
    }

    /// <summary>The master's lease: its own count on the master, the singleton's last word elsewhere.</summary>
    private static double? LeaseLeft(NodeView v, DateTimeOffset now)
    {
        if (v.IsMaster) return Math.Round(v.LeaseLeft(now).TotalSeconds, 1);
        return v.Current.Status is { LeaseExpiresAt: { } until, At: var at } && v.Current.Status.Master is not null
            ? Math.Round(Math.Max(0, (until - at).TotalSeconds), 1)
            : null;
    }

    /// <summary>Each node's health (master singleton) beside the config version it runs (config-versions singleton).</summary>
    private static IReadOnlyList<NodeHealthView> WithConfig(IReadOnlyList<NodeHealthView> nodes, Messages.Config.ConfigHeartbeat? config) =>
        config is null ? nodes : nodes.Select(n => config.Nodes.FirstOrDefault(c => c.Node == n.Node) is { } c
            ? n with { ConfigVersion = c.Applied, ConfigError = c.FailedReason, ConfigState = c.State, ConfigBehindSince = c.BehindSince }
            : n).ToList();

    public static List<MemberInfo> Members(ActorSystem system)
    {
        var cluster = Akka.Cluster.Cluster.Get(system);
        var state = cluster.State;
        return state.Members.OrderBy(m => m.Address.ToString(), StringComparer.Ordinal)
            .Select(m => new MemberInfo(
                MemberRoles.NodeName(m) ?? "?",
                m.Address.ToString(),
                m.Status.ToString(),
                !state.Unreachable.Contains(m),
                m.Roles.Order(StringComparer.Ordinal).ToList()))
            .ToList();
    }
}
