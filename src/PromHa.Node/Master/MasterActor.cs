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
using PromHa.Messages.Roles;
using PromHa.Node.Cluster;
using ClusterEvent = Akka.Cluster.ClusterEvent;

namespace PromHa.Node.Master;

/// <summary>
/// The cluster singleton that decides who is master. A thin shell around <see cref="MasterState"/>:
/// it turns cluster events and health reports into observations, asks the state to decide on a
/// timer, and writes each decision to every reachable ledger before it announces it.
/// </summary>
public sealed class MasterActor : ReceiveActor, IWithTimers
{
    public const string SingletonName = "master";
    // Paces what only time changes (a lease running out, a Prometheus unhealthy for long enough);
    // membership changes decide at once.
    private static readonly TimeSpan TickInterval = TimeSpan.FromMilliseconds(500);
    private static readonly TimeSpan RecoveryAskInterval = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan LocalJournalTimeout = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan ReplicationTimeout = TimeSpan.FromSeconds(2);

    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly Akka.Cluster.Cluster _cluster = Akka.Cluster.Cluster.Get(Context.System);
    private readonly IActorRef _mediator = DistributedPubSub.Get(Context.System).Mediator;
    private readonly Dictionary<string, Address> _addresses = new();
    private readonly Dictionary<string, LedgerHead> _heads = new();
    private MasterState _state;
    private int _nextAge;
    private bool _committing;
    /// <summary>The state before the decision being journaled: where a discarded decision goes back to.</summary>
    private MasterState? _beforeDecision;
    /// <summary>The highest config version number handed out, committed or not: never handed out twice.</summary>
    private long _configNumberedUpTo;
    private MasterChanged? _announced; // the last change that was journaled and published
    private DateTimeOffset _recoveryStarted;
    private DateTimeOffset? _noQuorumSince;
    private static readonly TimeSpan IslandTimeout = TimeSpan.FromSeconds(20);

    private readonly IReadOnlyList<string> _seeds;

    // Config versions: numbered here, journaled on every live ledger before they are announced.
    private ConfigVersionCommitted? _latestConfig;
    private bool _committingConfig;
    private readonly Queue<(SubmitCandidate Candidate, IActorRef ReplyTo)> _pendingConfig = new();
    private readonly Dictionary<string, NodeConfigView> _nodeConfigs = new();
    private readonly LinkedList<CandidateRejected> _rejected = new();
    private const int KeepRejected = 20;

    public MasterActor(string selfNode, MasterTimings timings, IReadOnlyList<string> seeds)
    {
        _state = MasterState.Initial(selfNode, timings);
        _seeds = seeds;
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

    private sealed record Committed(MasterChanged Change, int Acks, int Asked);

    private sealed record ConfigCommitted(ConfigVersionCommitted Version, IActorRef ReplyTo, int Acks, int Asked);

    private sealed record ConfigCommitFailed(SubmitCandidate Candidate, IActorRef ReplyTo, Exception Cause);

    private sealed record ProbeOutsiders
    {
        public static readonly ProbeOutsiders Instance = new();
    }

    protected override void PreStart()
    {
        Timers.StartPeriodicTimer("outsiders", ProbeOutsiders.Instance, TimeSpan.Zero, TimeSpan.FromSeconds(1));
        _cluster.Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsSnapshot,
            typeof(ClusterEvent.IMemberEvent), typeof(ClusterEvent.IReachabilityEvent));
        _log.Info("Master singleton starting on {0}; asking every member's ledger for its epoch", _state.SelfNode);
    }

    protected override void PostStop() => _cluster.Unsubscribe(Self);

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
            _recoveryStarted = Clock.Now;
            Timers.StartPeriodicTimer("recovery", AskLedgers.Instance, TimeSpan.Zero, RecoveryAskInterval);
        });
        Receive<AskLedgers>(_ =>
        {
            if (Clock.Now - _recoveryStarted > TimeSpan.FromSeconds(5))
                _log.Warning("Master singleton still waiting for the ledgers of {0}", string.Join(", ", MissingHeads()));
            AskMissingHeads();
        });
        Receive<LedgerHead>(h =>
        {
            _heads[h.Node] = h;
            if (MissingHeads().Count == 0) FinishRecovery();
        });
        Receive<NodeHealth>(h => _state = _state.Observe(new HealthReported(h), Clock.Now));
        // No answer rather than a denial: the master keeps the lease the previous singleton granted
        // until it runs out, and this one renews it once it knows the epoch. A denial here made
        // the master step down for a moment on every singleton hand-over.
        Receive<RenewLease>(_ => { });
        Receive<GetMasterStatus>(_ => Sender.Tell(Status()));
        Receive<RequestSwitchover>(_ => Sender.Tell(new SwitchoverResult(false, "the master singleton is still recovering")));
        Receive<SubmitCandidate>(c => Sender.Tell(new CandidateNotCommitted(c.BundleHash, "the master singleton is still recovering; try again in a few seconds")));
        ReceiveConfigReports();
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
        if (size <= 2) return forLease || MissingHeads().Count == 0;
        return _state.Members.Keys.Count(_heads.ContainsKey) * 2 > size;
    }

    private void AskMissingHeads()
    {
        foreach (var name in MissingHeads())
            if (_addresses.TryGetValue(name, out var address))
                Context.ActorSelection(new RootActorPath(address) / "user" / LedgerActor.Name).Tell(GetLedgerHead.Instance);
    }

    private List<string> MissingHeads() =>
        _state.Members.Values.Where(m => m.Reachable).Select(m => m.Name)
            .Append(_state.SelfNode).Distinct()
            .Where(n => !_heads.ContainsKey(n)).ToList();

    private void FinishRecovery()
    {
        var best = _heads.Values.Where(h => h.Last is not null).MaxBy(h => h.Epoch);
        _state = _state.Recover(best?.Last, Clock.Now);
        // numbers a predecessor discarded are never handed out again
        _state = _state with { NumberedUpTo = Math.Max(_state.NumberedUpTo, _heads.Values.Select(h => h.DiscardedEpoch).DefaultIfEmpty(0).Max()) };
        _configNumberedUpTo = Math.Max(_configNumberedUpTo, _heads.Values.Select(h => h.DiscardedConfigVersion).DefaultIfEmpty(0).Max());
        _announced = best?.Last;
        _latestConfig = _heads.Values.Select(h => h.LastConfig).Where(c => c is not null).MaxBy(c => c!.Version);
        _log.Info("Master singleton recovered: epoch {0}, master {1} (ledgers of {2})",
            _state.Epoch, _state.Master ?? "none", string.Join(",", _heads.Keys.Order()));
        // A local ledger that is behind copies the missing changes from the one that is ahead.
        if (_heads.TryGetValue(_state.SelfNode, out var own))
        {
            if (best is not null && own.Epoch < best.Epoch && _addresses.TryGetValue(best.Node, out var bestAddress))
                Context.ActorSelection(new RootActorPath(bestAddress) / "user" / LedgerActor.Name)
                    .Tell(new LedgerSync(_state.SelfNode, own.Epoch, own.ConfigVersion), LocalLedger());
            var bestConfig = _heads.Values.MaxBy(h => h.ConfigVersion);
            if (bestConfig is not null && own.ConfigVersion < bestConfig.ConfigVersion && _addresses.TryGetValue(bestConfig.Node, out var configAddress))
                Context.ActorSelection(new RootActorPath(configAddress) / "user" / LedgerActor.Name)
                    .Tell(new LedgerSync(_state.SelfNode, long.MaxValue, own.ConfigVersion), LocalLedger());
        }
        _log.Info("Latest config version: {0}", _latestConfig is null ? "none" : $"{_latestConfig.Version} ({_latestConfig.BundleHash[..12]})");
        Become(Active);
        Timers.StartPeriodicTimer("tick", Tick.Instance, TickInterval);
        Timers.StartPeriodicTimer("status", PublishStatusTick.Instance, TimeSpan.FromSeconds(1));
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
        Receive<LedgerHead>(h =>
        {
            _heads[h.Node] = h;
            // A member that joined after this singleton started may hold a newer epoch (its
            // journal was ahead of the one this singleton recovered from): adopt it.
            if (h.Epoch > _state.Epoch && h.Last is not null)
            {
                _log.Warning("Learned epoch {0} (master {1}) from {2}'s ledger; adopting it", h.Epoch, h.Last.Node, h.Node);
                _state = _state.Recover(h.Last, Clock.Now);
                _announced = h.Last;
                if (_addresses.TryGetValue(h.Node, out var from))
                    Context.ActorSelection(new RootActorPath(from) / "user" / LedgerActor.Name)
                        .Tell(new LedgerSync(_state.SelfNode, 0, 0), LocalLedger());
                Publish(Status());
            }
            if (h.LastConfig is { } c && c.Version > (_latestConfig?.Version ?? 0))
            {
                _log.Warning("Learned config version {0} from {1}'s ledger; adopting it", c.Version, h.Node);
                _latestConfig = c;
                Publish(Status());
            }
        });
        Receive<NodeHealth>(h => _state = _state.Observe(new HealthReported(h), Clock.Now));
        Receive<Tick>(_ => Decide());
        Receive<PublishStatusTick>(_ => Publish(Status()));
        Receive<Committed>(OnCommitted);
        // This node's journal did not take the change: start over from the ledgers (a restarted
        // singleton recovers) rather than announce something that is not journaled.
        Receive<Status.Failure>(f => throw new InvalidOperationException("Journaling a role change failed", f.Cause));
        Receive<RenewLease>(r =>
        {
            // Not enough ledgers read yet to be sure of the latest epoch: no answer rather than a
            // denial, so a master keeps the lease it holds meanwhile.
            if (!KnowsLatestEpoch(forLease: true)) return;
            var (state, verdict, reason) = _state.Renew(r.Node, r.Epoch, Clock.Now);
            _state = state;
            Sender.Tell(verdict == LeaseVerdict.Granted
                ? new LeaseGranted(r.Epoch, r.Node, r.RequestId, (long)_state.Timings.LeaseDuration.TotalMilliseconds)
                : new LeaseDenied(r.Epoch, r.Node, reason));
        });
        Receive<LeaseReleased>(r =>
        {
            _log.Info("{0} released the master lease of epoch {1}", r.Node, r.Epoch);
            _state = _state.Released(r.Node, r.Epoch, Clock.Now);
            Decide();
        });
        Receive<RequestSwitchover>(req =>
        {
            var (state, error) = _state.RequestSwitchover(req.Target, Clock.Now);
            if (error is not null)
            {
                Sender.Tell(new SwitchoverResult(false, error));
                return;
            }
            _state = state;
            _log.Info("Switchover requested: {0} -> {1}", _state.Master, _state.SwitchoverTarget);
            if (_addresses.TryGetValue(_state.Master!, out var masterAddress))
                Context.ActorSelection(new RootActorPath(masterAddress) / "user" / RoleActor.Name)
                    .Tell(new RevokeLease(_state.Epoch, _state.Master!));
            Sender.Tell(new SwitchoverResult(true, $"switching over from {_state.Master} to {_state.SwitchoverTarget}"));
        });
        Receive<GetMasterStatus>(_ => Sender.Tell(Status()));
        Receive<SubmitCandidate>(c => OnSubmit(c, Sender));
        Receive<ConfigCommitted>(OnConfigCommitted);
        Receive<ConfigCommitFailed>(f =>
        {
            _committingConfig = false;
            _log.Error(f.Cause, "Committing config bundle {0} failed", f.Candidate.BundleHash);
            f.ReplyTo.Tell(new CandidateNotCommitted(f.Candidate.BundleHash, $"journaling failed: {f.Cause.Message}"));
            NextPendingConfig();
        });
        ReceiveConfigReports();
    }

    private void ReceiveConfigReports()
    {
        Receive<ConfigApplied>(a =>
            _nodeConfigs[a.Node] = new NodeConfigView(a.Node, a.Version, null, null, a.At));
        Receive<ConfigApplyFailed>(f =>
        {
            _log.Warning("{0} could not apply config version {1}: {2}", f.Node, f.Version, f.Reason);
            var applied = _nodeConfigs.TryGetValue(f.Node, out var v) ? v.Applied : 0;
            _nodeConfigs[f.Node] = new NodeConfigView(f.Node, applied, f.Version, f.Reason, f.At);
        });
        Receive<CandidateRejected>(r =>
        {
            _rejected.AddFirst(r);
            while (_rejected.Count > KeepRejected) _rejected.RemoveLast();
        });
        Receive<GetConfigStatus>(_ => Sender.Tell(new ConfigStatus(_latestConfig,
            _nodeConfigs.Values.OrderBy(v => v.Node, StringComparer.Ordinal).ToList(), _rejected.ToList())));
    }

    /// <summary>
    /// A validated bundle becomes the next version, unless it is the latest already. Commits are
    /// one at a time, so a number is never handed out twice; a majority must be up, so the
    /// ledgers of any later majority include it (as for epochs).
    /// </summary>
    private void OnSubmit(SubmitCandidate c, IActorRef replyTo)
    {
        if (_latestConfig is { } latest && latest.BundleHash == c.BundleHash && !_committingConfig)
        {
            replyTo.Tell(new CandidateCommitted(latest.Version, latest.BundleHash, false));
            return;
        }
        if (!_state.HasQuorum || !KnowsLatestEpoch(forLease: false))
        {
            replyTo.Tell(new CandidateNotCommitted(c.BundleHash, "no majority of the configured nodes is up; nothing was committed"));
            return;
        }
        if (_committingConfig)
        {
            _pendingConfig.Enqueue((c, replyTo));
            return;
        }
        var version = new ConfigVersionCommitted(Math.Max(_latestConfig?.Version ?? 0, _configNumberedUpTo) + 1, c.BundleHash, c.FileCount, c.Bytes,
            c.Source, c.Author, c.Origin, DateTimeOffset.UtcNow);
        _committingConfig = true;
        ReplicateToLedgers<ConfigRecorded>(new RecordConfigVersion(version), r => r.Version >= version.Version).PipeTo(Self,
            success: acks => new ConfigCommitted(version, replyTo, acks.Acks, acks.Asked),
            failure: e => new ConfigCommitFailed(c, replyTo, e));
    }

    private void OnConfigCommitted(ConfigCommitted c)
    {
        _committingConfig = false;
        var v = c.Version;
        _configNumberedUpTo = Math.Max(_configNumberedUpTo, v.Version);
        if (!_state.IsMajority(c.Acks))
        {
            var why = $"journaled on {c.Acks} of the {_state.ClusterSize} configured nodes' ledgers, not a majority";
            _log.Error("Config version {0} ({1}) {2}: not committed; dropping it", v.Version, v.BundleHash[..12], why);
            DiscardOnLedgers(new DiscardConfigVersion(v.Version, why, v.BundleHash));
            c.ReplyTo.Tell(new CandidateNotCommitted(v.BundleHash, $"{why}; nothing was committed, try again when a majority is up"));
            NextPendingConfig();
            return;
        }
        _latestConfig = c.Version;
        _log.Info($"Config version {v.Version} ({v.BundleHash[..12]}, {v.FileCount} files, from {v.Source} by {v.Author}) journaled on {c.Acks}/{c.Asked} ledgers");
        c.ReplyTo.Tell(new CandidateCommitted(c.Version.Version, c.Version.BundleHash, true));
        var available = new ConfigVersionAvailable(c.Version.Version, c.Version.BundleHash, c.Version.Origin);
        foreach (var address in LiveMembers())
            Context.ActorSelection(new RootActorPath(address) / "user" / Config.ConfigSyncActor.Name).Tell(available);
        _mediator.Tell(new Publish(ConfigTopics.Config, available));
        Publish(Status());
        NextPendingConfig();
    }

    private void NextPendingConfig()
    {
        if (_pendingConfig.TryDequeue(out var next)) OnSubmit(next.Candidate, next.ReplyTo);
    }

    /// <param name="afterLoss">Run after a member is removed or becomes unreachable.</param>
    private void ReceiveMembership(Action? afterLoss = null)
    {
        Receive<ProbeOutsiders>(_ =>
        {
            // Only a node alone or without a majority needs to know whether its configured peers are
            // up outside its cluster.
            if (_state.Members.Count > 1 && _state.HasQuorum) return;
            Cluster.TieBreakerLease.CountReachable(ClusterAddresses.MissingSeeds(_cluster, _seeds), TimeSpan.FromMilliseconds(500))
                .PipeTo(Self, success: n => new OutsidersAlive(n));
        });
        Receive<OutsidersAlive>(a =>
        {
            if (a.Count > 0 && !_state.EverSawOthers && _state.AliveOutsiders == 0)
                _log.Warning("This node is alone in its cluster while {0} other configured node(s) are up: it will not take the master role", a.Count);
            _state = _state.Observe(a, Clock.Now);
        });
        Receive<ClusterEvent.MemberUp>(e => OnMemberUp(e.Member));
        Receive<ClusterEvent.MemberRemoved>(e =>
        {
            OnMemberGone(e.Member);
            afterLoss?.Invoke();
        });
        Receive<ClusterEvent.MemberExited>(e => OnMemberGone(e.Member));
        Receive<ClusterEvent.MemberLeft>(_ => { });
        Receive<ClusterEvent.IMemberEvent>(_ => { });
        Receive<ClusterEvent.UnreachableMember>(e =>
        {
            Observe(e.Member, new MemberReachability(MemberRoles.NodeName(e.Member)!, false));
            afterLoss?.Invoke();
        });
        Receive<ClusterEvent.ReachableMember>(e => Observe(e.Member, new MemberReachability(MemberRoles.NodeName(e.Member)!, true)));
    }

    private void OnClusterState(ClusterEvent.CurrentClusterState s)
    {
        foreach (var m in s.Members.Where(m => m.Status == MemberStatus.Up).OrderBy(m => m, Member.AgeOrdering))
            OnMemberUp(m);
        foreach (var m in s.Unreachable)
            if (MemberRoles.NodeName(m) is { } name)
                _state = _state.Observe(new MemberReachability(name, false), Clock.Now);
    }

    private void OnMemberUp(Member m)
    {
        if (MemberRoles.NodeName(m) is not { } name) return;
        // A new incarnation (restarted node) has a ledger of its own to read.
        if (_state.Members.TryGetValue(name, out var known) && known.Incarnation != Incarnation(m)) _heads.Remove(name);
        _addresses[name] = m.Address;
        _state = _state.Observe(new MemberUp(name, MemberRoles.IsWitness(m), _nextAge++, Incarnation(m)), Clock.Now);
    }

    /// <summary>Address and UID: a node restarted on the same address is another incarnation.</summary>
    private static string Incarnation(Member m) => $"{m.Address}#{m.UniqueAddress.Uid}";

    private void OnMemberGone(Member m)
    {
        if (MemberRoles.NodeName(m) is not { } name) return;
        // A node that restarted under the same name is already known as its new incarnation.
        if (_state.Members.TryGetValue(name, out var known) && known.Incarnation != Incarnation(m)) return;
        _addresses.Remove(name);
        _heads.Remove(name);
        _log.Info("Member {0} ({1}) left the cluster", name, m.Address);
        _state = _state.Observe(new MemberGone(name), Clock.Now);
    }

    private void Observe(Member m, Observation o)
    {
        if (MemberRoles.NodeName(m) is null) return;
        _state = _state.Observe(o, Clock.Now);
    }

    private void Decide()
    {
        GuardAgainstIsland();
        if (_committing || !KnowsLatestEpoch(forLease: false)) return;
        var before = _state;
        var (state, change) = _state.Decide(Clock.Now);
        _state = state;
        if (change is null) return;
        _log.Warning("Master role -> {0} (epoch {1}, reason {2}, previous {3})",
            change.Node, change.Epoch, change.Reason, change.Previous ?? "none");
        _beforeDecision = before;
        _committing = true;
        Replicate(change).PipeTo(Self);
    }

    /// <summary>
    /// Journals the change on this node's ledger (must succeed) and on every reachable member's
    /// ledger (best effort, bounded), so that a singleton started anywhere finds this epoch.
    /// </summary>
    private async Task<Committed> Replicate(MasterChanged change)
    {
        var (acks, asked) = await ReplicateToLedgers<Recorded>(new RecordMasterChanged(change), r => r.Epoch >= change.Epoch);
        return new Committed(change, acks, asked);
    }

    /// <summary>
    /// Journals a record on this node's ledger (must succeed: a failure fails the task) and on every
    /// reachable member's (best effort, bounded). The asks are sent before the first await, from
    /// the actor's own context.
    /// </summary>
    private async Task<(int Acks, int Asked)> ReplicateToLedgers<TAck>(object record, Func<TAck, bool> holdsIt)
    {
        var local = LocalLedger().Ask<TAck>(record, LocalJournalTimeout);
        var remote = LiveMembers().Where(a => a != _cluster.SelfAddress)
            .Select(a => Context.ActorSelection(new RootActorPath(a) / "user" / LedgerActor.Name)
                .Ask<TAck>(record, ReplicationTimeout))
            .ToList();
        // An answer counts only when that ledger holds this record (not another one with its number).
        var acks = holdsIt(await local) ? 1 : 0;
        foreach (var r in remote)
        {
            try { if (holdsIt(await r)) acks++; }
            catch (Exception) { /* that node catches up through ledger anti-entropy */ }
        }
        return (acks, remote.Count + 1);
    }

    private void OnCommitted(Committed c)
    {
        _committing = false;
        if (!_state.IsMajority(c.Acks))
        {
            // Raft's commit rule: what fewer than a majority of the configured nodes hold never
            // happened. Not announced; the ledgers that took it drop it; the number is not reused.
            var why = $"journaled on {c.Acks} of the {_state.ClusterSize} configured nodes' ledgers, not a majority";
            _log.Error("Epoch {0} ({1} as master) {2}: not committed; dropping it", c.Change.Epoch, c.Change.Node, why);
            _state = _state.Discard(c.Change, _beforeDecision ?? _state);
            DiscardOnLedgers(new DiscardMasterChanged(c.Change.Epoch, why, c.Change.Node));
            return;
        }
        _announced = c.Change;
        _log.Info("Epoch {0} journaled on {1}/{2} ledgers; announcing {3} as master", c.Change.Epoch, c.Acks, c.Asked, c.Change.Node);
        Publish(c.Change);
        Publish(Status());
    }

    /// <summary>The local ledger must drop it (it took it first); the members reachable now are told too.</summary>
    private void DiscardOnLedgers(object discard)
    {
        LocalLedger().Tell(discard, ActorRefs.NoSender);
        foreach (var address in LiveMembers().Where(a => a != _cluster.SelfAddress))
            Context.ActorSelection(new RootActorPath(address) / "user" / LedgerActor.Name).Tell(discard, ActorRefs.NoSender);
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
        if (_state.HasQuorum || _state.AliveOutsiders == 0)
        {
            _noQuorumSince = null;
            return;
        }
        _noQuorumSince ??= Clock.Now;
        if (Clock.Now - _noQuorumSince < IslandTimeout) return;
        _log.Error("No majority of the {0} configured nodes for {1:F0}s while {2} of them are up outside this cluster (members: {3}); leaving so that this node restarts into the main cluster",
            _state.Timings.ConfiguredNodes, IslandTimeout.TotalSeconds, _state.AliveOutsiders, string.Join(",", _state.Members.Keys));
        _noQuorumSince = DateTimeOffset.MaxValue; // once
        CoordinatedShutdown.Get(Context.System).Run(RestartNode.Reason);
    }

    private IActorRef LocalLedger() => ActorRegistry.For(Context.System).Get<LedgerKey>();

    /// <summary>
    /// Role changes and the status heartbeat go to every live member directly, joining ones
    /// included (a node that joined a moment before a decision must learn it), and over pub/sub.
    /// Receivers drop what they have already seen by its epoch.
    /// </summary>
    private void Publish(object message)
    {
        foreach (var address in LiveMembers())
        {
            Context.ActorSelection(new RootActorPath(address) / "user" / RoleActor.Name).Tell(message);
            Context.ActorSelection(new RootActorPath(address) / "user" / LedgerActor.Name).Tell(message);
        }
        _mediator.Tell(new Publish(Topics.Roles, message));
    }

    /// <summary>Members that are joining or up and reachable from here.</summary>
    private IEnumerable<Address> LiveMembers()
    {
        var state = _cluster.State;
        // Also what this actor was told is unreachable: Cluster.State may not show it yet when a
        // decision is taken right on the UnreachableMember event, and asking a dead ledger waits
        // out the replication timeout.
        var unreachable = _state.Members.Values.Where(m => !m.Reachable)
            .Select(m => _addresses.GetValueOrDefault(m.Name)).OfType<Address>().ToHashSet();
        return state.Members
            .Where(m => m.Status is MemberStatus.Joining or MemberStatus.WeaklyUp or MemberStatus.Up &&
                        !state.Unreachable.Contains(m) && !unreachable.Contains(m.Address))
            .Select(m => m.Address);
    }

    /// <summary>Only what is journaled and announced: never a decision still being written.</summary>
    private MasterStatus Status() => new(
        _announced?.Epoch ?? 0, _announced?.Node, _state.SelfNode, _cluster.SelfAddress.ToString(), _state.Recovered,
        _state.HealthViews(Clock.Now).Select(v => _nodeConfigs.TryGetValue(v.Node, out var c)
            ? v with { ConfigVersion = c.Applied, ConfigError = c.FailedReason }
            : v).Select(v => _addresses.TryGetValue(v.Node, out var a) ? v with { Address = ClusterAddresses.HostPort(a) } : v).ToList(),
        DateTimeOffset.UtcNow, _latestConfig);
}

/// <summary>Marker key for the proxy to the master singleton.</summary>
public sealed class MasterProxyKey;

public static class MasterActorHostingExtensions
{
    public static AkkaConfigurationBuilder AddMasterActor(this AkkaConfigurationBuilder builder, string selfNode,
        MasterTimings timings, IReadOnlyList<string> seeds) =>
        builder.WithSingleton<MasterProxyKey>(MasterActor.SingletonName,
            Props.Create(() => new MasterActor(selfNode, timings, seeds)),
            new ClusterSingletonOptions(), createProxyToo: true);
}
