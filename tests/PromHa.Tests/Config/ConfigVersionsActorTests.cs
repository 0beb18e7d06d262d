using Akka.Actor;
using Akka.Cluster.Tools.PublishSubscribe;
using Akka.Hosting;
using Akka.TestKit;
using Microsoft.Extensions.Time.Testing;
using PromHa.Messages.Config;
using PromHa.Messages.Ledger;
using PromHa.Node.Cluster;
using PromHa.Node.Config;
using PromHa.Node.Master;

namespace PromHa.Tests.Config;

/// <summary>
/// The config-versions singleton as NodeHost wires it (AddLedgerActor, AddConfigVersionsActor) over
/// a real cluster on 127.0.0.1, with node "a" as the TestKit's system. It keeps no journal of its
/// own: every version it numbers is on the ledgers, and that is where a new singleton learns where
/// numbering stands. No configured peer is up outside the cluster (the outsider probe has no seeds).
/// </summary>
public abstract class ConfigVersionsTestKit(string name, int configuredNodes, ITestOutputHelper output)
    : Akka.Hosting.TestKit.TestKit(name, output)
{
    protected static readonly TimeSpan Generous = TimeSpan.FromSeconds(20);
    private static readonly TimeSpan LeaseTerm = TimeSpan.FromSeconds(2);

    protected readonly FakeTimeProvider Time = new(new DateTimeOffset(2026, 12, 6, 12, 0, 0, TimeSpan.Zero));

    protected int ConfiguredNodes => configuredNodes;

    protected override void ConfigureAkka(AkkaConfigurationBuilder builder, IServiceProvider provider) =>
        ConfigSide(builder.TestNode("a"), "a");

    /// <summary>The config-versions side of one node, in NodeHost's order.</summary>
    protected AkkaConfigurationBuilder ConfigSide(AkkaConfigurationBuilder builder, string node) =>
        builder
            .AddLedgerActor(node, new NodeView(node, witness: false, Time), LeaseTerm)
            .AddConfigVersionsActor(node, configuredNodes, new OutsiderProbe([]), Time);

    protected IActorRef Versions => ActorRegistry.Get<ConfigVersionsProxyKey>();

    protected IActorRef Ledger => ActorRegistry.Get<LedgerKey>();

    /// <summary>A validated bundle, as CandidateActor submits it from node a.</summary>
    protected static SubmitCandidate Candidate(char hash) =>
        new(new string(hash, 64), 3, 1234, "api:test", "ops", "a");

    protected Task<object> Submit(SubmitCandidate c) => Versions.Ask<object>(c, TimeSpan.FromSeconds(10));

    /// <summary>Submits until the singleton numbers it (a starting singleton refuses while it reads the ledgers).</summary>
    protected async Task<CandidateCommitted> SubmitOnceReady(SubmitCandidate c)
    {
        CandidateCommitted? committed = null;
        await AwaitAssertAsync(async () =>
        {
            var answer = await Submit(c);
            committed = Assert.IsType<CandidateCommitted>(answer);
        }, Generous, TimeSpan.FromMilliseconds(300));
        return committed!;
    }

    protected Task<List<ConfigVersionCommitted>> VersionsOn(IActorRef ledger) =>
        ledger.Ask<List<ConfigVersionCommitted>>(new GetConfigVersions(10), TimeSpan.FromSeconds(10));

    protected void FormCluster()
    {
        TestCluster.Join(Sys, TestCluster.Address(Sys));
        AwaitCondition(() => TestCluster.UpMembers(Sys) == 1, Generous);
    }

    protected TestProbe ConfigTopic()
    {
        var probe = CreateTestProbe();
        DistributedPubSub.Get(Sys).Mediator.Tell(new Subscribe(ConfigTopics.Config, probe.Ref), probe.Ref);
        probe.ExpectMsg<SubscribeAck>(Generous);
        return probe;
    }
}

/// <summary>
/// On a one-node cluster: each new bundle gets the next number, is on the ledger once it is
/// acknowledged and is announced to every node; the latest bundle submitted again is not numbered again.
/// </summary>
public sealed class ConfigVersionsActorTests(ITestOutputHelper output) : ConfigVersionsTestKit(nameof(ConfigVersionsActorTests), 1, output)
{
    [Fact]
    public async Task Versions_are_numbered_in_turn_journaled_and_announced_and_the_latest_bundle_keeps_its_number()
    {
        var topic = ConfigTopic();
        FormCluster();
        // the first heartbeat: the singleton has read the ledger
        Assert.Null(topic.FishForMessage<ConfigHeartbeat>(_ => true, Generous).Latest);

        var x = Candidate('1');
        Assert.Equal(new CandidateCommitted(1, x.BundleHash, true), await Submit(x));
        Assert.Equal(new ConfigVersionAvailable(1, x.BundleHash, "a"), topic.FishForMessage<ConfigVersionAvailable>(_ => true, Generous));
        var journaled = Assert.Single(await VersionsOn(Ledger));
        Assert.Equal((1L, x.BundleHash, "ops", "a"), (journaled.Version, journaled.BundleHash, journaled.Author, journaled.Origin));

        // the same bundle again: its version, nothing new
        Assert.Equal(new CandidateCommitted(1, x.BundleHash, false), await Submit(x));
        var y = Candidate('2');
        Assert.Equal(new CandidateCommitted(2, y.BundleHash, true), await Submit(y));
        Assert.Equal([2L, 1L], (await VersionsOn(Ledger)).Select(v => v.Version));
        var status = await Versions.Ask<ConfigStatus>(GetConfigStatus.Instance, TimeSpan.FromSeconds(10));
        Assert.Equal((2L, y.BundleHash), (status.Latest?.Version, status.Latest?.BundleHash));
    }
}

/// <summary>
/// Three configured nodes: a lone member's ledger is not a majority, so the singleton numbers nothing
/// (it may not know the latest version). A version found on the second member's ledger alone may have
/// been committed with the third's: it is journaled again on a majority, and numbering goes on after it.
/// </summary>
public sealed class ConfigVersionsMajorityTests(ITestOutputHelper output) : ConfigVersionsTestKit(nameof(ConfigVersionsMajorityTests), 3, output)
{
    [Fact]
    public async Task Nothing_is_numbered_before_a_majority_of_ledgers_was_read_and_numbering_continues_after_the_newest_they_hold()
    {
        var b = await TestCluster.StartNode(Sys.Name, "b", n => ConfigSide(n, "b"));
        try
        {
            var bLedger = b.Registry().Get<LedgerKey>();
            var seven = new ConfigVersionCommitted(7, new string('7', 64), 2, 100, "api:test", "ops", "b", Time.GetUtcNow());
            bLedger.Tell(new RecordConfigVersion(seven), TestActor);
            Assert.Equal(new ConfigRecorded("b", 7), ExpectMsg<ConfigRecorded>(Generous));

            var topic = ConfigTopic();
            FormCluster();
            var x = Candidate('1');
            // asked until the proxy has found the singleton: it is up, and still refuses
            CandidateNotCommitted? refused = null;
            await AwaitAssertAsync(async () => refused = Assert.IsType<CandidateNotCommitted>(await Submit(x)), Generous, TimeSpan.FromMilliseconds(300));
            Assert.Equal(new CandidateNotCommitted(x.BundleHash, "the config singleton is still recovering; try again in a few seconds"), refused);

            TestCluster.Join(b.System(), TestCluster.Address(Sys));
            // version 7 is on a's ledger too now, a majority, and announced
            Assert.Equal(7, topic.FishForMessage<ConfigVersionAvailable>(_ => true, Generous).Version);
            Assert.Equal([seven], await VersionsOn(Ledger));

            Assert.Equal(new CandidateCommitted(8, x.BundleHash, true), await SubmitOnceReady(x));
            Assert.Equal([8L, 7L], (await VersionsOn(bLedger)).Select(v => v.Version));
        }
        finally
        {
            await b.Stop();
        }
    }
}

/// <summary>
/// A pair whose singleton moves: it starts on node b (the oldest), which leaves; the singleton that
/// starts on node a learns from a's ledger which version is the latest (a pair journals on both) and
/// numbers the next bundle after it, never a number handed out before.
/// </summary>
public sealed class ConfigVersionsHandOverTests(ITestOutputHelper output) : ConfigVersionsTestKit(nameof(ConfigVersionsHandOverTests), 2, output)
{
    [Fact]
    public async Task After_the_singleton_moves_to_another_node_numbering_continues_from_that_nodes_ledger()
    {
        var b = await TestCluster.StartNode(Sys.Name, "b", n => ConfigSide(n, "b"));
        var stopped = false;
        try
        {
            TestCluster.Join(b.System(), TestCluster.Address(b.System()));
            AwaitCondition(() => TestCluster.UpMembers(b.System()) == 1, Generous);
            TestCluster.Join(Sys, TestCluster.Address(b.System()));
            AwaitCondition(() => TestCluster.UpMembers(Sys) == 2 && TestCluster.UpMembers(b.System()) == 2, Generous);

            var x = Candidate('1');
            var y = Candidate('2');
            Assert.Equal((1L, x.BundleHash), Numbered(await SubmitOnceReady(x)));
            Assert.Equal(new CandidateCommitted(2, y.BundleHash, true), await Submit(y));
            Assert.Equal([2L, 1L], (await VersionsOn(Ledger)).Select(v => v.Version));

            await b.Stop(); // leaves the cluster: the singleton hands over to a
            stopped = true;

            // the singleton on a knows version 2 is the latest, and numbers the next bundle 3
            Assert.Equal(new CandidateCommitted(2, y.BundleHash, false), await SubmitOnceReady(y));
            var z = Candidate('3');
            Assert.Equal(new CandidateCommitted(3, z.BundleHash, true), await Submit(z));
            Assert.Equal([3L, 2L, 1L], (await VersionsOn(Ledger)).Select(v => v.Version));
        }
        finally
        {
            if (!stopped) await b.Stop();
        }
    }

    private static (long, string) Numbered(CandidateCommitted c) => (c.Version, c.BundleHash);
}
