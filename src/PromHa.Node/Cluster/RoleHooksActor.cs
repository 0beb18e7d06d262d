using System.Diagnostics;
using System.Text.Json;
using Akka.Actor;
using Akka.Event;
using Akka.Hosting;
using PromHa.Node.Settings;

namespace PromHa.Node.Cluster;

/// <summary>One run of an on-role-change hook, as the history shows it.</summary>
public sealed record HookRun(DateTimeOffset At, string Role, long Epoch, string? Master, string Script, int? ExitCode, double Seconds,
    bool TimedOut, string Output);

/// <summary>Local: the hook runs this node kept, newest last.</summary>
public sealed record GetHookRuns
{
    public static readonly GetHookRuns Instance = new();
}

/// <summary>
/// Runs the operator's on-role-change scripts (hooks.onRoleChange) when this node becomes master or
/// standby, like keepalived's notify_master/notify_backup and Patroni's on_role_change, but in
/// order, one at a time: a change that comes while a hook runs waits for it (never kills it), each
/// hook has hooks.timeoutSeconds, and every result is kept (&lt;dataDir&gt;/hooks.jsonl, the history API).
/// Arguments: ROLE EPOCH MASTER; environment PROMHA_ROLE, PROMHA_EPOCH, PROMHA_MASTER, PROMHA_NODE,
/// PROMHA_PREVIOUS_ROLE.
/// </summary>
public sealed class RoleHooksActor : ReceiveActor, IWithTimers
{
    public const string Name = "role-hooks";
    private const int KeepRuns = 200;

    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly NodeSettings _s;
    private readonly NodeView _view;
    private readonly string _file;
    private readonly List<HookRun> _runs = [];
    private readonly Queue<(string Role, long Epoch, string? Master, string? Previous)> _pending = new();
    private string? _role;
    private bool _running;

    public RoleHooksActor(NodeSettings s, NodeView view)
    {
        _s = s;
        _view = view;
        _file = Path.Combine(s.DataDir, "hooks.jsonl");
        Receive<Tick>(_ => Observe());
        Receive<List<HookRun>>(runs =>
        {
            _running = false;
            foreach (var r in runs) Keep(r);
            Next();
        });
        Receive<GetHookRuns>(_ => Sender.Tell(_runs.ToList()));
    }

    public ITimerScheduler Timers { get; set; } = null!;

    private sealed record Tick
    {
        public static readonly Tick Instance = new();
    }

    protected override void PreStart()
    {
        if (File.Exists(_file))
            foreach (var line in File.ReadLines(_file).TakeLast(KeepRuns))
                try
                {
                    if (JsonSerializer.Deserialize<HookRun>(line) is { } r) _runs.Add(r);
                }
                catch (JsonException) { /* a torn last line after a crash */ }
        Timers.StartPeriodicTimer("tick", Tick.Instance, TimeSpan.FromMilliseconds(250));
    }

    private void Observe()
    {
        var snap = _view.Current;
        if (snap.Master is null && !snap.HoldsLease) return; // no role known yet
        var role = _view.Witness ? "witness" : snap.HoldsLease ? "master" : "standby";
        if (role == _role) return;
        var previous = _role;
        _role = role;
        if (_s.Hooks.OnRoleChange.Count == 0) return;
        _pending.Enqueue((role, snap.Epoch, snap.Master, previous));
        Next();
    }

    private void Next()
    {
        if (_running || !_pending.TryDequeue(out var change)) return;
        _running = true;
        var (role, epoch, master, previous) = change;
        var scripts = _s.Hooks.OnRoleChange.ToList();
        var timeout = TimeSpan.FromSeconds(_s.Hooks.TimeoutSeconds);
        var node = _s.Node.Name;
        var log = _log;
        Task.Run(async () =>
        {
            var runs = new List<HookRun>();
            foreach (var script in scripts) runs.Add(await Run(script, role, epoch, master, previous, node, timeout, log));
            return runs;
        }).PipeTo(Self);
    }

    private static async Task<HookRun> Run(string script, string role, long epoch, string? master, string? previous, string node,
        TimeSpan timeout, ILoggingAdapter log)
    {
        var at = DateTimeOffset.UtcNow;
        var sw = Stopwatch.StartNew();
        var psi = new ProcessStartInfo(script)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in new[] { role, epoch.ToString(System.Globalization.CultureInfo.InvariantCulture), master ?? "" }) psi.ArgumentList.Add(a);
        psi.Environment["PROMHA_ROLE"] = role;
        psi.Environment["PROMHA_EPOCH"] = epoch.ToString(System.Globalization.CultureInfo.InvariantCulture);
        psi.Environment["PROMHA_MASTER"] = master ?? "";
        psi.Environment["PROMHA_NODE"] = node;
        psi.Environment["PROMHA_PREVIOUS_ROLE"] = previous ?? "";
        try
        {
            using var p = Process.Start(psi)!;
            var stdout = p.StandardOutput.ReadToEndAsync();
            var stderr = p.StandardError.ReadToEndAsync();
            using var cts = new CancellationTokenSource(timeout);
            var timedOut = false;
            try
            {
                await p.WaitForExitAsync(cts.Token);
            }
            catch (OperationCanceledException)
            {
                timedOut = true;
                try { p.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
                await p.WaitForExitAsync();
            }
            var output = Tail((await stdout) + (await stderr));
            var run = new HookRun(at, role, epoch, master, script, timedOut ? null : p.ExitCode, Math.Round(sw.Elapsed.TotalSeconds, 3), timedOut, output);
            if (timedOut) log.Error("Hook {0} {1} (epoch {2}) killed after {3:F0}s: {4}", script, role, epoch, timeout.TotalSeconds, output);
            else if (p.ExitCode != 0) log.Error("Hook {0} {1} (epoch {2}) exited {3} after {4:F1}s: {5}", script, role, epoch, p.ExitCode, sw.Elapsed.TotalSeconds, output);
            else log.Info("Hook {0} {1} (epoch {2}) ran in {3:F1}s", script, role, epoch, sw.Elapsed.TotalSeconds);
            return run;
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException)
        {
            log.Error("Hook {0} could not start: {1}", script, e.Message);
            return new HookRun(at, role, epoch, master, script, null, 0, false, $"could not start: {e.Message}");
        }
    }

    private static string Tail(string s)
    {
        s = s.Trim();
        return s.Length > 2000 ? "..." + s[^2000..] : s;
    }

    private void Keep(HookRun r)
    {
        _runs.Add(r);
        if (_runs.Count > KeepRuns) _runs.RemoveRange(0, _runs.Count - KeepRuns);
        try
        {
            File.AppendAllText(_file, JsonSerializer.Serialize(r) + "\n");
        }
        catch (IOException e)
        {
            _log.Warning("Cannot record the hook run in {0}: {1}", _file, e.Message);
        }
    }
}

/// <summary>Marker key for the node's role hooks.</summary>
public sealed class RoleHooksKey;

public static class RoleHooksActorHostingExtensions
{
    public static AkkaConfigurationBuilder AddRoleHooksActor(this AkkaConfigurationBuilder builder, NodeSettings s, NodeView view) =>
        builder.WithActors((system, registry) =>
            registry.Register<RoleHooksKey>(system.ActorOf(Props.Create(() => new RoleHooksActor(s, view)), RoleHooksActor.Name)));
}
