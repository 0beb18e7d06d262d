using Akka.Actor;
using Akka.Event;
using Akka.Hosting;
using PromHa.Node.Console;
using PromHa.Node.Settings;

namespace PromHa.Node.Cluster;

/// <summary>
/// Pure pairs only (a tie-breaker is configured): while a configured peer is missing from this
/// node's cluster, asks that peer's HTTP API (learned while the pair was whole) whether it runs a
/// master of its own. Two masters are shown on both sides (status, promha_split_brain). When the
/// peer's cluster port answers again and the peer's claim wins (<see cref="SplitBrain"/>), this node
/// leaves so that its supervisor starts it again and it joins the peer's cluster as a standby.
/// </summary>
public sealed class SplitBrainWatchActor : ReceiveActor, IWithTimers
{
    public const string Name = "split-brain-watch";
    private static readonly TimeSpan Every = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan ProbeTimeout = TimeSpan.FromMilliseconds(800);
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly NodeSettings _settings;
    private readonly NodeView _view;
    private readonly IReadOnlyList<string> _peers;
    private readonly Akka.Cluster.Cluster _cluster = Akka.Cluster.Cluster.Get(Context.System);
    private bool _checking;
    private int _rejoinVerdicts;

    public SplitBrainWatchActor(NodeSettings settings, NodeView view, IReadOnlyList<string> peers)
    {
        _settings = settings;
        _view = view;
        _peers = peers;
        Receive<Check>(_ =>
        {
            if (_checking) return;
            _checking = true;
            Run().PipeTo(Self, success: v => v, failure: e => new Checked(null, false, e.GetBaseException().Message));
        });
        Receive<Checked>(OnChecked);
    }

    public ITimerScheduler Timers { get; set; } = null!;

    private sealed record Check
    {
        public static readonly Check Instance = new();
    }

    private sealed record Checked(SplitView? View, bool Rejoin, string? Error = null);

    protected override void PreStart() => Timers.StartPeriodicTimer("check", Check.Instance, Every);

    private async Task<Checked> Run()
    {
        var snap = _view.Current;
        var ours = new MasterClaim(snap.Epoch, snap.Master);
        var self = $"{_settings.Cluster.AdvertisedHost}:{_settings.Cluster.AdvertisedPort}";
        foreach (var peer in ClusterAddresses.MissingSeeds(_cluster, _peers))
        {
            if (_view.PeerApi(peer) is not { } api) continue; // never seen: nothing to ask
            Http.StatusResponse? status;
            try
            {
                // status is open: no token; over HTTPS the peer is trusted by the cluster CA
                using var client = new ApiClient(api.Url, ProbeTimeout, ApiAccess.ForPeers(_settings));
                status = await client.Status();
            }
            catch (Exception) { continue; } // cut off over HTTP too: nothing to compare yet
            if (status is null) continue;
            var reachable = await TieBreakerLease.CountReachable([peer], ProbeTimeout) == 1;
            var verdict = SplitBrain.Decide(_settings.Node.Name, self, ours, api.Node, status, reachable, _view.Split, DateTimeOffset.UtcNow);
            if (verdict.View is not null) return new Checked(verdict.View, verdict.Rejoin);
        }
        return new Checked(null, false);
    }

    private void OnChecked(Checked c)
    {
        _checking = false;
        if (c.Error is not null) _log.Warning("Split-brain check failed: {0}", c.Error);
        var was = _view.Split;
        _view.Split = c.View;
        if (c.View is { } v && was is null)
            _log.Error("Two masters: {0} is master at epoch {1} in a cluster without this node; here {2} at epoch {3}. {4}",
                v.PeerMaster, v.PeerEpoch, v.OurMaster ?? "nobody", v.OurEpoch,
                v.ThisSideKeeps ? "This side keeps the role; the peer rejoins as standby when the link returns."
                                : "The peer keeps the role; this node rejoins as standby when the link returns.");
        else if (c.View is null && was is not null) _log.Info("Split settled: no other master outside this cluster");

        // Twice in a row, so a link that flaps for a moment does not restart a node.
        _rejoinVerdicts = c.Rejoin ? _rejoinVerdicts + 1 : 0;
        if (_rejoinVerdicts < 2) return;
        _log.Error("Link to {0} is back and its master {1} (epoch {2}) beats this side's ({3}, epoch {4}): leaving to rejoin as standby",
            c.View!.Peer, c.View.PeerMaster, c.View.PeerEpoch, c.View.OurMaster ?? "nobody", c.View.OurEpoch);
        _rejoinVerdicts = int.MinValue; // once
        CoordinatedShutdown.Get(Context.System).Run(RestartNode.Reason);
    }
}

/// <summary>Marker key for the split-brain watch.</summary>
public sealed class SplitBrainWatchKey;

public static class SplitBrainWatchActorHostingExtensions
{
    /// <summary>Only a pure pair (tie-breaker configured) can end up with two masters; other topologies skip the watch.</summary>
    public static AkkaConfigurationBuilder AddSplitBrainWatchActor(this AkkaConfigurationBuilder builder, NodeSettings settings,
        NodeView view, IReadOnlyList<string> peers) =>
        settings.Cluster.TieBreaker.Targets.Count == 0
            ? builder
            : builder.WithActors((system, registry) => registry.Register<SplitBrainWatchKey>(
                system.ActorOf(Props.Create(() => new SplitBrainWatchActor(settings, view, peers)), SplitBrainWatchActor.Name)));
}
