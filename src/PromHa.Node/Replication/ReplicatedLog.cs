using Akka.Actor;
using PromHa.Messages.Ledger;

namespace PromHa.Node.Replication;

/// <summary>
/// How one kind of record travels through the ledgers: the message that journals it, how to tell
/// that an answer holds this very record (not another one under its number), and the message that
/// drops it when it did not reach a majority; and which actor keeps it on each node (the ledger, or
/// the outbox for notifications).
/// </summary>
public sealed record LogSpec<TEntry, TAck>(
    Func<TEntry, object> Record,
    Func<TAck, TEntry, bool> Holds,
    Func<TEntry, string, object> Discard,
    string Keeper = Master.LedgerActor.Name);

/// <summary>The ledgers that acknowledged an entry (each answer holds it), out of how many were asked.</summary>
public sealed record Appended<TEntry, TAck>(TEntry Entry, IReadOnlyList<TAck> Acks, int Asked);

/// <summary>
/// The cluster's ledgers used as one small replicated log, the way every decision reaches them:
/// role changes (epochs), config versions, and the notification gate's delivery record. A singleton
/// appends an entry to its own node's ledger (which must take it) and to every live member's, in
/// parallel; it counts the entry as committed only when <see cref="Quorum.IsMajority"/> holds for the
/// answers, and announces it only then; otherwise it discards it on the ledgers that took it, and
/// the number is never handed out again. One append at a time per log is the caller's rule.
/// </summary>
public sealed class ReplicatedLog<TEntry, TAck>(
    LogSpec<TEntry, TAck> spec,
    ActorSystem system,
    Func<IActorRef> localLedger,
    Func<IReadOnlyCollection<Address>> liveMembers,
    Func<int> clusterSize)
{
    private static readonly TimeSpan LocalJournalTimeout = TimeSpan.FromSeconds(10);
    // A ledger busy with its first write on a loaded host can take seconds; the append returns as
    // soon as a majority answered, so a slow or silently dead member costs time only when needed.
    // Below the ~4 s in which a cut-off node is downed, so that it still discards what it could
    // not commit before it stops.
    private static readonly TimeSpan ReplicationTimeout = TimeSpan.FromSeconds(3);

    private readonly Address _self = Akka.Cluster.Cluster.Get(system).SelfAddress;

    /// <summary>The ledger actor of a member.</summary>
    public ActorSelection Ledger(Address member) =>
        system.ActorSelection(new RootActorPath(member) / "user" / spec.Keeper);

    /// <summary>
    /// Journals the entry on this node's ledger (a failure there fails the task: nothing may be
    /// announced that this node does not hold) and on every live member's (best effort, bounded).
    /// Returns once a majority holds it, or every ledger answered or timed out; the others still
    /// take it (or copy it later through anti-entropy). Call it from the actor: the asks are sent
    /// before the first await. <paramref name="localHeld"/> runs (on a pool thread) as soon as this
    /// node's ledger holds the entry, before the other answers are in.
    /// </summary>
    public async Task<Appended<TEntry, TAck>> Append(TEntry entry, Action? localHeld = null)
    {
        var record = spec.Record(entry);
        var local = localLedger().Ask<TAck>(record, LocalJournalTimeout);
        var remote = liveMembers().Where(a => a != _self)
            .Select(a => Ledger(a).Ask<TAck>(record, ReplicationTimeout))
            .ToList();
        // a pair waits for both ledgers while both are up: it has no majority to fall back on
        var size = clusterSize();
        var majority = size <= 2 ? int.MaxValue : Quorum.Majority(size);
        var acks = new List<TAck>();
        var own = await local;
        if (spec.Holds(own, entry))
        {
            acks.Add(own);
            localHeld?.Invoke();
        }
        var pending = new List<Task<TAck>>(remote);
        while (pending.Count > 0 && acks.Count < majority)
        {
            var done = await Task.WhenAny(pending);
            pending.Remove(done);
            // a ledger that did not answer in time catches up through anti-entropy
            if (done.IsCompletedSuccessfully && spec.Holds(done.Result, entry)) acks.Add(done.Result);
        }
        foreach (var p in pending) _ = p.ContinueWith(static t => t.Exception, TaskContinuationOptions.OnlyOnFaulted);
        return new Appended<TEntry, TAck>(entry, acks, remote.Count + 1);
    }

    /// <summary>
    /// An entry that did not reach a majority never happened: this node's ledger drops it (it took
    /// it first) and so do the members reachable now; the others drop it when a later singleton
    /// tells them or adopt nothing newer from it (their head is read against a majority).
    /// </summary>
    public void Discard(TEntry entry, string why)
    {
        var discard = spec.Discard(entry, why);
        localLedger().Tell(discard, ActorRefs.NoSender);
        foreach (var address in liveMembers().Where(a => a != _self))
            Ledger(address).Tell(discard, ActorRefs.NoSender);
    }

    /// <summary>Asks these members' ledgers for their heads; the answers (<see cref="LedgerHead"/>) go to <paramref name="replyTo"/>.</summary>
    public void AskHeads(IEnumerable<Address> members, IActorRef replyTo)
    {
        foreach (var address in members) Ledger(address).Tell(GetLedgerHead.Instance, replyTo);
    }
}
