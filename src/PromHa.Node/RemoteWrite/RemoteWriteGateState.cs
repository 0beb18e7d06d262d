using System.Collections.Immutable;

namespace PromHa.Node.RemoteWrite;

/// <summary>A batch the gate holds, in arrival order.</summary>
public sealed record PendingBatch(long Seq, DateTimeOffset ReceivedAt, WriteBatch Batch);

/// <summary>How a forwarded batch ended at the receiver.</summary>
public enum SendOutcome
{
    /// <summary>2xx: the receiver has it.</summary>
    Acked,
    /// <summary>5xx, 429, a timeout, no connection: send it again later.</summary>
    Retry,
    /// <summary>4xx: the receiver will never take it as it is (Prometheus 2.42 refuses a whole request for one out-of-order sample).</summary>
    Rejected,
}

/// <summary>
/// One master-only receiver's remote-write gate, as a pure value. Every replica's Prometheus writes
/// to its own node's gate, always (no reload when the role moves). The master's gate forwards in
/// arrival order, one batch at a time, and tells every node, series by series, the newest sample the
/// receiver acknowledged (<see cref="Marks"/>, published as deltas). A standby's gate drops the
/// batches those marks cover. Promoted, a gate sends of each series only the samples after the old
/// master's mark for it: the old master's samples up to there, its own after, so every series goes
/// on without a gap and without two writers (replicas scrape a target at different moments, so one
/// mark for all series would cut some series an interval early). A batch the receiver refuses (one
/// out-of-order sample refuses all of it) is halved until the sample that cannot go is alone.
/// A master that stops sends a final mark once its last batch is back (<see cref="FinalDue"/>); a
/// gate promoted while the newest mark it heard is not final waits up to <see cref="FinalWait"/>
/// for one (a switchover: the old master's last acknowledgements), then goes on from what it has
/// (a crash: what the dead master sent in its last quarter second may come again).
/// </summary>
public sealed record RemoteWriteGateState(
    long MaxBytes,
    TimeSpan Retention,
    TimeSpan FinalWait,
    bool Forwarding,
    bool Started,
    DateTimeOffset PromotedAt,
    bool FinalDue,
    bool HeardFinal,
    ImmutableDictionary<ulong, long> Marks,
    ImmutableDictionary<ulong, long> Unpublished,
    ImmutableDictionary<ulong, long> FilterMarks,
    long Acked,
    long Known,
    ImmutableList<PendingBatch> Pending,
    long PendingBytes,
    long NextSeq,
    long? InFlight,
    long Dropped)
{
    public static RemoteWriteGateState Initial(long maxBytes, TimeSpan retention, TimeSpan? finalWait = null) =>
        new(maxBytes, retention, finalWait ?? TimeSpan.FromSeconds(1.5), false, false, DateTimeOffset.MinValue, false, false,
            ImmutableDictionary<ulong, long>.Empty, ImmutableDictionary<ulong, long>.Empty, ImmutableDictionary<ulong, long>.Empty,
            long.MinValue, long.MinValue, ImmutableList<PendingBatch>.Empty, 0, 1, null, 0);

    /// <summary>A batch from the local Prometheus: kept (true), or refused while the gate is full (Prometheus retries it).</summary>
    public (RemoteWriteGateState State, bool Accepted) Accept(WriteBatch batch, DateTimeOffset now)
    {
        var s = Expire(now);
        if (batch.Samples == 0 || (!s.Forwarding && Covered(batch, s.Marks))) return (s, true);
        if (s.PendingBytes + batch.Bytes > s.MaxBytes && !s.Pending.IsEmpty) return (s, false);
        return (s with
        {
            Pending = s.Pending.Add(new PendingBatch(s.NextSeq, now, batch)),
            PendingBytes = s.PendingBytes + batch.Bytes,
            NextSeq = s.NextSeq + 1,
        }, true);
    }

    /// <summary>Another node's gate acknowledged these series up to these times (its last word when <paramref name="final"/>).</summary>
    public RemoteWriteGateState HeardAcked(IEnumerable<(ulong Hash, long Ms)> series, bool final)
    {
        var marks = Marks.ToBuilder();
        var known = Known;
        foreach (var (hash, ms) in series)
        {
            Raise(marks, hash, ms);
            known = Math.Max(known, ms);
        }
        var s = this with { Marks = marks.ToImmutable(), Known = known, HeardFinal = final };
        // promoted and nothing sent yet: the old master's last word still counts
        if (s.Forwarding && !s.Started) s = s with { FilterMarks = s.Marks };
        return s.DropCovered(s.Forwarding ? s.FilterMarks : s.Marks);
    }

    /// <summary>This node became master: send of each series only what comes after its mark.</summary>
    public RemoteWriteGateState Promote(DateTimeOffset now)
    {
        if (Forwarding) return this;
        var s = this with { Forwarding = true, Started = false, PromotedAt = now, FinalDue = false, FilterMarks = Marks };
        return s.DropCovered(s.FilterMarks);
    }

    /// <summary>This node is no master any more: stop sending; the final mark goes once the batch in flight is back.</summary>
    public RemoteWriteGateState StepDown() => Forwarding ? this with { Forwarding = false, FinalDue = true } : this;

    /// <summary>Whether a promoted gate still waits for the old master's final mark.</summary>
    public bool WaitsForFinal(DateTimeOffset now) => Forwarding && !Started && !HeardFinal && now - PromotedAt < FinalWait;

    /// <summary>The next batch to send, if the gate forwards, has nothing in flight and waits for no final mark.</summary>
    public (RemoteWriteGateState State, PendingBatch? Next) Next(DateTimeOffset now)
    {
        if (!Forwarding || InFlight is not null || Pending.IsEmpty || WaitsForFinal(now)) return (this, null);
        var next = Pending[0];
        return (this with { InFlight = next.Seq, Started = true }, next);
    }

    /// <summary>
    /// The batch in flight ended; <paramref name="sent"/> is what went (the batch after the filter).
    /// A refused batch that can be halved comes back as <paramref name="halves"/>; refused whole, it
    /// is dropped and counted.
    /// </summary>
    public RemoteWriteGateState Sent(long seq, SendOutcome outcome, WriteBatch? sent, (WriteBatch, WriteBatch)? halves = null)
    {
        if (InFlight != seq) return this;
        var s = this with { InFlight = null };
        var i = s.Pending.FindIndex(p => p.Seq == seq);
        if (i < 0) return s;
        var batch = s.Pending[i];
        switch (outcome)
        {
            case SendOutcome.Acked:
                var marks = s.Marks.ToBuilder();
                var unpublished = s.Unpublished.ToBuilder();
                foreach (var span in sent?.Spans ?? [])
                {
                    Raise(marks, span.Hash, span.MaxMs);
                    Raise(unpublished, span.Hash, span.MaxMs);
                }
                var max = sent is { Samples: > 0 } ? sent.MaxMs : long.MinValue;
                return s with
                {
                    Pending = s.Pending.RemoveAt(i),
                    PendingBytes = s.PendingBytes - batch.Batch.Bytes,
                    Marks = marks.ToImmutable(),
                    Unpublished = unpublished.ToImmutable(),
                    Acked = Math.Max(s.Acked, max),
                    Known = Math.Max(s.Known, max),
                };
            case SendOutcome.Rejected when halves is { } h:
                // the halves take the batch's place, under new numbers that keep the order
                var first = new PendingBatch(s.NextSeq, batch.ReceivedAt, h.Item1);
                var second = new PendingBatch(s.NextSeq + 1, batch.ReceivedAt, h.Item2);
                return s with
                {
                    Pending = s.Pending.RemoveAt(i).InsertRange(i, [first, second]),
                    PendingBytes = s.PendingBytes - batch.Batch.Bytes + h.Item1.Bytes + h.Item2.Bytes,
                    NextSeq = s.NextSeq + 2,
                };
            case SendOutcome.Rejected:
                return s with { Pending = s.Pending.RemoveAt(i), PendingBytes = s.PendingBytes - batch.Batch.Bytes, Dropped = s.Dropped + (sent ?? batch.Batch).Samples };
            default:
                return s;
        }
    }

    /// <summary>The marks acknowledged since the last call, to publish.</summary>
    public (RemoteWriteGateState State, IReadOnlyList<(ulong Hash, long Ms)> Delta) TakeDelta() =>
        Unpublished.IsEmpty ? (this, []) : (this with { Unpublished = ImmutableDictionary<ulong, long>.Empty }, Unpublished.Select(kv => (kv.Key, kv.Value)).ToList());

    /// <summary>Whether to publish the final mark now (and the state that remembers it went).</summary>
    public (RemoteWriteGateState State, bool Publish) TakeFinal() =>
        FinalDue && !Forwarding && InFlight is null ? (this with { FinalDue = false }, true) : (this, false);

    /// <summary>A standby forgets what it held longer than the retention (its Prometheus counts it as delivered).</summary>
    public RemoteWriteGateState Expire(DateTimeOffset now)
    {
        if (Forwarding || Pending.IsEmpty || now - Pending[0].ReceivedAt <= Retention) return this;
        return Keeping(Pending.RemoveAll(p => now - p.ReceivedAt > Retention && p.Seq != InFlight));
    }

    /// <summary>Forgets the marks of series not written for longer than the retention (gone targets).</summary>
    public RemoteWriteGateState Prune()
    {
        if (Known == long.MinValue) return this;
        var horizon = Known - (long)Retention.TotalMilliseconds;
        var old = Marks.Where(kv => kv.Value < horizon).Select(kv => kv.Key).ToList();
        return old.Count == 0 ? this : this with { Marks = Marks.RemoveRange(old), FilterMarks = FilterMarks.RemoveRange(old) };
    }

    private static bool Covered(WriteBatch batch, ImmutableDictionary<ulong, long> marks) =>
        batch.Spans.All(sp => marks.TryGetValue(sp.Hash, out var m) && sp.MaxMs <= m);

    private RemoteWriteGateState DropCovered(ImmutableDictionary<ulong, long> marks)
    {
        if (marks.IsEmpty || Pending.IsEmpty) return this;
        var keep = Pending.RemoveAll(p => p.Seq != InFlight && Covered(p.Batch, marks));
        return keep.Count == Pending.Count ? this : Keeping(keep);
    }

    private RemoteWriteGateState Keeping(ImmutableList<PendingBatch> pending) =>
        this with { Pending = pending, PendingBytes = pending.Sum(p => (long)p.Batch.Bytes) };

    /// <summary>A series' mark moves forward only.</summary>
    private static void Raise(ImmutableDictionary<ulong, long>.Builder marks, ulong hash, long ms)
    {
        if (!marks.TryGetValue(hash, out var had) || ms > had) marks[hash] = ms;
    }
}
