using System.Diagnostics;
using System.Runtime.InteropServices;
using Akka.Actor;
using Akka.Event;
using Akka.Hosting;
using PromHa.Node.Cluster;
using PromHa.Node.Settings;

namespace PromHa.Node.Supervision;

/// <summary>What to run: the binary, its flags, and where its pid and log go.</summary>
public sealed record ServerLaunch(string Name, string Binary, IReadOnlyList<string> Args, string PidFile, string LogFile)
{
    public static ServerLaunch Prometheus(NodeSettings s) => new("prometheus", s.Prometheus.Binary,
    [
        $"--config.file={Path.Combine(s.Config.LiveDir, "prometheus.yml")}",
        $"--storage.tsdb.path={Path.Combine(s.DataDir, "prometheus")}",
        $"--web.listen-address={s.Prometheus.Listen}",
        $"--web.external-url=http://{s.Prometheus.Listen}/",
        "--web.enable-lifecycle",
        .. s.Prometheus.ExtraArgs,
    ], Path.Combine(s.DataDir, "prometheus.pid"), Path.Combine(s.DataDir, "logs", "prometheus.log"));

    public static ServerLaunch Alertmanager(NodeSettings s) => new("alertmanager", s.Alertmanager.Binary,
    [
        $"--config.file={Path.Combine(s.Config.LiveDir, "alertmanager.yml")}",
        $"--storage.path={Path.Combine(s.DataDir, "alertmanager")}",
        $"--web.listen-address={s.Alertmanager.Listen}",
        $"--web.external-url=http://{s.Alertmanager.Listen}/",
        // Gossip shares silences and the notification log between the nodes' Alertmanagers; each
        // instance has its own address (several on one host would collide on the default :9094).
        .. Gossip(s.Alertmanager),
        .. s.Alertmanager.ExtraArgs,
    ], Path.Combine(s.DataDir, "alertmanager.pid"), Path.Combine(s.DataDir, "logs", "alertmanager.log"));

    public static IEnumerable<string> Gossip(ManagedServer am) => am.ClusterListen is "" or "off"
        ? ["--cluster.listen-address="]
        : [$"--cluster.listen-address={am.ClusterListen}", .. am.ClusterPeers.Select(p => $"--cluster.peer={p}")];
}

/// <summary>
/// Runs a local prometheus or alertmanager when PromHa supervises it: starts it detached (it
/// outlives promha), restarts it with exponential backoff when it exits, and adopts the one a
/// previous promha left running when its binary and flags are what this node would start. promha
/// stopping, crashing, being downed or upgraded never stops it; `promha servers stop` does.
/// </summary>
public sealed class ServerSupervisorActor : ReceiveActor, IWithTimers
{
    private static readonly TimeSpan MinBackoff = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan StableAfter = TimeSpan.FromSeconds(60);

    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly ServerLaunch _launch;
    private Process? _process;
    /// <summary>A server a previous promha started: not our child, so it is watched through /proc.</summary>
    private int? _adopted;
    private TimeSpan _backoff = MinBackoff;
    private DateTimeOffset _startedAt;

    private readonly TimeProvider _time;
    private DateTimeOffset Now => _time.GetUtcNow();

    public ServerSupervisorActor(ServerLaunch launch, TimeProvider time)
    {
        _time = time;
        _launch = launch;
        Receive<Start>(_ => StartProcess());
        Receive<WatchAdopted>(_ =>
        {
            if (_adopted is { } pid && !DetachedServer.IsRunning(pid)) Self.Tell(new Exited(pid, -1));
        });
        Receive<Exited>(e =>
        {
            if ((_process?.Id ?? _adopted) != e.Pid) return;
            _adopted = null;
            Timers.Cancel("watch");
            var ranFor = Now - _startedAt;
            if (ranFor > StableAfter) _backoff = MinBackoff;
            _log.Warning("{0} (pid {1}) exited with code {2} after {3:F1}s; restarting in {4:F1}s (log: {5})",
                _launch.Name, e.Pid, e.Code, ranFor.TotalSeconds, _backoff.TotalSeconds, _launch.LogFile);
            Cleanup();
            // the health probe checks at once instead of on its next round
            Context.System.EventStream.Publish(new ServerExited(_launch.Name, e.Pid));
            NodeMetrics.ServerRestarts.WithLabels(_launch.Name).Inc();
            Timers.StartSingleTimer("start", Start.Instance, _backoff);
            _backoff = TimeSpan.FromTicks(Math.Min(MaxBackoff.Ticks, _backoff.Ticks * 2));
        });
    }

    public ITimerScheduler Timers { get; set; } = null!;

    private sealed record Start
    {
        public static readonly Start Instance = new();
    }

    private sealed record Exited(int Pid, int Code);

    /// <summary>Published on the node's event stream when a supervised server exits.</summary>
    public sealed record ServerExited(string Name, int Pid);

    private sealed record WatchAdopted
    {
        public static readonly WatchAdopted Instance = new();
    }

    protected override void PreStart()
    {
        Directory.CreateDirectory(Path.GetDirectoryName(_launch.LogFile)!);
        var pid = DetachedServer.FindAdoptable(_launch, out var why);
        if (pid > 0)
        {
            _adopted = pid;
            _startedAt = Now;
            Timers.StartPeriodicTimer("watch", WatchAdopted.Instance, TimeSpan.FromSeconds(1));
            _log.Info("Adopted {0} (pid {1}) left running by a previous promha: same binary and flags", _launch.Name, pid);
            return;
        }
        // Running with other flags (promha.yml changed, an upgrade that starts it differently): replace it.
        if (pid < 0 && StopRecorded(_launch.PidFile) is { } stopped)
            _log.Warning("Stopped {0} (pid {1}) left by a previous promha: {2}; starting it as configured now", _launch.Name, stopped, why);
        Self.Tell(Start.Instance);
    }

    // No PostStop that stops the server: it outlives promha on purpose (docs/reference.md, "Supervised servers").

    private void StartProcess()
    {
        if (!File.Exists(_launch.Binary))
        {
            _log.Error("{0}: binary {1} not found (apt-get install -y prometheus prometheus-alertmanager); retrying in {2:F0}s",
                _launch.Name, _launch.Binary, _backoff.TotalSeconds);
            Timers.StartSingleTimer("start", Start.Instance, _backoff);
            _backoff = TimeSpan.FromTicks(Math.Min(MaxBackoff.Ticks, _backoff.Ticks * 2));
            return;
        }
        var self = Self;
        var p = DetachedServer.Start(_launch);
        var pid = p.Id;
        p.Exited += (_, _) => self.Tell(new Exited(pid, SafeExitCode(p)));
        if (p.HasExited) self.Tell(new Exited(pid, SafeExitCode(p)));
        _process = p;
        _startedAt = Now;
        _log.Info("Started {0} (pid {1}): {2} {3}", _launch.Name, p.Id, _launch.Binary, string.Join(' ', _launch.Args));
    }

    private static int SafeExitCode(Process p)
    {
        try { return p.ExitCode; } catch (Exception e) when (e is InvalidOperationException or ObjectDisposedException) { return -1; }
    }

    private void Cleanup()
    {
        _process?.Dispose();
        _process = null;
    }

    /// <summary>
    /// Stops the process a pid file names, if it still runs that binary (a reused pid is left
    /// alone). Returns the pid it stopped.
    /// </summary>
    public static int? StopRecorded(string pidFile)
    {
        if (!File.Exists(pidFile)) return null;
        var lines = File.ReadAllLines(pidFile);
        if (lines.Length < 2 || !int.TryParse(lines[0], out var pid)) return null;
        try
        {
            if (!DetachedServer.IsRunning(pid) || !DetachedServer.Runs(pid, lines[1])) return null;
            using var p = Process.GetProcessById(pid);
            Terminate(p, TimeSpan.FromSeconds(10));
            return pid;
        }
        catch (Exception e) when (e is ArgumentException or IOException or UnauthorizedAccessException)
        {
            return null; // not running
        }
    }

    public static void Terminate(Process p, TimeSpan grace)
    {
        try
        {
            if (p.HasExited) return;
            _ = SysKill(p.Id, 15);
            if (!p.WaitForExit(grace)) p.Kill();
            p.WaitForExit(2000);
        }
        catch (InvalidOperationException) { /* already gone */ }
    }

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int SysKill(int pid, int signal);
}

public sealed class PrometheusSupervisorKey;
public sealed class AlertmanagerSupervisorKey;

public static class ServerSupervisorActorHostingExtensions
{
    /// <summary>Starts a supervisor for each server that promha.yml marks as supervised.</summary>
    public static AkkaConfigurationBuilder AddServerSupervisorActors(this AkkaConfigurationBuilder builder, NodeSettings s, TimeProvider time) =>
        builder.WithActors((system, registry) =>
        {
            var supervisors = new List<IActorRef>();
            if (s.Prometheus.Mode == ServerMode.Supervised)
            {
                supervisors.Add(system.ActorOf(Props.Create(() => new ServerSupervisorActor(ServerLaunch.Prometheus(s), time)), "prometheus-supervisor"));
                registry.Register<PrometheusSupervisorKey>(supervisors[^1]);
            }
            if (s.Alertmanager.Mode == ServerMode.Supervised)
            {
                supervisors.Add(system.ActorOf(Props.Create(() => new ServerSupervisorActor(ServerLaunch.Alertmanager(s), time)), "alertmanager-supervisor"));
                registry.Register<AlertmanagerSupervisorKey>(supervisors[^1]);
            }
        });
}
