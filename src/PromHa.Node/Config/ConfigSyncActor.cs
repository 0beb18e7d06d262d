using System.Text.Json;
using Akka.Actor;
using Akka.Cluster.Tools.PublishSubscribe;
using Akka.Event;
using Akka.Hosting;
using PromHa.Messages.Config;
using PromHa.Node.Alerts;
using PromHa.Messages.Ledger;
using PromHa.Node.Cluster;
using PromHa.Node.Groups;
using PromHa.Node.Master;
using PromHa.Node.Reload;
using PromHa.Node.Settings;

namespace PromHa.Node.Config;

/// <summary>
/// Which version one node runs: it learns of new versions (pub/sub, and the config-versions
/// singleton's heartbeat every second as anti-entropy), has the BundleFetcherActor fetch a bundle it
/// lacks, hands the version to the Reloader, and reports how far it is from the latest. Uploads
/// (`promha config apply`) and the conf dir's edits (ConfDirActor) pass through it to the candidate
/// pipeline (CandidateActor), based on the latest version it knows.
/// </summary>
public sealed class ConfigSyncActor : ReceiveActor, IWithTimers
{
    public const string Name = "config-sync";
    private static readonly TimeSpan TickInterval = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan RetryFailedAfter = TimeSpan.FromSeconds(30);

    private readonly NodeSettings _s;
    private readonly NodeView _view;
    private DateTimeOffset Now => _view.Time.GetUtcNow();
    private readonly BundleStore _store;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly Akka.Cluster.Cluster _cluster = Akka.Cluster.Cluster.Get(Context.System);
    private readonly string _appliedFile;
    /// <summary>Bundles of target versions being fetched by the BundleFetcherActor.</summary>
    private readonly HashSet<string> _fetching = [];

    private Applied? _applied;
    private Target? _target;
    private bool _applying;
    private (long Version, DateTimeOffset At)? _failed;
    private bool _forceReapply;
    // what the live tree was rendered for: the master, whether this node held the lease, the Alertmanagers
    private (string? Master, bool AsMaster, string Alertmanagers) _renderedFor;
    // every node's Alertmanager seen since start: a node that is down keeps its place (it comes back)
    private readonly SortedSet<string> _alertmanagers = new(StringComparer.Ordinal);
    private readonly GateRoutes _routes;
    private readonly NodeGates _gates;
    private ConfBundle? _recent; // the bundle last stored or fetched: applied next, without reading it back
    private CandidateRejected? _lastRejected;
    /// <summary>How far this node is from the latest version, reported to the config-versions singleton.</summary>
    private Convergence _convergence;
    private ((long, long, string, string?) Gist, DateTimeOffset At)? _reported;
    private static readonly TimeSpan ReportEvery = TimeSpan.FromSeconds(10);

    public ConfigSyncActor(NodeSettings settings, NodeView view, GateRoutes routes, NodeGates gates)
    {
        _s = settings;
        _view = view;
        _routes = routes;
        _gates = gates;
        if (settings.Alertmanager.Mode != ServerMode.None) _alertmanagers.Add(settings.Advertised(settings.Alertmanager.EffectiveUrl));
        _store = new BundleStore(settings.DataDir, settings.Config.Limits);
        _appliedFile = Path.Combine(settings.DataDir, "config", "applied.json");
        _applied = LoadApplied();
        _convergence = Convergence.Start(_applied?.Version ?? 0);

        Receive<Tick>(_ => OnTick());
        Receive<GiveMemoryBack>(_ =>
        {
            var before = Environment.WorkingSet;
            MemoryBudget.GiveBack();
            _log.Info("Gave memory back after a large tree: working set {0:F0} -> {1:F0} MiB", before / 1048576.0, Environment.WorkingSet / 1048576.0);
        });
        Receive<ConfigVersionAvailable>(a => Consider(new Target(a.Version, a.BundleHash, a.Origin)));
        Receive<ConfigHeartbeat>(h =>
        {
            _view.ConfigCluster = h;
            if (h.Latest is { } latest) Consider(new Target(latest.Version, latest.BundleHash, latest.Origin));
        });
        Receive<ApplyFinished>(OnApplyFinished);
        Receive<FetchBundleChunk>(ServeChunk);
        Receive<BundleReady>(OnFetched);
        Receive<EnsureBundle>(e =>
        {
            if (_store.Has(e.Hash)) Sender.Tell(new BundleReady(e.Hash, true, null));
            else Fetcher().Forward(new FetchBundle(e.Hash, e.Origin));
        });
        // validated by the candidate pipeline, outside this mailbox; it answers the asker and tells us the outcome
        Receive<SubmitTree>(t => Candidates().Tell(new ValidateCandidate(t, CandidateContext(), _target?.Hash, _target?.Version, Sender)));
        Receive<CandidateDone>(OnCandidateDone);
        Receive<CandidateRejected>(Rejected); // the conf dir could not be read
        Receive<GetLocalConfig>(_ => Sender.Tell(new LocalConfig(_applied?.Version ?? 0, _applied?.Hash, _target?.Version ?? 0,
            _failed?.Version, _lastRejected, _fetching.ToList())));
        Receive<SubscribeAck>(_ => { });
    }

    public ITimerScheduler Timers { get; set; } = null!;

    private sealed record Applied(long Version, string Hash, DateTimeOffset At);

    private sealed record Target(long Version, string Hash, string Origin);

    private sealed record Tick
    {
        public static readonly Tick Instance = new();
    }

    /// <summary>A large tree was handled: once its buffers are unreferenced, give their memory back.</summary>
    private sealed record GiveMemoryBack
    {
        public static readonly GiveMemoryBack Instance = new();
    }


    protected override void PreStart()
    {
        DistributedPubSub.Get(Context.System).Mediator.Tell(new Subscribe(GroupScope.Own(_s).ConfigTopic, Self));
        Timers.StartPeriodicTimer("tick", Tick.Instance, TickInterval);
        if (_applied is not null)
        {
            ConfigMetrics.Applied.Set(_applied.Version);
            _view.ConfigApplied = _applied.Version;
            SetGateRoutes(_applied.Version, _store.Load(_applied.Hash));
        }
    }

    /// <summary>The webhooks the gate delivers to come from the authored alertmanager.yml of the version this node runs.</summary>
    private void SetGateRoutes(long version, ConfBundle? bundle)
    {
        if (bundle is null) return;
        try
        {
            _routes.Table = GateTable.Parse(bundle.Get(ConfigRenderer.AlertmanagerFile));
            _routes.Version = version;
        }
        catch (ConfTreeException e)
        {
            _log.Error("Version {0}: the gate cannot read alertmanager.yml: {1}", version, e.Message);
        }
    }

    // ---- learning of versions and applying them --------------------------------------------

    private void OnTick()
    {
        // Anti-entropy: the config-versions singleton's heartbeat names the latest version.
        if (_view.ConfigCluster?.Latest is { } latest)
            Consider(new Target(latest.Version, latest.BundleHash, latest.Origin));
        // a target not reached yet (its fetch failed: no member to fetch from while joining) is retried here
        if (_target is { } t && (_applied?.Version ?? 0) < t.Version && _failed?.Version != t.Version) MaybeApply();
        // Rendering depends on the role (federate mode; the master's direct integrations) and on the
        // Alertmanagers in the cluster: render again when either changed (the role is known a moment
        // before the lease is granted: render again once it is). An unchanged render reloads nothing.
        foreach (var n in _view.Current.Status?.Nodes ?? [])
            if (n.AlertmanagerUrl is { Length: > 0 } am) _alertmanagers.Add(am);
        if (_applied is not null && _view.Current.Master is { } master &&
            (master, _view.IsMaster, string.Join(",", _alertmanagers)) != _renderedFor)
        {
            _forceReapply = true;
            MaybeApply();
        }
        if (_failed is { } f && Now - f.At > RetryFailedAfter) MaybeApply();
        TellConfDir();
        ReportConvergence();
    }

    private void TellConfDir() => ConfDir().Tell(new ConfigRunning(_applied?.Version, _applied?.Hash, CaughtUp));

    private bool CaughtUp => _target is null || (_applied is not null && _applied.Version >= _target.Version);

    /// <summary>
    /// Tells the config-versions singleton how far this node is from the latest version when that
    /// changed, and every <see cref="ReportEvery"/> (a new singleton learns it so); sets the metric.
    /// </summary>
    private void ReportConvergence()
    {
        var now = DateTimeOffset.UtcNow;
        ConfigMetrics.BehindSeconds.Set(Math.Round(_convergence.BehindFor(now).TotalSeconds));
        if (_reported is { } r && r.Gist == _convergence.Gist && now - r.At < ReportEvery) return;
        _reported = (_convergence.Gist, now);
        Versions().Tell(_convergence.Report(_s.Node.Name, now));
    }

    private void Consider(Target t)
    {
        if (_target is not null && t.Version <= _target.Version) return;
        _target = t;
        _convergence = _convergence.LatestIs(t.Version, DateTimeOffset.UtcNow);
        ConfigMetrics.Latest.Set(t.Version);
        _view.ConfigLatest = t.Version;
        MaybeApply();
    }

    private void MaybeApply()
    {
        if (_applying || _target is not { } t) return;
        if (_applied is not null && t.Version <= _applied.Version && !_forceReapply) return;
        if (_failed is { } f && f.Version == t.Version && Now - f.At < RetryFailedAfter && !_forceReapply) return;
        if (!_store.Has(t.Hash))
        {
            StartFetch(t);
            return;
        }
        _convergence = _convergence.ApplyStarted();
        var bundle = _recent?.Hash == t.Hash ? _recent : _store.Load(t.Hash)!;
        _recent = bundle;
        _applying = true;
        _forceReapply = false;
        var ctx = RenderContextNow(isMaster: _view.IsMaster);
        _renderedFor = (_view.Current.Master, _view.IsMaster, string.Join(",", _alertmanagers));
        Context.ActorSelection(Self.Path.Parent / ReloaderActor.Name).Tell(new ApplyVersion(t.Version, bundle, ctx));
    }

    private RenderContext RenderContextNow(bool isMaster)
    {
        var master = _view.Current.Master;
        var masterPrometheus = _view.Current.Status?.Nodes.FirstOrDefault(n => n.Node == master)?.PrometheusUrl;
        return new RenderContext(_s.Node.Name, _s.Config.Mode, _s.Config.ReplicaLabel, isMaster,
            masterPrometheus is null ? null : new Uri(masterPrometheus).Authority, _s.Config.EffectiveFederateMatch)
        {
            Alertmanagers = _alertmanagers.ToList(),
            Gate = _gates.Notifications,
            RemoteWrite = _s.RemoteWrite,
            RemoteWriteGate = _gates.RemoteWrite,
        };
    }

    private void OnApplyFinished(ApplyFinished r)
    {
        _applying = false;
        if (r.Ok)
        {
            var first = _applied is null || _applied.Version != r.Version;
            _applied = new Applied(r.Version, r.BundleHash, DateTimeOffset.UtcNow);
            _failed = null;
            SaveApplied(_applied);
            ConfigMetrics.Applied.Set(r.Version);
            ConfigMetrics.LastApplySeconds.Set(r.Seconds);
            _view.ConfigApplied = r.Version;
            if (first)
            {
                SetGateRoutes(r.Version, _recent?.Hash == r.BundleHash ? _recent : _store.Load(r.BundleHash));
                _log.Info("Applied config version {0} ({1}) in {2:F3}s{3}", r.Version, r.BundleHash[..12], r.Seconds,
                    r.Note is null ? "" : $": {r.Note}");
                if ((_recent?.Hash == r.BundleHash ? _recent : _store.Load(r.BundleHash)) is { } bundle)
                    ConfDir().Tell(new VersionApplied(r.Version, bundle));
            }
            Versions().Tell(new ConfigApplied(_s.Node.Name, r.Version, r.BundleHash, r.Seconds, DateTimeOffset.UtcNow));
            _convergence = _convergence.AppliedVersion(r.Version);
            if (_recent is { } big && !MemoryBudget.Keep(big)) AfterLargeTree();
        }
        else
        {
            _failed = (r.Version, Now);
            ConfigMetrics.ReloadFailures.Inc();
            _log.Error("Config version {0} not applied, previous config kept: {1}", r.Version, r.Reason);
            Versions().Tell(new ConfigApplyFailed(_s.Node.Name, r.Version, r.Reason ?? "unknown", DateTimeOffset.UtcNow));
            _convergence = _convergence.Failed(r.Version, $"applying version {r.Version}: {r.Reason ?? "unknown"}", DateTimeOffset.UtcNow);
        }
        ReportConvergence();
        MaybeApply();
        TellConfDir();
    }

    // ---- candidates ------------------------------------------------------------------------

    /// <summary>A candidate is validated as the master would run it.</summary>
    private RenderContext CandidateContext() => RenderContextNow(isMaster: true) with { MasterPrometheus = null };

    private void OnCandidateDone(CandidateDone d)
    {
        var (tree, result) = (d.Tree, d.Result);
        if (!MemoryBudget.Keep(tree.Bundle)) Timers.StartSingleTimer("give-back", GiveMemoryBack.Instance, TimeSpan.FromSeconds(5));
        if (d.Rejected is not null) Rejected(d.Rejected);
        if (result is { Outcome: SubmitOutcome.Committed, Version: { } v })
        {
            _recent = tree.Bundle;
            Consider(new Target(v, result.BundleHash, _s.Node.Name));
        }
    }

    /// <summary>A large bundle is not held once applied (it is read from the store when needed), and its memory is given back.</summary>
    private void AfterLargeTree()
    {
        _recent = null;
        Timers.StartSingleTimer("give-back", GiveMemoryBack.Instance, TimeSpan.FromSeconds(5));
    }

    private void Rejected(CandidateRejected r)
    {
        _lastRejected = r;
        Versions().Tell(r);
    }

    // ---- bundles: peers of this release fetch over HTTP (BundleFetcherActor); chunks serve an older one during an upgrade

    private void ServeChunk(FetchBundleChunk req)
    {
        var chunk = _store.ReadChunk(req.BundleHash, req.Offset, Math.Min(req.MaxBytes, _s.Config.ChunkBytes));
        Sender.Tell(chunk is { } c
            ? new BundleChunk(req.BundleHash, req.Offset, c.Total, c.Data)
            : new BundleUnavailable(req.BundleHash, _s.Node.Name));
    }

    /// <summary>The target's bundle, from the fetcher (which streams it from a peer over HTTP); answered with <see cref="BundleReady"/>.</summary>
    private void StartFetch(Target t)
    {
        if (!_fetching.Add(t.Hash)) return;
        _convergence = _convergence.FetchStarted();
        Fetcher().Tell(new FetchBundle(t.Hash, t.Origin));
    }

    private void OnFetched(BundleReady r)
    {
        if (!_fetching.Remove(r.Hash)) return;
        if (!r.Ok) ConfigMetrics.FetchFailures.Inc(); // tried again on the next anti-entropy round (the next tick)
        if (_target is { } t && t.Hash == r.Hash)
            _convergence = r.Ok ? _convergence.FetchEnded()
                : _convergence.Failed(t.Version, $"fetching version {t.Version}: {r.Reason}", DateTimeOffset.UtcNow);
        if (r.Ok) MaybeApply();
        ReportConvergence();
    }

    // ---- helpers -----------------------------------------------------------------------------

    private IActorRef Candidates() => ActorRegistry.For(Context.System).Get<CandidateKey>();

    private IActorRef ConfDir() => ActorRegistry.For(Context.System).Get<ConfDirKey>();

    private IActorRef Fetcher() => ActorRegistry.For(Context.System).Get<BundleFetcherKey>();

    /// <summary>The config-versions singleton: it numbers versions and hears what each node runs.</summary>
    private IActorRef Versions() => ActorRegistry.For(Context.System).Get<ConfigVersionsProxyKey>();

    private Applied? LoadApplied()
    {
        try
        {
            return File.Exists(_appliedFile) ? JsonSerializer.Deserialize<Applied>(File.ReadAllText(_appliedFile)) : null;
        }
        catch (JsonException e)
        {
            _log.Warning("Ignoring {0}: {1}", _appliedFile, e.Message);
            return null;
        }
    }

    private void SaveApplied(Applied a)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(_appliedFile)!);
        var tmp = _appliedFile + ".tmp";
        File.WriteAllText(tmp, JsonSerializer.Serialize(a));
        File.Move(tmp, _appliedFile, overwrite: true);
    }
}

/// <summary>A tree to validate and commit (from the HTTP API), or only to validate. Local to the node.</summary>
public sealed record SubmitTree(ConfBundle Bundle, string Source, string Author, bool DryRun = false);

/// <summary><see cref="Valid"/>: a dry run found nothing wrong.</summary>
public enum SubmitOutcome { Committed, Unchanged, Rejected, NotCommitted, Valid }

public sealed record SubmitResult(SubmitOutcome Outcome, long? Version, string BundleHash, string? Reason);

/// <summary>Make sure this node's store holds a bundle (fetching it if needed); answered with <see cref="BundleReady"/>.</summary>
public sealed record EnsureBundle(string Hash, string? Origin);

public sealed record BundleReady(string Hash, bool Ok, string? Reason);

public sealed record GetLocalConfig
{
    public static readonly GetLocalConfig Instance = new();
}

public sealed record LocalConfig(long Applied, string? AppliedHash, long Latest, long? FailedVersion, CandidateRejected? LastRejected,
    IReadOnlyList<string> Fetching);

/// <summary>Marker key for the node's config sync actor.</summary>
public sealed class ConfigSyncKey;

public static class ConfigSyncActorHostingExtensions
{
    public static AkkaConfigurationBuilder AddConfigSyncActor(this AkkaConfigurationBuilder builder, NodeSettings s, NodeView view,
        GateRoutes routes, NodeGates gates) =>
        builder.WithActors((system, registry) =>
            registry.Register<ConfigSyncKey>(system.ActorOf(Props.Create(() => new ConfigSyncActor(s, view, routes, gates)), ConfigSyncActor.Name)));
}
