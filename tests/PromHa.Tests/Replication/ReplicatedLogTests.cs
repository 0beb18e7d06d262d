using Akka.Actor;
using Akka.Cluster.Hosting;
using Akka.Configuration;
using Akka.Hosting;
using Akka.Remote.Hosting;
using PromHa.Node.Replication;

namespace PromHa.Tests.Replication;

/// <summary>
/// The append every singleton decision goes through, across three actor systems that talk over
/// remoting on 127.0.0.1 as cluster nodes do: the entry counts on a majority of ledgers that hold
/// this very entry, the append stops counting at a majority, a silent member bounds it, a pair
/// waits for both, and a discard reaches every ledger. The ledgers are fakes that answer as told.
/// </summary>
public sealed class ReplicatedLogTests(ITestOutputHelper output) : Akka.Hosting.TestKit.TestKit(nameof(ReplicatedLogTests), output)
{
    private const string Keeper = "fake-ledger";

    public sealed record Rec(int N);
    public sealed record Ack(int N);
    public sealed record Drop(int N, string Why);

    private static readonly LogSpec<int, Ack> Spec = new(n => new Rec(n), (ack, n) => ack.N == n, (n, why) => new Drop(n, why), Keeper);

    /// <summary>How a fake ledger answers a record: with what it holds under that number, or not at all.</summary>
    private enum Answer { Holds, HoldsAnother, Silent }

    private sealed class FakeLedger : ReceiveActor
    {
        public FakeLedger(Answer answer, IActorRef observer)
        {
            Receive<Rec>(r =>
            {
                observer.Tell(r);
                if (answer == Answer.Holds) Sender.Tell(new Ack(r.N));
                else if (answer == Answer.HoldsAnother) Sender.Tell(new Ack(r.N + 100));
            });
            Receive<Drop>(d => observer.Tell(d));
        }
    }

    protected override void ConfigureAkka(AkkaConfigurationBuilder builder, IServiceProvider provider) =>
        builder.WithRemoting("127.0.0.1", 0).WithClustering();

    private static readonly Akka.Configuration.Config OtherNode = ConfigurationFactory.ParseString("""
        akka.actor.provider = cluster
        akka.remote.dot-netty.tcp.hostname = 127.0.0.1
        akka.remote.dot-netty.tcp.port = 0
        akka.loglevel = WARNING
        """);

    /// <summary>This node's ledger and two other nodes', each answering as given; the probe sees what each ledger got.</summary>
    private async Task Run(Answer local, Answer b, Answer c, Func<Func<int, ReplicatedLog<int, Ack>>, IActorRef, Task> body)
    {
        var others = new[] { ActorSystem.Create("node-b", OtherNode), ActorSystem.Create("node-c", OtherNode) };
        try
        {
            var probe = TestActor; // sees what each ledger got
            var own = Sys.ActorOf(Props.Create(() => new FakeLedger(local, probe)), Keeper);
            others[0].ActorOf(Props.Create(() => new FakeLedger(b, probe)), Keeper);
            others[1].ActorOf(Props.Create(() => new FakeLedger(c, probe)), Keeper);
            var members = new[] { Akka.Cluster.Cluster.Get(Sys).SelfAddress }
                .Concat(others.Select(s => Akka.Cluster.Cluster.Get(s).SelfAddress)).ToList();
            ReplicatedLog<int, Ack> Log(int clusterSize) =>
                new(Spec, Sys, () => own, () => members.Take(Math.Max(clusterSize, 2)).ToList(), () => clusterSize);
            await body(Log, probe);
        }
        finally
        {
            await Task.WhenAll(others.Select(s => s.Terminate()));
        }
    }

    [Fact]
    public Task Three_ledgers_that_hold_the_entry_commit_it_on_a_majority_and_the_append_stops_counting_there() =>
        Run(Answer.Holds, Answer.Holds, Answer.Holds, async (log, _) =>
        {
            var heldLocally = new TaskCompletionSource();
            var r = await log(3).Append(7, () => heldLocally.TrySetResult());
            Assert.Equal(3, r.Asked);
            Assert.Equal(2, r.Acks.Count); // this node's and the first other answer: a majority of 3
            Assert.All(r.Acks, a => Assert.Equal(7, a.N));
            Assert.True(Quorum.IsMajority(r.Acks.Count, 3));
            Assert.True(heldLocally.Task.IsCompleted);
        });

    [Fact]
    public Task An_answer_that_holds_another_entry_under_the_number_does_not_count() =>
        Run(Answer.Holds, Answer.HoldsAnother, Answer.Holds, async (log, _) =>
        {
            var r = await log(3).Append(8);
            Assert.Equal(2, r.Acks.Count);
            Assert.All(r.Acks, a => Assert.Equal(8, a.N));
        });

    [Fact]
    public Task With_both_other_ledgers_silent_the_append_ends_at_the_replication_timeout_without_a_majority() =>
        Run(Answer.Holds, Answer.Silent, Answer.Silent, async (log, _) =>
        {
            var r = await log(3).Append(9).WaitAsync(TimeSpan.FromSeconds(30));
            Assert.Equal(3, r.Asked);
            Assert.Single(r.Acks);
            Assert.False(Quorum.IsMajority(r.Acks.Count, 3));
        });

    [Fact]
    public Task A_ledger_that_holds_another_entry_here_leaves_this_node_out_of_the_count_and_localHeld_is_not_called() =>
        Run(Answer.HoldsAnother, Answer.Holds, Answer.Holds, async (log, _) =>
        {
            var called = false;
            var r = await log(3).Append(10, () => called = true);
            Assert.False(called);
            Assert.Equal(2, r.Acks.Count); // both others: still a majority of the ledgers
            Assert.All(r.Acks, a => Assert.Equal(10, a.N));
        });

    [Fact]
    public Task A_pair_waits_for_both_ledgers() =>
        Run(Answer.Holds, Answer.Holds, Answer.Holds, async (log, _) =>
        {
            var r = await log(2).Append(11);
            Assert.Equal(2, r.Asked);
            Assert.Equal(2, r.Acks.Count);
        });

    [Fact]
    public Task A_discard_reaches_this_nodes_ledger_and_every_live_members_with_the_reason() =>
        Run(Answer.Holds, Answer.Holds, Answer.Silent, async (log, _) =>
        {
            var l = log(3);
            l.Discard(12, "journaled on 1 of the 3 configured nodes' ledgers, not a majority");
            var drops = new[] { ExpectDrop(), ExpectDrop(), ExpectDrop() };
            Assert.All(drops, d => Assert.Equal(new Drop(12, "journaled on 1 of the 3 configured nodes' ledgers, not a majority"), d));
            await Task.CompletedTask;
        });

    private Drop ExpectDrop() => FishForMessage<Drop>(_ => true, TimeSpan.FromSeconds(10));
}
