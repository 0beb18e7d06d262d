using Akka.Actor;
using Akka.Cluster.Hosting;
using Akka.Configuration;
using Akka.Hosting;
using Akka.Persistence.Hosting;
using Akka.Remote.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using PromHa.Node.Cluster;
using PromHa.Node.Replication;

namespace PromHa.Tests;

/// <summary>
/// Cluster nodes for the singleton tests. Every node runs what production puts under its actors:
/// remoting on 127.0.0.1, a cluster member named by its role (MemberRoles, as NodeHost sets it),
/// pub-sub, the production wire format (hocon/serialization.hocon) and the singleton timings of
/// hocon/cluster.hocon, on in-memory persistence. Further nodes are Akka.Hosting hosts of their own
/// that join the TestKit's system, so each is wired by the same Add...Actor calls.
/// </summary>
internal static class TestCluster
{
    private static readonly Akka.Configuration.Config Hocon = ConfigurationFactory.ParseString(
        File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "hocon", "serialization.hocon")) + """

        akka.cluster.singleton.hand-over-retry-interval = 500ms
        akka.cluster.singleton-proxy.singleton-identification-interval = 500ms
        akka.coordinated-shutdown.exit-clr = off
        """);

    /// <summary>What every test node runs below PromHa's actors; <paramref name="name"/> is its node name.</summary>
    public static AkkaConfigurationBuilder TestNode(this AkkaConfigurationBuilder builder, string name) =>
        builder
            .AddHocon(Hocon, HoconAddMode.Prepend)
            .WithRemoting("127.0.0.1", 0)
            .WithClustering(new ClusterOptions { Roles = MemberRoles.For(name, witness: false) })
            .WithDistributedPubSub(role: null!)
            .WithInMemoryJournal()
            .WithInMemorySnapshotStore();

    /// <summary>Another node in a host of its own, named <paramref name="name"/>, in an actor system called <paramref name="systemName"/> (the TestKit's, to join it).</summary>
    public static async Task<IHost> StartNode(string systemName, string name, Action<AkkaConfigurationBuilder> actors)
    {
        var host = new HostBuilder()
            .ConfigureServices(s => s.AddAkka(systemName, (b, _) =>
            {
                b.TestNode(name);
                actors(b);
            }))
            .Build();
        await host.StartAsync();
        return host;
    }

    public static ActorSystem System(this IHost host) => host.Services.GetRequiredService<ActorSystem>();

    public static ActorRegistry Registry(this IHost host) => ActorRegistry.For(host.System());

    /// <summary>Stops the node the way a service stop does (coordinated shutdown: it leaves the cluster).</summary>
    public static async Task Stop(this IHost host)
    {
        try { await host.StopAsync(TimeSpan.FromSeconds(20)); }
        finally { host.Dispose(); }
    }

    /// <summary>The system joins the cluster at <paramref name="seed"/> (itself for the first node).</summary>
    public static void Join(ActorSystem system, Address seed) => Akka.Cluster.Cluster.Get(system).Join(seed);

    public static Address Address(ActorSystem system) => Akka.Cluster.Cluster.Get(system).SelfAddress;

    /// <summary>How many members <paramref name="system"/> sees Up.</summary>
    public static int UpMembers(ActorSystem system) =>
        Akka.Cluster.Cluster.Get(system).State.Members.Count(m => m.Status == Akka.Cluster.MemberStatus.Up);

    /// <summary>Address and UID as the singletons and ledgers name a process (LedgerMembers.Incarnation).</summary>
    public static string Incarnation(ActorSystem system) => LedgerMembers.Incarnation(Akka.Cluster.Cluster.Get(system).SelfMember);
}
