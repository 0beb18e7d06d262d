using Akka.Actor;
using Akka.Cluster.Hosting;
using Akka.Cluster.Tools.PublishSubscribe;
using Akka.Cluster.Tools.Singleton;
using Akka.Event;
using Akka.Hosting;
using PromHa.Messages.Config;
using PromHa.Messages.Ledger;
using PromHa.Node.Cluster;
using PromHa.Node.Groups;
using PromHa.Node.Master;
using PromHa.Node.Replication;
using ClusterEvent = Akka.Cluster.ClusterEvent;

namespace PromHa.Node.Config;

/// <summary>
/// The cluster singleton that numbers config versions. A thin shell around
/// <see cref="ConfigVersionsState"/>: it learns the latest version from a majority of ledgers, numbers
/// validated candidates one at a time, journals each through the <see cref="ReplicatedLog{TEntry,TAck}"/>
/// and announces it only once a majority holds it. It also keeps what each node reports it runs.
/// </summary>
public sealed class ConfigVersionsActor : ReceiveActor, IWithTimers
{
    public const string SingletonName = "config-versions";
    private static readonly TimeSpan AskEvery = TimeSpan.FromSeconds(1);

    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly Akka.Cluster.Cluster _cluster = Akka.Cluster.Cluster.Get(Context.System);
    private readonly IActorRef _mediator = DistributedPubSub.Get(Context.System).Mediator;
    private readonly string _self;
    private readonly OutsiderProbe _outsiders;
    private readonly LedgerMembers _members;
    private readonly ReplicatedLog<ConfigVersionCommitted, ConfigRecorded> _ledgers;
    private readonly Queue<(SubmitCandidate Candidate, IActorRef ReplyTo)> _waiting = new();
    private ConfigVersionsState _state = ConfigVersionsState.Initial;
    private IActorRef? _replyTo; // who submitted the version being journaled
    private int _aliveOutsiders;
    private DateTimeOffset _started;

    private readonly TimeProvider _time;
    private DateTimeOffset Now => _time.GetUtcNow();

    private readonly GroupScope _group;

    /// <param name="group">The group whose versions this singleton numbers; <paramref name="configuredNodes"/> is the group's.</param>
    public ConfigVersionsActor(string self, int configuredNodes, OutsiderProbe outsiders, TimeProvider time, GroupScope? group = null)
    {
        _time = time;
        _group = group ?? GroupScope.Whole;
        _self = self;
        _outsiders = outsiders;
        _members = new LedgerMembers(configuredNodes, _cluster.SelfUniqueAddress, _group);
        _ledgers = new ReplicatedLog<ConfigVersionCommitted, ConfigRecorded>(
            new LogSpec<ConfigVersionCommitted, ConfigRecorded>(
                v => new RecordConfigVersion(v),
                (ack, v) => ack.Version >= v.Version,
                (v, why) => new DiscardConfigVersion(v.Version, why, v.BundleHash), _group.Ledger),
            Context.System,
            () => _group.LocalLedger(Context.System),
            () => _members.Live(_cluster),
            () => _members.Size);
        Recovering();
    }

    public ITimerScheduler Timers { get; set; } = null!;

    private sealed record AskHeads
    {
        public static readonly AskHeads Instance = new();
    }

    private sealed record Heartbeat
    {
        public static readonly Heartbeat Instance = new();
    }

    private sealed record Journaled(Appended<ConfigVersionCommitted, ConfigRecorded> Result);

    private sealed record JournalFailed(ConfigVersionCommitted Version, Exception Cause);

    private sealed record OutsidersAlive(int Count);

    private sealed record ProbeOutsiders
    {
        public static readonly ProbeOutsiders Instance = new();
    }

    protected override void PreStart()
    {
        _cluster.Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsSnapshot,
            typeof(ClusterEvent.IMemberEvent), typeof(ClusterEvent.IReachabilityEvent), LiveReachability.ChangedEvent);
        _started = Now;
        Timers.StartPeriodicTimer("heads", AskHeads.Instance, TimeSpan.Zero, AskEvery);
        Timers.StartPeriodicTimer("outsiders", ProbeOutsiders.Instance, TimeSpan.Zero, AskEvery);
    }

    protected override void PostStop() => _cluster.Unsubscribe(Self);

    /// <summary>Nothing is numbered before the ledgers of a majority were read: they hold the latest version.</summary>
    private void Recovering()
    {
        ReceiveMembership();
        Receive<LedgerHead>(h =>
        {
            _members.Head(h);
            if (!_members.KnowsLatest) return;
            _state = _state.Recover(_members.Heads, _members.Size);
            _log.Info("Config-versions singleton on {0}: latest version {1}", _self,
                _state.Latest is { } l ? $"{l.Version} ({l.BundleHash[..12]})" : "none");
            Become(Active);
            if (_state.Committing is { } unconfirmed) Confirm(unconfirmed, "is on fewer ledgers than a majority");
            Timers.StartPeriodicTimer("heartbeat", Heartbeat.Instance, TimeSpan.Zero, TimeSpan.FromSeconds(1));
        });
        Receive<AskHeads>(_ =>
        {
            if (Now - _started > TimeSpan.FromSeconds(5))
                _log.Warning("Config-versions singleton still waiting for the ledgers of {0}", string.Join(", ", _members.MissingHeads()));
            _ledgers.AskHeads(_members.AddressesOf(_members.MissingHeads()), Self);
        });
        Receive<SubmitCandidate>(c => Sender.Tell(new CandidateNotCommitted(c.BundleHash,
            "the config singleton is still recovering; try again in a few seconds")));
        ReceiveReports();
    }

    private void Active()
    {
        ReceiveMembership();
        Receive<AskHeads>(_ => _ledgers.AskHeads(_members.AddressesOf(_members.MissingHeads()), Self));
        Receive<LedgerHead>(h =>
        {
            var knewLatest = _members.KnowsLatest;
            var (state, outcome) = _state.Learn(h, _members.Size, knewLatest);
            _state = state;
            var found = h.LastConfig;
            switch (outcome)
            {
                case LearnedVersion.Later:
                    return; // asked again next round, once the version in flight is settled
                case LearnedVersion.Adopted:
                    _log.Warning("Learned config version {0} from {1}'s ledger; adopting it", found!.Version, h.Node);
                    PublishHeartbeat();
                    break;
                case LearnedVersion.NeverCommitted:
                    var why = $"found only on {h.Node}'s ledger after a majority's were read: never committed";
                    _log.Warning("Config version {0} ({1}) {2}; dropping it there", found!.Version, found.BundleHash[..12], why);
                    if (_members.AddressOf(h.Node) is { } at)
                        _ledgers.Ledger(at).Tell(new DiscardConfigVersion(found.Version, why, found.BundleHash), ActorRefs.NoSender);
                    break;
                case LearnedVersion.Confirm:
                    Confirm(found!, $"learned from {h.Node}'s ledger before a majority's were read");
                    break;
            }
            _members.Head(h);
        });
        Receive<Heartbeat>(_ => PublishHeartbeat());
        Receive<SubmitCandidate>(c => OnSubmit(c, Sender));
        Receive<Journaled>(OnJournaled);
        Receive<JournalFailed>(f =>
        {
            _confirming = false;
            _state = _state.JournalFailed(f.Version);
            _log.Error(f.Cause, "Journaling config version {0} failed", f.Version.Version);
            _replyTo?.Tell(new CandidateNotCommitted(f.Version.BundleHash, $"journaling failed: {f.Cause.Message}"));
            NextWaiting();
        });
        ReceiveReports();
    }

    private void ReceiveReports()
    {
        Receive<ConfigApplied>(a => _state = _state.Applied(a));
        Receive<ConfigApplyFailed>(f =>
        {
            _log.Warning("{0} could not apply config version {1}: {2}", f.Node, f.Version, f.Reason);
            _state = _state.ApplyFailed(f);
        });
        Receive<ConfigNodeState>(r => _state = _state.NodeReported(r));
        Receive<CandidateRejected>(r => _state = _state.CandidateRejected(r));
        Receive<GetConfigStatus>(_ => Sender.Tell(_state.Status()));
    }

    private void ReceiveMembership()
    {
        Receive<ClusterEvent.CurrentClusterState>(s =>
        {
            _members.Reach.Snapshot(s);
            foreach (var m in s.Members.Where(m => m.Status == Akka.Cluster.MemberStatus.Up)) _members.Up(m, _self);
            _members.ApplyReachability();
        });
        Receive<ClusterEvent.IMemberEvent>(e =>
        {
            _members.Reach.Member(e.Member);
            if (e is ClusterEvent.MemberUp) _members.Up(e.Member, _self);
            else if (e is ClusterEvent.MemberRemoved or ClusterEvent.MemberExited) _members.Gone(e.Member);
            _members.ApplyReachability();
        });
        // reachability by the observations of live members (Cluster/LiveReachability), not Akka's events
        Receive<ClusterEvent.UnreachableMember>(_ => { });
        Receive<ClusterEvent.ReachableMember>(_ => { });
        Receive(LiveReachability.ChangedEvent, e =>
        {
            _members.Reach.Reachability(e);
            _members.ApplyReachability();
        });
        Receive<OutsidersAlive>(a => _aliveOutsiders = a.Count);
        Receive<ProbeOutsiders>(_ =>
        {
            // only a pair node alone in a cluster that never held its peer can be on an island
            if (_members.Size > 2 || _members.Count > 1 || _members.EverSawOthers) return;
            _outsiders.AliveOutsiders(_cluster).PipeTo(Self, success: n => new OutsidersAlive(n));
        });
    }

    /// <summary>
    /// A majority of the configured nodes is up and its ledgers were read. A pair node alone in a
    /// cluster that never held its peer, while the peer is up, is on an island: it commits nothing.
    /// </summary>
    private bool MajorityUp()
    {
        if (!_members.KnowsLatest || !Quorum.IsMajority(_members.ReachableCount, _members.Size)) return false;
        return _members.Size > 2 || _members.Count > 1 || _members.EverSawOthers || _aliveOutsiders == 0;
    }

    /// <summary>A validated bundle becomes the next version, unless it is the latest already.</summary>
    private void OnSubmit(SubmitCandidate c, IActorRef replyTo)
    {
        var (state, decision) = _state.Submit(c, MajorityUp(), DateTimeOffset.UtcNow);
        _state = state;
        switch (decision)
        {
            case AlreadyLatest a:
                replyTo.Tell(new CandidateCommitted(a.Latest.Version, a.Latest.BundleHash, false));
                break;
            case Refuse r:
                replyTo.Tell(new CandidateNotCommitted(c.BundleHash, r.Reason));
                break;
            case WaitTurn:
                _waiting.Enqueue((c, replyTo));
                break;
            case Commit commit:
                _replyTo = replyTo;
                _ledgers.Append(commit.Version).PipeTo(Self,
                    success: r => new Journaled(r),
                    failure: e => new JournalFailed(commit.Version, e));
                break;
        }
    }

    private void OnJournaled(Journaled j)
    {
        var v = j.Result.Entry;
        var confirming = _confirming;
        _confirming = false;
        var (state, notCommitted) = _state.Journaled(v, j.Result.Acks.Count, _members.Size);
        _state = state;
        if (notCommitted is not null && confirming)
        {
            // found on too few of the ledgers read, it may still be on a majority with ones not
            // reachable now: left where it is (never dropped), the next version takes a higher number
            _log.Warning("Config version {0} ({1}) {2} now; leaving it on the ledgers that hold it (it may be committed on ones not reachable now)",
                v.Version, v.BundleHash[..12], notCommitted);
        }
        else if (notCommitted is not null)
        {
            _log.Error("Config version {0} ({1}) {2}: not committed; dropping it", v.Version, v.BundleHash[..12], notCommitted);
            _ledgers.Discard(v, notCommitted);
            _replyTo?.Tell(new CandidateNotCommitted(v.BundleHash, $"{notCommitted}; nothing was committed, try again when a majority is up"));
        }
        else
        {
            _log.Info($"Config version {v.Version} ({v.BundleHash[..12]}, {v.FileCount} files, from {v.Source} by {v.Author}) journaled on {j.Result.Acks.Count}/{j.Result.Asked} ledgers");
            _replyTo?.Tell(new CandidateCommitted(v.Version, v.BundleHash, true));
            var available = new ConfigVersionAvailable(v.Version, v.BundleHash, v.Origin);
            foreach (var address in _group.OwnedBy(_cluster, _members.Live(_cluster)))
                Context.ActorSelection(new RootActorPath(address) / "user" / ConfigSyncActor.Name).Tell(available);
            _mediator.Tell(new Publish(_group.ConfigTopic, available));
            PublishHeartbeat();
        }
        _replyTo = null;
        NextWaiting();
    }

    private bool _confirming;

    /// <summary>Journals a version found on too few ledgers again (it is <see cref="ConfigVersionsState.Committing"/>).</summary>
    private void Confirm(ConfigVersionCommitted version, string why)
    {
        _log.Warning("Config version {0} ({1}) {2}: journaling it again; it counts once a majority holds it",
            version.Version, version.BundleHash[..12], why);
        _replyTo = null;
        _confirming = true;
        _ledgers.Append(version).PipeTo(Self,
            success: r => new Journaled(r),
            failure: e => new JournalFailed(version, e));
    }

    private void NextWaiting()
    {
        if (_waiting.TryDequeue(out var next)) OnSubmit(next.Candidate, next.ReplyTo);
    }

    /// <summary>To every live member's config sync and ledger directly (joining ones included), and over pub/sub.</summary>
    private void PublishHeartbeat()
    {
        var status = _state.Status();
        var beat = new ConfigHeartbeat(status.Latest, _cluster.SelfAddress.ToString(), status.Nodes, DateTimeOffset.UtcNow);
        var live = _members.Live(_cluster);
        foreach (var address in _group.OwnedBy(_cluster, live))
            Context.ActorSelection(new RootActorPath(address) / "user" / ConfigSyncActor.Name).Tell(beat);
        foreach (var address in live) _ledgers.Ledger(address).Tell(beat);
        _mediator.Tell(new Publish(_group.ConfigTopic, beat));
    }
}

/// <summary>Marker key for the proxy to the config-versions singleton.</summary>
public sealed class ConfigVersionsProxyKey;

public static class ConfigVersionsActorHostingExtensions
{
    /// <param name="groups">A singleton per group the node serves; the proxy (<see cref="ConfigVersionsProxyKey"/>) is to the first, the node's own.</param>
    public static AkkaConfigurationBuilder AddConfigVersionsActor(this AkkaConfigurationBuilder builder, string selfNode,
        int configuredNodes, OutsiderProbe outsiders, TimeProvider time, IReadOnlyList<GroupScope>? groups = null)
    {
        groups ??= [GroupScope.Whole];
        var own = groups[0];
        builder.WithSingleton<ConfigVersionsProxyKey>(own.ConfigVersionsSingleton,
            Props.Create(() => new ConfigVersionsActor(selfNode, own.ConfiguredNodes(configuredNodes), outsiders, time, own)),
            new ClusterSingletonOptions { Role = own.Role }, createProxyToo: true);
        return builder.WithActors((system, _) =>
        {
            foreach (var g in groups.Skip(1))
                system.ActorOf(ClusterSingletonManager.Props(
                        Props.Create(() => new ConfigVersionsActor(selfNode, g.ConfiguredNodes(configuredNodes), outsiders, time, g)),
                        PoisonPill.Instance,
                        ClusterSingletonManagerSettings.Create(system).WithRole(g.Role).WithSingletonName(g.ConfigVersionsSingleton)),
                    g.ConfigVersionsSingleton);
        });
    }
}
