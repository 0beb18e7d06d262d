using Akka.Actor;
using Akka.Cluster;
using PromHa.Messages.Ledger;
using PromHa.Node.Cluster;
using PromHa.Node.Groups;

namespace PromHa.Node.Replication;

/// <summary>
/// The members whose ledgers a singleton works with, as one actor sees them: address, incarnation,
/// reachability, and the ledger head each answered. Owned by a single actor (not thread-safe). A
/// member restarted under its name is a new incarnation with a ledger to read again.
/// </summary>
/// <param name="group">Only the members of this group count (a cluster with several groups).</param>
public sealed class LedgerMembers(int configured, UniqueAddress self, GroupScope? group = null)
{
    private readonly GroupScope _group = group ?? GroupScope.Whole;

    private sealed record Entry(Address Address, string Incarnation, bool Reachable);

    private readonly Dictionary<string, Entry> _members = new();
    private readonly Dictionary<string, LedgerHead> _heads = new();

    /// <summary>Whether another node was ever a member: a pair node that never saw its peer may be on an island.</summary>
    public bool EverSawOthers { get; private set; }

    public int Count => _members.Count;
    public int Size => Quorum.Size(configured, _members.Count);
    public int ReachableCount => _members.Values.Count(e => e.Reachable);

    /// <summary>Address and UID: a node restarted on the same address is another incarnation.</summary>
    public static string Incarnation(Member m) => $"{m.Address}#{m.UniqueAddress.Uid}";

    /// <summary>Two incarnations on one address (host and port): at most one of them holds it.</summary>
    public static bool SameAddress(string a, string b) =>
        a.LastIndexOf('#') is var i and > 0 && b.LastIndexOf('#') is var j and > 0 && a.AsSpan(0, i).SequenceEqual(b.AsSpan(0, j));

    public void Up(Member m, string self)
    {
        if (MemberRoles.NodeName(m) is not { } name || !_group.Includes(m)) return;
        if (_members.TryGetValue(name, out var known) && known.Incarnation != Incarnation(m)) _heads.Remove(name);
        _members[name] = new Entry(m.Address, Incarnation(m), true);
        EverSawOthers |= name != self;
    }

    public void Gone(Member m)
    {
        if (MemberRoles.NodeName(m) is not { } name || !_group.Includes(m)) return;
        // already known as its new incarnation
        if (_members.TryGetValue(name, out var known) && known.Incarnation != Incarnation(m)) return;
        _members.Remove(name);
        _heads.Remove(name);
    }

    /// <summary>Reachability by the observations of live members only (<see cref="LiveReachability"/>); feed it the owner's cluster events.</summary>
    public LiveReachability Reach { get; } = new(self);

    /// <summary>
    /// Takes what changed in <see cref="Reach"/> since the last call; returns the changes that
    /// concern a member's current incarnation (a downed incarnation's reachability says nothing of
    /// the one that replaced it under the same name).
    /// </summary>
    public IReadOnlyList<(string Name, bool Reachable)> ApplyReachability()
    {
        var applied = new List<(string, bool)>();
        foreach (var (m, reachable) in Reach.Changes())
            if (Reachability(m, reachable) is { } name) applied.Add((name, reachable));
        return applied;
    }

    /// <summary>Sets a member's reachability if it is its current incarnation; returns its name then.</summary>
    private string? Reachability(Member m, bool reachable)
    {
        if (MemberRoles.NodeName(m) is not { } name || !_members.TryGetValue(name, out var e) || e.Incarnation != Incarnation(m))
            return null;
        _members[name] = e with { Reachable = reachable };
        return name;
    }

    public void Head(LedgerHead h) => _heads[h.Node] = h;

    public IReadOnlyCollection<LedgerHead> Heads => _heads.Values;

    public LedgerHead? HeadOf(string name) => _heads.GetValueOrDefault(name);

    public List<string> MissingHeads() =>
        _members.Where(m => m.Value.Reachable && !_heads.ContainsKey(m.Key)).Select(m => m.Key).ToList();

    public IEnumerable<Address> AddressesOf(IEnumerable<string> names) =>
        names.Select(n => _members.GetValueOrDefault(n)?.Address).OfType<Address>();

    public Address? AddressOf(string name) => _members.GetValueOrDefault(name)?.Address;

    /// <summary>Whether the heads read so far must include the latest record (see <see cref="Quorum.KnowsLatest"/>).</summary>
    public bool KnowsLatest => Quorum.KnowsLatest(_members.Keys.Count(_heads.ContainsKey), MissingHeads().Count, Size);

    /// <summary>
    /// Reachable members that are joining or up, by the cluster's state and this actor's own view of
    /// reachability (<see cref="Reach"/>: the observations of live members, not those of a downed one;
    /// Cluster.State may also lag the events a decision is taken on, and asking a dead ledger waits out
    /// the replication timeout), less <paramref name="silent"/>: members the caller knows answer no ask.
    /// </summary>
    public IReadOnlyCollection<Address> Live(Akka.Cluster.Cluster cluster, IEnumerable<string>? silent = null)
    {
        var unreachable = _members.Values.Where(e => !e.Reachable).Select(e => e.Address)
            .Concat(AddressesOf(silent ?? [])).ToHashSet();
        var unreachableMembers = Reach.Unreachable;
        return cluster.State.Members
            .Where(m => m.Status is MemberStatus.Joining or MemberStatus.WeaklyUp or MemberStatus.Up && _group.Includes(m) &&
                        !unreachableMembers.Contains(m.UniqueAddress) && !unreachable.Contains(m.Address))
            .Select(m => m.Address).ToList();
    }
}
