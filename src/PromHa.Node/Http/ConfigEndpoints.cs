using System.Text;
using Akka.Actor;
using Akka.Hosting;
using DiffPlex.Renderer;
using Microsoft.AspNetCore.Http.Features;
using PromHa.Messages.Config;
using PromHa.Messages.Ledger;
using PromHa.Node.Cluster;
using PromHa.Node.Config;
using PromHa.Node.Master;
using PromHa.Node.Settings;

namespace PromHa.Node.Http;

public sealed record ConfigSubmitResponse(string Outcome, long? Version, string BundleHash, string? Reason);

public sealed record ConfigVersionInfo(long Version, string BundleHash, int FileCount, long Bytes, string Source, string Author,
    string Origin, DateTimeOffset At)
{
    public static ConfigVersionInfo Of(ConfigVersionCommitted c) =>
        new(c.Version, c.BundleHash, c.FileCount, c.Bytes, c.Source, c.Author, c.Origin, c.At);
}

public sealed record ConfigFileInfo(string Path, string Sha256, long Size);

public sealed record ConfigVersionDetail(ConfigVersionInfo Version, IReadOnlyList<ConfigFileInfo> Files);

public sealed record ConfigStatusResponse(
    string Node,
    long Applied,
    long Latest,
    long? FailedVersion,
    ConfigVersionInfo? LatestVersion,
    IReadOnlyList<NodeConfigView> Nodes,
    IReadOnlyList<CandidateRejected> Rejected,
    string? Note);

/// <summary>The configuration API: upload, versions, show, diff, rollback, status.</summary>
public static class ConfigEndpoints
{
    private static readonly TimeSpan AskTimeout = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan SubmitTimeout = TimeSpan.FromSeconds(90);

    public static void MapConfigEndpoints(this WebApplication app)
    {
        // A tar (or .tar.gz) of the conf tree, as `promha config apply DIR` sends it.
        app.MapPost("/api/v1/config/apply", async (HttpContext http, ActorRegistry registry, NodeSettings s, string? author, string? source) =>
        {
            http.Features.Get<IHttpMaxRequestBodySizeFeature>()!.MaxRequestBodySize = s.Config.MaxBundleBytes + 16 * 1024 * 1024;
            ConfBundle bundle;
            try
            {
                using var body = new MemoryStream();
                await http.Request.Body.CopyToAsync(body);
                body.Position = 0;
                bundle = ConfBundle.ReadArchive(body, "upload");
            }
            catch (Exception e) when (e is ConfTreeException or InvalidDataException or FormatException or EndOfStreamException)
            {
                return Submitted(new SubmitResult(SubmitOutcome.Rejected, null, "", $"not a readable tar of a conf tree: {e.Message}"));
            }
            return Submitted(await Submit(registry, new SubmitTree(bundle, $"api:{source ?? "upload"}", author ?? "unknown")));
        });

        app.MapPost("/api/v1/config/rollback/{version:long}", async (ActorRegistry registry, NodeSettings s, long version, string? author) =>
        {
            var (committed, bundle, error) = await Load(registry, s, version);
            if (error is not null) return error;
            return Submitted(await Submit(registry, new SubmitTree(bundle!, $"rollback:{committed!.Version}", author ?? "unknown")));
        });

        app.MapGet("/api/v1/config/versions", async (ActorRegistry registry, int? limit) =>
        {
            var versions = await registry.Get<LedgerKey>().Ask<List<ConfigVersionCommitted>>(new GetConfigVersions(limit ?? 50), AskTimeout);
            return Results.Json(versions.Select(ConfigVersionInfo.Of).ToList(), ApiJson.Default.ListConfigVersionInfo);
        });

        app.MapGet("/api/v1/config/versions/{version:long}", async (ActorRegistry registry, NodeSettings s, long version) =>
        {
            var (committed, bundle, error) = await Load(registry, s, version);
            if (error is not null) return error;
            return Results.Json(new ConfigVersionDetail(ConfigVersionInfo.Of(committed!),
                bundle!.Files.Values.Select(f => new ConfigFileInfo(f.Path, f.Sha256, f.Content.Length)).ToList()),
                ApiJson.Default.ConfigVersionDetail);
        });

        app.MapGet("/api/v1/config/versions/{version:long}/files/{**path}", async (ActorRegistry registry, NodeSettings s, long version, string path) =>
        {
            var (_, bundle, error) = await Load(registry, s, version);
            if (error is not null) return error;
            return bundle!.Get(path) is { } content
                ? Results.Bytes(content, "text/plain; charset=utf-8")
                : Results.Text($"version {version} has no file {path}\n", statusCode: 404);
        });

        app.MapGet("/api/v1/config/diff", async (ActorRegistry registry, NodeSettings s, long from, long to) =>
        {
            var a = await Load(registry, s, from);
            if (a.Error is not null) return a.Error;
            var b = await Load(registry, s, to);
            if (b.Error is not null) return b.Error;
            return Results.Text(Diff(a.Bundle!, b.Bundle!, from, to), "text/plain; charset=utf-8");
        });

        app.MapGet("/api/v1/config/status", async (ActorRegistry registry, NodeView view) =>
        {
            LocalConfig local;
            try
            {
                local = await registry.Get<ConfigSyncKey>().Ask<LocalConfig>(GetLocalConfig.Instance, TimeSpan.FromSeconds(3));
            }
            catch (AskTimeoutException)
            {
                // busy validating a large tree: what the node view knows will do
                local = new LocalConfig(view.ConfigApplied, null, view.ConfigLatest, null, null, []);
            }
            ConfigStatus? cluster = null;
            try
            {
                cluster = await registry.Get<MasterProxyKey>().Ask<ConfigStatus>(GetConfigStatus.Instance, TimeSpan.FromSeconds(3));
            }
            catch (AskTimeoutException) { }
            var rejected = cluster?.Rejected.ToList() ?? [];
            if (local.LastRejected is { } mine && !rejected.Any(r => r.At == mine.At && r.Node == mine.Node)) rejected.Insert(0, mine);
            return Results.Json(new ConfigStatusResponse(view.NodeName, local.Applied, Math.Max(local.Latest, cluster?.Latest?.Version ?? 0),
                local.FailedVersion, cluster?.Latest is { } l ? ConfigVersionInfo.Of(l) : null, cluster?.Nodes ?? [], rejected,
                cluster is null ? "the master singleton did not answer; showing this node only" : null), ApiJson.Default.ConfigStatusResponse);
        });
    }

    private static async Task<SubmitResult> Submit(ActorRegistry registry, SubmitTree tree)
    {
        try
        {
            return await registry.Get<ConfigSyncKey>().Ask<SubmitResult>(tree, SubmitTimeout);
        }
        catch (AskTimeoutException)
        {
            return new SubmitResult(SubmitOutcome.NotCommitted, null, tree.Bundle.Hash, $"no answer within {SubmitTimeout.TotalSeconds:F0}s");
        }
    }

    private static IResult Submitted(SubmitResult r)
    {
        var code = r.Outcome switch
        {
            SubmitOutcome.Committed => 201,
            SubmitOutcome.Unchanged => 200,
            SubmitOutcome.Rejected => 422,
            _ => 503,
        };
        var outcome = r.Outcome switch
        {
            SubmitOutcome.Committed => "committed",
            SubmitOutcome.Unchanged => "unchanged",
            SubmitOutcome.Rejected => "rejected",
            _ => "not-committed",
        };
        return Results.Json(new ConfigSubmitResponse(outcome, r.Version, r.BundleHash, r.Reason), ApiJson.Default.ConfigSubmitResponse,
            statusCode: code);
    }

    /// <summary>A version's record from this node's ledger and its bundle, fetched from another node if needed.</summary>
    private static async Task<(ConfigVersionCommitted? Committed, ConfBundle? Bundle, IResult? Error)> Load(ActorRegistry registry, NodeSettings s, long version)
    {
        var lookup = await registry.Get<LedgerKey>().Ask<ConfigVersionLookup>(new GetConfigVersion(version), AskTimeout);
        if (lookup.Committed is not { } c) return (null, null, Results.Text($"no config version {version}\n", statusCode: 404));
        var ready = await registry.Get<ConfigSyncKey>().Ask<BundleReady>(new EnsureBundle(c.BundleHash, c.Origin), TimeSpan.FromSeconds(60));
        if (!ready.Ok)
            return (c, null, Results.Text($"version {version}'s bundle is not on this node and could not be fetched: {ready.Reason}\n", statusCode: 503));
        return new BundleStore(s.DataDir).Load(c.BundleHash) is { } bundle
            ? (c, bundle, null)
            : (c, null, Results.Text($"version {version}'s bundle is missing from this node's store\n", statusCode: 503));
    }

    /// <summary>A unified diff per file, like `diff -ruN` of the two trees.</summary>
    public static string Diff(ConfBundle a, ConfBundle b, long from, long to)
    {
        var sb = new StringBuilder();
        foreach (var path in a.Files.Keys.Union(b.Files.Keys).Order(StringComparer.Ordinal))
        {
            a.Files.TryGetValue(path, out var fa);
            b.Files.TryGetValue(path, out var fb);
            if (fa?.Sha256 == fb?.Sha256) continue;
            var oldText = fa is null ? "" : Encoding.UTF8.GetString(fa.Content);
            var newText = fb is null ? "" : Encoding.UTF8.GetString(fb.Content);
            sb.Append($"diff v{from}/{path} v{to}/{path}\n");
            sb.Append(UnidiffRenderer.GenerateUnidiff(oldText, newText,
                fa is null ? "/dev/null" : $"v{from}/{path}", fb is null ? "/dev/null" : $"v{to}/{path}", false, false, 3));
            if (sb[^1] != '\n') sb.Append('\n');
        }
        return sb.ToString();
    }
}
