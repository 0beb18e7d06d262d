using Akka.Actor;
using Akka.Cluster.Hosting;
using Akka.Hosting;
using Akka.Persistence.Hosting;
using Akka.Remote.Hosting;
using Microsoft.Extensions.Time.Testing;
using PromHa.Messages.Ledger;
using PromHa.Messages.Roles;
using PromHa.Node.Cluster;
using PromHa.Node.Master;

namespace PromHa.Tests.Master;

/// <summary>
/// A node's ledger as production wires it (AddLedgerActor), on in-memory persistence, with the
/// node's clock faked: a vouch lasts its term and no longer, a newer head tells the next master how
/// long vouches for the old reign may still count, a restarted master gets none, and the journal
/// comes back after the actor restarts. Time moves by Advance, not by sleeping.
/// </summary>
public sealed class LedgerActorTests(ITestOutputHelper output) : Akka.Hosting.TestKit.TestKit(nameof(LedgerActorTests), output)
{
    private static readonly TimeSpan Term = TimeSpan.FromSeconds(4);
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 12, 6, 12, 0, 0, TimeSpan.Zero));

    protected override void ConfigureAkka(AkkaConfigurationBuilder builder, IServiceProvider provider) =>
        builder
            .WithRemoting("127.0.0.1", 0)
            .WithClustering()
            .WithDistributedPubSub(role: null!)
            .WithInMemoryJournal()
            .WithInMemorySnapshotStore()
            .AddLedgerActor("node-a", new NodeView("node-a", witness: false, _time), Term);

    private IActorRef Ledger => ActorRegistry.Get<LedgerKey>();

    private static MasterChanged Change(long epoch, string node, string incarnation) =>
        new(epoch, node, "test", DateTimeOffset.UnixEpoch, null, incarnation);

    [Fact]
    public void A_vouch_lasts_its_term_and_a_newer_head_says_how_long_the_old_reign_may_still_count()
    {
        // a ledger that just started counts its own start as a possible earlier vouch
        Ledger.Tell(new RecordMasterChanged(Change(1, "node-b", "b#1")));
        Assert.Equal(new Recorded("node-a", 1, (long)Term.TotalMilliseconds), ExpectMsg<Recorded>());

        _time.Advance(Term);
        Ledger.Tell(new VouchForMaster(1, "node-b", "b#1", 7));
        Assert.Equal(new Vouched(1, "node-b", "node-a", 7, (long)Term.TotalMilliseconds), ExpectMsg<Vouched>());

        // no vouch for another node, another epoch or another process of the master
        Ledger.Tell(new VouchForMaster(1, "node-c", "c#1", 8));
        Ledger.Tell(new VouchForMaster(2, "node-b", "b#1", 9));
        Ledger.Tell(new VouchForMaster(1, "node-b", "b#2", 10));
        ExpectNoMsg(TimeSpan.FromMilliseconds(300));

        // a quarter of the term later a new master is recorded: the old one may count its vouch 3/4 of a term more
        _time.Advance(Term / 4);
        Ledger.Tell(new RecordMasterChanged(Change(2, "node-c", "c#1")));
        Assert.Equal(new Recorded("node-a", 2, (long)(Term * 3 / 4).TotalMilliseconds), ExpectMsg<Recorded>());
        // and the old master asks in vain
        Ledger.Tell(new VouchForMaster(1, "node-b", "b#1", 11));
        ExpectNoMsg(TimeSpan.FromMilliseconds(300));

        // once the term is over nothing of the old reign counts
        _time.Advance(Term);
        Ledger.Tell(new RecordMasterChanged(Change(2, "node-c", "c#1"))); // repeated: acknowledged, not journaled again
        Assert.Equal(new Recorded("node-a", 2, 0), ExpectMsg<Recorded>());
    }

    [Fact]
    public void A_master_that_withdrew_leaves_nothing_to_wait_for()
    {
        Ledger.Tell(new RecordMasterChanged(Change(1, "node-b", "b#1")));
        ExpectMsg<Recorded>(); // the ledger has started (an actor is built after ActorOf returns)
        _time.Advance(Term); // past the ledger's own start
        Ledger.Tell(new VouchForMaster(1, "node-b", "b#1", 1));
        ExpectMsg<Vouched>();
        Ledger.Tell(new WithdrawVouch(1, "node-b"));
        Ledger.Tell(new RecordMasterChanged(Change(2, "node-c", "c#1")));
        Assert.Equal(0, ExpectMsg<Recorded>().VouchRemainingMs);
    }

    [Fact]
    public async Task The_journal_comes_back_after_a_restart_and_an_epoch_keeps_its_master()
    {
        Ledger.Tell(new RecordMasterChanged(Change(1, "node-b", "b#1")));
        ExpectMsg<Recorded>();
        Ledger.Tell(new RecordMasterChanged(Change(2, "node-c", "c#1")));
        ExpectMsg<Recorded>();
        // the same number offered with another master is not acknowledged as that record
        Ledger.Tell(new RecordMasterChanged(Change(2, "node-b", "b#1")));
        Assert.Equal(1, ExpectMsg<Recorded>().Epoch);

        var old = Ledger;
        Watch(old);
        old.Tell(PoisonPill.Instance);
        ExpectTerminated(old);
        // the same persistence id under another name (the old name may not be free yet)
        var again = Sys.ActorOf(Props.Create(() => new LedgerActor("node-a", new NodeView("node-a", false, _time), Term)), "ledger-again");
        var head = await again.Ask<LedgerHead>(GetLedgerHead.Instance, TimeSpan.FromSeconds(5));
        Assert.Equal((2L, "node-c"), (head.Epoch, head.Last!.Node));
        var history = await again.Ask<List<MasterChanged>>(new GetHistory(10), TimeSpan.FromSeconds(5));
        Assert.Equal(["node-c", "node-b"], history.Select(h => h.Node));
    }

    /// <summary>
    /// A ledger that missed a committed change and took the next one from an announcement had a
    /// hole in its role history for good (CI: after a full restart the new master's /history had
    /// no epoch 3). It now copies what it missed from another ledger, also after a restart, and
    /// keeps the history in epoch order; a number dropped here is no hole.
    /// </summary>
    [Fact]
    public async Task A_ledger_that_took_a_later_epoch_copies_the_ones_it_missed_and_a_dropped_number_is_no_gap()
    {
        Ledger.Tell(new RecordMasterChanged(Change(1, "node-b", "b#1")));
        ExpectMsg<Recorded>();
        Ledger.Tell(new RecordMasterChanged(Change(2, "node-c", "c#1")));
        ExpectMsg<Recorded>();
        Ledger.Tell(Change(4, "node-b", "b#2")); // the announcement of 4; 3 never reached this ledger
        var three = new MasterChanged(3, "node-a", "failover", DateTimeOffset.UnixEpoch.AddMinutes(3), "node-c", "a#1");

        // it comes back from the journal with the hole and fills it from what another ledger sends
        var again = await Restarted(Ledger, "ledger-2");
        Assert.Equal([4L, 2, 1], (await History(again)).Select(h => h.Epoch));
        again.Tell(new LedgerEvents("node-b", [three, Change(4, "node-b", "b#2")]));
        await AwaitAssertAsync(async () => Assert.Equal([4L, 3, 2, 1], (await History(again)).Select(h => h.Epoch)));
        var restarted = await Restarted(again, "ledger-3");
        var history = await History(restarted);
        Assert.Equal([4L, 3, 2, 1], history.Select(h => h.Epoch));
        Assert.Equal(three, history[1]);

        // a number dropped here (never committed) is not asked for, nor taken from a stale ledger
        restarted.Tell(new DiscardMasterChanged(5, "test", null));
        restarted.Tell(new RecordMasterChanged(Change(6, "node-c", "c#2")));
        ExpectMsg<Recorded>();
        restarted.Tell(new LedgerEvents("node-b", [Change(5, "node-b", "b#3"), Change(6, "node-c", "c#2")]));
        await Task.Delay(300);
        Assert.Equal([6L, 4, 3, 2, 1], (await History(restarted)).Select(h => h.Epoch));
    }

    private async Task<IActorRef> Restarted(IActorRef ledger, string name)
    {
        Watch(ledger);
        ledger.Tell(PoisonPill.Instance);
        ExpectTerminated(ledger);
        var again = Sys.ActorOf(Props.Create(() => new LedgerActor("node-a", new NodeView("node-a", false, _time), Term)), name);
        await again.Ask<LedgerHead>(GetLedgerHead.Instance, TimeSpan.FromSeconds(5));
        return again;
    }

    private static Task<List<MasterChanged>> History(IActorRef ledger) =>
        ledger.Ask<List<MasterChanged>>(new GetHistory(10), TimeSpan.FromSeconds(5));
}
