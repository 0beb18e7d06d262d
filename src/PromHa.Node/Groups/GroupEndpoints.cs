using PromHa.Node.Http;

namespace PromHa.Node.Groups;

/// <summary>
/// What any node says of every group: GET /api/v1/groups, and /groups/&lt;name&gt;/primary (200
/// naming the group's master while its singleton's heartbeat names one, 503 otherwise) for tools
/// that follow a group's master without knowing its nodes. The proxies are in <see cref="MasterProxy"/>.
/// </summary>
public static class GroupEndpoints
{
    public static void MapGroupEndpoints(this WebApplication app)
    {
        app.MapGet("/api/v1/groups", (GroupsView groups) =>
            Results.Json(groups.Groups.Select(g => Info(groups, g)).ToList(), ApiJson.Default.ListGroupInfo));
        app.MapGet("/groups/{group}/primary", (string group, GroupsView groups) =>
        {
            if (groups.Find(group) is null)
                return Results.Text($"no group '{group}' (groups: {string.Join(", ", groups.Groups.Select(g => g.Name))})\n", statusCode: 404);
            return groups.Master(group) is { } master
                ? Results.Text($"{master.Node}\n")
                : Results.Text($"group {group} has no master right now\n", statusCode: 503);
        });
        app.MapGroupProxy();
    }

    private static GroupInfo Info(GroupsView groups, GroupScope g)
    {
        var heard = groups.Of(g.Name);
        var master = groups.Master(g.Name);
        var nodes = g.Scoped ? g.Nodes.Order(StringComparer.Ordinal).ToList() : heard?.Status.Nodes.Select(n => n.Node).ToList() ?? [];
        return new GroupInfo(g.Name, master?.Node, heard?.Status.Epoch ?? 0, nodes, master?.PrometheusUrl,
            groups.Age(g.Name) is { } age ? Math.Round(age.TotalSeconds, 1) : null);
    }
}
