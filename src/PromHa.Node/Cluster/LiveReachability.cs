using System.Collections;
using System.Collections.Immutable;
using System.Reflection;
using Akka.Cluster;

namespace PromHa.Node.Cluster;

/// <summary>
/// Which members are unreachable by the observations of members that are still in the cluster, as
/// one actor sees them. Akka's own UnreachableMember events count every observation in the gossip,
/// also those of a member already downed: until that member is removed (which waits for the others
/// to converge), its last "I cannot reach X" keeps X unreachable for everyone, and the split-brain
/// decision and the master singleton acted on it (seen with a standby's link flapping: the downed
/// standby's record of the master took the master's lease and then the master itself). Akka's
/// convergence check leaves such observations out; this view does the same for PromHa's decisions.
/// Owned by one actor (not thread-safe): feed it the actor's member events, its cluster snapshot and
/// Akka's reachability event (<see cref="ChangedEvent"/>), then read <see cref="Changes"/>.
/// </summary>
public sealed class LiveReachability(UniqueAddress self)
{
    /// <summary>One member's observation of another in the gossip.</summary>
    public sealed record Observation(UniqueAddress Observer, UniqueAddress Subject, bool Unreachable);

    // Akka publishes the observations only in an internal event (ClusterEvent.ReachabilityChanged,
    // with its Reachability's Records); read by reflection. The names are checked when this class is
    // first used, so an Akka upgrade that renames them stops the node at start with this message
    // rather than leaving it deciding on nothing (and a unit test reads a real event).
    private const string Names = "ClusterEvent.ReachabilityChanged.Reachability.Records[Observer, Subject, Status]";

    /// <summary>Akka's internal event carrying every observation; subscribe to it with the cluster's other events.</summary>
    public static readonly Type ChangedEvent =
        typeof(ClusterEvent).GetNestedType("ReachabilityChanged", BindingFlags.NonPublic | BindingFlags.Public) ?? throw Changed();

    private static readonly PropertyInfo ReachabilityOf = ChangedEvent.GetProperty("Reachability") ?? throw Changed();
    private static readonly PropertyInfo RecordsOf = ReachabilityOf.PropertyType.GetProperty("Records") ?? throw Changed();
    private static readonly Type RecordType =
        RecordsOf.PropertyType.GetGenericArguments().SingleOrDefault() ?? throw Changed();
    private static readonly PropertyInfo ObserverOf = RecordType.GetProperty("Observer") ?? throw Changed();
    private static readonly PropertyInfo SubjectOf = RecordType.GetProperty("Subject") ?? throw Changed();
    private static readonly PropertyInfo StatusOf = RecordType.GetProperty("Status") ?? throw Changed();

    private static InvalidOperationException Changed() =>
        new($"Akka.Cluster no longer has {Names} as PromHa reads it: the version pinned in Directory.Packages.props changed");

    /// <summary>The observations in Akka's reachability event: Unreachable and Terminated count as unreachable.</summary>
    public static IReadOnlyList<Observation> Observations(object reachabilityChanged)
    {
        var reachability = ReachabilityOf.GetValue(reachabilityChanged);
        if (reachability is null || RecordsOf.GetValue(reachability) is not IEnumerable records) return [];
        var list = new List<Observation>();
        foreach (var r in records)
        {
            var status = StatusOf.GetValue(r)?.ToString();
            list.Add(new Observation((UniqueAddress)ObserverOf.GetValue(r)!, (UniqueAddress)SubjectOf.GetValue(r)!,
                status is "Unreachable" or "Terminated"));
        }
        return list;
    }

    private readonly Dictionary<UniqueAddress, Member> _members = new();
    private IReadOnlyList<Observation>? _observations;
    private ImmutableHashSet<UniqueAddress> _akkaUnreachable = ImmutableHashSet<UniqueAddress>.Empty;
    private ImmutableHashSet<UniqueAddress> _reported = ImmutableHashSet<UniqueAddress>.Empty;

    /// <summary>The cluster state on subscribing. Until Akka's first reachability event, Akka's own unreachable set stands.</summary>
    public void Snapshot(ClusterEvent.CurrentClusterState s)
    {
        _members.Clear();
        foreach (var m in s.Members) _members[m.UniqueAddress] = m;
        _akkaUnreachable = s.Unreachable.Select(m => m.UniqueAddress).ToImmutableHashSet();
        foreach (var m in s.Unreachable) _members.TryAdd(m.UniqueAddress, m);
    }

    /// <summary>A member event: its member's latest status (a downed observer stops counting), or its removal.</summary>
    public void Member(Member m)
    {
        if (m.Status == MemberStatus.Removed) _members.Remove(m.UniqueAddress);
        else _members[m.UniqueAddress] = m;
    }

    /// <summary>Akka's reachability event (<see cref="ChangedEvent"/>).</summary>
    public void Reachability(object reachabilityChanged) => Observe(Observations(reachabilityChanged));

    public void Observe(IReadOnlyList<Observation> observations) => _observations = observations;

    /// <summary>Whether a member's observations count: it is a member and not downed.</summary>
    private bool Live(UniqueAddress observer) =>
        _members.TryGetValue(observer, out var m) && m.Status != MemberStatus.Down;

    /// <summary>The "unreachable" observations that count: by a live observer, of a member.</summary>
    public IReadOnlyList<Observation> Counted =>
        _observations is null ? [] : _observations.Where(o => o.Unreachable && Live(o.Observer) && _members.ContainsKey(o.Subject)).ToList();

    /// <summary>
    /// Other members unreachable by at least one observer that counts. Never this node itself, as in
    /// Akka's events: another node that cannot reach it says nothing this node can act on (a
    /// singleton that counted its own node out took the lease from a master it could reach).
    /// </summary>
    public ImmutableHashSet<UniqueAddress> Unreachable =>
        (_observations is null ? _akkaUnreachable.Where(_members.ContainsKey) : Counted.Select(o => o.Subject))
        .Where(a => !a.Equals(self)).ToImmutableHashSet();

    public IReadOnlyCollection<Member> Members => _members.Values;

    /// <summary>
    /// Whether a member is cut off as the master role means it: this node cannot reach it, or so
    /// many others cannot that it is left without a majority (one observer of three is not enough:
    /// a standby whose own link flaps records the master unreachable while the rest reach it). Before
    /// Akka's first reachability event, Akka's own view.
    /// </summary>
    public bool CutOff(UniqueAddress subject)
    {
        if (_observations is null) return _akkaUnreachable.Contains(subject);
        var observers = Counted.Where(o => o.Subject.Equals(subject)).Select(o => o.Observer).ToHashSet();
        if (observers.Contains(self)) return true;
        var live = _members.Values.Count(m => m.Status is not (MemberStatus.Down or MemberStatus.Exiting));
        // the subject and those that still reach it against the rest
        return live - observers.Count <= live / 2;
    }

    /// <summary>The member with this node name (its current incarnation as far as Akka's events told), or null.</summary>
    public Member? Named(string name) => _members.Values.Where(m => MemberRoles.NodeName(m) == name).OrderBy(m => m, Akka.Cluster.Member.AgeOrdering).LastOrDefault();

    /// <summary>The members whose reachability changed since the last call (removed ones are not reported).</summary>
    public IReadOnlyList<(Member Member, bool Reachable)> Changes()
    {
        var now = Unreachable;
        var changes = now.Except(_reported).Select(a => (_members[a], false))
            .Concat(_reported.Except(now).Where(_members.ContainsKey).Select(a => (_members[a], true)))
            .ToList();
        _reported = now;
        return changes;
    }
}
