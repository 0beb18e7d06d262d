using Akka.Actor;
using Akka.Cluster;
using Akka.Event;
using Akka.Hosting;
using PromHa.Messages.Alerts;
using PromHa.Node.Cluster;
using PromHa.Node.Groups;
using PromHa.Node.Settings;

namespace PromHa.Node.Alerts;

/// <summary>A pending notification with what deciding on it needs from the record (<see cref="DeliveryDecision.Decide"/>).</summary>
public sealed record Deliverable(NotificationRecord Record, NotificationRecord? LastOfGroup, NotificationRecord? SameContent,
    IReadOnlySet<string> Ended);

/// <summary>Local: the oldest pending notifications, except those already being delivered.</summary>
public sealed record GetDeliverable(IReadOnlySet<string> Busy, IReadOnlySet<string> BusyGroups);

public sealed record DeliverableList(IReadOnlyList<Deliverable> Items);

/// <summary>Local: read the outboxes of these members (a new master does before it delivers anything).</summary>
public sealed record SyncOutboxes(IReadOnlyList<Address> Members, int Needed, long Epoch);

/// <summary>Local: how many outboxes (this one included) answered a <see cref="SyncOutboxes"/>.</summary>
public sealed record OutboxesSynced(long Epoch, int Answered, int Needed);

/// <summary>Local: the newest entries for the API.</summary>
public sealed record GetRecentNotifications(int Limit);

public sealed record RecentNotifications(IReadOnlyList<OutboxEntry> Entries);

/// <summary>Local: told to the gate when this outbox took a notification it did not have.</summary>
public sealed record OutboxChanged
{
    public static readonly OutboxChanged Instance = new();
}

/// <summary>
/// This node's part of the replicated delivery record: it keeps every notification and outcome that
/// a gate appends (through <see cref="Replication.ReplicatedLog{TEntry,TAck}"/>, like the ledger
/// keeps epochs and versions), answers anti-entropy, and forgets what is older than the retention.
/// Every node runs one, witnesses included: they count toward the majority.
/// </summary>
public sealed class OutboxActor : ReceiveActor, IWithTimers
{
    public const string Name = "outbox";
    /// <summary>Below a remoting frame (128,000 bytes) with room for the envelope.</summary>
    private const int MaxReplyPayloadBytes = 96 * 1024;
    private static readonly TimeSpan SyncTimeout = TimeSpan.FromSeconds(4);
    private static readonly TimeSpan SyncLookBack = TimeSpan.FromMinutes(15);

    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly string _node;
    private readonly OutboxStore _store;
    private readonly TimeSpan _retention;
    private (IActorRef ReplyTo, SyncOutboxes Request, HashSet<string> Answered)? _sync;
    private DateTimeOffset _syncSince;
    private readonly Akka.Cluster.Cluster _cluster = Akka.Cluster.Cluster.Get(Context.System);

    private readonly TimeProvider _time;
    private DateTimeOffset Now => _time.GetUtcNow();

    private readonly GroupScope _group;

    /// <param name="group">The group whose notifications this outbox keeps (a witness has one per group it serves).</param>
    public OutboxActor(NodeSettings s, TimeProvider time, GroupScope? group = null)
    {
        _time = time;
        _group = group ?? GroupScope.Whole;
        _node = s.Node.Name;
        _store = new OutboxStore(Path.Combine(s.DataDir, _group.OutboxFile));
        _retention = TimeSpan.FromHours(s.Alerts.RetentionHours);

        Receive<RecordNotification>(r =>
        {
            if (_store.Add(r.Record)) Gate().Tell(OutboxChanged.Instance);
            Sender.Tell(new NotificationRecorded(_node, r.Record.Id));
        });
        Receive<RecordDeliveryOutcome>(r =>
        {
            _store.Settle(r.Outcome);
            Sender.Tell(new NotificationRecorded(_node, r.Outcome.Id));
        });
        Receive<NotificationRecorded>(_ => { }); // an outcome this node pushed during anti-entropy
        Receive<DiscardNotification>(d => _store.Remove(d.Id));
        Receive<GetOutbox>(g => Sender.Tell(Contents(g)));
        Receive<OutboxContents>(Merge);
        Receive<SyncOutboxes>(StartSync);
        Receive<SyncTimedOut>(t =>
        {
            if (_sync is { } s && s.Request.Epoch == t.Epoch) FinishSync();
        });
        Receive<GetDeliverable>(g => Sender.Tell(new DeliverableList(_store.Deliverable(g.Busy, g.BusyGroups))));
        Receive<GetRecentNotifications>(g => Sender.Tell(new RecentNotifications(_store.Recent(g.Limit))));
        Receive<Housekeeping>(_ => Housekeep());
        // A member that (re)appears is read at once: appends reach only live members, so a node that
        // was down or cut off lacks what was settled meanwhile, and if it were promoted before the
        // master's next read it would send again what the master already delivered (seen in a pair:
        // a standby restarted 3 s before the master died delivered the master's last notification again).
        Receive<ClusterEvent.CurrentClusterState>(state =>
        {
            foreach (var m in UpReachable.Members(state).Where(_group.Includes)) Pull(m.Address);
        });
        Receive<ClusterEvent.MemberUp>(up =>
        {
            if (!_group.Includes(up.Member)) return;
            if (up.Member.Address != _cluster.SelfAddress) Pull(up.Member.Address);
            else foreach (var m in _cluster.State.Members.Where(m => m.Status == MemberStatus.Up && _group.Includes(m))) Pull(m.Address);
        });
        Receive<ClusterEvent.ReachableMember>(r =>
        {
            if (_group.Includes(r.Member)) Pull(r.Member.Address);
        });
    }

    public ITimerScheduler Timers { get; set; } = null!;

    /// <summary>A receiver's webhook and Alertmanager's group: the unit delivered in order.</summary>
    public static string GroupOf(NotificationRecord r) => $"{r.Receiver}\n{r.Target}\n{r.GroupKey}";

    private sealed record SyncTimedOut(long Epoch);

    private sealed record Housekeeping
    {
        public static readonly Housekeeping Instance = new();
    }

    protected override void PreStart()
    {
        Timers.StartPeriodicTimer("housekeeping", Housekeeping.Instance, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(10));
        _cluster.Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsSnapshot,
            typeof(ClusterEvent.MemberUp), typeof(ClusterEvent.ReachableMember));
    }

    protected override void PostStop()
    {
        _cluster.Unsubscribe(Self);
        _store.Dispose();
    }

    /// <summary>Reads another member's outbox (every page of the look-back window) into this one.</summary>
    private void Pull(Address member)
    {
        if (member == _cluster.SelfAddress) return;
        _syncSince = Now - SyncLookBack;
        Ask(member);
    }

    /// <summary>Asks a member's outbox for its first page since the look-back; <see cref="Merge"/> asks for the rest.</summary>
    private void Ask(Address member) =>
        Context.ActorSelection(new RootActorPath(member) / "user" / _group.Outbox).Tell(new GetOutbox(_syncSince), Self);

    private ActorSelection Gate() => Context.ActorSelection(Self.Path.Parent / NotificationGateActor.Name);

    private OutboxContents Contents(GetOutbox g)
    {
        var (records, outcomes, more) = _store.Page(g.Since, g.AfterAt, g.AfterId, MaxReplyPayloadBytes);
        return new OutboxContents(_node, records, outcomes, more);
    }

    private void Merge(OutboxContents c)
    {
        var added = 0;
        foreach (var o in c.Outcomes) _store.Settle(o);
        foreach (var r in c.Records)
            if ((r.Payload.Length > 0 || _store.Outcome(r.Id) is not null) && _store.Add(r)) added++;
        // what the member still holds as pending but this outbox knows settled: tell it
        foreach (var r in c.Records.Where(r => r.Payload.Length > 0))
            if (_store.Outcome(r.Id) is { } known && c.Outcomes.All(o => o.Id != r.Id))
                Sender.Tell(new RecordDeliveryOutcome(known));
        if (added > 0)
        {
            _log.Info("Took {0} notification(s) from {1}'s outbox", added, c.Node);
            Gate().Tell(OutboxChanged.Instance);
        }
        // the next page from the same outbox; it counts as read once the last page is in
        if (c.More && c.Records.Count > 0)
        {
            Sender.Tell(new GetOutbox(_syncSince, c.Records[^1].AcceptedAt, c.Records[^1].Id));
            return;
        }
        if (_sync is { } s && s.Answered.Add(c.Node) && s.Answered.Count + 1 >= s.Request.Needed) FinishSync();
    }

    private void StartSync(SyncOutboxes request)
    {
        _sync = (Sender, request, []);
        _syncSince = Now - SyncLookBack;
        foreach (var member in request.Members) Ask(member);
        // anti-entropy that gates nothing: the answers are merged whenever they come
        if (request.Needed <= 1) FinishSync();
        else Timers.StartSingleTimer("sync", new SyncTimedOut(request.Epoch), SyncTimeout);
    }

    private void FinishSync()
    {
        if (_sync is not { } s) return;
        _sync = null;
        Timers.Cancel("sync");
        s.ReplyTo.Tell(new OutboxesSynced(s.Request.Epoch, s.Answered.Count + 1, s.Request.Needed));
    }

    private void Housekeep()
    {
        var expired = _store.Prune(Now - _retention);
        if (expired > 0)
            _log.Warning("{0} notification(s) expired undelivered after alerts.retentionHours ({1} h): no master settled them", expired, _retention.TotalHours);
        var backlog = _store.Backlog();
        foreach (var label in AlertMetrics.OutboxPending.GetAllLabelValues().Select(l => l[0]).Except(backlog.Keys).ToList())
        {
            AlertMetrics.OutboxPending.WithLabels(label).Set(0);
            AlertMetrics.OutboxOldest.WithLabels(label).Set(0);
        }
        foreach (var (receiver, (count, oldest)) in backlog)
        {
            AlertMetrics.OutboxPending.WithLabels(receiver).Set(count);
            AlertMetrics.OutboxOldest.WithLabels(receiver).Set(Math.Max(0, (Now - oldest).TotalSeconds));
        }
    }
}

/// <summary>Marker key for the node's outbox.</summary>
public sealed class OutboxKey;

public static class OutboxActorHostingExtensions
{
    /// <summary>One outbox per group the node serves; the first (its own group's) is the registry's <see cref="OutboxKey"/>.</summary>
    public static AkkaConfigurationBuilder AddOutboxActor(this AkkaConfigurationBuilder builder, NodeSettings s, TimeProvider time) =>
        builder.WithActors((system, registry) =>
        {
            foreach (var (group, i) in GroupScope.Served(s).Select((g, i) => (g, i)))
            {
                var outbox = system.ActorOf(Props.Create(() => new OutboxActor(s, time, group)), group.Outbox);
                if (i == 0) registry.Register<OutboxKey>(outbox);
            }
        });
}
