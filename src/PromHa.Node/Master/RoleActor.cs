using Akka;
using Akka.Actor;
using Akka.Cluster.Tools.PublishSubscribe;
using Akka.Event;
using Akka.Hosting;
using PromHa.Messages.Roles;
using PromHa.Node.Cluster;

namespace PromHa.Node.Master;

/// <summary>
/// This node's side of the master role. It follows role changes (pub/sub plus the singleton's
/// status heartbeat, which repairs a missed message), renews the lease while this node is master,
/// and demotes itself the moment the lease lapses, even when cut off from the singleton.
/// </summary>
public sealed class RoleActor : ReceiveActor, IWithTimers
{
    public const string Name = "role";
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly string _self;
    private readonly NodeView _view;
    private readonly IActorRef _master;
    private readonly TimeSpan _renewEvery;
    private readonly Dictionary<long, DateTimeOffset> _pending = new();
    private long _epoch;
    private string? _masterNode;
    private DateTimeOffset _leaseUntil = DateTimeOffset.MinValue;
    private bool _revoked;
    private bool _holds;
    private long _requestId;
    private bool _seenFirstMaster;

    public RoleActor(string self, NodeView view, IActorRef masterProxy, TimeSpan lease)
    {
        _self = self;
        _view = view;
        _master = masterProxy;
        _renewEvery = lease / 4;

        Receive<MasterChanged>(OnChanged);
        Receive<MasterStatus>(s =>
        {
            _view.SetStatus(s);
            if (s.Master is not null && (s.Epoch > _epoch || (s.Epoch == _epoch && s.Master != _masterNode)))
                OnChanged(new MasterChanged(s.Epoch, s.Master, "status", s.At, _masterNode));
        });
        Receive<Renew>(_ => RenewIfMaster());
        Receive<Check>(_ => Evaluate());
        Receive<LeaseGranted>(g =>
        {
            if (g.Epoch != _epoch || g.Node != _self || _revoked || !_pending.Remove(g.RequestId, out var sentAt)) return;
            // Counted from when we asked: our lease ends before the singleton's view of it does.
            var until = sentAt + TimeSpan.FromMilliseconds(g.DurationMs);
            if (until > _leaseUntil) _leaseUntil = until;
            foreach (var old in _pending.Keys.Where(k => k < g.RequestId).ToList()) _pending.Remove(old);
            NodeMetrics.LeaseDenials.Set(0);
            Evaluate();
        });
        Receive<LeaseDenied>(d =>
        {
            if (d.Epoch != _epoch) return;
            if (_holds) _log.Warning("Lease for epoch {0} denied: {1}; stepping down", d.Epoch, d.Reason);
            _leaseUntil = DateTimeOffset.MinValue;
            NodeMetrics.LeaseDenials.Set(1);
            Evaluate();
        });
        Receive<RevokeLease>(r =>
        {
            if (r.Epoch != _epoch || r.Node != _self) return;
            _log.Info("Switchover: giving up the master lease of epoch {0}", r.Epoch);
            _revoked = true;
            _leaseUntil = DateTimeOffset.MinValue;
            Evaluate();
            Sender.Tell(new LeaseReleased(r.Epoch, _self));
        });
        Receive<StepDown>(_ =>
        {
            if (_masterNode != _self) { Sender.Tell(Done.Instance); return; }
            _revoked = true;
            _leaseUntil = DateTimeOffset.MinValue;
            Evaluate();
            _master.Tell(new LeaseReleased(_epoch, _self));
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
        DistributedPubSub.Get(Context.System).Mediator.Tell(new Subscribe(Topics.Roles, Self));
    }

    private void OnChanged(MasterChanged c)
    {
        if (c.Epoch <= _epoch) return; // stale
        if (_seenFirstMaster && c.Previous is not null) NodeMetrics.Failovers.WithLabels(c.Reason).Inc();
        _seenFirstMaster = true;
        _log.Info("Epoch {0}: master is {1} ({2})", c.Epoch, c.Node, c.Reason);
        _epoch = c.Epoch;
        _masterNode = c.Node;
        _revoked = false;
        _leaseUntil = DateTimeOffset.MinValue;
        _pending.Clear();
        RenewIfMaster();
        Evaluate();
    }

    private void RenewIfMaster()
    {
        if (_masterNode != _self || _revoked) return;
        var id = ++_requestId;
        _pending[id] = Clock.Now;
        if (_pending.Count > 32) _pending.Remove(_pending.Keys.Min());
        _master.Tell(new RenewLease(_epoch, _self, id), Self);
    }

    private void Evaluate()
    {
        var holds = _masterNode == _self && !_revoked && Clock.Now < _leaseUntil;
        if (holds != _holds)
        {
            if (holds) _log.Warning("This node is now MASTER (epoch {0})", _epoch);
            else _log.Warning("This node is no longer master (epoch {0}): {1}", _epoch,
                _masterNode == _self ? "lease lapsed or was given back" : $"{_masterNode} is master");
        }
        _holds = holds;
        _view.SetRole(_epoch, _masterNode, holds);

        // Timers only where there is something to do: a standby renews nothing and holds no lease,
        // so an idle standby wakes for none of this. The check fires when the lease would lapse.
        var renewing = _masterNode == _self && !_revoked;
        if (renewing && !Timers.IsTimerActive("renew")) Timers.StartPeriodicTimer("renew", Renew.Instance, _renewEvery);
        else if (!renewing) Timers.Cancel("renew");
        if (holds) Timers.StartSingleTimer("check", Check.Instance, _leaseUntil - Clock.Now + TimeSpan.FromMilliseconds(1));
        else Timers.Cancel("check");
    }
}

/// <summary>Marker key for the node's role actor.</summary>
public sealed class RoleKey;

public static class RoleActorHostingExtensions
{
    public static AkkaConfigurationBuilder AddRoleActor(this AkkaConfigurationBuilder builder, string self,
        NodeView view, TimeSpan lease) =>
        builder.WithActors((system, registry) =>
        {
            var proxy = registry.Get<MasterProxyKey>();
            var role = system.ActorOf(Props.Create(() => new RoleActor(self, view, proxy, lease)), RoleActor.Name);
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
