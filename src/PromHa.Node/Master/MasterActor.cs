using System.Collections.Immutable;
using Akka.Actor;
using Akka.Cluster;
using Akka.Cluster.Hosting;
using Akka.Cluster.Tools.PublishSubscribe;
using Akka.Cluster.Tools.Singleton;
using Akka.Event;
using Akka.Hosting;
using PromHa.Messages.Config;
using PromHa.Messages.Health;
using PromHa.Messages.Ledger;
using PromHa.Messages.Cluster;
using PromHa.Messages.Roles;
using PromHa.Node.Cluster;
using PromHa.Node.Groups;
using PromHa.Node.Replication;
using ClusterEvent = Akka.Cluster.ClusterEvent;

namespace PromHa.Node.Master;

/// <summary>
/// The cluster singleton that decides who is master. A thin shell around <see cref="MasterState"/>:
/// it turns cluster events and health reports into observations, asks the state to decide on a
/// timer, and appends each decision to the <see cref="ReplicatedLog{TEntry,TAck}"/>, announcing it
/// only once a majority holds it. Config versions are numbered by <see cref="Config.ConfigVersionsActor"/>.
/// </summary>
public sealed class MasterActor : ReceiveActor, IWithTimers
{
    public const string SingletonName = "master";
    // Paces what only time changes (a lease running out, a Prometheus unhealthy for long enough);
    // membership changes decide at once.
    private static readonly TimeSpan TickInterval = TimeSpan.FromMilliseconds(500);
    private static readonly TimeSpan RecoveryAskInterval = TimeSpan.FromSeconds(1);

    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly Akka.Cluster.Cluster _cluster = Akka.Cluster.Cluster.Get(Context.System);
    private readonly IActorRef _mediator = DistributedPubSub.Get(Context.System).Mediator;
    /// <summary>Addresses, incarnations and ledger heads of the members, as ConfigVersionsActor keeps them too.</summary>
    private readonly LedgerMembers _members;
    private MasterState _state;
    private int _nextAge;
    private bool _committing;
    /// <summary>The state before the decision being journaled: where a discarded decision goes back to.</summary>
    private MasterState? _beforeDecision;
    private MasterChanged? _announced; // the last change that was journaled and published
    private DateTimeOffset _recoveryStarted;
    private DateTimeOffset? _noQuorumSince;
    private bool _leavingIsland;
    private bool _askingAfterMaster;
    private static readonly TimeSpan IslandTimeout = TimeSpan.FromSeconds(20);
    private static readonly TimeSpan StallAfter = TickInterval * 3;
    private DateTimeOffset _lastDecideAt;

    private readonly OutsiderProbe _outsiders;
    private readonly ReplicatedLog<MasterChanged, Recorded> _ledgers;
    /// <summary>Pause and resume: the same ledgers, the same majority rule.</summary>
    private readonly ReplicatedLog<MaintenanceChanged, MaintenanceRecorded> _maintenanceLog;
    private bool _maintenanceBusy;
    private long _maintenanceNumbered;

    private readonly TimeProvider _time;
    private DateTimeOffset Now => _time.GetUtcNow();

    private readonly GroupScope _group;

    /// <param name="group">The group this singleton decides for; its timings count the group's configured nodes.</param>
    public MasterActor(string selfNode, MasterTimings timings, OutsiderProbe outsiders, PeerDeaths deaths, TimeProvider time, GroupScope? group = null)
    {
        _time = time;
        _group = group ?? GroupScope.Whole;
        _state = MasterState.Initial(selfNode, timings) with { Dead = deaths.Snapshot().ToImmutableHashSet() };
        _outsiders = outsiders;
        _members = new LedgerMembers(timings.ConfiguredNodes, _cluster.SelfUniqueAddress, _group);
        _ledgers = new ReplicatedLog<MasterChanged, Recorded>(
            new LogSpec<MasterChanged, Recorded>(
                c => new RecordMasterChanged(c),
                (ack, c) => ack.Epoch >= c.Epoch,
                (c, why) => new DiscardMasterChanged(c.Epoch, why, c.Node), _group.Ledger),
            Context.System,
            LocalLedger,
            () => LiveMembers().ToList(),
            () => _state.ClusterSize);
        _maintenanceLog = new ReplicatedLog<MaintenanceChanged, MaintenanceRecorded>(
            new LogSpec<MaintenanceChanged, MaintenanceRecorded>(
                m => new RecordMaintenance(m),
                (ack, m) => ack.Seq >= m.Seq,
                (m, why) => new DiscardMaintenance(m.Seq, why), _group.Ledger),
            Context.System,
            LocalLedger,
            () => LiveMembers().ToList(),
            () => _state.ClusterSize);
        Recovering();
    }

    public ITimerScheduler Timers { get; set; } = null!;

    private sealed record Tick
    {
        public static readonly Tick Instance = new();
    }

    private sealed record AskLedgers
    {
        public static readonly AskLedgers Instance = new();
    }

    private sealed record Committed(Appended<MasterChanged, Recorded> Result);

    private sealed record MaintenanceAppended(Appended<MaintenanceChanged, MaintenanceRecorded> Result, IActorRef ReplyTo);

    private sealed record MaintenanceFailed(MaintenanceChanged Change, string Reason, IActorRef ReplyTo);

    /// <summary>A committed change whose old reign's vouches have run out: announce it now.</summary>
    private sealed record Announce(MasterChanged Change, int Acks, int Asked);


    /// <summary>What a configured node outside this cluster said of its own: <see cref="Membership"/> when it holds a majority without this node.</summary>
    private sealed record MajorityElsewhere(Membership? By);

    /// <summary>What the configured nodes outside this cluster said of themselves while the master they name was absent.</summary>
    private sealed record AbsentMasterAnswers(string Master, string Incarnation, IReadOnlyList<Membership> Replies);

    private sealed record ProbeOutsiders
    {
        public static readonly ProbeOutsiders Instance = new();
    }

    protected override void PreStart()
    {
        Timers.StartPeriodicTimer("outsiders", ProbeOutsiders.Instance, TimeSpan.Zero, TimeSpan.FromSeconds(1));
        _cluster.Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsSnapshot,
            typeof(ClusterEvent.IMemberEvent), typeof(ClusterEvent.IReachabilityEvent), LiveReachability.ChangedEvent);
        Context.System.EventStream.Subscribe(Self, typeof(PeerProvenDead));
        _log.Info("Master singleton of group {0} starting on {1}; asking every member's ledger for its epoch", _group.Name, _state.SelfNode);
    }

    protected override void PostStop()
    {
        _cluster.Unsubscribe(Self);
        Context.System.EventStream.Unsubscribe(Self);
    }

    /// <summary>
    /// Before deciding anything, learn the highest epoch any member has journaled. Every reachable
    /// member must answer (a ledger still loading its journal answers late, not never): a change
    /// is announced only after it is journaled on every member reachable at that time, so the
    /// reachable members together always hold the latest epoch.
    /// </summary>
    private void Recovering()
    {
        ReceiveMembership();
        Receive<ClusterEvent.CurrentClusterState>(s =>
        {
            OnClusterState(s);
            _recoveryStarted = Now;
            Timers.StartPeriodicTimer("recovery", AskLedgers.Instance, TimeSpan.Zero, RecoveryAskInterval);
        });
        Receive<AskLedgers>(_ =>
        {
            if (Now - _recoveryStarted > TimeSpan.FromSeconds(5))
                _log.Warning("Master singleton still waiting for the ledgers of {0}", string.Join(", ", _members.MissingHeads()));
            AskMissingHeads();
        });
        Receive<LedgerHead>(h =>
        {
            _members.Head(h);
            if (_members.MissingHeads().Count == 0) FinishRecovery();
        });
        Receive<NodeHealth>(h => _state = _state.Observe(new HealthReported(h), Now));
        // No answer rather than a denial: the master keeps the lease the previous singleton granted
        // until it runs out, and this one renews it once it knows the epoch. A denial here made
        // the master step down for a moment on every singleton hand-over.
        Receive<RenewLease>(_ => { });
        Receive<GetMasterStatus>(_ => Sender.Tell(Status()));
        Receive<RequestSwitchover>(_ => Sender.Tell(new SwitchoverResult(false, "the master singleton is still recovering")));
        Receive<RequestMaintenance>(_ => Sender.Tell(new SwitchoverResult(false, "the master singleton is still recovering")));
    }

    /// <summary>
    /// Whether the ledgers read so far must include the latest epoch. Every change is journaled
    /// on every member reachable when it was made, a majority of the configured nodes, so the
    /// ledgers of any majority include it (quorum intersection). A member that joins later, with
    /// its journal still loading, does not hold up a master's lease. A pair cannot intersect:
    /// decisions wait for both ledgers, while leases go on (a lone pair node that might hold a
    /// newer epoch took no role, see MasterState.HasQuorum).
    /// </summary>
    private bool KnowsLatestEpoch(bool forLease)
    {
        var size = _state.ClusterSize;
        return (forLease && size <= 2) || _members.KnowsLatest;
    }

    private void AskMissingHeads() => _ledgers.AskHeads(_members.AddressesOf(_members.MissingHeads()), Self);

    private void FinishRecovery()
    {
        var heads = _members.Heads;
        var best = heads.Where(h => h.Last is not null).MaxBy(h => h.Epoch);
        // The newest epoch on fewer ledgers than a majority may never have been committed (its
        // singleton crashed before it could discard it): it counts only once journaled again.
        var holders = best is null ? 0 : heads.Count(h => h.Epoch >= best.Epoch);
        MasterChanged? unconfirmed = null;
        if (best?.Last is { } newest && _state.ClusterSize > 2 && !_state.IsMajority(holders))
        {
            unconfirmed = newest;
            best = heads.Where(h => h.Last is not null && h.Epoch < newest.Epoch).MaxBy(h => h.Epoch);
        }
        _state = _state.Recover(best?.Last, Now);
        // Maintenance: the newest change any ledger read holds (a committed one is on a majority,
        // so at least one of the ledgers read has it); numbers discarded are not used again.
        _state = _state with { Maintenance = heads.Select(h => h.Maintenance).OfType<MaintenanceChanged>().MaxBy(m => m.Seq) };
        _maintenanceNumbered = heads.Select(h => Math.Max(h.Maintenance?.Seq ?? 0, h.DiscardedMaintenance)).DefaultIfEmpty(0).Max();
        if (_state.Paused) _log.Warning("The cluster is paused (since {0:u}, by {1}): no automatic failover", _state.Maintenance!.At, _state.Maintenance.By);
        // numbers a predecessor discarded are never handed out again
        _state = _state with { NumberedUpTo = Math.Max(_state.NumberedUpTo, heads.Select(h => h.DiscardedEpoch).DefaultIfEmpty(0).Max()) };
        _announced = best?.Last;
        _log.Info("Master singleton recovered: epoch {0}, master {1} (ledgers of {2})",
            _state.Epoch, _state.Master ?? "none", string.Join(",", heads.Select(h => h.Node).Order()));
        // A local ledger that is behind copies the missing changes from the one that is ahead.
        if (_members.HeadOf(_state.SelfNode) is { } own)
        {
            if (best is not null && own.Epoch < best.Epoch && _members.AddressOf(best.Node) is { } bestAddress)
                _ledgers.Ledger(bestAddress).Tell(new LedgerSync(_state.SelfNode, own.Epoch, own.ConfigVersion), LocalLedger());
        }
        Become(Active);
        if (unconfirmed is not null) Confirm(unconfirmed, $"epoch {unconfirmed.Epoch} is on {holders} of the ledgers read, not a majority");
        Timers.StartPeriodicTimer("tick", Tick.Instance, TickInterval);
        Timers.StartPeriodicTimer("status", PublishStatusTick.Instance, TimeSpan.FromSeconds(1));
        // a singleton that took over from a dead one decides now, not on the first tick
        _lastDecideAt = Now;
        Decide();
    }

    private sealed record PublishStatusTick
    {
        public static readonly PublishStatusTick Instance = new();
    }

    private void Active()
    {
        // A member lost is acted on at once; the tick only paces lease expiry and health thresholds.
        ReceiveMembership(afterLoss: Decide);
        Receive<ClusterEvent.CurrentClusterState>(OnClusterState);
        Receive<AskLedgers>(_ => AskMissingHeads());
        Receive<LedgerHead>(OnLaterHead);
        Receive<NodeHealth>(h => _state = _state.Observe(new HealthReported(h), Now));
        Receive<Tick>(_ => Decide());
        Receive<PublishStatusTick>(_ => Publish(Status()));
        Receive<Committed>(OnCommitted);
        Receive<RequestMaintenance>(OnRequestMaintenance);
        Receive<MaintenanceAppended>(OnMaintenanceAppended);
        Receive<MaintenanceFailed>(f =>
        {
            _maintenanceBusy = false;
            _maintenanceLog.Discard(f.Change, f.Reason);
            f.ReplyTo.Tell(new SwitchoverResult(false, $"not recorded: {f.Reason}"));
        });
        Receive<Announce>(OnAnnounce);
        Receive<AbsentMasterAnswers>(OnAbsentMasterAnswers);
        // This node's journal did not take the change: start over from the ledgers (a restarted
        // singleton recovers) rather than announce something that is not journaled.
        Receive<Status.Failure>(f => throw new InvalidOperationException("Journaling a role change failed", f.Cause));
        Receive<RenewLease>(r =>
        {
            // Not enough ledgers read yet to be sure of the latest epoch: no answer rather than a
            // denial, so a master keeps the lease it holds meanwhile.
            _state = _state.Heard(r.Node, r.Epoch, Now);
            if (!KnowsLatestEpoch(forLease: true)) return;
            var (state, verdict, reason) = _state.Renew(r.Node, r.Epoch, Now);
            _state = state;
            Sender.Tell(verdict == LeaseVerdict.Granted
                ? new LeaseGranted(r.Epoch, r.Node, r.RequestId, (long)_state.Timings.LeaseDuration.TotalMilliseconds)
                : new LeaseDenied(r.Epoch, r.Node, reason, Binding: verdict == LeaseVerdict.Denied));
        });
        Receive<LeaseReleased>(r =>
        {
            _log.Info("{0} released the master lease of epoch {1}", r.Node, r.Epoch);
            _state = _state.Released(r.Node, r.Epoch, Now);
            Decide();
        });
        Receive<RequestSwitchover>(req =>
        {
            var (state, error) = req.Failover
                ? _state.RequestFailover(req.Target, req.Force, Now)
                : _state.RequestSwitchover(req.Target, Now);
            if (error is not null)
            {
                Sender.Tell(new SwitchoverResult(false, error));
                return;
            }
            _state = state;
            var what = req.Failover ? req.Force ? "Forced failover" : "Failover" : "Switchover";
            _log.Info("{0} requested: {1} -> {2}", what, _state.Master ?? "(no master)", _state.SwitchoverTarget);
            if (_state.Master is { } current && _members.AddressOf(current) is { } masterAddress)
                Context.ActorSelection(new RootActorPath(masterAddress) / "user" / RoleActor.Name)
                    .Tell(new RevokeLease(_state.Epoch, current));
            Sender.Tell(new SwitchoverResult(true, _state.Master is null
                ? $"failing over to {_state.SwitchoverTarget} (there is no master)"
                : $"{(req.Failover ? "failing" : "switching")} over from {_state.Master} to {_state.SwitchoverTarget}"));
            Decide();
        });
        Receive<GetMasterStatus>(_ => Sender.Tell(Status()));
    }

    /// <param name="afterLoss">Run after a member is removed or becomes unreachable.</param>
    /// <summary>
    /// A member that joined after this singleton recovered may hold a newer epoch. With a majority
    /// of heads already read, such an epoch was never committed (a committed one is on a majority,
    /// which shares a ledger with the one read): that ledger drops it. Otherwise it may be committed
    /// and is journaled again, counting once a majority holds it. A pair adopts it (see Topologies).
    /// </summary>
    private void OnLaterHead(LedgerHead h)
    {
        var knewLatest = KnowsLatestEpoch(forLease: false);
        if (h.Epoch <= _state.Epoch || h.Last is not { } newer)
        {
            _members.Head(h);
            return;
        }
        if (_state.ClusterSize <= 2)
        {
            _members.Head(h);
            _log.Warning("Learned epoch {0} (master {1}) from {2}'s ledger; adopting it", h.Epoch, newer.Node, h.Node);
            _state = _state.Recover(newer, Now);
            _announced = newer;
            if (_members.AddressOf(h.Node) is { } from)
                _ledgers.Ledger(from).Tell(new LedgerSync(_state.SelfNode, 0, 0), LocalLedger());
            Publish(Status());
            return;
        }
        if (knewLatest)
        {
            _members.Head(h with { Epoch = _state.Epoch, Last = _announced });
            var why = $"found only on {h.Node}'s ledger after epoch {_state.Epoch} was read from a majority: never committed";
            _log.Warning("Epoch {0} ({1} as master) {2}; dropping it there", newer.Epoch, newer.Node, why);
            _state = _state with { NumberedUpTo = Math.Max(_state.NumberedUpTo, newer.Epoch) };
            if (_members.AddressOf(h.Node) is { } at)
                _ledgers.Ledger(at).Tell(new DiscardMasterChanged(newer.Epoch, why, newer.Node), ActorRefs.NoSender);
            return;
        }
        // a decision in flight first; the head is asked again on the next round
        if (_committing) return;
        _members.Head(h);
        Confirm(newer, $"learned epoch {newer.Epoch} from {h.Node}'s ledger before a majority was read");
    }

    /// <summary>Journals an epoch found on too few ledgers again: announced once a majority holds it, dropped otherwise.</summary>
    private bool _confirming;

    private void Confirm(MasterChanged change, string why)
    {
        _log.Warning("{0}: journaling it again ({1} as master); it counts once a majority holds it", why, change.Node);
        _beforeDecision = _state;
        _state = _state.Apply(change, Now);
        _committing = true;
        _confirming = true;
        _ledgers.Append(change).PipeTo(Self, success: r => new Committed(r));
    }

    private void ReceiveMembership(Action? afterLoss = null)
    {
        Receive<ProbeOutsiders>(_ =>
        {
            // Only a node alone or without a majority needs to know whether its configured peers are
            // up outside its cluster (in a group: without a majority of the cluster).
            if (_group.Scoped ? ClusterHasMajority : _state.Members.Count > 1 && _state.HasQuorum) return;
            _outsiders.AliveOutsiders(_cluster).PipeTo(Self, success: n => new OutsidersAlive(n));
        });
        Receive<OutsidersAlive>(a =>
        {
            if (a.Count > 0 && !_state.EverSawOthers && _state.AliveOutsiders == 0)
                _log.Warning("This node is alone in its cluster while {0} other configured node(s) are up: it will not take the master role", a.Count);
            _state = _state.Observe(a, Now);
            // Up outside and no majority here: ask them where the cluster is, not only whether they run.
            if (!ClusterHasMajority && a.Count > 0)
                _outsiders.MajorityElsewhere(Context.System, _cluster, IslandSize)
                    .PipeTo(Self, success: m => new MajorityElsewhere(m));
        });
        Receive<MajorityElsewhere>(e =>
        {
            if (e.By is not { } by || ClusterHasMajority) return;
            LeaveIsland($"{by.Node} is Up in a cluster of {by.UpMembers} of the {IslandSize} configured nodes that does not hold this node");
        });
        Receive<ClusterEvent.IMemberEvent>(e =>
        {
            // every status counts for reachability: a downed member's observations stop counting
            _members.Reach.Member(e.Member);
            switch (e)
            {
                case ClusterEvent.MemberUp up:
                    OnMemberUp(up.Member);
                    break;
                case ClusterEvent.MemberRemoved removed:
                    OnMemberGone(removed.Member, left: removed.PreviousStatus is MemberStatus.Exiting or MemberStatus.Leaving);
                    afterLoss?.Invoke();
                    break;
                case ClusterEvent.MemberExited exited:
                    OnMemberGone(exited.Member, left: true);
                    break;
            }
            ApplyReachability(afterLoss);
        });
        // Akka's own events count the observations of downed members too: decided on Akka's
        // observations through the live view instead (Cluster/LiveReachability).
        Receive<ClusterEvent.UnreachableMember>(_ => { });
        Receive<ClusterEvent.ReachableMember>(_ => { });
        Receive(LiveReachability.ChangedEvent, e =>
        {
            _members.Reach.Reachability(e);
            ApplyReachability(afterLoss);
        });
        Receive<PeerProvenDead>(d =>
        {
            _state = _state.Observe(new MemberDied(d.Node, d.Incarnation), Now);
            afterLoss?.Invoke();
        });
    }

    private void OnClusterState(ClusterEvent.CurrentClusterState s)
    {
        _members.Reach.Snapshot(s);
        foreach (var m in s.Members.Where(m => m.Status == MemberStatus.Up).OrderBy(m => m, Member.AgeOrdering))
            OnMemberUp(m);
        ApplyReachability(afterLoss: null);
    }

    /// <summary>
    /// What changed in the live view of reachability, into the ledger members and the state. The
    /// master counts as unreachable only when it is cut off (<see cref="LiveReachability.CutOff"/>):
    /// the role moves only when the master is cut off from a majority, and a single other node's
    /// record (a standby whose own link flaps) is not that.
    /// </summary>
    private void ApplyReachability(Action? afterLoss)
    {
        var lost = false;
        foreach (var (name, reachable) in _members.ApplyReachability())
        {
            if (name == _state.Master) continue; // below
            _state = _state.Observe(new MemberReachability(name, reachable), Now);
            lost |= !reachable;
        }
        if (_state.Master is { } master && _state.Members.TryGetValue(master, out var view) &&
            _members.Reach.Named(master) is { } member && Incarnation(member) == view.Incarnation)
        {
            var reachable = !_members.Reach.CutOff(member.UniqueAddress);
            if (reachable != view.Reachable)
            {
                _state = _state.Observe(new MemberReachability(master, reachable), Now);
                lost |= !reachable;
            }
        }
        if (lost) afterLoss?.Invoke();
    }

    private void OnMemberUp(Member m)
    {
        if (MemberRoles.NodeName(m) is not { } name || !_group.Includes(m)) return;
        // A new incarnation (restarted node) has a ledger of its own to read.
        _members.Up(m, _state.SelfNode);
        _state = _state.Observe(new MemberUp(name, MemberRoles.IsWitness(m), _nextAge++, Incarnation(m)), Now);
        // Read its ledger now rather than on the next round (up to a second later): after every link
        // was cut, the re-formed cluster waited that second for the majority that names the master.
        if (_members.HeadOf(name) is null) _ledgers.AskHeads(_members.AddressesOf([name]), Self);
    }

    /// <summary>Address and UID: a node restarted on the same address is another incarnation.</summary>
    private static string Incarnation(Member m) => LedgerMembers.Incarnation(m);

    private void OnMemberGone(Member m, bool left)
    {
        if (MemberRoles.NodeName(m) is not { } name || !_group.Includes(m)) return;
        // A node that restarted under the same name is already known as its new incarnation.
        if (_state.Members.TryGetValue(name, out var known) && known.Incarnation != Incarnation(m)) return;
        _members.Gone(m);
        _log.Info("Member {0} ({1}) left the cluster", name, m.Address);
        _state = _state.Observe(new MemberGone(name, left), Now);
    }

    private void OnRequestMaintenance(RequestMaintenance req)
    {
        var what = req.Paused ? "paused" : "resumed";
        if (_state.Paused == req.Paused)
        {
            Sender.Tell(new SwitchoverResult(true, $"the cluster is already {what}"));
            return;
        }
        if (_maintenanceBusy)
        {
            Sender.Tell(new SwitchoverResult(false, "another pause or resume is being recorded; try again"));
            return;
        }
        if (!_state.HearsMajority(Now))
        {
            Sender.Tell(new SwitchoverResult(false, "the master singleton does not hear a majority of the nodes"));
            return;
        }
        var change = new MaintenanceChanged(++_maintenanceNumbered, req.Paused, req.By, DateTimeOffset.UtcNow);
        _maintenanceBusy = true;
        var replyTo = Sender;
        _maintenanceLog.Append(change).PipeTo(Self,
            success: r => new MaintenanceAppended(r, replyTo),
            failure: e => new MaintenanceFailed(change, e.Message, replyTo));
    }

    private void OnMaintenanceAppended(MaintenanceAppended a)
    {
        _maintenanceBusy = false;
        var (change, acks, asked) = a.Result;
        if (!_state.IsMajority(acks.Count))
        {
            _maintenanceLog.Discard(change, $"on {acks.Count} of {asked} ledgers, not a majority");
            a.ReplyTo.Tell(new SwitchoverResult(false, $"not recorded: it reached {acks.Count} of {asked} ledgers, not a majority"));
            return;
        }
        _state = _state with { Maintenance = change };
        _log.Warning("Cluster {0} by {1}: {2}", change.Paused ? "paused" : "resumed", change.By,
            change.Paused ? "no automatic failover until it is resumed" : "automatic failover is back");
        Publish(Status());
        a.ReplyTo.Tell(new SwitchoverResult(true, change.Paused
            ? "paused: no automatic failover until `promha resume` (switchover and failover still work)"
            : "resumed: automatic failover is back"));
        Decide();
    }

    private void Decide()
    {
        var now = Now;
        // This singleton did not run for a while (paused, starved): renewals may still sit in its
        // mailbox, so silence is counted afresh rather than read as the master's.
        if (now - _lastDecideAt > StallAfter)
        {
            _log.Warning("Master singleton did not run for {0:F1} s; the master's silence is counted from now", (now - _lastDecideAt).TotalSeconds);
            _state = _state with { SilenceClockFrom = now };
        }
        _lastDecideAt = now;
        GuardAgainstIsland();
        if (_committing || !KnowsLatestEpoch(forLease: false)) return;
        var before = _state;
        var (state, change) = _state.Decide(now);
        _state = state;
        RevokeIfServerDown(before, now);
        AskAfterAbsentMaster(now);
        if (change is null) return;
        _log.Warning("Master role -> {0} (epoch {1}, reason {2}, previous {3})",
            change.Node, change.Epoch, change.Reason, change.Previous ?? "none");
        _beforeDecision = before;
        _committing = true;
        _ledgers.Append(change).PipeTo(Self, success: r => new Committed(r));
    }

    /// <summary>
    /// The master is not a member and its lease may still run: ask the configured nodes outside the
    /// cluster who they are. Another process answering from the master's address proves the one the
    /// role was granted to gone (it exited before it could restart there), so its lease is not waited out.
    /// </summary>
    private void AskAfterAbsentMaster(DateTimeOffset now)
    {
        if (_askingAfterMaster || !_state.AwaitingAbsentMaster(now)) return;
        _askingAfterMaster = true;
        var (master, incarnation) = (_state.Master!, _state.MasterIncarnation!);
        _outsiders.Memberships(Context.System, _cluster)
            .PipeTo(Self, success: r => new AbsentMasterAnswers(master, incarnation, r),
                failure: _ => new AbsentMasterAnswers(master, incarnation, []));
    }

    private void OnAbsentMasterAnswers(AbsentMasterAnswers a)
    {
        _askingAfterMaster = false;
        if (a.Replies.FirstOrDefault(m => OutsiderProbe.ProvesGone(m, a.Master, a.Incarnation)) is not { } by) return;
        if (_state.Master != a.Master || _state.MasterIncarnation != a.Incarnation) return;
        _log.Info("{0} answers from its address as another process ({1}): {2}, which holds the role, is gone and its lease with it",
            a.Master, by.Incarnation, a.Incarnation);
        _state = _state.Observe(new MemberDied(a.Master, a.Incarnation), Now);
        Decide();
    }

    /// <summary>
    /// A master that is alive but whose Prometheus is down or unhealthy gives the lease back when
    /// asked, as in a switchover: the role moves at once instead of when the lease runs out.
    /// </summary>
    private void RevokeIfServerDown(MasterState before, DateTimeOffset now)
    {
        if (before.Revoking || !_state.Revoking || _state.Master is not { } master) return;
        var problem = _state.MasterProblem(now);
        if (problem is not (MasterState.PrometheusDown or "prometheus-unhealthy")) return;
        if (_members.AddressOf(master) is not { } address) return;
        _log.Info("Asking {0} to give up the master lease of epoch {1} ({2})", master, _state.Epoch, problem);
        Context.ActorSelection(new RootActorPath(address) / "user" / RoleActor.Name).Tell(new RevokeLease(_state.Epoch, master));
    }

    private void OnCommitted(Committed committed)
    {
        var (change, acks, asked) = committed.Result;
        var confirming = _confirming;
        _confirming = false;
        if (!_state.IsMajority(acks.Count) && confirming)
        {
            // A record found on too few of the ledgers *read* may still be on a majority that
            // includes ledgers not reachable now (found by the partition test: a committed
            // switchover dropped after a full cut, and an older epoch announced again). Leave it
            // where it is; the next decision takes a higher number and supersedes it.
            _committing = false;
            _log.Warning("Epoch {0} ({1} as master) reached {2} ledgers now, not a majority; leaving it on the ledgers that hold it " +
                         "(it may be committed on ones not reachable now): a newer epoch supersedes it", change.Epoch, change.Node, acks.Count);
            _state = _state.Discard(change, _beforeDecision ?? _state);
            return;
        }
        if (!_state.IsMajority(acks.Count))
        {
            _committing = false;
            // Raft's commit rule: what fewer than a majority of the configured nodes hold never
            // happened. Not announced; the ledgers that took it drop it; the number is not reused.
            var why = Quorum.NotCommitted(acks.Count, _state.ClusterSize);
            _log.Error("Epoch {0} ({1} as master) {2}: not committed; dropping it", change.Epoch, change.Node, why);
            _state = _state.Discard(change, _beforeDecision ?? _state);
            _ledgers.Discard(change, why);
            return;
        }
        // The old master may still count vouches from before these ledgers took the new epoch:
        // announcing only once a majority's have run out keeps two masters from overlapping.
        // A previous master proven dead, or restarted on its own address, cannot use its vouches.
        var wait = _beforeDecision is { MasterProvenDead: true } or { MasterRestartedInPlace: true }
            ? TimeSpan.Zero
            : _state.VouchesRunOutIn(acks.Select(a => TimeSpan.FromMilliseconds(a.VouchRemainingMs)).ToList());
        var announce = new Announce(change, acks.Count, asked);
        if (wait <= TimeSpan.Zero)
        {
            OnAnnounce(announce);
            return;
        }
        _log.Info("Epoch {0} journaled; waiting {1} ms for vouches of the previous reign to run out", change.Epoch, (long)wait.TotalMilliseconds);
        Timers.StartSingleTimer("announce", announce, wait);
    }

    private void OnAnnounce(Announce a)
    {
        _committing = false;
        _announced = a.Change;
        _log.Info("Epoch {0} journaled on {1}/{2} ledgers; announcing {3} as master", a.Change.Epoch, a.Acks, a.Asked, a.Change.Node);
        Publish(a.Change);
        Publish(Status());
        // What the announced epoch leads to (a recovered master that restarted meanwhile is
        // replaced) is decided now, not on the next tick: after every link was cut, the
        // restarted cluster re-announced the old master and moved the role 0.56 s later.
        Decide();
    }

    /// <summary>
    /// A singleton that cannot see a majority of the configured nodes for this long is on an island
    /// (a node that restarted and formed a cluster of its own, or the losing side of a partition
    /// the resolver did not settle). Its node stops, so that its supervisor (systemd, the demo)
    /// starts it again and it joins the real cluster.
    /// </summary>
    private void GuardAgainstIsland()
    {
        // Without a majority but with configured peers up elsewhere: this node is not where the
        // cluster is. Peers that are down are waited for instead.
        if (ClusterHasMajority || _state.AliveOutsiders == 0)
        {
            _noQuorumSince = null;
            return;
        }
        _noQuorumSince ??= Now;
        if (Now - _noQuorumSince < IslandTimeout) return;
        LeaveIsland($"no majority of the {IslandSize} configured nodes for {IslandTimeout.TotalSeconds:F0} s " +
                    $"while {_state.AliveOutsiders} of them are up outside this cluster");
    }

    /// <summary>
    /// Whether this node's cluster holds a majority of the configured nodes. Islands are the
    /// cluster's matter: in a group, the group's own majority says nothing of where the cluster is
    /// (a witness whose group lost both servers is not on an island; a first seed that restarted
    /// alone while cut off is, whatever its group), so the cluster's Up members count against all
    /// its configured nodes.
    /// </summary>
    private bool ClusterHasMajority => _group.Scoped
        ? UpReachable.Members(_cluster.State).Count() * 2 > IslandSize
        : _state.HasQuorum;

    /// <summary>The configured nodes an island is counted against: the cluster's.</summary>
    private int IslandSize => _group.Scoped ? _outsiders.ConfiguredNodes : _state.Timings.ConfiguredNodes;

    private void LeaveIsland(string why)
    {
        if (_leavingIsland) return; // once
        _leavingIsland = true;
        _log.Error("On an island: {0} (members here: {1}); leaving so that this node restarts into the main cluster",
            why, string.Join(",", _state.Members.Keys));
        CoordinatedShutdown.Get(Context.System).Run(RestartNode.Reason);
    }

    private IActorRef LocalLedger() => _group.LocalLedger(Context.System);

    /// <summary>
    /// Role changes and the status heartbeat go to every live member directly, joining ones
    /// included (a node that joined a moment before a decision must learn it), and over pub/sub.
    /// Receivers drop what they have already seen by its epoch.
    /// </summary>
    private void Publish(object message)
    {
        var live = LiveMembers().ToList();
        foreach (var address in _group.OwnedBy(_cluster, live))
            Context.ActorSelection(new RootActorPath(address) / "user" / RoleActor.Name).Tell(message);
        foreach (var address in live) _ledgers.Ledger(address).Tell(message);
        _mediator.Tell(new Publish(_group.RolesTopic, message));
    }

    /// <summary>Members that are joining or up and reachable from here; a member proven dead, or a master silent past its lease, answers no ledger ask either.</summary>
    private IEnumerable<Address> LiveMembers()
    {
        var now = Now;
        return _members.Live(_cluster, _state.Members.Values
            .Where(m => _state.IsProvenDead(m.Name) || (m.Name == _state.Master && _state.MasterSilent(now)))
            .Select(m => m.Name));
    }

    /// <summary>Only what is journaled and announced: never a decision still being written.</summary>
    private MasterStatus Status() => new(
        _announced?.Epoch ?? 0, _announced?.Node, _state.SelfNode, _cluster.SelfAddress.ToString(), _state.Recovered,
        _state.HealthViews(Now)
            .Select(v => _members.AddressOf(v.Node) is { } a ? v with { Address = ClusterAddresses.HostPort(a) } : v).ToList(),
        DateTimeOffset.UtcNow,
        _announced is not null && _state.Master == _announced.Node && _state.Epoch == _announced.Epoch ? _state.LeaseExpiresAt : null,
        _state.Maintenance);
}

/// <summary>Marker key for the proxy to the master singleton.</summary>
public sealed class MasterProxyKey;

public static class MasterActorHostingExtensions
{
    /// <param name="groups">
    /// A singleton per group the node serves, on the oldest member of that group; the proxy
    /// (<see cref="MasterProxyKey"/>) is to the first, the node's own group. Timings count each
    /// group's configured nodes.
    /// </param>
    public static AkkaConfigurationBuilder AddMasterActor(this AkkaConfigurationBuilder builder, string selfNode,
        MasterTimings timings, OutsiderProbe outsiders, PeerDeaths deaths, TimeProvider time, IReadOnlyList<GroupScope>? groups = null)
    {
        groups ??= [GroupScope.Whole];
        var own = groups[0];
        MasterTimings For(GroupScope g) => timings with { ConfiguredNodes = g.ConfiguredNodes(timings.ConfiguredNodes) };
        var ownTimings = For(own);
        builder.WithSingleton<MasterProxyKey>(own.MasterSingleton,
            Props.Create(() => new MasterActor(selfNode, ownTimings, outsiders, deaths, time, own)),
            new ClusterSingletonOptions { Role = own.Role }, createProxyToo: true);
        return builder.WithActors((system, _) =>
        {
            foreach (var g in groups.Skip(1))
            {
                var groupTimings = For(g);
                system.ActorOf(ClusterSingletonManager.Props(
                        Props.Create(() => new MasterActor(selfNode, groupTimings, outsiders, deaths, time, g)),
                        PoisonPill.Instance,
                        ClusterSingletonManagerSettings.Create(system).WithRole(g.Role).WithSingletonName(g.MasterSingleton)),
                    g.MasterSingleton);
                // the witness's health reaches every group's singleton: each counts it towards its majority
                system.ActorOf(ClusterSingletonProxy.Props($"/user/{g.MasterSingleton}",
                    ClusterSingletonProxySettings.Create(system).WithRole(g.Role).WithSingletonName(g.MasterSingleton)), g.MasterProxy);
            }
        });
    }
}
