using Akka;
using Akka.Actor;
using Akka.Cluster;
using Akka.Cluster.Tools.PublishSubscribe;
using Akka.Event;
using Akka.Hosting;
using PromHa.Messages.Roles;
using PromHa.Node.Cluster;
using PromHa.Node.Groups;

namespace PromHa.Node.Master;

/// <summary>
/// This node's side of the master role. It follows role changes (pub/sub plus the singleton's
/// status heartbeat, which repairs a missed message), renews the lease while this node is master,
/// with the singleton and with every member's ledger (<see cref="LeaseState"/>), and demotes itself
/// the moment the lease lapses, even when cut off from everyone.
/// </summary>
public sealed class RoleActor : ReceiveActor, IWithTimers
{
    public const string Name = "role";
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly Akka.Cluster.Cluster _cluster = Akka.Cluster.Cluster.Get(Context.System);
    private readonly string _self;
    private readonly string _incarnation;
    private readonly NodeView _view;
    private DateTimeOffset Now => _view.Time.GetUtcNow();
    private readonly IActorRef _master;
    private readonly TimeSpan _lease;
    private readonly TimeSpan _renewEvery;
    /// <summary>When each renewal was sent: a grant or vouch counts from then, not from its arrival.</summary>
    private readonly Dictionary<long, DateTimeOffset> _sent = new();
    private LeaseState _state;
    private bool _holds;
    private long _requestId;
    private bool _seenFirstMaster;

    private readonly GroupScope _group;

    /// <param name="configuredNodes">The group's configured nodes: its vouches come from a majority of them.</param>
    public RoleActor(string self, NodeView view, IActorRef masterProxy, TimeSpan lease, int configuredNodes, GroupScope? group = null)
    {
        _self = self;
        _group = group ?? GroupScope.Whole;
        _view = view;
        _master = masterProxy;
        _lease = lease;
        _renewEvery = lease / 4;
        _state = LeaseState.Initial(self, configuredNodes);
        // the same form the singleton journals with each grant (MasterActor.Incarnation)
        _incarnation = $"{_cluster.SelfUniqueAddress.Address}#{_cluster.SelfUniqueAddress.Uid}";

        Receive<MasterChanged>(OnChanged);
        Receive<MasterStatus>(s =>
        {
            _view.SetStatus(s);
            if (s.Master is not null && (s.Epoch > _state.Epoch || (s.Epoch == _state.Epoch && s.Master != _state.Master)))
                OnChanged(new MasterChanged(s.Epoch, s.Master, "status", s.At, _state.Master));
        });
        Receive<Renew>(_ => RenewIfMaster());
        Receive<Check>(_ => Evaluate());
        Receive<LeaseGranted>(g =>
        {
            if (g.Epoch != _state.Epoch || g.Node != _self || !_state.IsMine || !_sent.TryGetValue(g.RequestId, out var sentAt)) return;
            _state = _state.Granted(sentAt + TimeSpan.FromMilliseconds(g.DurationMs));
            NodeMetrics.LeaseDenials.Set(0);
            Evaluate();
        });
        Receive<LeaseDenied>(d =>
        {
            if (d.Epoch != _state.Epoch || !_state.IsMine) return;
            NodeMetrics.LeaseDenials.Set(1);
            if (d.Binding)
            {
                if (!_state.Refused) _log.Warning("Lease for epoch {0} refused: {1}; stepping down", d.Epoch, d.Reason);
                WithdrawVouches();
            }
            else if (_state.GrantedUntil > Now)
                _log.Warning("The singleton no longer grants the lease of epoch {0} ({1}); the votes of a majority carry it", d.Epoch, d.Reason);
            _state = _state.Denied(d.Binding);
            Evaluate();
        });
        Receive<Vouched>(v =>
        {
            if (v.Epoch != _state.Epoch || v.Node != _self || !_sent.TryGetValue(v.RequestId, out var sentAt)) return;
            _state = _state.Vouched(v.Voter, sentAt + TimeSpan.FromMilliseconds(v.DurationMs));
            Evaluate();
        });
        Receive<RevokeLease>(r =>
        {
            if (r.Epoch != _state.Epoch || r.Node != _self) return;
            _log.Info("Switchover: giving up the master lease of epoch {0}", r.Epoch);
            GiveUp();
            Sender.Tell(new LeaseReleased(r.Epoch, _self));
        });
        Receive<StepDown>(_ =>
        {
            if (_state.Master != _self) { Sender.Tell(Done.Instance); return; }
            GiveUp();
            _master.Tell(new LeaseReleased(_state.Epoch, _self));
            Sender.Tell(Done.Instance);
        });
        Receive<SubscribeAck>(_ => { });
    }

    public ITimerScheduler Timers { get; set; } = null!;

    private sealed record Renew
    {
        public static readonly Renew Instance = new();
    }

    private sealed record Check
    {
        public static readonly Check Instance = new();
    }

    /// <summary>Graceful shutdown: give the lease back so the standby need not wait for it to lapse.</summary>
    public sealed record StepDown
    {
        public static readonly StepDown Instance = new();
    }

    protected override void PreStart()
    {
        DistributedPubSub.Get(Context.System).Mediator.Tell(new Subscribe(_group.RolesTopic, Self));
    }

    private void OnChanged(MasterChanged c)
    {
        if (c.Epoch <= _state.Epoch) return; // stale
        if (_seenFirstMaster && c.Previous is not null) NodeMetrics.Failovers.WithLabels(c.Reason).Inc();
        _seenFirstMaster = true;
        _log.Info("Epoch {0}: master is {1} ({2})", c.Epoch, c.Node, c.Reason);
        _state = _state.NewReign(c.Epoch, c.Node);
        _sent.Clear();
        RenewIfMaster();
        Evaluate();
    }

    private void GiveUp()
    {
        WithdrawVouches();
        _state = _state.GiveUp();
        Evaluate();
    }

    private void RenewIfMaster()
    {
        if (!_state.IsMine) return;
        var id = ++_requestId;
        var now = Now;
        _sent[id] = now;
        // answers older than a lease are worth nothing
        foreach (var old in _sent.Where(e => now - e.Value > _lease).Select(e => e.Key).ToList()) _sent.Remove(old);
        _master.Tell(new RenewLease(_state.Epoch, _self, id), Self);
        if (!_state.AsksVoters) return;
        var ask = new VouchForMaster(_state.Epoch, _self, _incarnation, id);
        foreach (var ledger in Ledgers()) ledger.Tell(ask, Self);
    }

    private void WithdrawVouches()
    {
        if (!_state.IsMine) return;
        var withdraw = new WithdrawVouch(_state.Epoch, _self);
        foreach (var ledger in Ledgers()) ledger.Tell(withdraw, Self);
    }

    /// <summary>Every group member's ledger, reachable or not: an unreachable one may answer again any moment.</summary>
    private IEnumerable<ActorSelection> Ledgers() =>
        _cluster.State.Members
            .Where(m => m.Status is MemberStatus.Up or MemberStatus.WeaklyUp or MemberStatus.Joining or MemberStatus.Leaving && _group.Includes(m))
            .Select(m => Context.ActorSelection(new RootActorPath(m.Address) / "user" / _group.Ledger));

    private void Evaluate()
    {
        var now = Now;
        var holds = _state.Holds(now);
        if (holds != _holds)
        {
            if (holds) _log.Warning("This node is now MASTER (epoch {0})", _state.Epoch);
            else _log.Warning("This node is no longer master (epoch {0}): {1}", _state.Epoch,
                _state.Master == _self ? "lease lapsed or was given back" : $"{_state.Master} is master");
        }
        _holds = holds;
        _view.SetRole(_state.Epoch, _state.Master, holds, holds ? _state.HoldsUntil : DateTimeOffset.MinValue);

        // Timers only where there is something to do: a standby renews nothing and holds no lease,
        // so an idle standby wakes for none of this. The check fires when the lease would lapse.
        if (_state.IsMine && !Timers.IsTimerActive("renew")) Timers.StartPeriodicTimer("renew", Renew.Instance, _renewEvery);
        else if (!_state.IsMine) Timers.Cancel("renew");
        if (holds) Timers.StartSingleTimer("check", Check.Instance, _state.HoldsUntil - now + TimeSpan.FromMilliseconds(1));
        else Timers.Cancel("check");
    }
}

/// <summary>Marker key for the node's role actor.</summary>
public sealed class RoleKey;

public static class RoleActorHostingExtensions
{
    /// <param name="group">The node's own group (a witness: the first it serves).</param>
    public static AkkaConfigurationBuilder AddRoleActor(this AkkaConfigurationBuilder builder, string self,
        NodeView view, TimeSpan lease, int configuredNodes, GroupScope? group = null) =>
        builder.WithActors((system, registry) =>
        {
            var proxy = registry.Get<MasterProxyKey>();
            var g = group ?? GroupScope.Whole;
            var role = system.ActorOf(Props.Create(() => new RoleActor(self, view, proxy, lease, g.ConfiguredNodes(configuredNodes), g)), RoleActor.Name);
            registry.Register<RoleKey>(role);
            // Give the lease back before leaving the cluster, so a switchover on shutdown is immediate.
            Akka.Actor.CoordinatedShutdown.Get(system).AddTask(Akka.Actor.CoordinatedShutdown.PhaseBeforeClusterShutdown,
                "promha-step-down", async () =>
                {
                    try { await role.Ask<Done>(RoleActor.StepDown.Instance, TimeSpan.FromSeconds(2)); }
                    catch (Exception) { /* shutting down anyway */ }
                    await Task.Delay(300); // let the release reach the singleton
                    return Done.Instance;
                });
        });
}
