using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Akka.Actor;
using Akka.Event;
using Akka.Hosting;
using PromHa.Node.Config;
using PromHa.Node.Settings;

namespace PromHa.Node.Reload;

/// <summary>Apply this bundle, rendered for <paramref name="Context"/>. Local to the node.</summary>
public sealed record ApplyVersion(long Version, ConfBundle Bundle, RenderContext Context);

/// <summary>The outcome of an <see cref="ApplyVersion"/>: applied and verified, or rolled back with the reason.</summary>
public sealed record ApplyFinished(long Version, string BundleHash, bool Ok, string? Reason, double Seconds, string? Note);

/// <summary>
/// Puts a version into service on this node: renders the effective files for the node's role,
/// validates them in a staging dir, keeps the running tree as a backup, swaps the new files in
/// (rename, never a half-written file), reloads Prometheus and Alertmanager and checks that both
/// took it (*_config_last_reload_successful). Anything that fails puts the previous tree back.
/// </summary>
public sealed class ReloaderActor : ReceiveActor
{
    public const string Name = "reloader";
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly LiveTree _live;

    public ReloaderActor(NodeSettings settings)
    {
        _live = new LiveTree(settings);
        ReceiveAsync<ApplyVersion>(async a =>
        {
            var sw = Stopwatch.StartNew();
            ApplyFinished result;
            try
            {
                result = await _live.Apply(a.Version, a.Bundle, a.Context, _log);
            }
            catch (Exception e)
            {
                // always an answer: ConfigSync applies nothing else until it hears how this one ended
                _log.Error(e, "Applying version {0} failed", a.Version);
                result = new ApplyFinished(a.Version, a.Bundle.Hash, false, $"{e.GetType().Name}: {e.Message}", 0, null);
            }
            Sender.Tell(result with { Seconds = sw.Elapsed.TotalSeconds });
        });
    }
}

/// <summary>The node's live dir and the servers that read it.</summary>
public sealed class LiveTree(NodeSettings s)
{
    private static readonly HttpClient Http = new() { Timeout = Timeout.InfiniteTimeSpan }; // each request has its own
    private static readonly TimeSpan ReloadTimeout = TimeSpan.FromSeconds(120);
    private static readonly TimeSpan MetricsTimeout = TimeSpan.FromSeconds(10);
    private readonly string _liveDir = s.Config.LiveDir;
    private readonly string _staging = Path.Combine(s.DataDir, "config", "staging", "apply");
    private ConfBundle? _live; // what the live dir holds (hashes only), once read or written here
    private readonly string _backups = Path.Combine(s.DataDir, "config", "backups");

    public bool RunsServers => s.Prometheus.Mode != ServerMode.None || s.Alertmanager.Mode != ServerMode.None;

    public ValidationTools Tools => ValidationTools.For(s);

    public async Task<ApplyFinished> Apply(long version, ConfBundle bundle, RenderContext ctx, ILoggingAdapter log, bool validatedAsCandidate = true)
    {
        if (!RunsServers) return new ApplyFinished(version, bundle.Hash, true, null, 0, "witness: nothing to reload");
        var phases = new Phases();
        ConfBundle rendered;
        try
        {
            rendered = ConfigRenderer.Render(bundle, ctx);
        }
        catch (ConfTreeException e)
        {
            return new ApplyFinished(version, bundle.Hash, false, e.Message, 0, null);
        }
        phases.Done("render");
        // The candidate passed promtool and amtool in a staging dir before it got its number, and a
        // mirror render changes only the replica label's value. A federate-mode prometheus.yml has a
        // job of PromHa's, so it is checked here. Every reload is verified either way, and rolled back.
        if (ConfigRenderer.Rewrites(ctx) || !validatedAsCandidate)
        {
            var invalid = await ConfigValidator.Validate(rendered, _staging, Tools, validatedAsCandidate ? null : bundle);
            phases.Done("validate");
            if (invalid is not null) return new ApplyFinished(version, bundle.Hash, false, invalid, 0, null);
        }

        // What the live dir holds, by hashes: kept from the last swap, or read once (stat and hash,
        // no copy of a 10,000-file tree kept between applies).
        var previous = _live ?? (Directory.Exists(_liveDir) ? ConfBundle.FromDirectory(_liveDir, s.Config.Limits, contents: false) : null);
        // rendered again for a new role or a new Alertmanager in the cluster, to the same files
        if (previous?.Hash == rendered.Hash) return new ApplyFinished(version, bundle.Hash, true, null, 0, "rendered files unchanged; nothing to reload");
        // The files this apply replaces or removes, with their content: the backup (enough to undo it
        // by hand) and what a rollback writes back. Unchanged files are neither copied nor read.
        var replaced = previous is null ? null : ReadReplaced(previous, rendered);
        var backup = replaced is { Files.Count: > 0 } ? ConfTree.Backup(replaced, _backups, $"before-v{version}", s.Config.Backups) : null;
        phases.Done("backup");
        _live = null; // unknown until the swap is done
        var changed = ConfTree.Sync(_liveDir, rendered, previous);
        var servers = Touched(changed);
        _live = rendered.Manifest();
        phases.Done("swap");
        var (ok, detail) = await ReloadAndVerify(servers);
        phases.Done("reload");
        if (ok) return new ApplyFinished(version, bundle.Hash, true, null, 0, $"{changed.Count} file(s) changed, reloaded {servers.ToString().ToLowerInvariant()}; {phases}{(detail is null ? "" : $"; {detail}")}");

        log.Error("Version {0} did not load ({1}); restoring the previous tree{2}", version, detail,
            backup is null ? "" : $" (its replaced files saved in {backup})");
        if (previous is { Files.Count: > 0 } && replaced is not null)
        {
            _live = null;
            // the previous tree: unchanged files as they are (equal hashes are not written), the replaced ones from their copies
            ConfTree.Sync(_liveDir, ConfBundle.Of(previous.Files.Values.Select(f => replaced.Files.GetValueOrDefault(f.Path) ?? f)), rendered);
            _live = previous;
            var (back, backDetail) = await ReloadAndVerify(servers);
            if (!back) log.Error("Reloading the previous tree failed too: {0}", backDetail);
        }
        return new ApplyFinished(version, bundle.Hash, false, detail, 0, null);
    }

    /// <summary>The live dir's files that <paramref name="next"/> changes or drops, read with their content.</summary>
    private ConfBundle ReadReplaced(ConfBundle previous, ConfBundle next) =>
        ConfBundle.Of(previous.Files.Values
            .Where(f => (!next.Files.TryGetValue(f.Path, out var n) || n.Sha256 != f.Sha256) && File.Exists(Path.Combine(_liveDir, f.Path)))
            .Select(f => BundleFile.Of(f.Path, File.ReadAllBytes(Path.Combine(_liveDir, f.Path)))));

    /// <summary>How long each step of an apply took, for the log.</summary>
    private sealed class Phases
    {
        private readonly Stopwatch _sw = Stopwatch.StartNew();
        private readonly List<string> _done = [];
        private TimeSpan _last;

        public void Done(string phase)
        {
            var now = _sw.Elapsed;
            _done.Add($"{phase} {(now - _last).TotalMilliseconds:F0} ms");
            _last = now;
        }

        public override string ToString() => string.Join(", ", _done);
    }

    /// <summary>The servers that read any of these changed files.</summary>
    /// <remarks>
    /// A Prometheus reload empties its list of Alertmanagers until its discovery catches up (a few
    /// seconds; prometheus/prometheus#13064); an alert that starts firing then is dropped and sent
    /// again only after --rules.alert.resend-delay (1 min). So an edit of alertmanager.yml alone, the
    /// most common alerting change, must not reload Prometheus. Anything else reloads both, to be safe
    /// (rule files, templates and file_sd files can live anywhere in the tree).
    /// </remarks>
    public static Servers Touched(IReadOnlyCollection<string> changed) =>
        changed.Count == 0 ? Servers.None
        : changed.All(p => p == ConfigRenderer.AlertmanagerFile) ? Servers.Alertmanager
        : changed.All(p => p == ConfigRenderer.PrometheusFile) ? Servers.Prometheus
        : Servers.Both;

    [Flags]
    public enum Servers { None = 0, Prometheus = 1, Alertmanager = 2, Both = 3 }

    /// <summary>
    /// POST /-/reload to each server, then its own verdict from /metrics. A server that is not
    /// running (being restarted by its supervisor) reads the new files when it starts: not an error.
    /// </summary>
    public async Task<(bool Ok, string? Detail)> ReloadAndVerify(Servers which = Servers.Both)
    {
        var notes = new List<string>();
        foreach (var (name, server, metric, flag) in new[]
                 {
                     ("prometheus", s.Prometheus, "prometheus_config_last_reload_successful", Servers.Prometheus),
                     ("alertmanager", s.Alertmanager, "alertmanager_config_last_reload_successful", Servers.Alertmanager),
                 })
        {
            if (server.Mode == ServerMode.None || !which.HasFlag(flag)) continue;
            var url = server.EffectiveUrl;
            HttpResponseMessage resp;
            try
            {
                // Prometheus answers once the reload is done: a 40 MiB file_sd tree takes seconds
                using var cts = new CancellationTokenSource(ReloadTimeout);
                resp = await Http.PostAsync($"{url}/-/reload", null, cts.Token);
            }
            catch (HttpRequestException e)
            {
                notes.Add($"{name} not reachable ({e.Message}); it reads the new files when it starts");
                continue;
            }
            catch (TaskCanceledException)
            {
                return (false, $"{name} did not finish the reload within {ReloadTimeout.TotalSeconds:F0} s");
            }
            using (resp)
            {
                if (!resp.IsSuccessStatusCode)
                {
                    var body = (await resp.Content.ReadAsStringAsync()).Trim();
                    return (false, $"{name} rejected the reload: HTTP {(int)resp.StatusCode} {Truncate(body)}");
                }
            }
            double? value;
            try
            {
                value = await ReadMetric(url, metric);
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
            {
                return (false, $"{name}: {metric} could not be read after the reload ({e.Message})");
            }
            if (value is not 1) return (false, $"{name}: {metric} is {value?.ToString(CultureInfo.InvariantCulture) ?? "missing"} after the reload");
        }
        return (true, notes.Count == 0 ? null : string.Join("; ", notes));
    }

    private static async Task<double?> ReadMetric(string baseUrl, string metric)
    {
        using var cts = new CancellationTokenSource(MetricsTimeout);
        var text = await Http.GetStringAsync($"{baseUrl}/metrics", cts.Token);
        var m = Regex.Match(text, $@"^{metric}(?:\{{[^}}]*\}})?\s+(\S+)", RegexOptions.Multiline);
        return m.Success && double.TryParse(m.Groups[1].Value, CultureInfo.InvariantCulture, out var v) ? v : null;
    }

    private static string Truncate(string s) => s.Length > 400 ? s[..400] + "..." : s;

    /// <summary>
    /// Before the servers start: a node without a live tree renders its conf dir into one (validated),
    /// so that Prometheus has a config to start with. The cluster's versions replace it.
    /// </summary>
    public string? Bootstrap(string node, ILogger log)
    {
        if (!RunsServers || File.Exists(Path.Combine(_liveDir, ConfigRenderer.PrometheusFile)) || string.IsNullOrEmpty(s.ConfDir))
            return null;
        try
        {
            var bundle = ConfBundle.FromDirectory(s.ConfDir, s.Config.Limits);
            var gates = NodeGates.For(s, PromHa.Node.Http.AdminToken.Load(s));
            var rendered = ConfigRenderer.Render(bundle, new RenderContext(node, ConfigMode.Mirror, s.Config.ReplicaLabel, false, null, [])
            {
                Alertmanagers = s.Alertmanager.Mode == ServerMode.None ? [] : [s.Advertised(s.Alertmanager.EffectiveUrl)],
                Gate = gates.Notifications,
                RemoteWrite = s.RemoteWrite,
                RemoteWriteGate = gates.RemoteWrite,
            });
            var invalid = ConfigValidator.Validate(rendered, _staging, Tools, bundle).GetAwaiter().GetResult();
            if (invalid is not null)
            {
                log.LogError("The conf dir {Dir} is not valid, so Prometheus waits for a version from the cluster: {Reason}", s.ConfDir, invalid);
                return invalid;
            }
            ConfTree.Sync(_liveDir, rendered);
            log.LogInformation("Rendered {Dir} into {Live} to start with; versions from the cluster replace it", s.ConfDir, _liveDir);
            return null;
        }
        catch (ConfTreeException e)
        {
            log.LogError("Cannot start from {Dir}: {Reason}", s.ConfDir, e.Message);
            return e.Message;
        }
    }
}

/// <summary>Marker key for the node's reloader.</summary>
public sealed class ReloaderKey;

public static class ReloaderActorHostingExtensions
{
    public static AkkaConfigurationBuilder AddReloaderActor(this AkkaConfigurationBuilder builder, NodeSettings s) =>
        builder.WithActors((system, registry) =>
            registry.Register<ReloaderKey>(system.ActorOf(Props.Create(() => new ReloaderActor(s)), ReloaderActor.Name)));
}
