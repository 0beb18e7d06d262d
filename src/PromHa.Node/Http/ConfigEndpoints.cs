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

/// <param name="Diff">A dry run's unified diff against the latest version (all files added when there is none).</param>
public sealed record ConfigSubmitResponse(string Outcome, long? Version, string BundleHash, string? Reason, string? Diff = null);

public sealed record ConfigVersionInfo(long Version, string BundleHash, int FileCount, long Bytes, string Source, string Author,
    string Origin, DateTimeOffset At)
{
    public static ConfigVersionInfo Of(ConfigVersionCommitted c) =>
        new(c.Version, c.BundleHash, c.FileCount, c.Bytes, c.Source, c.Author, c.Origin, c.At);
}

/// <summary>`promha config diff --output json`: the unified diff per file, as the API returns it.</summary>
public sealed record ConfigDiffResponse(long From, long To, string Diff);

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
        app.MapPost("/api/v1/config/apply", async (HttpContext http, ActorRegistry registry, NodeSettings s, string? author, string? source, bool? dryRun) =>
        {
            var (bundle, refused) = await ReadUpload(http, s);
            if (refused is not null) return refused;
            var result = await Submit(registry, new SubmitTree(bundle!, $"api:{source ?? "upload"}", author ?? "unknown", dryRun == true));
            if (dryRun != true || result.Outcome is not (SubmitOutcome.Valid or SubmitOutcome.Rejected)) return Submitted(result);
            // what it would change: against the latest version, or every file new
            var latest = (await registry.Get<LedgerKey>().Ask<List<ConfigVersionCommitted>>(new GetConfigVersions(1), AskTimeout)).FirstOrDefault();
            var before = ConfBundle.Of(Array.Empty<BundleFile>());
            if (latest is not null)
            {
                var (_, current, error) = await Load(registry, s, latest.Version);
                if (error is not null) return error;
                before = current!;
            }
            return Results.Json(new ConfigSubmitResponse(result.Outcome == SubmitOutcome.Valid ? "valid" : "rejected", latest?.Version, result.BundleHash,
                    result.Reason, Diff(before, bundle!, latest is null ? "empty" : $"v{latest.Version}", "candidate")),
                ApiJson.Default.ConfigSubmitResponse, statusCode: result.Outcome == SubmitOutcome.Valid ? 200 : 422);
        }).RequireAdmin();

        app.MapPost("/api/v1/config/rollback/{version:long}", async (ActorRegistry registry, NodeSettings s, long version, string? author) =>
        {
            var (committed, bundle, error) = await Load(registry, s, version);
            if (error is not null) return error;
            return Submitted(await Submit(registry, new SubmitTree(bundle!, $"rollback:{committed!.Version}", author ?? "unknown")));
        }).RequireAdmin();

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
        }).RequireAdmin();

        app.MapGet("/api/v1/config/versions/{version:long}/files/{**path}", async (ActorRegistry registry, NodeSettings s, long version, string path) =>
        {
            var (_, bundle, error) = await Load(registry, s, version);
            if (error is not null) return error;
            return bundle!.Get(path) is { } content
                ? Results.Bytes(content, "text/plain; charset=utf-8")
                : Results.Text($"version {version} has no file {path}\n", statusCode: 404);
        }).RequireAdmin();

        app.MapGet("/api/v1/config/diff", async (ActorRegistry registry, NodeSettings s, long from, long to) =>
        {
            var a = await Load(registry, s, from);
            if (a.Error is not null) return a.Error;
            var b = await Load(registry, s, to);
            if (b.Error is not null) return b.Error;
            return Results.Text(Diff(a.Bundle!, b.Bundle!, $"v{from}", $"v{to}"), "text/plain; charset=utf-8");
        }).RequireAdmin();

        // A stored bundle's exact bytes, streamed from its file: what a peer's BundleFetcherActor downloads.
        // The admin token, or the peer secret every node derives from it: a bundle is the whole conf tree.
        app.MapGet("/api/v1/config/bundles/{hash}", (HttpContext http, NodeSettings s, string hash) =>
        {
            if (http.RequestServices.GetService<AdminToken>() is { } token && AdminToken.Presented(http.Request) is var presented &&
                !token.Matches(presented) && !token.MatchesPeer(presented))
                return Results.Text("401 unauthorized: a config bundle needs the admin token or the cluster's peer secret\n", statusCode: 401);
            if (hash.Length != 64 || !hash.All(char.IsAsciiHexDigitLower))
                return Results.Text($"'{hash}' is not a bundle hash (64 lowercase hex digits)\n", statusCode: 400);
            var path = new BundleStore(s.DataDir, s.Config.Limits).PathOf(hash);
            return File.Exists(path)
                ? Results.File(path, "application/gzip", $"{hash}.tar.gz")
                : Results.Text($"this node does not hold bundle {hash[..12]}\n", statusCode: 404);
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
                cluster = await registry.Get<ConfigVersionsProxyKey>().Ask<ConfigStatus>(GetConfigStatus.Instance, TimeSpan.FromSeconds(3));
            }
            catch (AskTimeoutException) { }
            var rejected = cluster?.Rejected.ToList() ?? [];
            if (local.LastRejected is { } mine && !rejected.Any(r => r.At == mine.At && r.Node == mine.Node)) rejected.Insert(0, mine);
            return Results.Json(new ConfigStatusResponse(view.NodeName, local.Applied, Math.Max(local.Latest, cluster?.Latest?.Version ?? 0),
                local.FailedVersion, cluster?.Latest is { } l ? ConfigVersionInfo.Of(l) : null, cluster?.Nodes ?? [], rejected,
                cluster is null ? "the master singleton did not answer; showing this node only" : null), ApiJson.Default.ConfigStatusResponse);
        });
    }

    /// <summary>
    /// Spools an uploaded archive to a file under the data dir (deleted on close) and reads it with
    /// the unpacked-size limits, so neither a large upload nor a compression bomb lives in memory.
    /// </summary>
    private static async Task<(ConfBundle? Bundle, IResult? Refused)> ReadUpload(HttpContext http, NodeSettings s)
    {
        var limits = s.Config.Limits;
        IResult Refuse(int code, string reason) =>
            Results.Json(new ConfigSubmitResponse(code == 422 ? "rejected" : "refused", null, "", reason), ApiJson.Default.ConfigSubmitResponse, statusCode: code);

        http.Features.Get<IHttpMaxRequestBodySizeFeature>()!.MaxRequestBodySize = limits.MaxTarBytes;
        if (http.Request.ContentLength is > 0 and var length && length > limits.MaxTarBytes)
            return (null, Refuse(413, $"upload: {length:N0} bytes, more than a conf tree may have ({limits.MaxTarBytes:N0}; config.maxBundleBytes)"));
        var spool = Path.Combine(s.DataDir, "config", "uploads");
        Directory.CreateDirectory(spool);
        var sw = System.Diagnostics.Stopwatch.StartNew();
        await using var file = new FileStream(Path.Combine(spool, $"{Guid.NewGuid():N}.upload"), FileMode.CreateNew, FileAccess.ReadWrite,
            FileShare.None, 64 * 1024, FileOptions.DeleteOnClose | FileOptions.Asynchronous);
        try
        {
            await http.Request.Body.CopyToAsync(file, http.RequestAborted);
        }
        catch (BadHttpRequestException e) when (e.StatusCode == 413)
        {
            return (null, Refuse(413, $"upload: more than {limits.MaxTarBytes:N0} bytes, more than a conf tree may have (config.maxBundleBytes)"));
        }
        if (file.Length == 0) return (null, Refuse(400, "upload: empty body; send a tar or tar.gz of the conf tree (promha config apply DIR)"));
        file.Position = 0;
        try
        {
            return (ConfBundle.ReadArchive(file, "upload", limits), null);
        }
        catch (ArchiveTooLargeException e)
        {
            http.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger("PromHa.Node.Http")
                .LogWarning("Refused an upload from {Remote} after {Ms} ms: {Reason}", http.Connection.RemoteIpAddress, sw.ElapsedMilliseconds, e.Message);
            return (null, Refuse(413, e.Message));
        }
        catch (ConfTreeException e)
        {
            return (null, Refuse(e.IsName ? 422 : 400, e.Message));
        }
        catch (Exception e) when (e is InvalidDataException or FormatException or EndOfStreamException or ArgumentException or InvalidOperationException
                                       or OverflowException or NotSupportedException)
        {
            return (null, Refuse(400, $"upload: not a readable tar or tar.gz of a conf tree: {e.Message}"));
        }
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
        return new BundleStore(s.DataDir, s.Config.Limits).Load(c.BundleHash) is { } bundle
            ? (c, bundle, null)
            : (c, null, Results.Text($"version {version}'s bundle is missing from this node's store\n", statusCode: 503));
    }

    /// <summary>A unified diff per file, like `diff -ruN` of the two trees.</summary>
    public static string Diff(ConfBundle a, ConfBundle b, string from, string to)
    {
        var sb = new StringBuilder();
        foreach (var path in a.ChangedPaths(b))
        {
            a.Files.TryGetValue(path, out var fa);
            b.Files.TryGetValue(path, out var fb);
            var oldText = fa is null ? "" : Encoding.UTF8.GetString(fa.Content);
            var newText = fb is null ? "" : Encoding.UTF8.GetString(fb.Content);
            sb.Append($"diff {from}/{path} {to}/{path}\n");
            sb.Append(UnidiffRenderer.GenerateUnidiff(oldText, newText,
                fa is null ? "/dev/null" : $"{from}/{path}", fb is null ? "/dev/null" : $"{to}/{path}", false, false, 3));
            if (sb[^1] != '\n') sb.Append('\n');
        }
        return sb.ToString();
    }
}
