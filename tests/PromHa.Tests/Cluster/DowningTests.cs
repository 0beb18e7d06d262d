using System.Collections.Immutable;
using System.Reflection;
using Akka.Actor;
using Akka.Cluster;
using Akka.Util;
using CsCheck;
using PromHa.Node.Cluster;

namespace PromHa.Tests.Cluster;

/// <summary>
/// The split-brain decision on the observations that count: Akka's keep-majority outcomes for clean
/// splits, and none of the flapping link's wrong ones (a downed member's record of a healthy node).
/// Members and Akka's reachability event are built through Akka's own (internal) types.
/// </summary>
public class DowningTests
{
    private static UniqueAddress Node(int i) => new(new Address("akka.tcp", "promha", "10.0.0." + i, 4053), i);

    private static readonly MethodInfo CreateMember = typeof(Member).GetMethods(BindingFlags.NonPublic | BindingFlags.Static)
        .Single(m => m.Name == "Create" && m.GetParameters().Length == 5);

    private static Member M(int i, MemberStatus status = MemberStatus.Up, int? upNumber = null) =>
        (Member)CreateMember.Invoke(null, [Node(i), upNumber ?? i, status, ImmutableHashSet<string>.Empty, AppVersion.Zero])!;

    private static LiveReachability.Observation Lost(int observer, int subject) => new(Node(observer), Node(subject), true);

    private static ImmutableHashSet<UniqueAddress> Nodes(params int[] i) => i.Select(Node).ToImmutableHashSet();

    private static IReadOnlySet<Address> Seen(params int[] i) => i.Select(n => Node(n).Address).ToHashSet();

    [Fact]
    public void The_majority_downs_a_node_cut_off_cleanly_and_the_cut_node_downs_itself()
    {
        Member[] three = [M(1), M(2), M(3)];
        var majority = Downing.Decide(three, [Lost(1, 3), Lost(2, 3)], Seen(1, 2), Node(1));
        Assert.Equal(Nodes(3), majority!.Down);
        var minority = Downing.Decide(three, [Lost(3, 1), Lost(3, 2)], Seen(3), Node(3));
        Assert.Equal(Nodes(3), minority!.Down);
        Assert.Null(Downing.Decide(three, [], Seen(1, 2, 3), Node(1)));
        // the others not reaching this node is nothing this node decides on (Akka: self is never unreachable to itself)
        Assert.Null(Downing.Decide(three, [Lost(2, 1), Lost(3, 1)], Seen(2, 3), Node(1)));
    }

    [Fact]
    public void An_even_split_keeps_the_side_with_the_lowest_address_seen_from_either_side()
    {
        Member[] four = [M(1), M(2), M(3), M(4)];
        Assert.Equal(Nodes(3, 4), Downing.Decide(four, [Lost(1, 3), Lost(1, 4), Lost(2, 3), Lost(2, 4)], Seen(1, 2), Node(1))!.Down);
        Assert.Equal(Nodes(3, 4), Downing.Decide(four, [Lost(3, 1), Lost(3, 2), Lost(4, 1), Lost(4, 2)], Seen(3, 4), Node(3))!.Down);
    }

    [Fact]
    public void A_broken_link_between_two_members_that_both_gossip_downs_one_end_and_keeps_the_others()
    {
        Member[] three = [M(1), M(2), M(3)];
        // both ways: the youngest goes (Akka downs both): here the highest up number
        Assert.Equal(Nodes(3), Downing.Decide(three, [Lost(2, 3), Lost(3, 2)], Seen(1, 2, 3), Node(1))!.Down);
        // a node restarted (a new incarnation, up last) whose connection to the master never came up: it goes, not the master
        Member[] restarted = [M(1, MemberStatus.Up, upNumber: 9), M(2), M(3)];
        Assert.Equal(Nodes(1), Downing.Decide(restarted, [Lost(1, 2), Lost(2, 1)], Seen(1, 2, 3), Node(3))!.Down);
        // one way: the one that does not hear the other goes
        Assert.Equal(Nodes(2), Downing.Decide(three, [Lost(2, 3)], Seen(1, 2, 3), Node(1))!.Down);
    }

    /// <summary>
    /// A standby whose own link flaps, caught in a heal: it and the others each record the other
    /// side unreachable while gossip gets through. Akka's resolver downed all three (or the witness
    /// with it); only the standby goes.
    /// </summary>
    [Fact]
    public void A_flapping_standby_caught_in_a_heal_goes_alone()
    {
        Member[] three = [M(1), M(2), M(3)];
        var d = Downing.Decide(three, [Lost(1, 2), Lost(3, 2), Lost(2, 1), Lost(2, 3)], Seen(1, 2, 3), Node(1));
        Assert.Equal(Nodes(2), d!.Down);
    }

    [Fact]
    public void A_member_joining_on_the_other_side_that_could_turn_the_majority_downs_all_as_Akka_does()
    {
        // 2 Up here, 1 Up and 2 joining unreachable: this side is the majority only if the joiners stay joining
        Member[] members = [M(1), M(2), M(3), M(4, MemberStatus.Joining), M(5, MemberStatus.Joining)];
        var d = Downing.Decide(members, [Lost(1, 3), Lost(1, 4), Lost(1, 5), Lost(2, 3), Lost(2, 4), Lost(2, 5)], Seen(1, 2), Node(1));
        Assert.Equal(Nodes(1, 2, 3, 4, 5), d!.Down);
    }

    /// <summary>
    /// What a standby's flapping link left behind: the standby downed (and gone), its last record
    /// says the master is unreachable. Akka's own resolver took the master for indirectly connected
    /// and downed it; here the record does not count, and nothing is unreachable.
    /// </summary>
    [Fact]
    public void A_downed_members_record_of_a_healthy_node_counts_for_nothing()
    {
        var live = new LiveReachability(Node(1));
        foreach (var m in new[] { M(1), M(2, MemberStatus.Down), M(3) }) live.Member(m);
        live.Observe([Lost(2, 3)]);
        Assert.Empty(live.Counted);
        Assert.Empty(live.Unreachable);
        Assert.Null(Downing.Decide(live.Members, live.Counted, Seen(1, 3), Node(1)));
        // while node 2 was Up the same record counted
        live.Member(M(2));
        Assert.Equal(Nodes(3), live.Unreachable);
        // and of this node itself, nothing counts here
        live.Observe([Lost(2, 1)]);
        Assert.Empty(live.Unreachable);
    }

    [Fact]
    public void Changes_report_each_member_once_and_a_removed_member_not_at_all()
    {
        var live = new LiveReachability(Node(1));
        foreach (var m in new[] { M(1), M(2), M(3) }) live.Member(m);
        live.Observe([Lost(1, 3), Lost(2, 3)]);
        Assert.Equal([(M(3).UniqueAddress, false)], live.Changes().Select(c => (c.Member.UniqueAddress, c.Reachable)));
        Assert.Empty(live.Changes());
        live.Observe([Lost(2, 3)]); // one observer still cannot reach it
        Assert.Empty(live.Changes());
        live.Observe([]);
        Assert.Equal([(M(3).UniqueAddress, true)], live.Changes().Select(c => (c.Member.UniqueAddress, c.Reachable)));
        live.Observe([Lost(1, 3)]);
        live.Changes();
        live.Member(M(3, MemberStatus.Removed));
        Assert.Empty(live.Changes());
    }

    /// <summary>
    /// The master is cut off, for the role, when this node (the singleton's) cannot reach it or it is
    /// left without a majority; a flapping standby's record alone is neither.
    /// </summary>
    [Fact]
    public void A_member_is_cut_off_when_this_node_or_a_majority_cannot_reach_it()
    {
        var live = new LiveReachability(Node(1));
        foreach (var m in new[] { M(1), M(2), M(3) }) live.Member(m);
        live.Observe([Lost(2, 3)]);
        Assert.False(live.CutOff(Node(3)));
        Assert.Equal(Nodes(3), live.Unreachable); // still not asked while someone cannot reach it
        live.Observe([Lost(1, 3)]);
        Assert.True(live.CutOff(Node(3)));
        live.Observe([Lost(2, 3), Lost(2, 1)]);
        Assert.False(live.CutOff(Node(3)));
        // five members: two others cannot reach it, three (it included) still hold a majority
        var five = new LiveReachability(Node(1));
        foreach (var m in new[] { M(1), M(2), M(3), M(4), M(5) }) five.Member(m);
        five.Observe([Lost(2, 5), Lost(3, 5)]);
        Assert.False(five.CutOff(Node(5)));
        five.Observe([Lost(2, 5), Lost(3, 5), Lost(4, 5)]);
        Assert.True(five.CutOff(Node(5)));
        // a pair: the other node's record is enough
        var pair = new LiveReachability(Node(2));
        foreach (var m in new[] { M(1), M(2) }) pair.Member(m);
        pair.Observe([Lost(2, 1)]);
        Assert.True(pair.CutOff(Node(1)));
    }

    /// <summary>Akka's own event, built through its internal types: the reflection PromHa reads it with still fits this Akka.</summary>
    [Fact]
    public void Akkas_reachability_event_is_read_with_its_observations()
    {
        var reachabilityType = LiveReachability.ChangedEvent.GetProperty("Reachability")!.PropertyType;
        var empty = reachabilityType.GetField("Empty", BindingFlags.Public | BindingFlags.Static)!.GetValue(null)!;
        var unreachable = reachabilityType.GetMethod("Unreachable", [typeof(UniqueAddress), typeof(UniqueAddress)])!;
        var reachable = reachabilityType.GetMethod("Reachable", [typeof(UniqueAddress), typeof(UniqueAddress)])!;
        var r = unreachable.Invoke(empty, [Node(1), Node(3)])!;
        r = unreachable.Invoke(r, [Node(2), Node(3)])!;
        r = reachable.Invoke(r, [Node(2), Node(3)])!;
        var evt = Activator.CreateInstance(LiveReachability.ChangedEvent, r)!;
        var observations = LiveReachability.Observations(evt);
        Assert.Contains(new LiveReachability.Observation(Node(1), Node(3), true), observations);
        Assert.DoesNotContain(observations, o => o.Observer.Equals(Node(2)) && o.Unreachable);
    }

    /// <summary>
    /// Any clean split of Up members into two sides, each seeing the other unreachable: the two
    /// sides' decisions never leave both running, and never down both when one is larger.
    /// </summary>
    [Fact]
    public void In_a_clean_split_exactly_one_side_survives() =>
        Gen.Select(Gen.Int[1, 6], Gen.Int[1, 6]).Sample((a, b) =>
        {
            var members = Enumerable.Range(1, a + b).Select(i => M(i)).ToArray();
            var sideA = Enumerable.Range(1, a).ToArray();
            var sideB = Enumerable.Range(a + 1, b).ToArray();
            ImmutableHashSet<UniqueAddress> Decide(int[] mine, int[] theirs) =>
                Downing.Decide(members, mine.SelectMany(o => theirs.Select(s => Lost(o, s))).ToList(), Seen(mine), Node(mine[0]))!.Down;
            var downed = Decide(sideA, sideB).Union(Decide(sideB, sideA));
            var survivors = members.Select(m => m.UniqueAddress).Except(downed).ToList();
            Assert.True(survivors.All(Nodes(sideA).Contains) || survivors.All(Nodes(sideB).Contains));
            Assert.NotEmpty(survivors);
            if (a != b) Assert.Equal(a > b ? Nodes(sideA) : Nodes(sideB), survivors.ToImmutableHashSet());
        });
}
