using Akka.Actor;
using Akka.Cluster.Tools.PublishSubscribe;
using Akka.Hosting;
using Akka.TestKit;
using Microsoft.Extensions.Time.Testing;
using PromHa.Messages.Health;
using PromHa.Messages.Ledger;
using PromHa.Messages.Roles;
using PromHa.Node.Cluster;
using PromHa.Node.Master;

namespace PromHa.Tests.Master;

/// <summary>
/// The master side of a node as NodeHost wires it: its ledger, the master singleton and its role
/// actor (AddLedgerActor, AddMasterActor, AddRoleActor), over a real cluster on 127.0.0.1. Node "a"
/// is the TestKit's system and the oldest member, so the singleton runs there; the nodes' clock is
/// faked and moves by Advance (the singleton's timers still pace it in real time). No configured
/// peer is up outside the cluster (the outsider probe has no seeds).
/// </summary>
public abstract class MasterSingletonTestKit(string name, int configuredNodes, ITestOutputHelper output)
    : Akka.Hosting.TestKit.TestKit(name, output)
{
    protected static readonly TimeSpan Lease = TimeSpan.FromSeconds(2);
    protected static readonly TimeSpan Margin = TimeSpan.FromMilliseconds(300);
    protected static readonly TimeSpan Generous = TimeSpan.FromSeconds(20);

    protected readonly FakeTimeProvider Time = new(new DateTimeOffset(2026, 12, 6, 12, 0, 0, TimeSpan.Zero));

    private NodeView? _view;

    /// <summary>Node a's view: what its role actor holds.</summary>
    protected NodeView View => _view ??= new NodeView("a", witness: false, Time);

    protected MasterTimings Timings =>
        new(Lease, Margin, UnhealthyAfter: TimeSpan.FromSeconds(3), HealthStaleAfter: TimeSpan.FromSeconds(5), configuredNodes);

    protected override void ConfigureAkka(AkkaConfigurationBuilder builder, IServiceProvider provider) =>
        MasterSide(builder.TestNode("a"), "a", View, Timings);

    /// <summary>The master side of one node, in NodeHost's order.</summary>
    protected static AkkaConfigurationBuilder MasterSide(AkkaConfigurationBuilder builder, string node, NodeView view, MasterTimings timings) =>
        builder
            .AddLedgerActor(node, view, timings.LeaseDuration)
            .AddMasterActor(node, timings, new OutsiderProbe([]), new PeerDeaths(), view.Time)
            .AddRoleActor(node, view, timings.LeaseDuration, timings.ConfiguredNodes);

    protected IActorRef Master => ActorRegistry.Get<MasterProxyKey>();

    protected IActorRef Ledger => ActorRegistry.Get<LedgerKey>();

    /// <summary>Node a forms the cluster alone (the oldest member, where the singletons run).</summary>
    protected void FormCluster()
    {
        TestCluster.Join(Sys, TestCluster.Address(Sys));
        AwaitCondition(() => TestCluster.UpMembers(Sys) == 1, Generous);
    }

    /// <summary>Another node joins node a's cluster; returns once both see each other Up.</summary>
    protected void JoinToA(ActorSystem other)
    {
        TestCluster.Join(other, TestCluster.Address(Sys));
        AwaitCondition(() => TestCluster.UpMembers(Sys) == 2 && TestCluster.UpMembers(other) == 2, Generous);
    }

    /// <summary>A probe on the roles topic: what every node's role actor and ledger hear.</summary>
    protected TestProbe RolesTopic()
    {
        var probe = CreateTestProbe();
        DistributedPubSub.Get(Sys).Mediator.Tell(new Subscribe(Topics.Roles, probe.Ref), probe.Ref);
        probe.ExpectMsg<SubscribeAck>(Generous);
        return probe;
    }

    protected static MasterChanged NextChange(TestProbe roles) => roles.FishForMessage<MasterChanged>(_ => true, Generous);

    /// <summary>No role change is announced for <paramref name="window"/> (the singleton decides on a 500 ms tick).</summary>
    protected static void NoChangeFor(TestProbe roles, TimeSpan window)
    {
        var seen = roles.ReceiveWhile(window, o => o);
        Assert.DoesNotContain(seen, o => o is MasterChanged);
    }

    /// <summary>What a node's health probe reports after every probe: Prometheus and Alertmanager answer.</summary>
    protected void Healthy(string node) =>
        Master.Tell(new NodeHealth(node, false, true, true, true, "ok", Time.GetUtcNow()));

    protected Task<MasterStatus> Status() => Master.Ask<MasterStatus>(GetMasterStatus.Instance, TimeSpan.FromSeconds(10));

    protected async Task<MasterStatus> AwaitStatus(Func<MasterStatus, bool> until)
    {
        MasterStatus? last = null;
        await AwaitAssertAsync(async () => Assert.True(until(last = await Status()), $"status: {last}"), Generous, TimeSpan.FromMilliseconds(200));
        return last!;
    }

    protected Task<SwitchoverResult> Switchover(string? to) =>
        Master.Ask<SwitchoverResult>(new RequestSwitchover(to), TimeSpan.FromSeconds(10));
}

/// <summary>
/// The master singleton on a one-node cluster: it reads the ledger before it decides, names a master
/// only after its formation grace, journals and announces the change, renews the lease of
/// the current epoch's master alone, and takes over from a journaled master that is gone only once
/// that master's lease has run out, under the next epoch.
/// </summary>
public sealed class MasterActorTests(ITestOutputHelper output) : MasterSingletonTestKit(nameof(MasterActorTests), 1, output)
{
    /// <summary>Up to a's first term as master: its ledger was read, its health reported, the grace passed.</summary>
    private async Task<MasterChanged> BecomeMaster(TestProbe roles)
    {
        FormCluster();
        var recovered = await AwaitStatus(s => s.Recovered);
        Assert.Equal((0L, (string?)null), (recovered.Epoch, recovered.Master));
        Time.Advance(MasterState.FormationGrace);
        Healthy("a");
        return NextChange(roles);
    }

    [Fact]
    public async Task A_lone_node_is_named_master_after_the_formation_grace_journaled_announced_and_given_the_lease()
    {
        var roles = RolesTopic();
        FormCluster();
        var recovered = await AwaitStatus(s => s.Recovered);
        Assert.Equal((0L, (string?)null), (recovered.Epoch, recovered.Master));

        // healthy, but the singleton has just started: others may not have reported yet, so it does not pick its own node
        Healthy("a");
        NoChangeFor(roles, TimeSpan.FromSeconds(1));
        Assert.Null((await Status()).Master);

        Time.Advance(MasterState.FormationGrace);
        Healthy("a");
        var change = NextChange(roles);
        Assert.Equal((1L, "a", "no-master", (string?)null, TestCluster.Incarnation(Sys)),
            (change.Epoch, change.Node, change.Reason, change.Previous, change.Incarnation));

        // on the ledger as announced
        var history = await Ledger.Ask<List<MasterChanged>>(new GetHistory(10), TimeSpan.FromSeconds(10));
        Assert.Equal([change], history);
        // the role actor took the role and holds the lease the singleton granted it
        AwaitAssert(() => Assert.True(View.IsMaster), Generous);
        Assert.Equal((1L, "a"), (View.Current.Epoch, View.Current.Master));
        var status = await Status();
        Assert.Equal((1L, "a", true), (status.Epoch, status.Master, status.Recovered));
        Assert.NotNull(status.LeaseExpiresAt);
        Assert.Contains(status.Nodes, n => n is { Node: "a", PrometheusHealthy: true, Reachable: true });
    }

    [Fact]
    public async Task Only_the_master_of_the_current_epoch_has_its_lease_renewed()
    {
        var roles = RolesTopic();
        var change = await BecomeMaster(roles);
        Assert.Equal((1L, "a"), (change.Epoch, change.Node));

        Master.Tell(new RenewLease(1, "a", 101));
        Assert.Equal(new LeaseGranted(1, "a", 101, (long)Lease.TotalMilliseconds), ExpectMsg<LeaseGranted>(Generous));
        // a master of an older reign steps down: binding
        Master.Tell(new RenewLease(0, "a", 102));
        Assert.Equal(new LeaseDenied(0, "a", "stale epoch 0, current is 1", Binding: true), ExpectMsg<LeaseDenied>(Generous));
        Master.Tell(new RenewLease(1, "b", 103));
        Assert.Equal(new LeaseDenied(1, "b", "b is not the master of epoch 1", Binding: true), ExpectMsg<LeaseDenied>(Generous));
    }

    [Fact]
    public async Task A_singleton_continues_from_the_epoch_on_the_ledger_and_names_a_new_master_only_once_the_old_lease_ran_out()
    {
        // the ledger holds epoch 5: "gone" was made master by an earlier singleton and is no member now
        var gone = new MasterChanged(5, "gone", "switchover", Time.GetUtcNow(), "a", "akka.tcp://MasterActorTests@127.0.0.1:9#1");
        Ledger.Tell(new RecordMasterChanged(gone));
        Assert.Equal(5, ExpectMsg<Recorded>(Generous).Epoch);

        var roles = RolesTopic();
        FormCluster();
        var recovered = await AwaitStatus(s => s.Recovered);
        Assert.Equal((5L, "gone"), (recovered.Epoch, recovered.Master));

        // "gone" may still hold the lease its singleton granted: a full term is assumed from recovery
        Healthy("a");
        NoChangeFor(roles, TimeSpan.FromSeconds(1));
        Assert.Equal(5, (await Status()).Epoch);

        Time.Advance(Lease + Margin + TimeSpan.FromMilliseconds(100));
        var change = NextChange(roles);
        Assert.Equal((6L, "a", "master-left", "gone"), (change.Epoch, change.Node, change.Reason, change.Previous));
        var history = await Ledger.Ask<List<MasterChanged>>(new GetHistory(10), TimeSpan.FromSeconds(10));
        Assert.Equal([6L, 5L], history.Select(h => h.Epoch));
    }
}

/// <summary>
/// A switchover on a pair, node b in a host of its own with the same wiring: refused for a node that
/// is not a member or is master already; accepted for a healthy standby, which becomes master under
/// the next epoch only after the old master gave its lease back (never two masters), journaled on
/// both ledgers.
/// </summary>
public sealed class MasterActorPairTests(ITestOutputHelper output) : MasterSingletonTestKit(nameof(MasterActorPairTests), 2, output)
{
    [Fact]
    public async Task A_switchover_to_a_healthy_standby_moves_the_role_under_the_next_epoch_once_the_old_master_let_go()
    {
        var roles = RolesTopic();
        FormCluster();
        var bView = new NodeView("b", witness: false, Time);
        var b = await TestCluster.StartNode(Sys.Name, "b", n => MasterSide(n, "b", bView, Timings));
        try
        {
            JoinToA(b.System());
            // both healthy: the singleton, on a, prefers a master away from its own node
            Healthy("a");
            Healthy("b");
            var first = NextChange(roles);
            Assert.Equal((1L, "b"), (first.Epoch, first.Node));
            AwaitAssert(() => Assert.True(bView.IsMaster), Generous);

            Assert.Equal(new SwitchoverResult(false, "unknown node 'nowhere'"), await Switchover("nowhere"));
            Assert.Equal(new SwitchoverResult(false, "b is already the master"), await Switchover("b"));

            Assert.Equal(new SwitchoverResult(true, "switching over from b to a"), await Switchover("a"));
            var second = NextChange(roles);
            // b had given its lease back before a was named
            Assert.False(bView.IsMaster);
            Assert.Equal((2L, "a", "switchover", "b"), (second.Epoch, second.Node, second.Reason, second.Previous));
            AwaitAssert(() => Assert.True(View.IsMaster), Generous);
            Assert.False(bView.IsMaster);

            // a pair journals on both ledgers
            var bHead = await b.Registry().Get<LedgerKey>().Ask<LedgerHead>(GetLedgerHead.Instance, TimeSpan.FromSeconds(10));
            Assert.Equal((2L, "a"), (bHead.Epoch, bHead.Last?.Node));
        }
        finally
        {
            await b.Stop();
        }
    }
}

/// <summary>
/// Three configured nodes: a lone member's own ledger is not a majority, so its singleton names no
/// master and answers no lease renewal (it may not know the latest epoch). Once a second member's
/// ledger is read, an epoch found there is journaled again on a majority and announced, and the next
/// decision takes the number after it: epochs only grow.
/// </summary>
public sealed class MasterActorMajorityTests(ITestOutputHelper output) : MasterSingletonTestKit(nameof(MasterActorMajorityTests), 3, output)
{
    [Fact]
    public async Task A_lone_node_of_three_decides_nothing_until_a_majority_of_ledgers_was_read_and_then_continues_from_the_latest_epoch()
    {
        var bView = new NodeView("b", witness: false, Time);
        var b = await TestCluster.StartNode(Sys.Name, "b", n => MasterSide(n, "b", bView, Timings));
        try
        {
            // b's ledger holds epoch 4, b's own reign, which node a (a wiped data dir, say) has never heard of
            var reign = new MasterChanged(4, "b", "master-left", Time.GetUtcNow(), "c", TestCluster.Incarnation(b.System()));
            b.Registry().Get<LedgerKey>().Tell(new RecordMasterChanged(reign), TestActor);
            Assert.Equal(4, ExpectMsg<Recorded>(Generous).Epoch);

            var roles = RolesTopic();
            FormCluster();
            var recovered = await AwaitStatus(s => s.Recovered);
            Assert.Equal((0L, (string?)null), (recovered.Epoch, recovered.Master));
            Time.Advance(MasterState.FormationGrace);
            Healthy("a");
            // a renewal gets no answer at all (a grant or a refusal would both be a guess), and no master is named
            Master.Tell(new RenewLease(0, "a", 1));
            NoChangeFor(roles, TimeSpan.FromSeconds(1));
            ExpectNoMsg(TimeSpan.Zero);

            JoinToA(b.System());
            var learned = NextChange(roles);
            Assert.Equal(reign, learned);
            // now on a majority: a's ledger and b's
            var history = await Ledger.Ask<List<MasterChanged>>(new GetHistory(10), TimeSpan.FromSeconds(10));
            Assert.Equal([reign], history);
            AwaitAssert(() => Assert.True(bView.IsMaster), Generous);

            // the next decision numbers after it
            Healthy("a");
            Healthy("b");
            Assert.True((await Switchover("a")).Accepted);
            var next = NextChange(roles);
            Assert.Equal((5L, "a", "b"), (next.Epoch, next.Node, next.Previous));
            Assert.False(bView.IsMaster);
            var bHead = await b.Registry().Get<LedgerKey>().Ask<LedgerHead>(GetLedgerHead.Instance, TimeSpan.FromSeconds(10));
            Assert.Equal(5, bHead.Epoch);
        }
        finally
        {
            await b.Stop();
        }
    }
}
