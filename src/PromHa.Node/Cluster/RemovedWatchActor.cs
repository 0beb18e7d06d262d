using Akka.Actor;
using Akka.Cluster;
using Akka.Event;
using Akka.Hosting;
using PromHa.Node.Console;
using PromHa.Node.Http;
using PromHa.Node.Settings;

namespace PromHa.Node.Cluster;

/// <summary>
/// A node the others downed and removed while its link was down never learns it, when the link
/// comes back it hears its peers' heartbeats again, and it goes on as a member of a cluster that no
/// longer has it (its gossip ignored, its quarantine unnoticed): seen for two minutes after a
/// standby's link flapped. Every 3 s this node asks the members it sees for their
/// <c>/api/v1/status</c> (their HTTP API, learned from the master's status); a member that is in a
/// cluster of a majority of the configured nodes without this node proves it removed, and after two
/// such answers in a row it restarts (exit 75) to join again as a new incarnation.
/// </summary>
public sealed class RemovedWatchActor : ReceiveActor, IWithTimers
{
    public const string Name = "removed-watch";
    private static readonly TimeSpan Every = TimeSpan.FromSeconds(3);
    private static readonly TimeSpan ProbeTimeout = TimeSpan.FromMilliseconds(800);
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly Akka.Cluster.Cluster _cluster = Akka.Cluster.Cluster.Get(Context.System);
    private readonly NodeSettings _settings;
    private readonly NodeView _view;
    private readonly int _configured;
    private bool _checking;
    private int _strikes;

    public RemovedWatchActor(NodeSettings settings, NodeView view, int configuredNodes)
    {
        _settings = settings;
        _view = view;
        _configured = configuredNodes;
        Receive<Check>(_ =>
        {
            if (_checking) return;
            _checking = true;
            Run().PipeTo(Self, success: p => new Checked(p), failure: _ => new Checked(null));
        });
        Receive<Checked>(OnChecked);
    }

    public ITimerScheduler Timers { get; set; } = null!;

    private sealed record Check
    {
        public static readonly Check Instance = new();
    }

    /// <summary>The member whose answer proves this node removed, or null.</summary>
    private sealed record Checked(string? ProvenBy);

    protected override void PreStart() => Timers.StartPeriodicTimer("check", Check.Instance, Every);

    /// <summary>
    /// A peer's status proves this node removed: the peer is Up in a cluster whose Up and reachable
    /// members are a majority of the configured nodes (only one such cluster can exist), and none of
    /// its members is this node.
    /// </summary>
    public static bool ProvesRemoved(StatusResponse peer, string selfName, string selfAddress, int configuredNodes) =>
        peer.Members.Count(m => m is { Status: "Up", Reachable: true }) * 2 > configuredNodes &&
        !peer.Members.Any(m => m.Node == selfName || m.Address.EndsWith("@" + selfAddress, StringComparison.Ordinal));

    private async Task<string?> Run()
    {
        var state = _cluster.State;
        if (_cluster.SelfMember.Status != MemberStatus.Up) return null;
        var self = ClusterAddresses.HostPort(_cluster.SelfAddress);
        foreach (var m in UpReachable.Members(state).Where(m => !m.UniqueAddress.Equals(_cluster.SelfUniqueAddress)))
        {
            if (_view.PeerApi(ClusterAddresses.HostPort(m.Address)) is not { } api) continue;
            try
            {
                using var client = new ApiClient(api.Url, ProbeTimeout, ApiAccess.ForPeers(_settings));
                if (await client.Status() is { } status && ProvesRemoved(status, _settings.Node.Name, self, _configured)) return api.Node;
            }
            catch (Exception) { } // not answering proves nothing
        }
        return null;
    }

    private void OnChecked(Checked c)
    {
        _checking = false;
        _strikes = c.ProvenBy is null ? 0 : _strikes + 1;
        if (_strikes < 2) return;
        _strikes = int.MinValue; // once
        _log.Error("{0} is in a cluster of a majority of the configured nodes that no longer has this node (downed and removed " +
                   "while its link was down): restarting to join it again", c.ProvenBy);
        CoordinatedShutdown.Get(Context.System).Run(RestartNode.Reason);
    }
}

public static class RemovedWatchActorHostingExtensions
{
    public static AkkaConfigurationBuilder AddRemovedWatchActor(this AkkaConfigurationBuilder builder, NodeSettings settings, NodeView view,
        int configuredNodes) =>
        builder.WithActors((system, _) => system.ActorOf(Props.Create(() => new RemovedWatchActor(settings, view, configuredNodes)), RemovedWatchActor.Name));
}
