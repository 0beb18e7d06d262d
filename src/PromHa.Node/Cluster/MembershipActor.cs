using Akka.Actor;
using Akka.Cluster;
using Akka.Hosting;
using PromHa.Messages.Cluster;
using PromHa.Node.Replication;

namespace PromHa.Node.Cluster;

/// <summary>
/// Tells a configured node outside this cluster which cluster this node is in, so that a node on
/// an island (a first seed that restarted while cut off and started a cluster alone) learns it at
/// once instead of after its island guard's wait. Counts only the members this node sees Up and
/// reachable, and none while it is not Up itself, so that a side without a majority, or a node
/// still joining, never claims to be where the cluster is.
/// </summary>
public sealed class MembershipActor : ReceiveActor
{
    public const string Name = "membership";

    public MembershipActor(string self)
    {
        var cluster = Akka.Cluster.Cluster.Get(Context.System);
        Receive<GetMembership>(q =>
        {
            var state = cluster.State;
            var selfUp = cluster.SelfMember.Status == MemberStatus.Up;
            var up = selfUp ? UpReachable.Members(state).Count() : 0;
            var holds = state.Members.Any(m => LedgerMembers.Incarnation(m) == q.AskerIncarnation);
            Sender.Tell(new Membership(self, up, holds, LedgerMembers.Incarnation(cluster.SelfMember)));
        });
    }
}

public static class MembershipActorHostingExtensions
{
    public static AkkaConfigurationBuilder AddMembershipActor(this AkkaConfigurationBuilder builder, string self) =>
        builder.WithActors((system, _) => system.ActorOf(Props.Create(() => new MembershipActor(self)), MembershipActor.Name));
}
