using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Akka.Actor;
using Akka.Cluster.Hosting;
using Akka.Hosting;
using Akka.Remote.Hosting;
using Microsoft.Extensions.Time.Testing;
using PromHa.Messages.Alerts;
using PromHa.Node.Alerts;
using PromHa.Node.Cluster;
using PromHa.Node.Config;
using PromHa.Node.Settings;
using PromHa.Node.Sink;

namespace PromHa.Tests.Alerts;

/// <summary>
/// One node's notification gate as production wires it (AddOutboxActor, then AddNotificationGateActor
/// with the node's view and the running alertmanager.yml's routes), delivering over HTTP to a real
/// webhook receiver on 127.0.0.1 (<see cref="WebhookSink"/>, standing in for the pager). The node is
/// alone (no cluster joined): its own outbox is the majority. What another node's Alertmanager sent
/// reaches this outbox as another node's gate replicates it (RecordNotification), with the acceptance
/// time that node gave it: that is how time passes for repeat_interval, which is measured between
/// acceptance times. The master lease is the view's, on a fake clock.
/// </summary>
public abstract class GateTestKit : Akka.Hosting.TestKit.TestKit
{
    protected const string Receiver = "pager";
    protected const string Group = "{}:{alertname=\"DiskFull\"}";
    /// <summary>repeat_interval in the alertmanager.yml the gate runs.</summary>
    protected static readonly TimeSpan RepeatInterval = TimeSpan.FromHours(1);
    /// <summary>When the test's alerts started firing (whole milliseconds: the record keeps unix ms).</summary>
    protected static readonly DateTimeOffset Start = new(2026, 12, 6, 11, 0, 0, TimeSpan.Zero);
    /// <summary>Generous: a loaded CI host; the gate ticks every second.</summary>
    protected static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    protected readonly FakeTimeProvider Clock = new(new DateTimeOffset(2026, 12, 6, 12, 0, 0, TimeSpan.Zero));
    protected readonly NodeView View;
    protected readonly WebhookSink Sink = new(PromHa.Lab.LoopbackPorts.Claim(1)[0]);
    private readonly string _dir = Directory.CreateTempSubdirectory("promha-gate-actor").FullName;
    private readonly NodeSettings _settings;
    private readonly GateRoutes _routes = new();

    protected GateTestKit(string name, ITestOutputHelper output, int giveUpAfterSeconds) : base(name, output)
    {
        View = new NodeView("node-a", witness: false, Clock);
        _settings = new NodeSettings { Node = { Name = "node-a" }, DataDir = _dir, Alerts = { GiveUpAfterSeconds = giveUpAfterSeconds } };
        _routes.Table = GateTable.Parse(Encoding.UTF8.GetBytes($"""
            route:
              receiver: {Receiver}
              repeat_interval: 1h
            receivers:
              - name: {Receiver}
                webhook_configs:
                  - url: {Sink.WebhookUrl}
            """));
        _routes.Version = 1;
    }

    protected override void ConfigureAkka(AkkaConfigurationBuilder builder, IServiceProvider provider) =>
        builder
            .WithRemoting("127.0.0.1", 0)
            .WithClustering()
            .AddOutboxActor(_settings, TimeProvider.System) // as NodeHost: its times are wall-clock times
            .AddNotificationGateActor(_settings, View, _routes);

    protected override async Task AfterAllAsync()
    {
        // the gate first (no delivery in flight), then the outbox, which closes its database
        await Gate.GracefulStop(TimeSpan.FromSeconds(2));
        await Outbox.GracefulStop(TimeSpan.FromSeconds(2));
        Sink.Dispose();
        Directory.Delete(_dir, true);
        await base.AfterAllAsync();
    }

    protected IActorRef Gate => ActorRegistry.Get<GateKey>();
    protected IActorRef Outbox => ActorRegistry.Get<OutboxKey>();

    /// <summary>This node holds the master lease for the epoch (no end: the fake clock does not move unless told).</summary>
    protected void Master(long epoch, TimeSpan? leaseLeft = null) =>
        View.SetRole(epoch, "node-a", holdsLease: true, leaseLeft is { } left ? Clock.GetUtcNow() + left : null);

    /// <summary>An Alertmanager webhook body (version 4) with these alerts firing, each fingerprint its own alert.</summary>
    protected static byte[] Webhook(params string[] firing) =>
        JsonSerializer.SerializeToUtf8Bytes(new
        {
            version = "4",
            groupKey = Group,
            status = "firing",
            receiver = Receiver,
            groupLabels = new { alertname = "DiskFull" },
            alerts = firing.Select(fp => new
            {
                status = "firing",
                labels = new { alertname = "DiskFull", disk = fp },
                startsAt = Start,
                endsAt = "0001-01-01T00:00:00Z",
                fingerprint = fp,
            }),
        });

    /// <summary>This node's Alertmanager posts a webhook to its gate; the gate answers 200 once the outbox holds it.</summary>
    protected async Task<string> Accept(byte[] body)
    {
        var answer = await Gate.Ask<AcceptAnswer>(new AcceptNotification(Receiver, 0, body), Patience);
        Assert.True(answer.Status == 200, $"the gate answered {answer.Status}: {answer.Message}");
        return Regex.Match(answer.Message, "accepted as ([0-9a-f]{32})").Groups[1].Value;
    }

    /// <summary>
    /// Another node's gate replicates what its Alertmanager posted (these alerts firing) into this
    /// node's outbox, as ReplicatedLog does, accepted at <paramref name="acceptedAt"/> by that node's clock.
    /// </summary>
    protected async Task<NotificationRecord> FromOtherNode(string node, DateTimeOffset acceptedAt, long epoch, params string[] firing)
    {
        var alerts = firing.Select(fp => DeliveryDecision.Alert(fp, Start)).Order(StringComparer.Ordinal).ToList();
        var r = new NotificationRecord(Guid.CreateVersion7().ToString("N"), Receiver, 0, Group, DeliveryDecision.DedupKey(Receiver, 0, Group, alerts, []),
            alerts, [], NotificationGateActor.Gzip(Webhook(firing)), acceptedAt, node, epoch, []);
        var recorded = await Outbox.Ask<NotificationRecorded>(new RecordNotification(r), Patience);
        Assert.Equal(r.Id, recorded.Id);
        return r;
    }

    /// <summary>The outbox's row for a notification, with its outcome if settled.</summary>
    protected async Task<OutboxEntry> Held(string id) =>
        (await Outbox.Ask<RecentNotifications>(new GetRecentNotifications(1000), Patience)).Entries.Single(e => e.Record.Id == id);

    /// <summary>The notification's outcome once the outbox holds one.</summary>
    protected async Task<DeliveryOutcome> Outcome(string id)
    {
        DeliveryOutcome? outcome = null;
        await AwaitAssertAsync(async () =>
        {
            outcome = (await Held(id)).Outcome;
            Assert.NotNull(outcome);
        }, Patience, TimeSpan.FromMilliseconds(200));
        return outcome!;
    }

    /// <summary>What the receiver got, once it got <paramref name="count"/> deliveries.</summary>
    protected async Task<IReadOnlyList<Delivery>> Received(int count)
    {
        await AwaitAssertAsync(() => Assert.True(Sink.Deliveries.Count >= count, $"the receiver got {Sink.Deliveries.Count}, expected {count}:\n{Sink.Describe()}"),
            Patience, TimeSpan.FromMilliseconds(200));
        return Sink.Deliveries;
    }

    /// <summary>A few of the gate's ticks (every second) with nothing reaching the receiver.</summary>
    protected async Task NothingReceivedFor(TimeSpan span)
    {
        await Task.Delay(span);
        Assert.True(Sink.Deliveries.Count == 0, $"the receiver got:\n{Sink.Describe()}");
    }
}

/// <summary>
/// The gate as operators rely on it: the master sends a notification once, and the same one from
/// another node's Alertmanager (a copy) or again from this one (a retry) is recorded as a duplicate
/// naming the delivery; a standby sends nothing but keeps what it accepted, and whoever is master
/// next sends it; a master without time to spare on its lease waits; repeat_interval holds back
/// what is not news until it has passed; a receiver that answers errors is retried until it takes
/// the notification, delivered once. Each outcome reaches the outbox.
/// </summary>
public sealed class NotificationGateActorTests(ITestOutputHelper output)
    : GateTestKit(nameof(NotificationGateActorTests), output, giveUpAfterSeconds: 120)
{
    [Fact]
    public async Task The_master_delivers_once_and_a_copy_or_a_retry_is_recorded_as_a_duplicate_of_that_delivery()
    {
        Master(1);
        var body = Webhook("a");
        var first = await Accept(body);

        var got = Assert.Single(await Received(1));
        Assert.Equal((first, "first", "node-a", 1L), (got.Id, got.Reason, got.Node, got.Epoch));
        Assert.Equal(["a"], got.Alerts.Select(a => a.Fingerprint));
        var delivered = await Outcome(first);
        Assert.Equal((DeliveryState.Delivered, "first", "node-a", 1L, 1), (delivered.State, delivered.Reason, delivered.By, delivered.Epoch, delivered.Attempts));

        // this node's Alertmanager did not get the answer and posts the same notification again
        var retry = await Accept(body);
        var again = await Outcome(retry);
        Assert.Equal((DeliveryState.Duplicate, "retry", first), (again.State, again.Reason, again.DuplicateOf));

        // node-b's Alertmanager sent its copy of the notification to its own gate, which replicated it here
        var accepted = (await Held(first)).Record;
        var copy = await FromOtherNode("node-b", accepted.AcceptedAt.AddSeconds(5), 1, "a");
        Assert.Equal(accepted.DedupKey, copy.DedupKey); // the same content, as the gate reads it from the webhook
        var fromB = await Outcome(copy.Id);
        Assert.Equal((DeliveryState.Duplicate, "copy", first), (fromB.State, fromB.Reason, fromB.DuplicateOf));

        // and the receiver still got it once
        await Task.Delay(TimeSpan.FromSeconds(2));
        Assert.True(Sink.Deliveries.Count == 1, Sink.Describe());
    }

    [Fact]
    public async Task A_standby_keeps_what_it_accepted_and_sends_nothing_and_the_next_master_sends_it_after_the_failover()
    {
        View.SetRole(1, "node-b", holdsLease: false);
        var id = await Accept(Webhook("a"));

        await NothingReceivedFor(TimeSpan.FromSeconds(3));
        var held = await Held(id);
        Assert.Null(held.Outcome); // pending: neither sent nor settled
        Assert.Equal(("node-a", 1L), (held.Record.AcceptedBy, held.Record.Epoch));

        // node-b is gone; this node becomes master in epoch 2 and sends what was accepted under epoch 1
        Master(2);
        var got = Assert.Single(await Received(1));
        Assert.Equal((id, "after-failover", 2L), (got.Id, got.Reason, got.Epoch));
        var outcome = await Outcome(id);
        Assert.Equal((DeliveryState.Delivered, "after-failover", "node-a", 2L), (outcome.State, outcome.Reason, outcome.By, outcome.Epoch));
    }

    [Fact]
    public async Task A_master_with_less_than_the_lease_to_spare_waits_until_its_lease_is_renewed()
    {
        // master, but its lease ends sooner than a delivery may take: a successor may begin meanwhile
        Master(1, leaseLeft: NotificationGateActor.LeaseToSpare - TimeSpan.FromMilliseconds(100));
        Assert.True(View.IsMaster);
        var id = await Accept(Webhook("a"));

        await NothingReceivedFor(TimeSpan.FromSeconds(3));
        Assert.Null((await Held(id)).Outcome);

        Master(1, leaseLeft: TimeSpan.FromSeconds(10)); // renewed
        var got = Assert.Single(await Received(1));
        Assert.Equal((id, "first"), (got.Id, got.Reason));
        Assert.Equal(DeliveryState.Delivered, (await Outcome(id)).State);
    }

    [Fact]
    public async Task Nothing_new_within_the_repeat_interval_is_held_back_and_after_it_the_group_is_sent_again_as_a_repeat()
    {
        Master(1);
        var first = await Accept(Webhook("a", "b"));
        Assert.Equal("first", Assert.Single(await Received(1)).Reason);
        var accepted = (await Held(first)).Record.AcceptedAt;

        // five minutes later node-b's Alertmanager, which lost b, sends a alone: nothing the receiver did not hear
        var lagging = await FromOtherNode("node-b", accepted + TimeSpan.FromMinutes(5), 1, "a");
        var held = await Outcome(lagging.Id);
        Assert.Equal((DeliveryState.Duplicate, "within-repeat", first), (held.State, held.Reason, held.DuplicateOf));

        // a repeat_interval after the delivery, the group as it was: sent again
        var repeat = await FromOtherNode("node-b", accepted + RepeatInterval, 1, "a", "b");
        var got = await Received(2);
        Assert.Equal(2, got.Count);
        Assert.Equal((repeat.Id, "repeat"), (got[1].Id, got[1].Reason));
        Assert.Equal(["a", "b"], got[1].Alerts.Select(a => a.Fingerprint).Order());
        var outcome = await Outcome(repeat.Id);
        Assert.Equal((DeliveryState.Delivered, "repeat"), (outcome.State, outcome.Reason));
    }

    [Fact]
    public async Task A_receiver_that_answers_errors_is_retried_until_it_takes_the_notification_once()
    {
        Master(1);
        Sink.Failing = true; // 503 from the receiver
        var id = await Accept(Webhook("a"));

        await AwaitAssertAsync(() => Assert.True(Sink.Refused >= 2, $"{Sink.Refused} attempt(s) refused"), Patience, TimeSpan.FromMilliseconds(100));
        Assert.Null((await Held(id)).Outcome); // still being delivered: not settled, not lost
        Sink.Failing = false;

        var got = Assert.Single(await Received(1));
        Assert.Equal((id, "first"), (got.Id, got.Reason));
        var outcome = await Outcome(id);
        Assert.Equal(DeliveryState.Delivered, outcome.State);
        // every refused attempt and the one that went through
        Assert.Equal(Sink.Refused + 1, outcome.Attempts);
        await Task.Delay(TimeSpan.FromSeconds(2));
        Assert.True(Sink.Deliveries.Count == 1, Sink.Describe());
    }
}

/// <summary>
/// A receiver that stays down: the master retries it for alerts.giveUpAfterSeconds (here 2 s instead
/// of the 10 s the settings loader allows at least), then records the notification as failed with the
/// error, keeps it in the outbox with its payload (the operator reads it from the API), and the
/// group's next notification is not blocked behind it.
/// </summary>
public sealed class NotificationGateGiveUpTests(ITestOutputHelper output)
    : GateTestKit(nameof(NotificationGateGiveUpTests), output, giveUpAfterSeconds: 2)
{
    [Fact]
    public async Task A_receiver_still_failing_after_the_retries_leaves_the_notification_failed_in_the_outbox_and_the_group_goes_on()
    {
        Master(1);
        Sink.Failing = true;
        var body = Webhook("a");
        var id = await Accept(body);

        var failed = await Outcome(id);
        Assert.Equal((DeliveryState.Failed, "first", "node-a"), (failed.State, failed.Reason, failed.By));
        Assert.Contains("still failing after 2 s", failed.Error);
        Assert.True(failed.Attempts >= 2 && Sink.Refused >= 2, $"{failed.Attempts} attempt(s), {Sink.Refused} refused");
        var held = await Held(id);
        Assert.Equal(body, NotificationGateActor.Gunzip(held.Record.Payload)); // nothing lost

        // the receiver is back; the group's next notification goes (the failed one was never heard of: "first")
        Sink.Failing = false;
        var next = await Accept(Webhook("a", "c"));
        var got = Assert.Single(await Received(1));
        Assert.Equal((next, "first"), (got.Id, got.Reason));
        Assert.Equal(DeliveryState.Delivered, (await Outcome(next)).State);
    }
}
