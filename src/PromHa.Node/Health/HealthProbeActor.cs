using Akka.Actor;
using Akka.Event;
using Akka.Hosting;
using PromHa.Messages.Health;
using PromHa.Node.Cluster;
using PromHa.Node.Master;
using PromHa.Node.Settings;

namespace PromHa.Node.Health;

/// <summary>
/// Probes the local Prometheus (/-/healthy and /-/ready) and Alertmanager (/-/healthy) on a timer
/// and reports to the master singleton, which moves the role off a master whose Prometheus stays
/// down. A witness has nothing to probe and reports only that it is a witness.
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

    public HealthProbeActor(NodeSettings settings, NodeView view, IActorRef masterProxy)
    {
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
        });
    }

    public ITimerScheduler Timers { get; set; } = null!;

    private sealed record Probe
    {
        public static readonly Probe Instance = new();
    }

    protected override void PreStart() =>
        Timers.StartPeriodicTimer("probe", Probe.Instance, TimeSpan.Zero, TimeSpan.FromMilliseconds(_settings.Timing.ProbeIntervalMs));

    protected override void PostStop() => _http.Dispose();

    private async Task<NodeHealth> ProbeOnce()
    {
        var name = _settings.Node.Name;
        if (_settings.IsWitness) return new NodeHealth(name, true, false, false, false, "witness", DateTimeOffset.UtcNow, ApiUrl: _settings.ApiUrl);

        var problems = new List<string>();
        var promHealthy = false;
        var promReady = false;
        if (_settings.Prometheus.Mode != ServerMode.None)
        {
            var url = _settings.Prometheus.EffectiveUrl;
            // A ready Prometheus is a healthy one: /-/healthy is asked only to tell "starting up or
            // replaying its WAL" from "not answering", one request per probe in the common case.
            promReady = await Get($"{url}/-/ready", "prometheus /-/ready", problems);
            promHealthy = promReady || await Get($"{url}/-/healthy", "prometheus /-/healthy", problems);
        }
        else problems.Add("no prometheus configured");

        var amHealthy = _settings.Alertmanager.Mode != ServerMode.None &&
                        await Get($"{_settings.Alertmanager.EffectiveUrl}/-/healthy", "alertmanager /-/healthy", problems);

        return new NodeHealth(name, false, promHealthy && promReady, promReady, amHealthy,
            problems.Count == 0 ? null : string.Join("; ", problems), DateTimeOffset.UtcNow,
            _settings.Prometheus.Mode == ServerMode.None ? null : _settings.Advertised(_settings.Prometheus.EffectiveUrl), _settings.ApiUrl,
            _settings.Alertmanager.Mode == ServerMode.None ? null : _settings.Advertised(_settings.Alertmanager.EffectiveUrl));
    }

    private async Task<bool> Get(string url, string what, List<string> problems)
    {
        try
        {
            using var resp = await _http.GetAsync(url);
            if (resp.IsSuccessStatusCode) return true;
            problems.Add($"{what}: HTTP {(int)resp.StatusCode}");
        }
        catch (Exception e)
        {
            problems.Add($"{what}: {e.GetBaseException().Message}");
        }
        return false;
    }
}

public sealed class HealthProbeKey;

public static class HealthProbeActorHostingExtensions
{
    public static AkkaConfigurationBuilder AddHealthProbeActor(this AkkaConfigurationBuilder builder,
        NodeSettings settings, NodeView view) =>
        builder.WithActors((system, registry) =>
            registry.Register<HealthProbeKey>(system.ActorOf(
                Props.Create(() => new HealthProbeActor(settings, view, registry.Get<MasterProxyKey>())), "health")));
}
