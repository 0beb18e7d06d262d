using PromHa.Messages.Alerts;
using Akka.Actor;
using Akka.Configuration;
using PromHa.Messages;
using PromHa.Messages.Cluster;
using PromHa.Messages.Config;
using PromHa.Messages.Health;
using PromHa.Messages.Ledger;
using PromHa.Messages.Roles;
using PromHa.Messages.Serialization;

namespace PromHa.Tests;

/// <summary>The node's own serialization HOCON binds every wire contract to PromHaSerializer.</summary>
public class SerializerTests : IDisposable
{
    private readonly ActorSystem _system = ActorSystem.Create("ser",
        ConfigurationFactory.ParseString(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "hocon", "serialization.hocon"))));

    public void Dispose() => _system.Dispose();

    public static TheoryData<IPromHaMessage> Samples() => new(All);

    private static IPromHaMessage[] All =>
    [
        new MasterChanged(3, "b", "master-unreachable", DateTimeOffset.UnixEpoch, "a"),
        new RenewLease(3, "b", 42),
        new LeaseGranted(3, "b", 42, 2000),
        new LeaseDenied(3, "b", "stale"),
        new RevokeLease(3, "b"),
        new LeaseReleased(3, "b"),
        new RequestSwitchover(null),
        new SwitchoverResult(true, "ok"),
        new MasterStatus(3, "b", "a", "akka.tcp://promha@127.0.0.1:1", true,
            [new NodeHealthView("b", false, true, true, true, 0.5, null)], DateTimeOffset.UnixEpoch),
        GetMasterStatus.Instance,
        new NodeHealth("b", false, true, true, false, "alertmanager down", DateTimeOffset.UnixEpoch),
        new RecordMasterChanged(new MasterChanged(1, "a", "no-master", DateTimeOffset.UnixEpoch, null)),
        new Recorded("a", 1),
        GetLedgerHead.Instance,
        new LedgerHead("a", 1, new MasterChanged(1, "a", "no-master", DateTimeOffset.UnixEpoch, null)),
        new LedgerSync("a", 0, 0),
        new LedgerEvents("a", [new MasterChanged(1, "a", "no-master", DateTimeOffset.UnixEpoch, null)], [Committed]),
        new GetHistory(10),
        new RecordConfigVersion(Committed),
        new ConfigRecorded("a", 7),
        new GetConfigVersions(10),
        new GetConfigVersion(7),
        new ConfigVersionLookup(7, Committed),
        Committed,
        new SubmitCandidate(Hash, 3, 1200, "watch:a", "ops@a", "a"),
        new CandidateCommitted(7, Hash, true),
        new CandidateNotCommitted(Hash, "no majority"),
        new CandidateRejected("a", Hash, "api", "ops", "promtool: bad", DateTimeOffset.UnixEpoch),
        new ConfigVersionAvailable(7, Hash, "a"),
        new FetchBundleChunk(Hash, 0, 65536),
        new BundleChunk(Hash, 0, 3, [1, 2, 3]),
        new BundleUnavailable(Hash, "a"),
        new ConfigApplied("a", 7, Hash, 0.25, DateTimeOffset.UnixEpoch),
        new ConfigApplyFailed("a", 7, "reload failed", DateTimeOffset.UnixEpoch),
        new ConfigNodeState("a", 6, 7, "failed", "no member could send bundle", 7, DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch,
            DateTimeOffset.UnixEpoch),
        GetConfigStatus.Instance,
        new ConfigStatus(Committed, [new NodeConfigView("a", 7, null, null, DateTimeOffset.UnixEpoch),
            new NodeConfigView("b", 6, 7, "fetch: no data", DateTimeOffset.UnixEpoch, "failed", DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch)], []),
        new RequestMaintenance(true, "ops"),
        Paused,
        new RecordMaintenance(Paused),
        new MaintenanceRecorded("a", 2),
        new DiscardMaintenance(2, "no majority"),
        new LedgerHead("a", 1, null, Maintenance: Paused, DiscardedMaintenance: 1),
        Notification,
        new RecordNotification(Notification),
        new NotificationRecorded("a", "n1"),
        new RecordDeliveryOutcome(DuplicateOutcome),
        new RecordDeliveryOutcome(new DeliveryOutcome("n2", DeliveryState.Failed, "first", "a", 3, DateTimeOffset.UnixEpoch, 9, "HTTP 503")),
        new DiscardNotification("n1", "no majority"),
        new GetOutbox(DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch, "n1"),
        new OutboxContents("a", [Notification], [DuplicateOutcome], More: true),
        new GetMembership("akka.ssl.tcp://promha@10.77.0.1:4053#42"),
        new Membership("b", 2, false, "akka.ssl.tcp://promha@10.0.0.2:4053#17"),
        new PromHa.Messages.RemoteWrite.RemoteWriteAcked("promha-1", "b", 3, Final: true, [17UL, ulong.MaxValue], [1_700_000_000_000, 1_700_000_000_123]),
        DuplicateOutcome,
        new DiscardMasterChanged(4, "no majority", "b"),
        new DiscardConfigVersion(8, "no majority", Hash),
        new VouchForMaster(3, "b", "akka.ssl.tcp://promha@10.0.0.2:4053#17", 42),
        new Vouched(3, "b", "a", 42, 4000),
        new WithdrawVouch(3, "b"),
        new ConfigHeartbeat(Committed, "akka.ssl.tcp://promha@10.0.0.1:4053", [new NodeConfigView("a", 7, null, null, DateTimeOffset.UnixEpoch)],
            DateTimeOffset.UnixEpoch),
        new ConfigHeartbeat(null, "akka.ssl.tcp://promha@10.0.0.1:4053", [], DateTimeOffset.UnixEpoch),
    ];

    private static readonly NotificationRecord Notification = new("n1", "pager", 0, "{}:{alertname=\"X\"}", Hash, ["fp1@1764547200000"], ["fp2@1764547100000"],
        [31, 139, 8, 0], DateTimeOffset.UnixEpoch, "a", 3, ["fp2@1764547150000"]);

    /// <summary>A node from before resolved alerts carried their end sends records without it: read, with no ends.</summary>
    [Fact]
    public void A_notification_record_without_ends_from_an_older_node_is_read()
    {
        var serializer = _system.Serialization.FindSerializerFor(Notification);
        var manifest = Akka.Serialization.Serialization.ManifestFor(serializer, Notification);
        var json = System.Text.Json.Nodes.JsonNode.Parse(serializer.ToBinary(Notification))!.AsObject();
        Assert.True(json.Remove("Ends") || json.Remove("ends"), json.ToJsonString());
        var back = (NotificationRecord)_system.Serialization.Deserialize(System.Text.Encoding.UTF8.GetBytes(json.ToJsonString()), serializer.Identifier, manifest);
        Assert.Null(back.Ends);
        Assert.Equal(Notification.Resolved, back.Resolved);
    }

    private static readonly DeliveryOutcome DuplicateOutcome = new("n3", DeliveryState.Duplicate, "copy", "a", 3, DateTimeOffset.UnixEpoch, 0, null, "n1");

    private static readonly MaintenanceChanged Paused = new(2, true, "ops", DateTimeOffset.UnixEpoch);

    private const string Hash = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    private static readonly ConfigVersionCommitted Committed = new(7, Hash, 3, 1200, "watch:a", "ops@a", "a", DateTimeOffset.UnixEpoch);

    [Fact]
    public void A_full_bundle_chunk_fits_one_remoting_frame()
    {
        // akka.remote.dot-netty.tcp.maximum-frame-size defaults to 128000 bytes
        var chunk = new BundleChunk(Hash, 0, 20_000_000, new byte[new PromHa.Node.Settings.ConfigSection().ChunkBytes]);
        var bytes = _system.Serialization.FindSerializerFor(chunk).ToBinary(chunk);
        Assert.InRange(bytes.Length, 1, 127_000);
    }

    [Theory]
    [MemberData(nameof(Samples))]
    public void Every_contract_round_trips_through_the_promha_serializer(IPromHaMessage message)
    {
        var serializer = _system.Serialization.FindSerializerFor(message);
        Assert.IsType<PromHaSerializer>(serializer);
        var bytes = serializer.ToBinary(message);
        var manifest = Akka.Serialization.Serialization.ManifestFor(serializer, message);
        var back = _system.Serialization.Deserialize(bytes, serializer.Identifier, manifest);
        Assert.Equal(System.Text.Json.JsonSerializer.Serialize(message, message.GetType()),
            System.Text.Json.JsonSerializer.Serialize(back, back.GetType()));
    }

    /// <summary>A contract without a sample could change its wire form unseen: every one has one above.</summary>
    [Fact]
    public void Every_contract_has_a_round_trip_sample()
    {
        var sampled = All.Select(m => m.GetType()).ToHashSet();
        var missing = PromHaSerializer.KnownTypes.Where(t => !sampled.Contains(t)).Select(t => t.Name).Order().ToList();
        Assert.True(missing.Count == 0, "contracts without a round-trip sample: " + string.Join(", ", missing));
    }

    [Fact]
    public void Every_message_type_in_the_contracts_assembly_has_a_manifest()
    {
        var types = typeof(IPromHaMessage).Assembly.GetTypes()
            .Where(t => t is { IsClass: true, IsAbstract: false } && typeof(IPromHaMessage).IsAssignableFrom(t));
        Assert.All(types, t => Assert.Contains(t, PromHaSerializer.KnownTypes));
    }
}
