using Akka.Actor;
using Akka.Event;
using Akka.Hosting;
using PromHa.Messages.Config;
using PromHa.Node.Cluster;
using PromHa.Node.Settings;

namespace PromHa.Node.Config;

/// <summary>
/// The node's conf dir (`confDir`), the tree an operator edits. On the master, once it runs the
/// latest version, it is authoritative: watched, and a changed tree is submitted as a candidate. On
/// a standby it follows the version the node runs, so that it is ready to be edited when the node
/// becomes master; edits made there meanwhile are saved to a backup first, with a warning.
/// ConfigSyncActor tells it what the node runs (<see cref="ConfigRunning"/>, every tick and after
/// every apply) and each version applied for the first time (<see cref="VersionApplied"/>).
/// </summary>
public sealed class ConfDirActor : ReceiveActor, IWithTimers
{
    public const string Name = "conf-dir";

    private readonly NodeSettings _s;
    private readonly NodeView _view;
    private readonly BundleStore _store;
    private readonly IActorRef _sync;
    private readonly string _backups;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly ScanCache _cache = new();
    /// <summary>Versions this conf dir produced: they are in it already (and newer edits may be too).</summary>
    private readonly HashSet<long> _fromWatch = [];
    private FileSystemWatcher? _watcher;
    /// <summary>Authoritative and scanned: with inotify events, or by the periodic rescan alone when a watcher cannot be had.</summary>
    private bool _watching;
    private ConfigRunning _running = new(null, null, CaughtUp: false);
    private string? _lastScanHash;
    private string? _lastScanError;
    private bool _scanPending;

    public ConfDirActor(NodeSettings settings, NodeView view, BundleStore store, IActorRef sync)
    {
        _s = settings;
        _view = view;
        _store = store;
        _sync = sync;
        _backups = Path.Combine(settings.DataDir, "config", "conf-backups");

        Receive<ConfigRunning>(r =>
        {
            _running = r;
            UpdateWatcher();
            if (_scanPending && r.CaughtUp)
            {
                _scanPending = false;
                Scan();
            }
        });
        Receive<VersionApplied>(a =>
        {
            if (!(_watching && _fromWatch.Contains(a.Version))) Follow(a.Bundle, a.Version);
        });
        Receive<Changed>(_ => Timers.StartSingleTimer("debounce", Rescan.Instance, TimeSpan.FromMilliseconds(_s.Config.DebounceMs)));
        Receive<Rescan>(_ => Scan());
        Receive<SubmitResult>(r =>
        {
            if (r is { Outcome: SubmitOutcome.Committed, Version: { } made }) _fromWatch.Add(made);
            if (r.Outcome == SubmitOutcome.NotCommitted) _lastScanHash = null; // try again on the next rescan
        });
    }

    public ITimerScheduler Timers { get; set; } = null!;

    public string Source => $"watch:{_s.Node.Name}";

    private sealed record Changed
    {
        public static readonly Changed Instance = new();
    }

    private sealed record Rescan
    {
        public static readonly Rescan Instance = new();
    }

    protected override void PostStop() => _watcher?.Dispose();

    /// <summary>A standby's conf dir becomes the version it runs.</summary>
    private void Follow(ConfBundle bundle, long version)
    {
        if (string.IsNullOrEmpty(_s.ConfDir)) return;
        try
        {
            // hashes only (an unchanged file is not read again): the contents only for a backup of local edits
            var current = Directory.Exists(_s.ConfDir) ? ConfBundle.FromDirectory(_s.ConfDir, _s.Config.Limits, _cache, contents: false) : null;
            if (current?.Hash == bundle.Hash) return;
            BackUpLocalEdits(current, $"local-edits-before-v{version}", $"they are not authoritative here, version {version} replaces them");
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
        current = ConfBundle.FromDirectory(_s.ConfDir, _s.Config.Limits); // whole (the caller may hold a manifest): the rare path
        var backup = ConfTree.Backup(current, _backups, label, _s.Config.Backups);
        _log.Warning("{0} had edits made on this node ({1}): {2}; saved them to {3}", _s.ConfDir, _s.Node.Name, why, backup);
    }

    /// <summary>
    /// Only the master's conf dir is authoritative, and only once this node runs the latest
    /// version: a node that just became master first replaces its standby-era edits.
    /// </summary>
    private void UpdateWatcher()
    {
        var master = _view.IsMaster && !string.IsNullOrEmpty(_s.ConfDir) && Directory.Exists(_s.ConfDir);
        if (master && !_watching && !_running.CaughtUp) return;
        if (master == _watching) return;
        if (!master)
        {
            _watcher?.Dispose();
            _watcher = null;
            _watching = false;
            _fromWatch.Clear();
            Timers.Cancel("rescan");
            _log.Info("No longer watching {0} (not the master)", _s.ConfDir);
            return;
        }
        if (_running.Hash is { } hash && _running.Version is { } version && _store.Load(hash) is { } running)
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
            if (current.Hash != running.Hash && NewestWriteUtc(_s.ConfDir) is var newest && !MadeAsMaster(newest, _view.MasterSinceUtc))
            {
                BackUpLocalEdits(current, $"standby-edits-v{version}",
                    $"they were made while this node was a standby (the last at {newest:HH:mm:ss.fff}, master since " +
                    $"{_view.MasterSinceUtc?.ToString("HH:mm:ss.fff") ?? "never"}: {Differing(current, running)}), so version {version} replaces them");
                try
                {
                    ConfTree.Sync(_s.ConfDir, running, current);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException or ConfTreeException)
                {
                    _log.Error("Could not write version {0} into {1}: {2}", version, _s.ConfDir, e.Message);
                }
            }
            _lastScanHash = running.Hash;
        }
        var self = Self;
        try
        {
            _watcher = new FileSystemWatcher(_s.ConfDir)
            {
                IncludeSubdirectories = true,
                InternalBufferSize = 64 * 1024,
                NotifyFilter = NotifyFilters.FileName | NotifyFilters.DirectoryName | NotifyFilters.LastWrite | NotifyFilters.Size,
            };
            FileSystemEventHandler changed = (_, _) => self.Tell(Changed.Instance);
            _watcher.Changed += changed;
            _watcher.Created += changed;
            _watcher.Deleted += changed;
            _watcher.Renamed += (_, _) => self.Tell(Changed.Instance);
            _watcher.Error += (_, _) => self.Tell(Changed.Instance); // overflow: rescan everything
            _watcher.EnableRaisingEvents = true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or PlatformNotSupportedException)
        {
            // the user's inotify instances used up (fs.inotify.max_user_instances): edits are still found, by the rescan
            _watcher?.Dispose();
            _watcher = null;
            _log.Warning("Cannot watch {0} ({1}); finding edits by the rescan every {2} s instead", _s.ConfDir, e.Message, _s.Config.RescanSeconds);
        }
        _watching = true;
        Timers.StartPeriodicTimer("rescan", Changed.Instance, TimeSpan.FromSeconds(_s.Config.RescanSeconds));
        _log.Info("Master: watching {0} for changes", _s.ConfDir);
        Self.Tell(Rescan.Instance);
    }

    /// <summary>
    /// How far before the promotion an edit still counts as the master's. A file's time comes from
    /// the kernel's coarse clock, up to a tick behind the clock the role was noted with: an edit
    /// written on the new master's first 200 from /primary carried 22:47:51.664 against a promotion
    /// noted at 22:47:51.664 and was put back as a standby's (CI). An edit made on a standby in the
    /// second before its promotion is published as the new master's: the operator's latest word.
    /// </summary>
    public static readonly TimeSpan PromotionGrace = TimeSpan.FromSeconds(1);

    /// <summary>Whether the newest write in the conf dir was made as master (never, when this node has not been master).</summary>
    public static bool MadeAsMaster(DateTime newestWriteUtc, DateTime? masterSinceUtc) =>
        masterSinceUtc is { } since && newestWriteUtc >= since - PromotionGrace;

    /// <summary>The paths that differ between two trees, at most a few: what an operator looks for in the backup.</summary>
    private static string Differing(ConfBundle a, ConfBundle b)
    {
        var paths = a.ChangedPaths(b).ToList();
        return string.Join(", ", paths.Take(5)) + (paths.Count > 5 ? $" and {paths.Count - 5} more" : "");
    }

    /// <summary>The last change in a tree: files written, and directories whose entries changed (a deletion).</summary>
    private static DateTime NewestWriteUtc(string dir) =>
        Directory.EnumerateFileSystemEntries(dir, "*", SearchOption.AllDirectories)
            .Select(p => File.GetLastWriteTimeUtc(p)).Append(Directory.GetLastWriteTimeUtc(dir)).Max();

    private void Scan()
    {
        if (!_watching || !_view.IsMaster) return;
        if (!_running.CaughtUp)
        {
            _scanPending = true; // after the version being applied
            return;
        }
        ConfBundle bundle;
        var sw = System.Diagnostics.Stopwatch.StartNew();
        try
        {
            // hashes first (an unchanged file is not read again); the contents only when the tree changed
            var manifest = ConfBundle.FromDirectory(_s.ConfDir, _s.Config.Limits, _cache, contents: false);
            if (manifest.Hash == _lastScanHash || manifest.Hash == _running.Hash)
            {
                _lastScanError = null;
                return;
            }
            bundle = ConfBundle.FromDirectory(_s.ConfDir, _s.Config.Limits, _cache); // unchanged files from the cache, within its budget
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ConfTreeException)
        {
            // Shown like a rejected candidate (status, metrics), once per distinct problem.
            if (_lastScanError != e.Message)
                _sync.Tell(CandidateActor.Rejection(_log, _s.Node.Name, "", Source, $"{Environment.UserName}@{_s.Node.Name}",
                    $"cannot read {_s.ConfDir}: {e.Message}"));
            _lastScanError = e.Message;
            _lastScanHash = null;
            return;
        }
        _lastScanError = null;
        if (bundle.Hash == _lastScanHash || bundle.Hash == _running.Hash) return;
        _lastScanHash = bundle.Hash;
        _log.Debug("Read {0} ({1} files) in {2} ms", _s.ConfDir, bundle.Files.Count, sw.ElapsedMilliseconds);
        // through ConfigSync, which knows the latest version the candidate is based on; the verdict comes back here
        _sync.Tell(new SubmitTree(bundle, Source, $"{Environment.UserName}@{_s.Node.Name}"));
    }
}

/// <summary>What the node runs (null before its first version), and whether that is the latest version it knows of.</summary>
public sealed record ConfigRunning(long? Version, string? Hash, bool CaughtUp);

/// <summary>A version this node applied for the first time, with its tree.</summary>
public sealed record VersionApplied(long Version, ConfBundle Bundle);

/// <summary>Marker key for the node's conf dir actor.</summary>
public sealed class ConfDirKey;

public static class ConfDirActorHostingExtensions
{
    /// <summary>The conf dir's keeper, submitting through and told by the node's ConfigSyncActor (registered before it).</summary>
    public static AkkaConfigurationBuilder AddConfDirActor(this AkkaConfigurationBuilder builder, NodeSettings s, NodeView view) =>
        builder.WithActors((system, registry) =>
        {
            var sync = registry.Get<ConfigSyncKey>();
            registry.Register<ConfDirKey>(system.ActorOf(
                Props.Create(() => new ConfDirActor(s, view, new BundleStore(s.DataDir, s.Config.Limits), sync)), ConfDirActor.Name));
        });
}
