using System.Collections.Frozen;
using System.Runtime.Serialization;
using System.Text.Json;
using Akka.Actor;
using Akka.Serialization;
using PromHa.Messages.Alerts;
using PromHa.Messages.Cluster;
using PromHa.Messages.Config;
using PromHa.Messages.Health;
using PromHa.Messages.Ledger;
using PromHa.Messages.RemoteWrite;
using PromHa.Messages.Roles;

namespace PromHa.Messages.Serialization;

/// <summary>
/// JSON on the wire with short, explicit manifests. A manifest names a contract, not a CLR type, so
/// renaming or moving a record does not break a rolling upgrade or the journal: add a row, never
/// change or reuse one.
/// </summary>
public sealed class PromHaSerializer(ExtendedActorSystem system) : SerializerWithStringManifest(system)
{
    public const int SerializerId = 7431;

    private static readonly (string Manifest, Type Type)[] Contracts =
    [
        ("roles.master-changed.v1", typeof(MasterChanged)),
        ("roles.renew-lease.v1", typeof(RenewLease)),
        ("roles.lease-granted.v1", typeof(LeaseGranted)),
        ("roles.lease-denied.v1", typeof(LeaseDenied)),
        ("roles.revoke-lease.v1", typeof(RevokeLease)),
        ("roles.lease-released.v1", typeof(LeaseReleased)),
        ("roles.request-switchover.v1", typeof(RequestSwitchover)),
        ("roles.switchover-result.v1", typeof(SwitchoverResult)),
        ("roles.master-status.v1", typeof(MasterStatus)),
        ("roles.get-master-status.v1", typeof(GetMasterStatus)),
        ("roles.vouch-for-master.v1", typeof(VouchForMaster)),
        ("roles.vouched.v1", typeof(Vouched)),
        ("roles.withdraw-vouch.v1", typeof(WithdrawVouch)),
        ("health.node-health.v1", typeof(NodeHealth)),
        ("ledger.record.v1", typeof(RecordMasterChanged)),
        ("ledger.recorded.v1", typeof(Recorded)),
        ("ledger.discard.v1", typeof(DiscardMasterChanged)),
        ("ledger.discard-config.v1", typeof(DiscardConfigVersion)),
        ("ledger.get-head.v1", typeof(GetLedgerHead)),
        ("ledger.head.v1", typeof(LedgerHead)),
        ("ledger.sync.v1", typeof(LedgerSync)),
        ("ledger.events.v1", typeof(LedgerEvents)),
        ("ledger.get-history.v1", typeof(GetHistory)),
        ("ledger.record-config.v1", typeof(RecordConfigVersion)),
        ("ledger.config-recorded.v1", typeof(ConfigRecorded)),
        ("ledger.get-config-versions.v1", typeof(GetConfigVersions)),
        ("ledger.get-config-version.v1", typeof(GetConfigVersion)),
        ("ledger.config-version-lookup.v1", typeof(ConfigVersionLookup)),
        ("config.version-committed.v1", typeof(ConfigVersionCommitted)),
        ("config.submit-candidate.v1", typeof(SubmitCandidate)),
        ("config.candidate-committed.v1", typeof(CandidateCommitted)),
        ("config.candidate-not-committed.v1", typeof(CandidateNotCommitted)),
        ("config.candidate-rejected.v1", typeof(CandidateRejected)),
        ("config.version-available.v1", typeof(ConfigVersionAvailable)),
        ("config.fetch-chunk.v1", typeof(FetchBundleChunk)),
        ("config.chunk.v1", typeof(BundleChunk)),
        ("config.bundle-unavailable.v1", typeof(BundleUnavailable)),
        ("config.applied.v1", typeof(ConfigApplied)),
        ("config.apply-failed.v1", typeof(ConfigApplyFailed)),
        ("config.node-state.v1", typeof(ConfigNodeState)),
        ("config.get-status.v1", typeof(GetConfigStatus)),
        ("config.status.v1", typeof(ConfigStatus)),
        ("config.heartbeat.v1", typeof(ConfigHeartbeat)),
        ("alerts.notification.v1", typeof(NotificationRecord)),
        ("alerts.outcome.v1", typeof(DeliveryOutcome)),
        ("alerts.record.v1", typeof(RecordNotification)),
        ("alerts.recorded.v1", typeof(NotificationRecorded)),
        ("alerts.record-outcome.v1", typeof(RecordDeliveryOutcome)),
        ("alerts.discard.v1", typeof(DiscardNotification)),
        ("alerts.get-outbox.v1", typeof(GetOutbox)),
        ("alerts.outbox.v1", typeof(OutboxContents)),
        ("roles.request-maintenance.v1", typeof(RequestMaintenance)),
        ("ledger.maintenance.v1", typeof(MaintenanceChanged)),
        ("ledger.record-maintenance.v1", typeof(RecordMaintenance)),
        ("ledger.maintenance-recorded.v1", typeof(MaintenanceRecorded)),
        ("ledger.discard-maintenance.v1", typeof(DiscardMaintenance)),
        ("cluster.get-membership.v1", typeof(GetMembership)),
        ("cluster.membership.v1", typeof(Membership)),
        ("remote-write.acked.v1", typeof(RemoteWriteAcked)),
    ];

    private static readonly FrozenDictionary<Type, string> ManifestByType =
        Contracts.ToFrozenDictionary(c => c.Type, c => c.Manifest);

    private static readonly FrozenDictionary<string, Type> TypeByManifest =
        Contracts.ToFrozenDictionary(c => c.Manifest, c => c.Type);

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    public override int Identifier => SerializerId;

    public static IReadOnlyCollection<Type> KnownTypes => ManifestByType.Keys;

    public override string Manifest(object o) =>
        ManifestByType.TryGetValue(o.GetType(), out var m)
            ? m
            : throw new SerializationException($"PromHa has no wire contract for {o.GetType().FullName}");

    public override byte[] ToBinary(object obj)
    {
        _ = Manifest(obj); // refuse types without a contract before writing anything
        return JsonSerializer.SerializeToUtf8Bytes(obj, obj.GetType(), Json);
    }

    public override object FromBinary(byte[] bytes, string manifest)
    {
        if (!TypeByManifest.TryGetValue(manifest, out var type))
            throw new SerializationException($"Unknown PromHa manifest '{manifest}'");
        return JsonSerializer.Deserialize(bytes, type, Json)
               ?? throw new SerializationException($"Empty payload for manifest '{manifest}'");
    }
}
