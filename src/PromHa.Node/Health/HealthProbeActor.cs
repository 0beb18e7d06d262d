using Akka.Actor;
using Akka.Event;
using Akka.Hosting;
using PromHa.Messages.Health;
using PromHa.Node.Cluster;
using PromHa.Node.Groups;
using PromHa.Node.Master;
using PromHa.Node.Settings;
using PromHa.Node.Supervision;

namespace PromHa.Node.Health;

/// <summary>
/// Probes the local Prometheus (/-/healthy and /-/ready) and Alertmanager (/-/healthy) on a timer
/// and reports to the master singleton, which moves the role off a master whose Prometheus stays
/// down. A witness has nothing to probe and reports only that it is a witness.
/// A refused connection is different from a slow answer: nothing listens on Prometheus's port, so
/// it is not starting or busy but gone. The probe then checks again 100 ms later (and at once when
/// a supervised Prometheus exits); refused twice, the report says <see cref="NodeHealth.PrometheusDown"/>
/// and the singleton moves the role without waiting for unhealthyAfterMs.
/// </summary>
public sealed class HealthProbeActor : ReceiveActor, IWithTimers
{
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly NodeSettings _settings;
    private readonly NodeView _view;
    private readonly IActorRef _master;
    private readonly HttpClient _http;
    private bool _probing;
    private bool? _lastHealthy;
    /// <summary>Prometheus refused on the previous probe: one more refusal proves it down.</summary>
    private bool _refusedBefore;
    private static readonly TimeSpan Recheck = TimeSpan.FromMilliseconds(100);

    /// <summary>A witness serving several groups reports to each group's singleton.</summary>
    private readonly IReadOnlyList<IActorRef> _otherMasters;

    public HealthProbeActor(NodeSettings settings, NodeView view, IActorRef masterProxy, IReadOnlyList<IActorRef>? otherMasters = null)
    {
        _otherMasters = otherMasters ?? [];
        _settings = settings;
        _view = view;
        _master = masterProxy;
        _http = new HttpClient { Timeout = TimeSpan.FromMilliseconds(settings.Timing.ProbeTimeoutMs) };

        Receive<Probe>(_ =>
        {
            if (_probing) return; // a slow probe is not stacked
            _probing = true;
            ProbeOnce().PipeTo(Self);
        });
        Receive<ServerSupervisorActor.ServerExited>(e =>
        {
            if (e.Name != "prometheus" || _probing) return;
            _probing = true;
            ProbeOnce().PipeTo(Self);
        });
        Receive<Probed>(p =>
        {
            var h = p.Health;
            if (p.Refused && !_refusedBefore) Timers.StartSingleTimer("recheck", Probe.Instance, Recheck);
            if (p.Refused && _refusedBefore) h = h with { PrometheusDown = true, Detail = $"{h.Detail} (refused twice: down)" };
            _refusedBefore = p.Refused;
            Self.Tell(h);
        });
        Receive<NodeHealth>(h =>
        {
            _probing = false;
            if (_lastHealthy != h.PrometheusHealthy && !h.Witness)
            {
                if (h.PrometheusHealthy) _log.Info("Local Prometheus is healthy");
                else _log.Warning("Local Prometheus is unhealthy: {0}", h.Detail);
            }
            _lastHealthy = h.PrometheusHealthy;
            _view.SetHealth(h);
            _master.Tell(h);
            foreach (var other in _otherMasters) other.Tell(h);
        });
    }

    public ITimerScheduler Timers { get; set; } = null!;

    private sealed record Probe
    {
        public static readonly Probe Instance = new();
    }

    /// <summary>A probe's report, and whether Prometheus refused the connection.</summary>
    private sealed record Probed(NodeHealth Health, bool Refused);

    protected override void PreStart()
    {
        Timers.StartPeriodicTimer("probe", Probe.Instance, TimeSpan.Zero, TimeSpan.FromMilliseconds(_settings.Timing.ProbeIntervalMs));
        Context.System.EventStream.Subscribe(Self, typeof(ServerSupervisorActor.ServerExited));
    }

    protected override void PostStop()
    {
        Context.System.EventStream.Unsubscribe(Self);
        _http.Dispose();
    }

    private async Task<Probed> ProbeOnce()
    {
        var name = _settings.Node.Name;
        if (_settings.IsWitness) return new(new NodeHealth(name, true, false, false, false, "witness", DateTimeOffset.UtcNow, ApiUrl: _settings.ApiUrl), false);

        var problems = new List<string>();
        var promHealthy = false;
        var promReady = false;
        var refused = false;
        if (_settings.Prometheus.Mode != ServerMode.None)
        {
            var url = _settings.Prometheus.EffectiveUrl;
            // A ready Prometheus is a healthy one: /-/healthy is asked only to tell "starting up or
            // replaying its WAL" from "not answering", one request per probe in the common case.
            var ready = await Get($"{url}/-/ready", "prometheus /-/ready", problems);
            promReady = ready == Answer.Ok;
            refused = ready == Answer.Refused;
            promHealthy = promReady || (!refused && await Get($"{url}/-/healthy", "prometheus /-/healthy", problems) == Answer.Ok);
        }
        else problems.Add("no prometheus configured");

        var amHealthy = _settings.Alertmanager.Mode != ServerMode.None &&
                        await Get($"{_settings.Alertmanager.EffectiveUrl}/-/healthy", "alertmanager /-/healthy", problems) == Answer.Ok;

        return new(new NodeHealth(name, false, promHealthy && promReady, promReady, amHealthy,
            problems.Count == 0 ? null : string.Join("; ", problems), DateTimeOffset.UtcNow,
            _settings.Prometheus.Mode == ServerMode.None ? null : _settings.Advertised(_settings.Prometheus.EffectiveUrl), _settings.ApiUrl,
            _settings.Alertmanager.Mode == ServerMode.None ? null : _settings.Advertised(_settings.Alertmanager.EffectiveUrl)), refused);
    }

    private enum Answer { Ok, Failed, Refused }

    private async Task<Answer> Get(string url, string what, List<string> problems)
    {
        try
        {
            using var resp = await _http.GetAsync(url);
            if (resp.IsSuccessStatusCode) return Answer.Ok;
            problems.Add($"{what}: HTTP {(int)resp.StatusCode}");
        }
        catch (Exception e)
        {
            problems.Add($"{what}: {e.GetBaseException().Message}");
            if (e.GetBaseException() is System.Net.Sockets.SocketException { SocketErrorCode: System.Net.Sockets.SocketError.ConnectionRefused })
                return Answer.Refused;
        }
        return Answer.Failed;
    }
}

public sealed class HealthProbeKey;

public static class HealthProbeActorHostingExtensions
{
    public static AkkaConfigurationBuilder AddHealthProbeActor(this AkkaConfigurationBuilder builder,
        NodeSettings settings, NodeView view) =>
        builder.WithActors((system, registry) =>
            registry.Register<HealthProbeKey>(system.ActorOf(
                Props.Create(() => new HealthProbeActor(settings, view, registry.Get<MasterProxyKey>(),
                    GroupScope.Served(settings).Skip(1).Select(g => GroupScope.Local(system, g.MasterProxy)).ToList())), "health")));
}
