namespace PromHa.Node.Master;

/// <summary>
/// A ledger's vote on the master's reign, as a pure value. The ledger vouches only for the reign at
/// its journaled head; once it journals a newer epoch it vouches for the old reign no more, and
/// reports how long the vouches it already gave may still be counted. The singleton announces a new
/// master only after a majority of ledgers journaled its epoch and those vouches ran out, so the old
/// master can no longer count a majority (any two majorities share a ledger).
/// </summary>
/// <param name="Term">How long one vouch lasts: the lease duration.</param>
/// <param name="StartedAt">A ledger that restarted does not remember what it vouched for before, so
/// for one term after it starts it assumes it vouched for the reign before the head.</param>
public sealed record VoterState(
    TimeSpan Term,
    DateTimeOffset StartedAt,
    long Epoch,
    string? Master,
    string? Incarnation,
    DateTimeOffset VouchedUntil,
    DateTimeOffset EarlierVouchesUntil)
{
    public static VoterState Start(TimeSpan term, DateTimeOffset now) =>
        new(term, now, 0, null, null, DateTimeOffset.MinValue, DateTimeOffset.MinValue);

    /// <summary>The journaled head is now this reign (a newer epoch, or an older one after a discard).</summary>
    public VoterState AtHead(long epoch, string? master, string? incarnation) =>
        epoch == Epoch && master == Master && incarnation == Incarnation
            ? this
            : this with
            {
                Epoch = epoch,
                Master = master,
                Incarnation = incarnation,
                EarlierVouchesUntil = Max(EarlierVouchesUntil, VouchedUntil),
                VouchedUntil = DateTimeOffset.MinValue,
            };

    public (VoterState State, string? Refusal) Vouch(long epoch, string node, string incarnation, DateTimeOffset now)
    {
        if (epoch != Epoch) return (this, $"this ledger is at epoch {Epoch}, not {epoch}");
        if (node != Master) return (this, $"{node} is not the master of epoch {Epoch} here");
        // One reign, one epoch: a master that restarted is a new process the epoch was not granted to.
        if (Incarnation is not null && incarnation != Incarnation) return (this, $"{node} restarted since epoch {Epoch} was granted");
        return (this with { VouchedUntil = Max(VouchedUntil, now + Term) }, null);
    }

    /// <summary>The master gave its reign up: nothing it asked for before counts any longer.</summary>
    public VoterState Withdraw(long epoch, string node) =>
        epoch == Epoch && node == Master ? this with { VouchedUntil = DateTimeOffset.MinValue } : this;

    /// <summary>How long a vouch for a reign older than the head may still be counted by its master.</summary>
    public TimeSpan EarlierVouchesRemaining(DateTimeOffset now)
    {
        var until = Max(EarlierVouchesUntil, StartedAt + Term);
        return until > now ? until - now : TimeSpan.Zero;
    }

    private static DateTimeOffset Max(DateTimeOffset a, DateTimeOffset b) => a > b ? a : b;
}
