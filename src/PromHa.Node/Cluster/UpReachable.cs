using Akka.Cluster;

namespace PromHa.Node.Cluster;

/// <summary>
/// The members a side of a partition counts as present: Up, and reachable from here. The island
/// rule compares one cluster's count (<see cref="MembershipActor"/>, asked from outside) with the
/// asker's own (the master singleton's), so both count alike.
/// </summary>
public static class UpReachable
{
    public static IEnumerable<Member> Members(ClusterEvent.CurrentClusterState state) =>
        state.Members.Where(m => m.Status == MemberStatus.Up && !state.Unreachable.Contains(m));
}
