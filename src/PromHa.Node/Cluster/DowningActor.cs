using System.Diagnostics;
using Akka.Actor;
using Akka.Cluster;
using Akka.Event;

namespace PromHa.Node.Cluster;

/// <summary>
/// PromHa's split-brain resolver for clusters of three or more configured nodes (a pure pair keeps
/// Akka's lease-majority with the tie-breaker: hocon/tiebreaker.hocon). It takes Akka's
/// keep-majority decision (<see cref="Downing"/>) on the leader, as Akka's resolver does, with two
/// differences that a standby's flapping link showed to matter:
/// <list type="bullet">
/// <item>only observations that count (<see cref="LiveReachability"/>): a downed member's last
/// "unreachable" record of a healthy node no longer makes that node indirectly connected;</item>
/// <item>stable-after runs from the last change of those observations, not only of the set of
/// unreachable members: in a heal, the leader's own record turns reachable before the others'
/// reach it, and Akka's resolver, seeing the same unreachable member, decided on the half-healed
/// records and downed a healthy observer with the standby.</item>
/// </list>
/// Started by Akka (<see cref="DowningProvider"/>) under the cluster daemon.
/// </summary>
public sealed class DowningActor : ReceiveActor, IWithTimers
{
    private static readonly TimeSpan Every = TimeSpan.FromMilliseconds(250);
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly Akka.Cluster.Cluster _cluster;
    private readonly TimeSpan _stableAfter;
    private readonly LiveReachability _reach;
    private string _signature = "";
    private long _stableSince = Stopwatch.GetTimestamp();
    private bool _leader;
    private bool _selfUp;

    public DowningActor(Akka.Cluster.Cluster cluster, TimeSpan stableAfter)
    {
        _cluster = cluster;
        _stableAfter = stableAfter;
        _reach = new LiveReachability(cluster.SelfUniqueAddress);
        Receive<ClusterEvent.CurrentClusterState>(s =>
        {
            _reach.Snapshot(s);
            _selfUp = s.Members.Any(m => m.UniqueAddress.Equals(cluster.SelfUniqueAddress) && m.Status is MemberStatus.Up or MemberStatus.WeaklyUp);
            Leader(s.Leader);
            Touch();
        });
        Receive<ClusterEvent.IMemberEvent>(e =>
        {
            _reach.Member(e.Member);
            if (e.Member.UniqueAddress.Equals(cluster.SelfUniqueAddress) && e.Member.Status is MemberStatus.Up or MemberStatus.WeaklyUp)
                _selfUp = true;
            Touch();
        });
        Receive<ClusterEvent.LeaderChanged>(e => Leader(e.Leader));
        Receive(LiveReachability.ChangedEvent, e =>
        {
            _reach.Reachability(e);
            Touch();
        });
        Receive<ClusterEvent.IReachabilityEvent>(_ => { }); // the observations above say more
        Receive<Tick>(_ => OnTick());
    }

    public ITimerScheduler Timers { get; set; } = null!;

    private sealed record Tick
    {
        public static readonly Tick Instance = new();
    }

    protected override void PreStart()
    {
        _cluster.Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsSnapshot,
            typeof(ClusterEvent.IMemberEvent), typeof(ClusterEvent.IReachabilityEvent), typeof(ClusterEvent.LeaderChanged),
            LiveReachability.ChangedEvent);
        Timers.StartPeriodicTimer("tick", Tick.Instance, Every);
    }

    protected override void PostStop() => _cluster.Unsubscribe(Self);

    private void Leader(Address? leader)
    {
        var was = _leader;
        _leader = _cluster.SelfAddress.Equals(leader);
        if (_leader && !was) _log.Info("This node is now the leader: it takes the split-brain decisions among the members it reaches");
    }

    /// <summary>The observations that count and the members' statuses; stable-after runs from their last change.</summary>
    private void Touch()
    {
        var signature = string.Join(";", _reach.Counted.Select(o => $"{o.Observer}>{o.Subject}").Order()) + "|" +
                        string.Join(";", _reach.Members.Select(m => $"{m.UniqueAddress}:{m.Status}").Order());
        if (signature == _signature) return;
        _signature = signature;
        _stableSince = Stopwatch.GetTimestamp();
    }

    private void OnTick()
    {
        if (!_leader || !_selfUp) return;
        var counted = _reach.Counted;
        if (counted.Count == 0 || Stopwatch.GetElapsedTime(_stableSince) < _stableAfter) return;
        if (Downing.Decide(_reach.Members, counted, _cluster.State.SeenBy, _cluster.SelfUniqueAddress) is not { } decision || decision.Down.IsEmpty) return;
        _log.Warning("Split-brain decision after {0:F1} s without change: {1}: downing {2}; unreachable by live members: {3}",
            Stopwatch.GetElapsedTime(_stableSince).TotalSeconds, decision.Name, string.Join(", ", decision.Down.Select(a => a.Address)),
            string.Join(", ", counted.Select(o => $"{o.Observer.Address} -> {o.Subject.Address}")));
        // itself last: downing itself may stop this node before it downs the others
        foreach (var a in decision.Down.Where(a => !a.Equals(_cluster.SelfUniqueAddress))) _cluster.Down(a.Address);
        if (decision.Down.Contains(_cluster.SelfUniqueAddress)) _cluster.Down(_cluster.SelfAddress);
        _stableSince = Stopwatch.GetTimestamp();
    }
}

/// <summary>
/// Akka's hook for a downing strategy (akka.cluster.downing-provider-class, hocon/cluster.hocon):
/// <see cref="DowningActor"/>, with Akka's split-brain-resolver.stable-after.
/// </summary>
public sealed class DowningProvider(ActorSystem system, Akka.Cluster.Cluster cluster) : IDowningProvider
{
    private readonly TimeSpan _stableAfter = system.Settings.Config.GetTimeSpan("akka.cluster.split-brain-resolver.stable-after", TimeSpan.FromSeconds(20));

    /// <summary>How long the singletons wait after a member is removed before starting elsewhere (akka.cluster.down-removal-margin, 1 s here).</summary>
    public TimeSpan DownRemovalMargin =>
        system.Settings.Config.GetString("akka.cluster.down-removal-margin", "off") is "off" or ""
            ? _stableAfter
            : system.Settings.Config.GetTimeSpan("akka.cluster.down-removal-margin");

    public Props DowningActorProps => Props.Create(() => new DowningActor(cluster, _stableAfter));
}
