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
/// to its own node's gate, always (no reload when the role moves). A standby's gate keeps what the
/// master has not confirmed yet: the master's gate forwards in arrival order, one batch at a time,
/// and tells every node the newest timestamp the receiver acknowledged (<see cref="Acked"/>); a
/// standby drops what that covers. Promoted, a gate sends only what comes after the newest mark it
/// heard (<see cref="Filter"/>): the old master's samples up to there, its own after, so the series
/// goes on without a gap and without a scrape written twice. A batch the receiver refuses (one
/// out-of-order sample refuses all of it) is split until the sample that cannot go is alone.
/// A master that stops sends a final mark once its last batch is back (<see cref="FinalDue"/>); a
/// gate promoted while the newest mark it heard is not final waits up to <see cref="FinalWait"/>
/// for one (a switchover: the old master's last acknowledgements), then goes on from what it has
/// (a crash: the dead master's last quarter second may come twice).
/// </summary>
public sealed record RemoteWriteGateState(
    long MaxBytes,
    TimeSpan Retention,
    TimeSpan FinalWait,
    bool Forwarding,
    long Filter,
    long Acked,
    long Heard,
    bool HeardFinal,
    bool FinalDue,
    DateTimeOffset PromotedAt,
    bool Started,
    ImmutableList<PendingBatch> Pending,
    long PendingBytes,
    long NextSeq,
    long? InFlight,
    long Dropped)
{
    public static RemoteWriteGateState Initial(long maxBytes, TimeSpan retention, TimeSpan? finalWait = null) =>
        new(maxBytes, retention, finalWait ?? TimeSpan.FromSeconds(1.5), false, long.MinValue, long.MinValue, long.MinValue, false, false,
            DateTimeOffset.MinValue, false, ImmutableList<PendingBatch>.Empty, 0, 1, null, 0);

    /// <summary>The newest mark this gate knows: its own acknowledgements and the ones it heard.</summary>
    public long Known => Math.Max(Acked, Heard);

    /// <summary>A batch from the local Prometheus: kept (true), or refused while the gate is full (Prometheus retries it).</summary>
    public (RemoteWriteGateState State, bool Accepted) Accept(WriteBatch batch, DateTimeOffset now)
    {
        var s = Expire(now);
        // covered already: the master sent these samples
        if (!s.Forwarding && batch.Samples > 0 && batch.MaxMs <= s.Known) return (s, true);
        if (batch.Samples == 0 && batch.Series == 0) return (s, true);
        if (s.PendingBytes + batch.Bytes > s.MaxBytes && !s.Pending.IsEmpty) return (s, false);
        return (s with
        {
            Pending = s.Pending.Add(new PendingBatch(s.NextSeq, now, batch)),
            PendingBytes = s.PendingBytes + batch.Bytes,
            NextSeq = s.NextSeq + 1,
        }, true);
    }

    /// <summary>Another node's gate acknowledged up to <paramref name="ms"/> (its last word when <paramref name="final"/>): a standby forgets what that covers.</summary>
    public RemoteWriteGateState HeardAcked(long ms, bool final)
    {
        var s = this with { Heard = Math.Max(Heard, ms), HeardFinal = final };
        if (s.Forwarding && !s.Started && s.Filter < s.Known) s = s with { Filter = s.Known }; // promoted, nothing sent yet
        return s.Forwarding ? s.DropCovered(s.Filter) : s.DropCovered(s.Known);
    }

    /// <summary>This node became master: send only what comes after everything known to be sent.</summary>
    public RemoteWriteGateState Promote(DateTimeOffset now)
    {
        if (Forwarding) return this;
        var s = this with { Forwarding = true, Filter = Known, PromotedAt = now, FinalDue = false, Started = false };
        return s.DropCovered(s.Filter);
    }

    /// <summary>This node is no master any more: stop sending; the final mark goes once the batch in flight is back.</summary>
    public RemoteWriteGateState StepDown() => Forwarding ? this with { Forwarding = false, FinalDue = true } : this;

    /// <summary>Whether to publish the final mark now (and the state that remembers it went).</summary>
    public (RemoteWriteGateState State, bool Publish) TakeFinal() =>
        FinalDue && !Forwarding && InFlight is null ? (this with { FinalDue = false }, true) : (this, false);

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
    /// The batch in flight ended. <paramref name="sentMaxMs"/>: the newest sample it carried (the
    /// filtered batch's). A refused batch of several series comes back as <paramref name="halves"/>;
    /// refused alone, it is dropped and counted.
    /// </summary>
    public RemoteWriteGateState Sent(long seq, SendOutcome outcome, long sentMaxMs, (WriteBatch, WriteBatch)? halves = null)
    {
        if (InFlight != seq) return this;
        var s = this with { InFlight = null };
        var i = s.Pending.FindIndex(p => p.Seq == seq);
        if (i < 0) return s;
        var batch = s.Pending[i];
        switch (outcome)
        {
            case SendOutcome.Acked:
                return s with
                {
                    Pending = s.Pending.RemoveAt(i),
                    PendingBytes = s.PendingBytes - batch.Batch.Bytes,
                    Acked = Math.Max(s.Acked, sentMaxMs),
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
                return s with { Pending = s.Pending.RemoveAt(i), PendingBytes = s.PendingBytes - batch.Batch.Bytes, Dropped = s.Dropped + batch.Batch.Samples };
            default:
                return s;
        }
    }

    /// <summary>A standby forgets what it held longer than the retention (its Prometheus counts it as delivered).</summary>
    public RemoteWriteGateState Expire(DateTimeOffset now)
    {
        if (Forwarding || Pending.IsEmpty || now - Pending[0].ReceivedAt <= Retention) return this;
        var keep = Pending.RemoveAll(p => now - p.ReceivedAt > Retention && p.Seq != InFlight);
        return this with { Pending = keep, PendingBytes = keep.Sum(p => (long)p.Batch.Bytes) };
    }

    private RemoteWriteGateState DropCovered(long ms)
    {
        if (ms == long.MinValue) return this;
        var keep = Pending.RemoveAll(p => p.Batch.MaxMs <= ms && p.Seq != InFlight);
        return keep.Count == Pending.Count ? this : this with { Pending = keep, PendingBytes = keep.Sum(p => (long)p.Batch.Bytes) };
    }
}
