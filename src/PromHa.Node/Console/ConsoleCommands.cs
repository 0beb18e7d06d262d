using System.CommandLine;
using PromHa.Node.Http;

namespace PromHa.Node.Console;

/// <summary>
/// Operator verbs that talk to any node's HTTP API: `promha status`, `promha cluster show`,
/// `promha history`, `promha switchover`.
/// </summary>
public static class ConsoleCommands
{
    public const string DefaultApi = "http://127.0.0.1:8480";

    public static readonly Option<string> ApiOption = new("--api", "-a")
    {
        Description = "Base URL of any PromHa node's HTTP API (env PROMHA_API)",
        DefaultValueFactory = _ => Environment.GetEnvironmentVariable("PROMHA_API") ?? DefaultApi,
        Recursive = true,
    };

    public static readonly Option<string?> TokenFileOption = new("--token-file")
    {
        Description = "File holding the admin token (env PROMHA_TOKEN_FILE; PROMHA_TOKEN holds the token itself and wins)",
        DefaultValueFactory = _ => Environment.GetEnvironmentVariable("PROMHA_TOKEN_FILE"),
        Recursive = true,
    };

    public static readonly Option<string?> CaFileOption = new("--ca-file")
    {
        Description = "The cluster CA certificate, to trust nodes that serve HTTPS (env PROMHA_CA_FILE)",
        DefaultValueFactory = _ => Environment.GetEnvironmentVariable("PROMHA_CA_FILE"),
        Recursive = true,
    };

    public static readonly Option<string> OutputOption = CreateOutputOption();

    private static Option<string> CreateOutputOption()
    {
        var o = new Option<string>("--output", "-o")
        {
            Description = "text (default), or json: the API's own JSON, for scripts",
            DefaultValueFactory = _ => "text",
            Recursive = true,
        };
        o.AcceptOnlyFromAmong("text", "json");
        return o;
    }

    /// <summary>A read verb's result: as JSON with --output json, else as the verb prints it.</summary>
    public static int Print<T>(ParseResult p, T value, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> json, Func<T, int> text)
    {
        if (p.GetValue(OutputOption) != "json") return text(value);
        System.Console.WriteLine(System.Text.Json.JsonSerializer.Serialize(value, json));
        return 0;
    }

    public static IEnumerable<Command> All()
    {
        var status = new Command("status", "Show this node, the master, the epoch and every node's health");
        status.SetAction((p, ct) => Run(p, async api => Print(p, (await api.Status(ct))!, ApiJson.Default.StatusResponse, PrintStatus)));

        var groups = new Command("groups", "Every HA group in the cluster with its master, as this node last heard each group's singleton");
        groups.SetAction((p, ct) => Run(p, async api => Print(p, (await api.Groups(ct))!, ApiJson.Default.ListGroupInfo, PrintGroups)));

        var cluster = new Command("cluster", "Cluster membership");
        var show = new Command("show", "Members with address, status and roles");
        show.SetAction((p, ct) => Run(p, async api => Print(p, (await api.Members(ct))!, ApiJson.Default.ListMemberInfo, PrintMembers)));
        cluster.Add(show);
        foreach (var (verb, what) in new[]
                 {
                     ("leave", "Take a node out of the cluster gracefully: it hands over its roles and stops"),
                     ("down", "Mark a node that is gone (crashed, host lost) as down, so the cluster stops waiting for it"),
                 })
        {
            var node = new Argument<string>("node") { Description = "The node's name (promha cluster show)" };
            var verbCommand = new Command(verb, what) { node };
            verbCommand.SetAction((p, ct) => Run(p, async api => Acted(p, await api.Membership(verb, p.GetValue(node)!, ct))));
            cluster.Add(verbCommand);
        }

        var limit = new Option<int>("--limit") { Description = "How many role changes", DefaultValueFactory = _ => 50 };
        var history = new Command("history", "Role changes, newest first") { limit };
        history.SetAction((p, ct) => Run(p, async api => Print(p, (await api.History(p.GetValue(limit), ct))!, ApiJson.Default.ListHistoryEntry, PrintHistory)));

        var to = new Option<string?>("--to") { Description = "Node to hand the master role to (default: the best standby)" };
        var switchover = new Command("switchover", "Move the master role gracefully") { to };
        switchover.SetAction((p, ct) => Run(p, async api => Acted(p, await api.Switchover(p.GetValue(to), ct))));

        var failoverTo = new Option<string?>("--to") { Description = "Node to make master (default: the best healthy standby)" };
        var force = new Option<bool>("--force") { Description = "Also onto a node whose Prometheus is reported unhealthy" };
        var failover = new Command("failover",
            "Move the master role when no switchover is possible: no master, or an unhealthy one (the old lease still runs out first)")
            { failoverTo, force };
        failover.SetAction((p, ct) => Run(p, async api => Acted(p, await api.Failover(p.GetValue(failoverTo), p.GetValue(force), ct))));
        var pause = new Command("pause", "Maintenance: no automatic failover until `promha resume` (switchover and failover still work)");
        pause.SetAction((p, ct) => Run(p, async api => Acted(p, await api.Maintenance(true, Operator(), ct))));
        var resume = new Command("resume", "End maintenance: automatic failover again");
        resume.SetAction((p, ct) => Run(p, async api => Acted(p, await api.Maintenance(false, Operator(), ct))));
        return [status, groups, cluster, history, switchover, failover, pause, resume];
    }

    private static string Operator() => $"{Environment.UserName}@{Environment.MachineName}";

    /// <summary>An action's answer: 0 when taken, 1 when the cluster refused it (the reason is printed).</summary>
    public static int Acted(ParseResult p, ActionResponse r)
    {
        if (p.GetValue(OutputOption) == "json") System.Console.WriteLine(System.Text.Json.JsonSerializer.Serialize(r, ApiJson.Default.ActionResponse));
        else (r.Accepted ? System.Console.Out : System.Console.Error).WriteLine(r.Message);
        return r.Accepted ? 0 : 1;
    }

    public static async Task<int> Run(ParseResult p, Func<ApiClient, Task<int>> action)
    {
        ApiClient api;
        try
        {
            api = new ApiClient(p.GetValue(ApiOption)!, access: ApiAccess.ForConsole(p.GetValue(TokenFileOption), p.GetValue(CaFileOption)));
        }
        catch (ApiException e)
        {
            await System.Console.Error.WriteLineAsync($"promha: {e.Message}");
            return 2;
        }
        catch (UriFormatException e)
        {
            await System.Console.Error.WriteLineAsync($"promha: --api {p.GetValue(ApiOption)}: {e.Message}");
            return 2;
        }
        using var _ = api;
        try
        {
            return await action(api);
        }
        catch (HttpRequestException e) when (e.InnerException is System.Security.Authentication.AuthenticationException)
        {
            await System.Console.Error.WriteLineAsync($"promha: {api.BaseUrl} serves a certificate this console does not trust " +
                                                      $"({e.InnerException.Message}); set --ca-file or PROMHA_CA_FILE to the cluster's ca.crt");
            return 2;
        }
        catch (HttpRequestException e)
        {
            await System.Console.Error.WriteLineAsync($"promha: cannot reach {api.BaseUrl}: {e.Message} (set --api or PROMHA_API)");
            return 2;
        }
        catch (ApiException e)
        {
            await System.Console.Error.WriteLineAsync($"promha: {e.Message} (HTTP {e.Status})");
            return e.Status == 401 ? 3 : 1;
        }
        catch (TaskCanceledException)
        {
            await System.Console.Error.WriteLineAsync($"promha: {api.BaseUrl} did not answer in time");
            return 2;
        }
    }

    private static int PrintStatus(StatusResponse s)
    {
        System.Console.WriteLine($"node      {s.Node} ({s.Role}){(s.Group == Groups.GroupScope.DefaultName ? "" : $"   group {s.Group}")}");
        System.Console.WriteLine($"master    {s.Master ?? "(none)"}   epoch {s.Epoch}   singleton on {s.SingletonNode ?? "?"}" +
                                 (s.LeaseLeftSeconds is { } lease ? $"   lease {lease:0.0}s left" : ""));
        if (s.Paused)
            System.Console.WriteLine($"PAUSED    since {s.PausedSince:u} by {s.PausedBy}: no automatic failover until `promha resume`");
        if (s.Split is { } split)
            System.Console.WriteLine($"SPLIT     {split.PeerMaster} is ALSO master (epoch {split.PeerEpoch}) in a cluster without this node, " +
                                     $"since {split.Since:HH:mm:ss}Z; {(split.ThisSideKeeps ? "this side keeps the role" : "this node rejoins as standby")} when the link returns");
        if (s.Health is { } h)
            System.Console.WriteLine($"local     prometheus {(h.PrometheusHealthy ? "healthy" : "UNHEALTHY")}, alertmanager {(h.AlertmanagerHealthy ? "healthy" : "down")}{(h.Detail is null ? "" : $"  ({h.Detail})")}");
        System.Console.WriteLine();
        var rows = s.Nodes.Select(n => new[]
        {
            n.Node,
            n.Node == s.Master ? "master" : n.Witness ? "witness" : "standby",
            n.Reachable ? "yes" : "NO",
            n.Witness ? "-" : n.PrometheusHealthy ? "healthy" : "UNHEALTHY",
            n.Witness ? "-" : n.AlertmanagerHealthy ? "healthy" : "down",
            n.LastReportAgeSeconds is { } age ? $"{age:0.0}s ago" : "never",
            n.ConfigVersion is { } cv ? (n.ConfigError is null ? $"v{cv}" : $"v{cv} (FAILED newer)") : "-",
        });
        System.Console.WriteLine($"config    latest version {s.ConfigLatest}, this node runs {s.ConfigApplied}");
        PrintTable(["NODE", "ROLE", "REACHABLE", "PROMETHEUS", "ALERTMANAGER", "REPORTED", "CONFIG"], rows);
        return 0;
    }

    private static int PrintGroups(List<GroupInfo> groups)
    {
        PrintTable(["GROUP", "MASTER", "EPOCH", "NODES", "HEARD"], groups.Select(g => new[]
        {
            g.Name, g.Master ?? "(none)", g.Epoch.ToString(), string.Join(",", g.Nodes),
            g.StatusAgeSeconds is { } age ? $"{age:0.0}s ago" : "never",
        }));
        return 0;
    }

    private static int PrintMembers(List<MemberInfo> members)
    {
        PrintTable(["NODE", "ADDRESS", "STATUS", "REACHABLE", "ROLES"],
            members.Select(m => new[] { m.Node, m.Address, m.Status, m.Reachable ? "yes" : "NO", string.Join(",", m.Roles) }));
        return 0;
    }

    private static int PrintHistory(List<HistoryEntry> entries)
    {
        PrintTable(["EPOCH", "MASTER", "PREVIOUS", "REASON", "AT (UTC)", "HOOKS (this node)"],
            entries.Select(e => new[]
            {
                e.Epoch.ToString(), e.Node, e.Previous ?? "-", e.Reason, e.At.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss.fff"),
                e.Hooks is null ? "" : string.Join("; ", e.Hooks.Select(h =>
                    $"{Path.GetFileName(h.Script)} {h.Role}: {(h.TimedOut ? "timed out" : h.ExitCode is { } c ? $"exit {c}" : "not started")} in {h.Seconds:F1}s")),
            }));
        return 0;
    }

    public static void PrintTable(string[] header, IEnumerable<string[]> rows)
    {
        var all = rows.Prepend(header).ToList();
        var widths = header.Select((_, i) => all.Max(r => r[i].Length)).ToArray();
        foreach (var r in all)
            System.Console.WriteLine(string.Join("  ", r.Select((c, i) => c.PadRight(widths[i]))).TrimEnd());
    }
}
