using System.Text.Json;
using Akka.Actor;
using Akka.Cluster.Tools.PublishSubscribe;
using Akka.Event;
using Akka.Hosting;
using PromHa.Messages.Config;
using PromHa.Node.Alerts;
using PromHa.Messages.Ledger;
using PromHa.Node.Cluster;
using PromHa.Node.Master;
using PromHa.Node.Reload;
using PromHa.Node.Settings;

namespace PromHa.Node.Config;

/// <summary>
/// Configuration on one node. On the master it watches the conf dir and turns a changed tree into a
/// validated candidate; on every node it takes uploads (`promha config apply`), learns of new
/// versions (pub/sub, and the singleton's heartbeat every second as anti-entropy), fetches bundles
/// it lacks in chunks from the node that has them, and hands them to the Reloader.
/// </summary>
public sealed class ConfigSyncActor : ReceiveActor, IWithTimers
{
    public const string Name = "config-sync";
    private static readonly TimeSpan TickInterval = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan FetchStall = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan RetryFailedAfter = TimeSpan.FromSeconds(30);
    private const int FetchWindow = 4;

    private readonly NodeSettings _s;
    private readonly NodeView _view;
    private readonly BundleStore _store;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly Akka.Cluster.Cluster _cluster = Akka.Cluster.Cluster.Get(Context.System);
    private readonly string _appliedFile;
    private readonly string _confBackups;
    private readonly Dictionary<string, Fetch> _fetches = new();

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
    private readonly GateRendering? _gate;
    private FileSystemWatcher? _watcher;
    private string? _lastScanHash;
    private string? _lastScanError;
    private readonly ScanCache _scanCache = new();
    private ConfBundle? _recent; // the bundle last stored or fetched: applied next, without reading it back
    private bool _scanPending;
    private readonly HashSet<long> _fromWatch = []; // versions this conf dir produced
    private CandidateRejected? _lastRejected;

    public ConfigSyncActor(NodeSettings settings, NodeView view, GateRoutes routes, GateRendering? gate)
    {
        _s = settings;
        _view = view;
        _routes = routes;
        _gate = gate;
        if (settings.Alertmanager.Mode != ServerMode.None) _alertmanagers.Add(settings.Advertised(settings.Alertmanager.EffectiveUrl));
        _store = new BundleStore(settings.DataDir, settings.Config.Limits);
        _appliedFile = Path.Combine(settings.DataDir, "config", "applied.json");
        _confBackups = Path.Combine(settings.DataDir, "config", "conf-backups");
        _applied = LoadApplied();

        Receive<Tick>(_ => OnTick());
        Receive<ConfigVersionAvailable>(a => Consider(new Target(a.Version, a.BundleHash, a.Origin)));
        Receive<ConfigHeartbeat>(h =>
        {
            _view.ConfigCluster = h;
            if (h.Latest is { } latest) Consider(new Target(latest.Version, latest.BundleHash, latest.Origin));
        });
        Receive<ApplyFinished>(OnApplyFinished);
        Receive<FetchBundleChunk>(ServeChunk);
        Receive<BundleChunk>(OnChunk);
        Receive<BundleUnavailable>(u =>
        {
            if (_fetches.TryGetValue(u.BundleHash, out var f)) NextSource(f, $"{u.Node} does not have it");
        });
        Receive<FetchCheck>(c =>
        {
            if (!_fetches.TryGetValue(c.Hash, out var f)) return;
            if (f.Received == c.ReceivedAtLastCheck) NextSource(f, $"no data for {FetchStall.TotalSeconds:F0}s");
            else Timers.StartSingleTimer($"fetch-{c.Hash}", new FetchCheck(c.Hash, f.Received), FetchStall);
        });
        Receive<EnsureBundle>(e =>
        {
            if (_store.Has(e.Hash)) Sender.Tell(new BundleReady(e.Hash, true, null));
            else StartFetch(e.Hash, e.Origin, Sender);
        });
        Receive<ConfChanged>(_ => Timers.StartSingleTimer("debounce", ScanConf.Instance, TimeSpan.FromMilliseconds(_s.Config.DebounceMs)));
        ReceiveAsync<ScanConf>(_ => Scan());
        ReceiveAsync<SubmitTree>(async t => Sender.Tell(t.DryRun ? await Check(t.Bundle) : await Submit(t.Bundle, t.Source, t.Author)));
        Receive<GetLocalConfig>(_ => Sender.Tell(new LocalConfig(_applied?.Version ?? 0, _applied?.Hash, _target?.Version ?? 0,
            _failed?.Version, _lastRejected, _fetches.Keys.ToList())));
        Receive<SubscribeAck>(_ => { });
    }

    public ITimerScheduler Timers { get; set; } = null!;

    private sealed record Applied(long Version, string Hash, DateTimeOffset At);

    private sealed record Target(long Version, string Hash, string Origin);

    private sealed class Fetch(string hash, List<Address> sources)
    {
        public string Hash { get; } = hash;
        public List<Address> Sources { get; } = sources;
        public int SourceIndex { get; set; }
        public MemoryStream Buffer { get; set; } = new();
        public long Total { get; set; } = -1;
        public long RequestedUpTo { get; set; }
        public long Received => Buffer.Length;
        public List<IActorRef> Waiters { get; } = [];
    }

    private sealed record Tick
    {
        public static readonly Tick Instance = new();
    }

    private sealed record ConfChanged
    {
        public static readonly ConfChanged Instance = new();
    }

    private sealed record ScanConf
    {
        public static readonly ScanConf Instance = new();
    }

    private sealed record FetchCheck(string Hash, long ReceivedAtLastCheck);

    protected override void PreStart()
    {
        DistributedPubSub.Get(Context.System).Mediator.Tell(new Subscribe(ConfigTopics.Config, Self));
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

    protected override void PostStop() => _watcher?.Dispose();

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
        if (_failed is { } f && Clock.Now - f.At > RetryFailedAfter) MaybeApply();
        UpdateWatcher();
    }

    private void Consider(Target t)
    {
        if (_target is not null && t.Version <= _target.Version) return;
        _target = t;
        ConfigMetrics.Latest.Set(t.Version);
        _view.ConfigLatest = t.Version;
        MaybeApply();
    }

    private void MaybeApply()
    {
        if (_applying || _target is not { } t) return;
        if (_applied is not null && t.Version <= _applied.Version && !_forceReapply) return;
        if (_failed is { } f && f.Version == t.Version && Clock.Now - f.At < RetryFailedAfter && !_forceReapply) return;
        if (!_store.Has(t.Hash))
        {
            StartFetch(t.Hash, t.Origin, null);
            return;
        }
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
            Gate = _gate,
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
                // A version made from this conf dir is already in it (and newer edits may be too).
                if (!(_watcher is not null && _fromWatch.Contains(r.Version)) &&
                    (_recent?.Hash == r.BundleHash ? _recent : _store.Load(r.BundleHash)) is { } bundle)
                    WriteConfDir(bundle, r.Version);
            }
            Versions().Tell(new ConfigApplied(_s.Node.Name, r.Version, r.BundleHash, r.Seconds, DateTimeOffset.UtcNow));
        }
        else
        {
            _failed = (r.Version, Clock.Now);
            ConfigMetrics.ReloadFailures.Inc();
            _log.Error("Config version {0} not applied, previous config kept: {1}", r.Version, r.Reason);
            Versions().Tell(new ConfigApplyFailed(_s.Node.Name, r.Version, r.Reason ?? "unknown", DateTimeOffset.UtcNow));
        }
        MaybeApply();
        if (_scanPending && CaughtUp)
        {
            _scanPending = false;
            Self.Tell(ScanConf.Instance);
        }
    }

    /// <summary>
    /// Keeps this node's conf dir equal to the version it runs, so that it is ready to be edited
    /// when this node becomes master. Edits made here meanwhile (a standby's edits are not
    /// authoritative) are saved to a backup first, with a warning.
    /// </summary>
    private void WriteConfDir(ConfBundle bundle, long version)
    {
        if (string.IsNullOrEmpty(_s.ConfDir)) return;
        try
        {
            var current = Directory.Exists(_s.ConfDir) ? ConfBundle.FromDirectory(_s.ConfDir, _s.Config.Limits) : null;
            if (current?.Hash == bundle.Hash) return;
            BackUpLocalEdits(current, $"local-edits-before-v{version}",
                $"they are not authoritative here, version {version} replaces them");
            ConfTree.Sync(_s.ConfDir, bundle, current);
            _lastScanHash = bundle.Hash; // our own write is not an edit
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ConfTreeException)
        {
            _log.Error("Could not write version {0} into {1}: {2}", version, _s.ConfDir, e.Message);
        }
    }

    private void BackUpLocalEdits(ConfBundle? current, string label, string why)
    {
        // Content this node itself wrote (any version it holds) is not an edit.
        if (current is null || current.Files.Count == 0 || _store.Has(current.Hash)) return;
        var backup = ConfTree.Backup(current, _confBackups, label, _s.Config.Backups);
        _log.Warning("{0} had edits made on this node ({1}): {2}; saved them to {3}", _s.ConfDir, _s.Node.Name, why, backup);
    }

    // ---- the master's conf dir ---------------------------------------------------------------

    /// <summary>
    /// Only the master's conf dir is authoritative, and only once this node runs the latest
    /// version: a node that just became master first replaces its standby-era edits.
    /// </summary>
    private void UpdateWatcher()
    {
        var master = _view.IsMaster && !string.IsNullOrEmpty(_s.ConfDir) && Directory.Exists(_s.ConfDir);
        // Start watching once this node runs the latest version; stop when it is no longer master.
        if (master && _watcher is null && !CaughtUp) return;
        if (master == (_watcher is not null)) return;
        if (!master)
        {
            _watcher!.Dispose();
            _watcher = null;
            _fromWatch.Clear();
            Timers.Cancel("rescan");
            _log.Info("No longer watching {0} (not the master)", _s.ConfDir);
            return;
        }
        if (_applied is not null && _store.Load(_applied.Hash) is { } running)
        {
            ConfBundle current;
            try
            {
                current = ConfBundle.FromDirectory(_s.ConfDir, _s.Config.Limits);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or ConfTreeException)
            {
                // Still watch: the scan reports the problem as a rejected candidate until it is fixed.
                _log.Error("Cannot read {0}: {1}", _s.ConfDir, e.Message);
                current = running;
            }
            // Edits made after this node became master are the operator's next version; older
            // ones were made on a standby and are not authoritative.
            if (current.Hash != running.Hash && !(_view.MasterSinceUtc is { } since && NewestWriteUtc(_s.ConfDir) >= since))
            {
                BackUpLocalEdits(current, $"standby-edits-v{_applied.Version}",
                    $"they were made while this node was a standby, so version {_applied.Version} replaces them");
                try
                {
                    ConfTree.Sync(_s.ConfDir, running, current);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException or ConfTreeException)
                {
                    _log.Error("Could not write version {0} into {1}: {2}", _applied.Version, _s.ConfDir, e.Message);
                }
            }
            _lastScanHash = running.Hash;
        }
        var self = Self;
        _watcher = new FileSystemWatcher(_s.ConfDir)
        {
            IncludeSubdirectories = true,
            InternalBufferSize = 64 * 1024,
            NotifyFilter = NotifyFilters.FileName | NotifyFilters.DirectoryName | NotifyFilters.LastWrite | NotifyFilters.Size,
        };
        FileSystemEventHandler changed = (_, _) => self.Tell(ConfChanged.Instance);
        _watcher.Changed += changed;
        _watcher.Created += changed;
        _watcher.Deleted += changed;
        _watcher.Renamed += (_, _) => self.Tell(ConfChanged.Instance);
        _watcher.Error += (_, _) => self.Tell(ConfChanged.Instance); // overflow: rescan everything
        _watcher.EnableRaisingEvents = true;
        Timers.StartPeriodicTimer("rescan", ConfChanged.Instance, TimeSpan.FromSeconds(_s.Config.RescanSeconds));
        _log.Info("Master: watching {0} for changes", _s.ConfDir);
        Self.Tell(ScanConf.Instance);
    }

    /// <summary>The last change in a tree: files written, and directories whose entries changed (a deletion).</summary>
    private static DateTime NewestWriteUtc(string dir) =>
        Directory.EnumerateFileSystemEntries(dir, "*", SearchOption.AllDirectories)
            .Select(p => File.GetLastWriteTimeUtc(p)).Append(Directory.GetLastWriteTimeUtc(dir)).Max();

    private bool CaughtUp => _target is null || (_applied is not null && _applied.Version >= _target.Version);

    private async Task Scan()
    {
        if (_watcher is null || !_view.IsMaster) return;
        if (!CaughtUp)
        {
            _scanPending = true; // after the version being applied
            return;
        }
        ConfBundle bundle;
        var sw = System.Diagnostics.Stopwatch.StartNew();
        try
        {
            bundle = ConfBundle.FromDirectory(_s.ConfDir, _s.Config.Limits, _scanCache);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ConfTreeException)
        {
            // Shown like a rejected candidate (status, metrics), once per distinct problem.
            if (_lastScanError != e.Message) Reject("", $"watch:{_s.Node.Name}", $"{Environment.UserName}@{_s.Node.Name}", $"cannot read {_s.ConfDir}: {e.Message}");
            _lastScanError = e.Message;
            _lastScanHash = null;
            return;
        }
        _lastScanError = null;
        if (bundle.Hash == _lastScanHash || bundle.Hash == _applied?.Hash) return;
        _lastScanHash = bundle.Hash;
        _log.Debug("Read {0} ({1} files) in {2} ms", _s.ConfDir, bundle.Files.Count, sw.ElapsedMilliseconds);
        var outcome = await Submit(bundle, $"watch:{_s.Node.Name}", $"{Environment.UserName}@{_s.Node.Name}");
        if (outcome is { Outcome: SubmitOutcome.Committed, Version: { } v }) _fromWatch.Add(v);
        if (outcome.Outcome == SubmitOutcome.NotCommitted) _lastScanHash = null; // try again on the next rescan
    }

    // ---- candidates ------------------------------------------------------------------------

    /// <summary>
    /// Why the tree cannot be a version (a name no node can carry, a bundle that does not read back,
    /// what promtool or amtool say against it as the master would run it), or null and the bundle's
    /// bytes, read back already, when it can.
    /// </summary>
    private async Task<(string? Invalid, byte[]? Archive)> Validate(ConfBundle bundle)
    {
        if (bundle.Files.Count == 0) return ("the tree is empty", null);
        byte[] archive;
        try
        {
            archive = bundle.ToVerifiedTarGz(_s.Config.Limits);
        }
        catch (ConfTreeException e)
        {
            return (e.Reason, null);
        }
        return (await Invalid(bundle), archive);
    }

    /// <summary>What promtool or amtool say against the tree as the master would run it, or null when it is valid.</summary>
    private async Task<string?> Invalid(ConfBundle bundle)
    {
        try
        {
            var rendered = ConfigRenderer.Render(bundle, RenderContextNow(isMaster: true) with { MasterPrometheus = null });
            return await ConfigValidator.Validate(rendered, Path.Combine(_s.DataDir, "config", "staging", "candidate"), ValidationTools.For(_s));
        }
        catch (ConfTreeException e)
        {
            return e.Message;
        }
    }

    /// <summary>A dry run: validated like a candidate, and nothing else (not stored, not counted as rejected).</summary>
    private async Task<SubmitResult> Check(ConfBundle bundle)
    {
        if (_target is { } t && t.Hash == bundle.Hash)
            return new SubmitResult(SubmitOutcome.Unchanged, t.Version, bundle.Hash, "same content as the latest version");
        return (await Validate(bundle)).Invalid is { } invalid
            ? new SubmitResult(SubmitOutcome.Rejected, null, bundle.Hash, invalid)
            : new SubmitResult(SubmitOutcome.Valid, null, bundle.Hash, null);
    }

    /// <summary>Validates a tree as the master would run it, stores it and asks the singleton for a version.</summary>
    private async Task<SubmitResult> Submit(ConfBundle bundle, string source, string author)
    {
        if (_target is { } t && t.Hash == bundle.Hash)
            return new SubmitResult(SubmitOutcome.Unchanged, t.Version, bundle.Hash, "same content as the latest version");
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var (invalid, archive) = await Validate(bundle);
        if (invalid is not null) return Reject(bundle, source, author, invalid);
        var validated = sw.ElapsedMilliseconds;
        _store.Save(bundle.Hash, archive!);
        _recent = bundle;
        var stored = sw.ElapsedMilliseconds;
        try
        {
            var reply = await Versions().Ask<object>(
                new SubmitCandidate(bundle.Hash, bundle.Files.Count, bundle.Bytes, source, author, _s.Node.Name), TimeSpan.FromSeconds(20));
            switch (reply)
            {
                case CandidateCommitted c:
                    if (c.Created)
                        _log.Info("Candidate {0} from {1} is version {2} (validated in {3} ms, stored in {4} ms, committed in {5} ms)",
                            bundle.Hash[..12], source, c.Version, validated, stored - validated, sw.ElapsedMilliseconds - stored);
                    Consider(new Target(c.Version, c.BundleHash, _s.Node.Name));
                    return new SubmitResult(c.Created ? SubmitOutcome.Committed : SubmitOutcome.Unchanged, c.Version, bundle.Hash,
                        c.Created ? null : "same content as the latest version");
                case CandidateNotCommitted n:
                    _log.Warning("Candidate {0} from {1} not committed: {2}", bundle.Hash[..12], source, n.Reason);
                    return new SubmitResult(SubmitOutcome.NotCommitted, null, bundle.Hash, n.Reason);
                default:
                    return new SubmitResult(SubmitOutcome.NotCommitted, null, bundle.Hash, $"unexpected answer {reply.GetType().Name}");
            }
        }
        catch (AskTimeoutException)
        {
            return new SubmitResult(SubmitOutcome.NotCommitted, null, bundle.Hash, "the master singleton did not answer within 20 s");
        }
    }

    private SubmitResult Reject(ConfBundle bundle, string source, string author, string reason) => Reject(bundle.Hash, source, author, reason);

    private SubmitResult Reject(string hash, string source, string author, string reason)
    {
        _log.Error("Rejected the candidate from {0} ({1}): {2}", source, hash.Length >= 12 ? hash[..12] : "unreadable", reason);
        ConfigMetrics.Rejected.WithLabels(source.Split(':')[0]).Inc();
        ConfigMetrics.LastRejected.Set(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0);
        _lastRejected = new CandidateRejected(_s.Node.Name, hash, source, author, reason, DateTimeOffset.UtcNow);
        Versions().Tell(_lastRejected);
        return new SubmitResult(SubmitOutcome.Rejected, null, hash, reason);
    }

    // ---- fetching bundles in chunks ----------------------------------------------------------

    private void ServeChunk(FetchBundleChunk req)
    {
        var chunk = _store.ReadChunk(req.BundleHash, req.Offset, Math.Min(req.MaxBytes, _s.Config.ChunkBytes));
        Sender.Tell(chunk is { } c
            ? new BundleChunk(req.BundleHash, req.Offset, c.Total, c.Data)
            : new BundleUnavailable(req.BundleHash, _s.Node.Name));
    }

    /// <summary>The origin first, then every other member: any node that applied a version has its bundle.</summary>
    private void StartFetch(string hash, string? origin, IActorRef? waiter)
    {
        if (_fetches.TryGetValue(hash, out var running))
        {
            if (waiter is not null) running.Waiters.Add(waiter);
            return;
        }
        var members = _cluster.State.Members
            .Where(m => m.Address != _cluster.SelfAddress && !_cluster.State.Unreachable.Contains(m))
            .OrderBy(m => MemberRoles.NodeName(m) == origin ? 0 : 1)
            .Select(m => m.Address).ToList();
        var f = new Fetch(hash, members);
        if (waiter is not null) f.Waiters.Add(waiter);
        if (members.Count == 0)
        {
            Finish(f, false, "no other member to fetch it from");
            return;
        }
        _fetches[hash] = f;
        _log.Info("Fetching bundle {0} from {1}", hash[..12], members[0]);
        RequestMore(f);
        Timers.StartSingleTimer($"fetch-{hash}", new FetchCheck(hash, 0), FetchStall);
    }

    private void RequestMore(Fetch f)
    {
        var chunk = _s.Config.ChunkBytes;
        var target = Context.ActorSelection(new RootActorPath(f.Sources[f.SourceIndex]) / "user" / Name);
        // The size is known after the first chunk; then keep a few requests in flight.
        if (f.Total < 0)
        {
            if (f.RequestedUpTo == 0)
            {
                target.Tell(new FetchBundleChunk(f.Hash, 0, chunk));
                f.RequestedUpTo = chunk;
            }
            return;
        }
        while (f.RequestedUpTo < f.Total && f.RequestedUpTo - f.Received < (long)FetchWindow * chunk)
        {
            target.Tell(new FetchBundleChunk(f.Hash, f.RequestedUpTo, chunk));
            f.RequestedUpTo += chunk;
        }
    }

    private void OnChunk(BundleChunk c)
    {
        if (!_fetches.TryGetValue(c.BundleHash, out var f) || c.Offset != f.Received) return; // late or from an old source
        f.Total = c.Total;
        f.Buffer.Write(c.Data);
        if (f.Received < f.Total && c.Data.Length > 0)
        {
            RequestMore(f);
            return;
        }
        try
        {
            _recent = _store.Import(f.Buffer.ToArray(), f.Hash);
            _log.Info("Fetched bundle {0} ({1} bytes)", f.Hash[..12], f.Total);
            Finish(f, true, null);
            MaybeApply();
        }
        catch (Exception e) when (e is ConfTreeException or ArchiveTooLargeException or InvalidDataException or IOException or FormatException
                                       or OverflowException or NotSupportedException)
        {
            NextSource(f, $"bad bundle: {e.Message}");
        }
    }

    private void NextSource(Fetch f, string why)
    {
        _log.Warning("Fetching bundle {0} from {1} failed ({2})", f.Hash[..12], f.Sources[f.SourceIndex], why);
        f.SourceIndex++;
        if (f.SourceIndex >= f.Sources.Count)
        {
            Finish(f, false, $"no member could send bundle {f.Hash[..12]} ({why})");
            return;
        }
        f.Buffer = new MemoryStream();
        f.Total = -1;
        f.RequestedUpTo = 0;
        RequestMore(f);
        Timers.StartSingleTimer($"fetch-{f.Hash}", new FetchCheck(f.Hash, 0), FetchStall);
    }

    private void Finish(Fetch f, bool ok, string? reason)
    {
        _fetches.Remove(f.Hash);
        Timers.Cancel($"fetch-{f.Hash}");
        foreach (var w in f.Waiters) w.Tell(new BundleReady(f.Hash, ok, reason));
        if (!ok) _log.Warning("Bundle {0} not fetched: {1}; trying again on the next anti-entropy round", f.Hash[..12], reason);
    }

    // ---- helpers -----------------------------------------------------------------------------

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
        GateRoutes routes, GateRendering? gate) =>
        builder.WithActors((system, registry) =>
            registry.Register<ConfigSyncKey>(system.ActorOf(Props.Create(() => new ConfigSyncActor(s, view, routes, gate)), ConfigSyncActor.Name)));
}
