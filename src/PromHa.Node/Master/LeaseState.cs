using System.Collections.Immutable;

namespace PromHa.Node.Master;

/// <summary>
/// The master's own view of its lease, as a pure value. It holds the role while the singleton's
/// grant runs or, in a cluster of three or more configured nodes, while a majority of them vouch for
/// its reign (<see cref="VoterState"/>): a standby that dies, the singleton's host included, does not
/// cost the master its role while the singleton moves. Both are counted from when the master asked,
/// so its view ends before the granters' do. A binding refusal from the singleton ends both at once.
/// A pair has no majority without both nodes and relies on the singleton alone.
/// </summary>
public sealed record LeaseState(
    string Self,
    int Voters,
    long Epoch,
    string? Master,
    bool Revoked,
    bool Refused,
    DateTimeOffset GrantedUntil,
    ImmutableDictionary<string, DateTimeOffset> Votes)
{
    public static LeaseState Initial(string self, int voters) =>
        new(self, voters, 0, null, false, false, DateTimeOffset.MinValue, ImmutableDictionary<string, DateTimeOffset>.Empty);

    /// <summary>How many vouches carry the role: a majority of the configured nodes; never in a pair.</summary>
    public int VotesNeeded => Voters >= 3 ? Voters / 2 + 1 : int.MaxValue;

    /// <summary>This node is master of the current epoch and has not given it up.</summary>
    public bool IsMine => Master == Self && !Revoked;

    /// <summary>Whether to ask the ledgers for vouches: only a master the singleton has not refused.</summary>
    public bool AsksVoters => IsMine && !Refused && Voters >= 3;

    /// <summary>Until when a majority vouches: the smallest expiry among the majority that lasts longest.</summary>
    public DateTimeOffset VotedUntil =>
        Refused || Votes.Count < VotesNeeded
            ? DateTimeOffset.MinValue
            : Votes.Values.OrderByDescending(v => v).ElementAt(VotesNeeded - 1);

    public DateTimeOffset HoldsUntil => !IsMine ? DateTimeOffset.MinValue : Max(GrantedUntil, VotedUntil);

    public bool Holds(DateTimeOffset now) => now < HoldsUntil;

    /// <summary>A newer epoch: a new reign starts with nothing granted and nothing vouched.</summary>
    public LeaseState NewReign(long epoch, string master) =>
        this with
        {
            Epoch = epoch, Master = master, Revoked = false, Refused = false,
            GrantedUntil = DateTimeOffset.MinValue, Votes = ImmutableDictionary<string, DateTimeOffset>.Empty,
        };

    public LeaseState Granted(DateTimeOffset until) =>
        this with { GrantedUntil = Max(GrantedUntil, until), Refused = false };

    /// <summary>The singleton refused: a binding refusal also ends the votes (the role is moving).</summary>
    public LeaseState Denied(bool binding) =>
        binding
            ? this with { GrantedUntil = DateTimeOffset.MinValue, Refused = true, Votes = ImmutableDictionary<string, DateTimeOffset>.Empty }
            : this with { GrantedUntil = DateTimeOffset.MinValue };

    public LeaseState Vouched(string voter, DateTimeOffset until) =>
        !AsksVoters ? this
            : this with { Votes = Votes.SetItem(voter, Votes.TryGetValue(voter, out var had) ? Max(had, until) : until) };

    /// <summary>Switchover or shutdown: the role is given back, grant and votes with it.</summary>
    public LeaseState GiveUp() =>
        this with { Revoked = true, GrantedUntil = DateTimeOffset.MinValue, Votes = ImmutableDictionary<string, DateTimeOffset>.Empty };

    private static DateTimeOffset Max(DateTimeOffset a, DateTimeOffset b) => a > b ? a : b;
}
