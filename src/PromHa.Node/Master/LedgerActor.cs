using System.Collections.Immutable;
using Akka.Actor;
using Akka.Cluster.Tools.PublishSubscribe;
using Akka.Event;
using Akka.Hosting;
using Akka.Persistence;
using PromHa.Messages.Config;
using PromHa.Messages.Ledger;
using PromHa.Messages.Roles;
using PromHa.Node.Cluster;
using PromHa.Node.Groups;

namespace PromHa.Node.Master;

/// <summary>
/// Every node's own journal of role changes and committed config versions (Akka.Persistence.Sql,
/// SQLite in the data dir). The singleton writes each change to every reachable ledger before
/// announcing it, and a singleton that starts reads every member's head, so neither epochs nor
/// version numbers go backwards wherever it lands. Ledgers that fell behind catch up from the
/// singleton's ledger (anti-entropy on the status heartbeat).
/// </summary>
public sealed class LedgerActor : ReceivePersistentActor
{
    public const string Name = "ledger";
    private readonly string _node;
    private readonly GroupScope _group;
    private readonly NodeView _view;
    private DateTimeOffset Now => _view.Time.GetUtcNow();
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private ImmutableList<MasterChanged> _history = ImmutableList<MasterChanged>.Empty;
    private ImmutableList<ConfigVersionCommitted> _configs = ImmutableList<ConfigVersionCommitted>.Empty;
    /// <summary>Maintenance changes (pause, resume), oldest first: a discarded one leaves the one before.</summary>
    private ImmutableList<MaintenanceChanged> _maintenance = ImmutableList<MaintenanceChanged>.Empty;
    private long _discardedMaintenance;
    /// <summary>A sync answer stays well inside one remoting frame; the rest comes on the next request.</summary>
    private const int MaxEventsPerSync = 200;
    private DateTimeOffset _lastSyncRequest = DateTimeOffset.MinValue;
    /// <summary>The highest epoch and version numbers dropped as never committed: not to be handed out again.</summary>
    private long _discardedEpoch, _discardedConfig;
    /// <summary>This ledger's vote on the master's reign; follows the journaled head.</summary>
    private VoterState _vote;
    /// <summary>Every epoch number dropped here: a skip in the history over one of them is no gap.</summary>
    private ImmutableHashSet<long> _dropped = ImmutableHashSet<long>.Empty;
    /// <summary>
    /// Where this ledger's history may lack committed changes: it took a newer epoch (an
    /// announcement, an append) while it missed the ones before. Filled from the other members'
    /// ledgers, a few tries each start.
    /// </summary>
    private long? _fillAfter;
    private int _fillTries;
    private DateTimeOffset _lastFillRequest = DateTimeOffset.MinValue;
    private const int MaxFillTries = 3;

    public LedgerActor(string node, NodeView view, TimeSpan leaseTerm, GroupScope? group = null)
    {
        _node = node;
        _group = group ?? GroupScope.Whole;
        _view = view;
        _vote = VoterState.Start(leaseTerm, Now);
        Recover<MasterChanged>(e => _history = Insert(_history, e));
        Recover<ConfigVersionCommitted>(e => _configs = Append(_configs, e));
        Recover<DiscardMasterChanged>(Drop);
        Recover<DiscardConfigVersion>(Drop);
        Recover<MaintenanceChanged>(m => _maintenance = m.Seq > MaintenanceHead ? _maintenance.Add(m) : _maintenance);
        Recover<DiscardMaintenance>(Drop);
        Recover<RecoveryCompleted>(_ => _fillAfter = FirstGap());
        Command<DiscardMaintenance>(d => Persist(d, _ => Drop(d)));
        Command<RecordMaintenance>(r => PersistMaintenance(r.Change, Sender));
        // Journaled even when this ledger never took the record: the number stays used.
        Command<DiscardMasterChanged>(d => Persist(d, _ =>
        {
            if (_history.Any(e => Matches(e, d))) _log.Warning("Dropped epoch {0} from this ledger: {1}", d.Epoch, d.Reason);
            Drop(d);
        }));
        Command<DiscardConfigVersion>(d => Persist(d, _ =>
        {
            if (_configs.Any(c => Matches(c, d))) _log.Warning("Dropped config version {0} from this ledger: {1}", d.Version, d.Reason);
            Drop(d);
        }));

        Command<RecordMasterChanged>(r => Persist(r.Change, sender: Sender));
        Command<MasterChanged>(e => Persist(e, sender: ActorRefs.Nobody));
        Command<RecordConfigVersion>(r => PersistConfig(r.Committed, Sender));
        Command<GetLedgerHead>(_ => Sender.Tell(CurrentHead()));
        Command<VouchForMaster>(v =>
        {
            var (vote, refusal) = Vote().Vouch(v.Epoch, v.Node, v.Incarnation, Now);
            _vote = vote;
            // a refusal goes unanswered: the master counts only vouches, and lapses without them
            if (refusal is null)
                Sender.Tell(new Vouched(v.Epoch, v.Node, _node, v.RequestId, (long)vote.Term.TotalMilliseconds));
        });
        Command<WithdrawVouch>(w => _vote = Vote().Withdraw(w.Epoch, w.Node));
        Command<LedgerSync>(s =>
        {
            if (Head > s.Epoch || ConfigHead > s.ConfigVersion)
                Sender.Tell(new LedgerEvents(_node,
                    _history.Where(e => e.Epoch > s.Epoch).Take(MaxEventsPerSync).ToList(),
                    _configs.Where(e => e.Version > s.ConfigVersion).Take(MaxEventsPerSync).ToList()));
        });
        Command<LedgerEvents>(evs =>
        {
            // what this ledger missed below its head first, then what is newer
            PersistAll(evs.Events.Where(FillsGap).OrderBy(e => e.Epoch).ToList(), filled =>
            {
                _history = Insert(_history, filled);
                _fillAfter = FirstGap();
                _log.Info("Copied epoch {0} ({1} as master) from {2}'s ledger: this ledger had missed it", filled.Epoch, filled.Node, evs.Node);
            });
            foreach (var e in evs.Events.OrderBy(e => e.Epoch)) Persist(e, sender: ActorRefs.Nobody);
            foreach (var c in (evs.Configs ?? []).OrderBy(c => c.Version)) PersistConfig(c, ActorRefs.Nobody);
        });
        Command<MasterStatus>(s =>
        {
            CatchUp(s.Epoch, 0, s.SingletonAddress);
            AskToFill();
            // the singleton publishes only a committed pause or resume: a ledger that missed it copies it
            if (s.Maintenance is { } m && m.Seq > MaintenanceHead) PersistMaintenance(m, ActorRefs.Nobody);
        });
        Command<ConfigHeartbeat>(h => CatchUp(0, h.Latest?.Version ?? 0, h.SingletonAddress));
        Command<GetHistory>(q => Sender.Tell(_history.TakeLast(q.Limit).Reverse().ToList()));
        Command<GetConfigVersions>(q => Sender.Tell(_configs.TakeLast(q.Limit).Reverse().ToList()));
        Command<GetConfigVersion>(q => Sender.Tell(new ConfigVersionLookup(q.Version, Find(q.Version))));
        Command<SubscribeAck>(_ => { });
    }

    public override string PersistenceId => _group.LedgerPersistenceId;

    /// <summary>
    /// A node without its journal can neither vote on epochs nor keep versions: stop it, so that its
    /// supervisor (systemd, the demo) starts it again, rather than run on without a ledger.
    /// </summary>
    protected override void OnRecoveryFailure(Exception reason, object? message = null)
    {
        _log.Error(reason, "The ledger could not be read from the journal; stopping this node so that it restarts");
        base.OnRecoveryFailure(reason, message);
        CoordinatedShutdown.Get(Context.System).Run(RestartNode.Reason);
    }

    private static bool Matches(MasterChanged e, DiscardMasterChanged d) => e.Epoch == d.Epoch && (d.Node is null || e.Node == d.Node);

    private static bool Matches(ConfigVersionCommitted c, DiscardConfigVersion d) =>
        c.Version == d.Version && (d.BundleHash is null || c.BundleHash == d.BundleHash);

    private void Drop(DiscardMasterChanged d)
    {
        _history = _history.RemoveAll(e => Matches(e, d));
        _discardedEpoch = Math.Max(_discardedEpoch, d.Epoch);
        _dropped = _dropped.Add(d.Epoch);
    }

    /// <summary>
    /// The head before the lowest skip in the history that no drop here explains (numbers are
    /// never reused, but one discarded on other ledgers only looks like a gap here; a few tries
    /// tell them apart). An empty ledger that took a later epoch has missed everything before it.
    /// </summary>
    private long? FirstGap()
    {
        var before = 0L;
        foreach (var e in _history)
        {
            for (var n = before + 1; n < e.Epoch; n++)
                if (!_dropped.Contains(n)) return before;
            before = e.Epoch;
        }
        return null;
    }

    /// <summary>A committed change from another ledger that this one missed below its head.</summary>
    private bool FillsGap(MasterChanged e) =>
        _fillAfter is { } after && e.Epoch > after && e.Epoch < Head && !_dropped.Contains(e.Epoch) &&
        _history.All(k => k.Epoch != e.Epoch);

    /// <summary>Asks another member's ledger for what follows the gap; a reply that fills nothing counts as a try.</summary>
    private void AskToFill()
    {
        if (_fillAfter is not { } after || Now - _lastFillRequest < TimeSpan.FromSeconds(2)) return;
        if (_fillTries >= MaxFillTries)
        {
            _log.Info("Epochs after {0} are missing from this ledger and from the ledgers asked: taken as discarded elsewhere", after);
            _fillAfter = null;
            return;
        }
        var cluster = Akka.Cluster.Cluster.Get(Context.System);
        var others = cluster.State.Members
            .Where(m => m.Status == Akka.Cluster.MemberStatus.Up && _group.Includes(m) && !m.UniqueAddress.Equals(cluster.SelfUniqueAddress))
            .OrderBy(m => m.Address.ToString()).ToList();
        if (others.Count == 0) return;
        _lastFillRequest = Now;
        var peer = others[_fillTries++ % others.Count];
        Context.ActorSelection(new RootActorPath(peer.Address) / "user" / _group.Ledger).Tell(new LedgerSync(_node, after, ConfigHead));
    }

    private void Drop(DiscardMaintenance d)
    {
        _maintenance = _maintenance.RemoveAll(m => m.Seq == d.Seq);
        _discardedMaintenance = Math.Max(_discardedMaintenance, d.Seq);
    }

    private long MaintenanceHead => _maintenance.IsEmpty ? 0 : _maintenance[^1].Seq;

    /// <summary>Only newer changes are journaled; a number keeps the content it was first given (no acknowledgement otherwise).</summary>
    private void PersistMaintenance(MaintenanceChanged m, IActorRef sender)
    {
        if (m.Seq <= MaintenanceHead)
        {
            var known = _maintenance.FirstOrDefault(k => k.Seq == m.Seq);
            sender.Tell(new MaintenanceRecorded(_node, known is not null && known.Paused != m.Paused ? m.Seq - 1 : MaintenanceHead));
            return;
        }
        Persist(m, persisted =>
        {
            _maintenance = _maintenance.Add(persisted);
            sender.Tell(new MaintenanceRecorded(_node, MaintenanceHead));
        });
    }

    private void Drop(DiscardConfigVersion d)
    {
        _configs = _configs.RemoveAll(c => Matches(c, d));
        _discardedConfig = Math.Max(_discardedConfig, d.Version);
    }

    private long Head => _history.IsEmpty ? 0 : _history[^1].Epoch;

    /// <summary>The vote, moved to the journaled head first: a newer head ends the vouches for the old reign.</summary>
    private VoterState Vote()
    {
        var last = _history.LastOrDefault();
        return _vote = _vote.AtHead(Head, last?.Node, last?.Incarnation);
    }

    private Recorded RecordedHead() =>
        new(_node, Head, (long)Math.Ceiling(Vote().EarlierVouchesRemaining(Now).TotalMilliseconds));
    private long ConfigHead => _configs.IsEmpty ? 0 : _configs[^1].Version;

    private ConfigVersionCommitted? Find(long version)
    {
        // versions are ascending and usually dense, so their offset is the first guess
        if (_configs.IsEmpty) return null;
        var i = version - _configs[0].Version;
        if (i >= 0 && i < _configs.Count && _configs[(int)i].Version == version) return _configs[(int)i];
        return _configs.FirstOrDefault(c => c.Version == version);
    }

    /// <summary>
    /// The highest epoch this node knows. Its role actor may have learned a newer epoch from the
    /// singleton's heartbeat before this journal copied it; a starting singleton must count it,
    /// or it could hand out that epoch number a second time.
    /// </summary>
    private LedgerHead CurrentHead()
    {
        var snap = _view.Current;
        if (snap.Epoch > Head && snap.Master is { } master)
            return new LedgerHead(_node, snap.Epoch, new MasterChanged(snap.Epoch, master, "learned", DateTimeOffset.UtcNow, null),
                ConfigHead, _configs.LastOrDefault(), _discardedEpoch, _discardedConfig, _maintenance.LastOrDefault(), _discardedMaintenance);
        return new LedgerHead(_node, Head, _history.LastOrDefault(), ConfigHead, _configs.LastOrDefault(), _discardedEpoch, _discardedConfig,
            _maintenance.LastOrDefault(), _discardedMaintenance);
    }

    protected override void PreStart()
    {
        DistributedPubSub.Get(Context.System).Mediator.Tell(new Subscribe(_group.RolesTopic, Self));
        base.PreStart();
    }

    /// <summary>Only newer epochs are journaled: a stale or repeated change is acknowledged and dropped.</summary>
    private void Persist(MasterChanged e, IActorRef sender)
    {
        if (e.Epoch <= Head)
        {
            // The same number with other content is not this record: no acknowledgement for it.
            if (_history.FirstOrDefault(k => k.Epoch == e.Epoch) is { } known && (known.Node != e.Node || known.Incarnation != e.Incarnation))
            {
                _log.Error("Epoch {0} is {1} here but {2} was offered; keeping {1}", e.Epoch, known.Node, e.Node);
                sender.Tell(new Recorded(_node, e.Epoch - 1));
                return;
            }
            sender.Tell(RecordedHead());
            return;
        }
        Persist(e, persisted =>
        {
            if (persisted.Epoch > Head)
            {
                _history = Insert(_history, persisted);
                // took a newer epoch over one it never had: ask the others for what it missed
                if (_fillAfter is null && FirstGap() is { } gap)
                {
                    _fillAfter = gap;
                    _fillTries = 0;
                }
            }
            sender.Tell(RecordedHead());
        });
    }

    /// <summary>Only newer versions are journaled; a version number keeps the bundle it was first given.</summary>
    private void PersistConfig(ConfigVersionCommitted e, IActorRef sender)
    {
        if (e.Version <= ConfigHead)
        {
            if (Find(e.Version) is { } known && known.BundleHash != e.BundleHash)
            {
                _log.Error("Version {0} is {1} here but {2} was offered; keeping {1}", e.Version, known.BundleHash, e.BundleHash);
                sender.Tell(new ConfigRecorded(_node, e.Version - 1)); // not an acknowledgement of this version
                return;
            }
            sender.Tell(new ConfigRecorded(_node, ConfigHead));
            return;
        }
        Persist(e, persisted =>
        {
            _configs = Append(_configs, persisted);
            sender.Tell(new ConfigRecorded(_node, ConfigHead));
        });
    }

    /// <summary>A singleton's heartbeat names a newer epoch or config version: fetch what is missing from its ledger.</summary>
    private void CatchUp(long epoch, long configVersion, string singletonAddress)
    {
        // at most one request every 2 s; a lost one is retried on a later heartbeat
        if ((epoch <= Head && configVersion <= ConfigHead) || Now - _lastSyncRequest < TimeSpan.FromSeconds(2)) return;
        _lastSyncRequest = Now;
        _log.Info("Ledger at epoch {0} and config version {1}, a singleton at {2} and {3}: fetching what is missing",
            Head, ConfigHead, Math.Max(epoch, Head), Math.Max(configVersion, ConfigHead));
        Context.ActorSelection($"{singletonAddress}/user/{_group.Ledger}").Tell(new LedgerSync(_node, Head, ConfigHead));
    }

    /// <summary>In epoch order; a number already held keeps the record it has.</summary>
    private static ImmutableList<MasterChanged> Insert(ImmutableList<MasterChanged> history, MasterChanged e)
    {
        var i = history.Count;
        while (i > 0 && history[i - 1].Epoch > e.Epoch) i--;
        return i > 0 && history[i - 1].Epoch == e.Epoch ? history : history.Insert(i, e);
    }

    private static ImmutableList<ConfigVersionCommitted> Append(ImmutableList<ConfigVersionCommitted> versions, ConfigVersionCommitted e) =>
        versions.IsEmpty || e.Version > versions[^1].Version ? versions.Add(e) : versions;
}

/// <summary>Marker key for the node's ledger in the ActorRegistry.</summary>
public sealed class LedgerKey;

public static class LedgerActorHostingExtensions
{
    /// <param name="groups">One ledger per group the node serves; the first (its own) is the registry's <see cref="LedgerKey"/>.</param>
    public static AkkaConfigurationBuilder AddLedgerActor(this AkkaConfigurationBuilder builder, string node, NodeView view, TimeSpan leaseTerm,
        IReadOnlyList<GroupScope>? groups = null) =>
        builder.WithActors((system, registry) =>
        {
            foreach (var (group, i) in (groups ?? [GroupScope.Whole]).Select((g, i) => (g, i)))
            {
                var ledger = system.ActorOf(Props.Create(() => new LedgerActor(node, view, leaseTerm, group)), group.Ledger);
                if (i == 0) registry.Register<LedgerKey>(ledger);
            }
        });
}
