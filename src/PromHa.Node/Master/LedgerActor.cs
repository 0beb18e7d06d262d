using System.Collections.Immutable;
using Akka.Actor;
using Akka.Cluster.Tools.PublishSubscribe;
using Akka.Event;
using Akka.Hosting;
using Akka.Persistence;
using PromHa.Messages.Ledger;
using PromHa.Messages.Roles;
using PromHa.Node.Cluster;

namespace PromHa.Node.Master;

/// <summary>
/// Every node's own journal of role changes (Akka.Persistence.Sql, SQLite in the data dir). The
/// singleton writes each change to every reachable ledger before announcing it, and a singleton
/// that starts reads every member's head, so epochs never go backwards wherever it lands. Ledgers
/// that fell behind catch up from the singleton's ledger (anti-entropy on the status heartbeat).
/// </summary>
public sealed class LedgerActor : ReceivePersistentActor
{
    public const string Name = "ledger";
    private readonly string _node;
    private readonly NodeView _view;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private ImmutableList<MasterChanged> _history = ImmutableList<MasterChanged>.Empty;
    private DateTimeOffset _lastSyncRequest = DateTimeOffset.MinValue;

    public LedgerActor(string node, NodeView view)
    {
        _node = node;
        _view = view;
        Recover<MasterChanged>(e => _history = Append(_history, e));

        Command<RecordMasterChanged>(r => Persist(r.Change, sender: Sender));
        Command<MasterChanged>(e => Persist(e, sender: ActorRefs.Nobody));
        Command<GetLedgerHead>(_ => Sender.Tell(CurrentHead()));
        Command<LedgerSync>(s =>
        {
            if (Head > s.Epoch)
                Sender.Tell(new LedgerEvents(_node, _history.Where(e => e.Epoch > s.Epoch).ToList()));
        });
        Command<LedgerEvents>(evs =>
        {
            foreach (var e in evs.Events.OrderBy(e => e.Epoch)) Persist(e, sender: ActorRefs.Nobody);
        });
        Command<MasterStatus>(OnStatus);
        Command<GetHistory>(q => Sender.Tell(_history.TakeLast(q.Limit).Reverse().ToList()));
        Command<SubscribeAck>(_ => { });
    }

    public override string PersistenceId => "promha-ledger";

    private long Head => _history.IsEmpty ? 0 : _history[^1].Epoch;

    /// <summary>
    /// The highest epoch this node knows. Its role actor may have learned a newer epoch from the
    /// singleton's heartbeat before this journal copied it; a starting singleton must count it,
    /// or it could hand out that epoch number a second time.
    /// </summary>
    private LedgerHead CurrentHead()
    {
        var snap = _view.Current;
        if (snap.Epoch > Head && snap.Master is { } master)
            return new LedgerHead(_node, snap.Epoch, new MasterChanged(snap.Epoch, master, "learned", DateTimeOffset.UtcNow, null));
        return new LedgerHead(_node, Head, _history.LastOrDefault());
    }

    protected override void PreStart()
    {
        DistributedPubSub.Get(Context.System).Mediator.Tell(new Subscribe(Topics.Roles, Self));
        base.PreStart();
    }

    /// <summary>Only newer epochs are journaled: a stale or repeated change is acknowledged and dropped.</summary>
    private void Persist(MasterChanged e, IActorRef sender)
    {
        if (e.Epoch <= Head)
        {
            sender.Tell(new Recorded(_node, Head));
            return;
        }
        Persist(e, persisted =>
        {
            if (persisted.Epoch > Head) _history = Append(_history, persisted);
            sender.Tell(new Recorded(_node, Head));
        });
    }

    private void OnStatus(MasterStatus status)
    {
        // at most one request every 2 s; a lost one is retried on a later heartbeat
        if (status.Epoch <= Head || Clock.Now - _lastSyncRequest < TimeSpan.FromSeconds(2)) return;
        _lastSyncRequest = Clock.Now;
        _log.Info("Ledger at epoch {0}, cluster at {1}: fetching the missing role changes", Head, status.Epoch);
        Context.ActorSelection($"{status.SingletonAddress}/user/{Name}").Tell(new LedgerSync(_node, Head));
    }

    private static ImmutableList<MasterChanged> Append(ImmutableList<MasterChanged> history, MasterChanged e) =>
        history.IsEmpty || e.Epoch > history[^1].Epoch ? history.Add(e) : history;
}

/// <summary>Marker key for the node's ledger in the ActorRegistry.</summary>
public sealed class LedgerKey;

public static class LedgerActorHostingExtensions
{
    public static AkkaConfigurationBuilder AddLedgerActor(this AkkaConfigurationBuilder builder, string node, NodeView view) =>
        builder.WithActors((system, registry) =>
            registry.Register<LedgerKey>(system.ActorOf(Props.Create(() => new LedgerActor(node, view)), LedgerActor.Name)));
}
