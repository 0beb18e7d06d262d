using Akka.Actor;
using Akka.Cluster;
using Akka.Event;
using Akka.Hosting;
using PromHa.Node.Console;
using PromHa.Messages.Roles;
using PromHa.Node.Replication;

namespace PromHa.Node.Cluster;

/// <summary>
/// Tells a crashed peer from a silent one. This node holds a <see cref="LifeLine"/> to every other
/// member's API port; when the member's process exits, its kernel ends that stream with a FIN, and
/// this node publishes <see cref="PeerProvenDead"/> locally, so that the master singleton voids a
/// dead master's lease instead of waiting it out, and downs it (the singletons move off it at once
/// when it was the oldest member). Refused connections are not evidence: a firewall that rejects
/// (tcp-reset or ICMP) forges them for a process that still runs and still answers /primary on
/// another link. A cut link, a paused process, a lost host, a rejecting firewall: those stay on the
/// failure detector and the lease.
/// </summary>
public sealed class PeerCrashActor : ReceiveActor, IWithTimers
{
    public const string Name = "peer-crash";
    private static readonly TimeSpan Retry = TimeSpan.FromSeconds(1);

    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly Akka.Cluster.Cluster _cluster = Akka.Cluster.Cluster.Get(Context.System);
    private readonly NodeView _view;
    private readonly PeerDeaths _deaths;
    private readonly ApiAccess _access;
    /// <summary>One lifeline per member incarnation, held until it ends or the incarnation leaves.</summary>
    private readonly Dictionary<UniqueAddress, CancellationTokenSource> _lines = [];

    public ITimerScheduler Timers { get; set; } = null!;

    public PeerCrashActor(NodeView view, PeerDeaths deaths, ApiAccess access)
    {
        _view = view;
        _deaths = deaths;
        _access = access;
        Receive<ClusterEvent.IMemberEvent>(_ => Reconcile());
        Receive<Tick>(_ => Reconcile());
        Receive<Verdict>(OnVerdict);
    }

    private sealed record Verdict(UniqueAddress Member, string Name, string Evidence);

    private sealed class Tick
    {
        public static readonly Tick Instance = new();
    }

    protected override void PreStart()
    {
        _cluster.Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents, typeof(ClusterEvent.IMemberEvent));
        // the API URLs arrive with the master's status, after the members
        Timers.StartPeriodicTimer("reconcile", Tick.Instance, Retry);
    }

    protected override void PostStop()
    {
        _cluster.Unsubscribe(Self);
        foreach (var cts in _lines.Values) cts.Cancel();
    }

    private static bool Serving(Member m) =>
        m.Status is MemberStatus.Up or MemberStatus.WeaklyUp or MemberStatus.Joining or MemberStatus.Leaving;

    private void Reconcile()
    {
        var members = _cluster.State.Members.Where(Serving).ToDictionary(m => m.UniqueAddress);
        foreach (var gone in _lines.Keys.Where(k => !members.ContainsKey(k)).ToList())
        {
            _lines[gone].Cancel();
            _lines.Remove(gone);
        }
        foreach (var m in members.Values)
        {
            if (m.UniqueAddress.Equals(_cluster.SelfUniqueAddress) || _lines.ContainsKey(m.UniqueAddress)) continue;
            if (MemberRoles.NodeName(m) is not { } name || ApiOf(name) is null) continue;
            var cts = new CancellationTokenSource();
            _lines[m.UniqueAddress] = cts;
            Hold(m.UniqueAddress, name, LedgerMembers.Incarnation(m), Self, cts.Token);
        }
    }

    private string? ApiOf(string name) => _view.Current.Status?.Nodes.FirstOrDefault(n => n.Node == name)?.ApiUrl is { Length: > 0 } url ? url : null;

    /// <summary>Holds the member's lifeline, again after each loss, until it proves the member gone, says bye or is cancelled.</summary>
    private async void Hold(UniqueAddress member, string name, string incarnation, IActorRef self, CancellationToken ct)
    {
        var log = _log;
        var losses = 0;
        var opened = false;
        while (!ct.IsCancellationRequested)
        {
            var outcome = ApiOf(name) is { } api
                ? await LifeLine.Hold(api, incarnation, _access, ct, opened: () =>
                {
                    if (!opened) log.Info("Lifeline to {0} ({1}) open at {2}: its process exiting will be seen at once", name, incarnation, api);
                    opened = true;
                    Gauge(name, incarnation, true);
                })
                : new LifeLine.Outcome(LifeLine.End.Lost, "no API URL known", false);
            Gauge(name, incarnation, false);
            switch (outcome.End)
            {
                case LifeLine.End.Died:
                    self.Tell(new Verdict(member, name, outcome.Detail));
                    return;
                case LifeLine.End.Bye:
                case LifeLine.End.OtherIncarnation:
                    log.Debug("Lifeline to {0} ({1}) ended: {2}", name, incarnation, outcome.Detail);
                    return;
            }
            if (outcome.WasOpen || ++losses == 3) log.Debug("Lifeline to {0} lost: {1}; again in {2} s", name, outcome.Detail, Retry.TotalSeconds);
            try { await Task.Delay(Retry, ct); }
            catch (OperationCanceledException) { return; }
        }
    }

    /// <summary>Which incarnation of each peer the lifeline gauge speaks for: a line of an incarnation that left must not clear its successor's.</summary>
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, string> GaugeOwner = new();

    private static void Gauge(string name, string incarnation, bool open)
    {
        if (open) GaugeOwner[name] = incarnation;
        else if (!GaugeOwner.TryGetValue(name, out var owner) || owner != incarnation) return;
        NodeMetrics.LifelineOpen.WithLabels(name).Set(open ? 1 : 0);
    }

    private void OnVerdict(Verdict v)
    {
        // the same incarnation, still a member: not one that restarted meanwhile, not one that left
        var member = _cluster.State.Members.FirstOrDefault(m => m.UniqueAddress.Equals(v.Member));
        if (member is null || !Serving(member)) return;
        var incarnation = LedgerMembers.Incarnation(member);
        _log.Warning("{0} ({1}) is gone: {2}; downing it", v.Name, incarnation, v.Evidence);
        _deaths.Add(incarnation);
        Context.System.EventStream.Publish(new PeerProvenDead(v.Name, incarnation, v.Evidence));
        // Downed and unreachable at once: Akka removes only members that are both, and the
        // singletons move off a dead oldest member only once it is removed. Removed early, a
        // process restarted on the same address joins at once; while the old incarnation was still
        // a member, such a restart could not join for half a minute (`promha-lab bench failover`).
        if (_cluster.FailureDetector is { } detector && _cluster.Settings.FailureDetectorImplementationClass.Contains(nameof(DeadAwareFailureDetector)))
            DeadAwareFailureDetector.MarkDead(detector, member.Address);
        _cluster.Down(member.Address);
    }
}

public static class PeerCrashActorHostingExtensions
{
    public static AkkaConfigurationBuilder AddPeerCrashActor(this AkkaConfigurationBuilder builder, NodeView view, PeerDeaths deaths, ApiAccess access) =>
        builder.WithActors((system, _) => system.ActorOf(Props.Create(() => new PeerCrashActor(view, deaths, access)), PeerCrashActor.Name));
}
