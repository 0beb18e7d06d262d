using System.Text;
using System.Text.Json;
using Akka.Actor;
using Akka.Event;
using Akka.Hosting;
using PromHa.Messages.Ledger;
using PromHa.Messages.Roles;
using PromHa.Node.Cluster;
using PromHa.Node.Master;
using PromHa.Node.Settings;

namespace PromHa.Node.Alerts;

/// <summary>
/// Raises "master changed" as an ordinary alert: the node that became master posts
/// PromHaMasterChanged (from, to, epoch, reason) into every node's Alertmanager (/api/v2/alerts),
/// so it follows the user's routing, inhibitions and silences and reaches the receivers through the
/// gate like any alert. It is posted by the new master once it holds the lease (a missed pub/sub
/// message cannot lose it), for every change after the cluster's first master; it resolves by
/// itself after <see cref="Lasts"/>.
/// </summary>
public sealed class MasterChangedAlertActor : ReceiveActor, IWithTimers
{
    public const string Name = "master-changed-alert";
    public const string AlertName = "PromHaMasterChanged";
    public static readonly TimeSpan Lasts = TimeSpan.FromMinutes(10);

    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly NodeSettings _s;
    private readonly NodeView _view;
    private readonly IActorRef _ledger;
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(5) };
    private long _posted;
    private bool _busy;

    public MasterChangedAlertActor(NodeSettings s, NodeView view, IActorRef ledger)
    {
        _s = s;
        _view = view;
        _ledger = ledger;
        Receive<Tick>(_ => OnTick());
        Receive<List<MasterChanged>>(OnHistory);
        Receive<Posted>(p =>
        {
            _busy = false;
            if (p.Ok) _posted = Math.Max(_posted, p.Epoch);
        });
    }

    public ITimerScheduler Timers { get; set; } = null!;

    private sealed record Tick
    {
        public static readonly Tick Instance = new();
    }

    private sealed record Posted(long Epoch, bool Ok);

    protected override void PreStart() => Timers.StartPeriodicTimer("tick", Tick.Instance, TimeSpan.FromSeconds(1));

    protected override void PostStop() => _http.Dispose();

    private void OnTick()
    {
        if (_busy || !_view.IsMaster || _view.Current.Epoch <= _posted) return;
        _busy = true;
        _ledger.Tell(new GetHistory(10));
    }

    private void OnHistory(List<MasterChanged> history)
    {
        var epoch = _view.Current.Epoch;
        var change = history.FirstOrDefault(h => h.Epoch == epoch);
        if (change is null || change.Node != _s.Node.Name || !_view.IsMaster)
        {
            _busy = false; // this ledger has not caught up with the epoch yet: next tick
            return;
        }
        if (change.Previous is null && epoch <= 1)
        {
            _busy = false;
            _posted = epoch; // the cluster's first master is not a change
            return;
        }
        var targets = (_view.Current.Status?.Nodes ?? []).Select(n => n.AlertmanagerUrl).OfType<string>()
            .Append(_s.Alertmanager.Mode == ServerMode.None ? null : _s.Alertmanager.EffectiveUrl).OfType<string>()
            .Distinct().ToList();
        Post(change, targets).PipeTo(Self);
    }

    private async Task<Posted> Post(MasterChanged change, IReadOnlyList<string> alertmanagers)
    {
        var now = DateTimeOffset.UtcNow;
        var body = JsonSerializer.Serialize(new[]
        {
            new
            {
                labels = new Dictionary<string, string>
                {
                    ["alertname"] = AlertName,
                    ["severity"] = "warning",
                    ["promha_master"] = change.Node,
                    ["promha_previous"] = change.Previous ?? "none",
                    ["promha_epoch"] = change.Epoch.ToString(System.Globalization.CultureInfo.InvariantCulture),
                    ["promha_reason"] = change.Reason,
                },
                annotations = new Dictionary<string, string>
                {
                    ["summary"] = $"PromHa master changed from {change.Previous ?? "none"} to {change.Node} (epoch {change.Epoch}, {change.Reason})",
                    ["description"] = $"At {change.At:u} the master role moved from {change.Previous ?? "none"} to {change.Node}; reason: {change.Reason}.",
                },
                startsAt = now,
                endsAt = now + Lasts,
                generatorURL = $"{_s.ApiUrl}/api/v1/history",
            },
        });
        var ok = 0;
        foreach (var am in alertmanagers)
        {
            try
            {
                using var r = await _http.PostAsync($"{am.TrimEnd('/')}/api/v2/alerts", new StringContent(body, Encoding.UTF8, "application/json"));
                if (r.IsSuccessStatusCode) ok++;
                else _log.Warning("Alertmanager {0} refused the master-changed alert: HTTP {1}", am, (int)r.StatusCode);
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
            {
                _log.Warning("Alertmanager {0} not reachable for the master-changed alert: {1}", am, e.Message);
            }
        }
        if (ok > 0)
            _log.Info($"Raised {AlertName} (epoch {change.Epoch}, {change.Previous ?? "none"} -> {change.Node}, {change.Reason}) in {ok} of {alertmanagers.Count} Alertmanager(s)");
        return new Posted(change.Epoch, ok > 0);
    }
}

/// <summary>Marker key for the node's master-changed alert actor.</summary>
public sealed class MasterChangedAlertKey;

public static class MasterChangedAlertActorHostingExtensions
{
    public static AkkaConfigurationBuilder AddMasterChangedAlertActor(this AkkaConfigurationBuilder builder, NodeSettings s, NodeView view) =>
        builder.WithActors((system, registry) =>
        {
            if (s.IsWitness) return; // never master
            registry.Register<MasterChangedAlertKey>(
                system.ActorOf(Props.Create(() => new MasterChangedAlertActor(s, view, registry.Get<LedgerKey>())), MasterChangedAlertActor.Name));
        });
}
