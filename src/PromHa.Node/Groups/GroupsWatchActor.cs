using Akka.Actor;
using Akka.Cluster.Tools.PublishSubscribe;
using Akka.Hosting;
using PromHa.Messages.Roles;

namespace PromHa.Node.Groups;

/// <summary>
/// Listens to every group's role topic, so that this node knows each group's master (and its
/// servers' URLs) from that group's singleton heartbeat, whichever group the node itself is in.
/// </summary>
public sealed class GroupsWatchActor : ReceiveActor
{
    public const string Name = "groups-watch";

    public GroupsWatchActor(GroupsView view)
    {
        var mediator = DistributedPubSub.Get(Context.System).Mediator;
        foreach (var g in view.Groups)
        {
            // one child per group: the topic a message came on is who sent it
            var group = g;
            var child = Context.ActorOf(Props.Create(() => new Listener(group.Name, view)), "g-" + group.Name);
            mediator.Tell(new Subscribe(group.RolesTopic, child));
        }
    }

    private sealed class Listener : ReceiveActor
    {
        public Listener(string group, GroupsView view)
        {
            Receive<MasterStatus>(s => view.Hear(group, s));
            Receive<SubscribeAck>(_ => { });
            ReceiveAny(_ => { }); // role changes: the next status carries them
        }
    }
}

public static class GroupsWatchActorHostingExtensions
{
    public static AkkaConfigurationBuilder AddGroupsWatchActor(this AkkaConfigurationBuilder builder, GroupsView view) =>
        builder.WithActors((system, _) => system.ActorOf(Props.Create(() => new GroupsWatchActor(view)), GroupsWatchActor.Name));
}
