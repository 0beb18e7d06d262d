using Akka.Actor;
using Akka.Cluster.Hosting;
using Akka.Hosting;
using Akka.Remote.Hosting;
using Microsoft.Extensions.Time.Testing;
using PromHa.Messages.Alerts;
using PromHa.Node.Alerts;
using PromHa.Node.Settings;

namespace PromHa.Tests.Alerts;

/// <summary>
/// A node's outbox as production wires it (AddOutboxActor) with the node's clock faked: it keeps
/// what a gate records and answers for it, keeps an outcome, and forgets what is older than the
/// retention on its housekeeping tick, except a group's last delivery (the log entry an alert that
/// fires for days resolves against). The retention passes by Advance, not by waiting a day.
/// </summary>
public sealed class OutboxActorTests(ITestOutputHelper output) : Akka.Hosting.TestKit.TestKit(nameof(OutboxActorTests), output)
{
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 12, 6, 12, 0, 0, TimeSpan.Zero));
    private readonly string _dir = Directory.CreateTempSubdirectory("promha-outbox-actor").FullName;

    protected override void ConfigureAkka(AkkaConfigurationBuilder builder, IServiceProvider provider) =>
        builder
            .WithRemoting("127.0.0.1", 0)
            .WithClustering()
            .AddOutboxActor(new NodeSettings { Node = { Name = "node-a" }, DataDir = _dir, Alerts = { RetentionHours = 24 } }, _time);

    private IActorRef Outbox => ActorRegistry.Get<OutboxKey>();

    private NotificationRecord Rec(string id, string group, DateTimeOffset at) =>
        new(id, "pager", 0, group, DeliveryDecision.DedupKey("pager", 0, group, ["x"], []), ["x"], [],
            NotificationGateActor.Gzip("{}"u8.ToArray()), at, "node-b", 3, []);

    private List<string> Held() =>
        Outbox.Ask<RecentNotifications>(new GetRecentNotifications(100), TimeSpan.FromSeconds(5)).Result.Entries
            .Select(e => e.Record.Id).Order().ToList();

    [Fact]
    public void What_is_older_than_the_retention_is_forgotten_but_a_groups_last_delivery_stays()
    {
        try { Retention(); }
        finally { Directory.Delete(_dir, true); } // the open database goes with it (Linux keeps an unlinked file readable)
    }

    private void Retention()
    {
        var now = _time.GetUtcNow();
        // an earlier delivery of g1, no longer its last: forgotten like any other
        Outbox.Tell(new RecordNotification(Rec("earlier", "g1", now.AddSeconds(-1))));
        ExpectMsg<NotificationRecorded>();
        Outbox.Tell(new RecordDeliveryOutcome(new DeliveryOutcome("earlier", DeliveryState.Delivered, "first", "node-b", 3, now.AddSeconds(-1), 1, null)));
        ExpectMsg<NotificationRecorded>();
        Outbox.Tell(new RecordNotification(Rec("delivered", "g1", now)));
        Assert.Equal(new NotificationRecorded("node-a", "delivered"), ExpectMsg<NotificationRecorded>());
        Outbox.Tell(new RecordNotification(Rec("pending", "g2", now)));
        ExpectMsg<NotificationRecorded>();
        Outbox.Tell(new RecordDeliveryOutcome(new DeliveryOutcome("delivered", DeliveryState.Delivered, "first", "node-b", 3, now, 1, null)));
        ExpectMsg<NotificationRecorded>();
        Assert.Equal(["delivered", "earlier", "pending"], Held());

        // a day and an hour later, by the node's clock: the housekeeping tick (every 10 s, first after 1 s) prunes
        _time.Advance(TimeSpan.FromHours(25));
        AwaitAssert(() => Assert.Equal(["delivered"], Held()), TimeSpan.FromSeconds(15), TimeSpan.FromMilliseconds(200));
        // a new notification is kept from now on
        Outbox.Tell(new RecordNotification(Rec("new", "g2", _time.GetUtcNow())));
        ExpectMsg<NotificationRecorded>();
        Assert.Equal(["delivered", "new"], Held());
    }
}
