using System.Collections.Immutable;
using Akka.Actor;
using Akka.Cluster;

namespace PromHa.Node.Cluster;

/// <summary>
/// Akka's keep-majority split-brain decision (Akka.Cluster.SBR.KeepMajority, whose types are
/// internal), taken on the observations that count (<see cref="LiveReachability"/>: not those of a
/// downed member). The pure rule of <see cref="DowningActor"/>, tested without a cluster; the actor
/// adds when to take it (the leader, once the observations stood still for stable-after).
/// </summary>
public static class Downing
{
    public sealed record Decision(string Name, ImmutableHashSet<UniqueAddress> Down);

    /// <summary>
    /// <paramref name="members"/>: every member with its status; <paramref name="unreachable"/>:
    /// the "unreachable" observations that count; <paramref name="seenBy"/>: the members that have
    /// seen the current gossip; <paramref name="self"/>: the deciding node, which is on its own side
    /// whoever cannot reach it (as in Akka). Null when nothing else is unreachable.
    /// </summary>
    public static Decision? Decide(IReadOnlyCollection<Member> members, IReadOnlyList<LiveReachability.Observation> unreachable,
        IReadOnlySet<Address> seenBy, UniqueAddress self)
    {
        var downable = members.Where(m => m.Status is not (MemberStatus.Down or MemberStatus.Exiting))
            .Select(m => m.UniqueAddress).ToImmutableHashSet();
        var subjects = unreachable.Select(o => o.Subject).Where(a => downable.Contains(a) && !a.Equals(self)).ToImmutableHashSet();
        if (subjects.IsEmpty) return null;

        // Indirectly connected, as Akka tells it: a member that both observes and is observed
        // unreachable (a cycle), or a pair whose subject still takes part in gossip. Not a clean
        // split. Akka downs every member involved; a standby whose own link flaps is involved with
        // every other member, so that took the healthy ones with it. Here the fewest members go
        // whose going leaves no such record between two that stay (CoverOf); the rest is decided on
        // the next round.
        var observers = unreachable.Select(o => o.Observer).ToImmutableHashSet();
        var indirect = observers.Intersect(unreachable.Select(o => o.Subject))
            .Union(unreachable.Where(o => seenBy.Contains(o.Subject.Address)).SelectMany(o => new[] { o.Observer, o.Subject }))
            .Intersect(downable);
        if (!indirect.IsEmpty)
            return new Decision("down the fewest indirectly connected members that leave the others connected",
                CoverOf(indirect, unreachable.Where(o => indirect.Contains(o.Observer) && indirect.Contains(o.Subject)).ToList(), members));

        bool IsUnreachable(Member m) => subjects.Contains(m.UniqueAddress);
        var reachableSide = downable.Except(subjects);
        var decision = Majority(members, countPossiblyUp: false, countLeavingHere: true, IsUnreachable);
        if (decision == Side.Unreachable)
        {
            // Akka's edge case: a member joining on the other side may be Up there, one leaving here
            // may be Exiting there; if that could turn the majority, nobody survives it alone.
            if (Majority(members, countPossiblyUp: true, countLeavingHere: false, IsUnreachable) != Side.Unreachable)
                return new Decision("down all (a membership change during the split could turn the majority)", downable);
            return new Decision("down the unreachable (this side is the majority)", subjects);
        }
        return decision == Side.Reachable
            ? new Decision("down this side (the minority)", reachableSide)
            : new Decision("down all (no member counts)", downable);
    }

    /// <summary>
    /// Members to down so that no record is left between two that stay: greedily the member in the
    /// most records; on a tie the one that observes more (it is the one that does not hear the
    /// others, who hear each other), then the youngest (a node just restarted whose connection to
    /// one peer never came up is the usual case, and the master is rarely the youngest; Akka downed
    /// both ends, the master with it), then the highest address (Akka keeps the lowest).
    /// </summary>
    private static ImmutableHashSet<UniqueAddress> CoverOf(ImmutableHashSet<UniqueAddress> candidates, List<LiveReachability.Observation> records,
        IReadOnlyCollection<Member> members)
    {
        var age = members.OrderBy(m => m, Member.AgeOrdering).Select((m, i) => (m.UniqueAddress, i)).ToDictionary(x => x.UniqueAddress, x => x.i);
        var down = ImmutableHashSet<UniqueAddress>.Empty;
        var left = records.ToList();
        while (left.Count > 0)
        {
            var next = candidates.Except(down)
                .OrderByDescending(a => left.Count(o => o.Observer.Equals(a) || o.Subject.Equals(a)))
                .ThenByDescending(a => left.Count(o => o.Observer.Equals(a)))
                .ThenByDescending(a => age.GetValueOrDefault(a, int.MaxValue))
                .ThenByDescending(a => a)
                .First();
            down = down.Add(next);
            left.RemoveAll(o => o.Observer.Equals(next) || o.Subject.Equals(next));
        }
        // a member marked by the "seen" rule alone, in no record among the candidates: Akka downs it; one is enough
        return down.IsEmpty ? ImmutableHashSet.Create(candidates.OrderByDescending(a => age.GetValueOrDefault(a, int.MaxValue)).ThenByDescending(a => a).First()) : down;
    }

    private enum Side { Unreachable, Reachable, All }

    /// <summary>Which side goes: the smaller; on a tie the one without the lowest address.</summary>
    private static Side Majority(IReadOnlyCollection<Member> members, bool countPossiblyUp, bool countLeavingHere, Func<Member, bool> unreachable)
    {
        var counted = members.Where(m => m.Status switch
        {
            MemberStatus.Up => true,
            MemberStatus.Leaving => countLeavingHere || unreachable(m),
            MemberStatus.Joining or MemberStatus.WeaklyUp => countPossiblyUp && unreachable(m),
            _ => false,
        }).OrderBy(m => m).ToList();
        if (counted.Count == 0) return Side.All;
        var otherSide = counted.Count(unreachable);
        var thisSide = counted.Count - otherSide;
        if (thisSide == otherSide) return unreachable(counted[0]) ? Side.Reachable : Side.Unreachable;
        return thisSide > otherSide ? Side.Unreachable : Side.Reachable;
    }
}
