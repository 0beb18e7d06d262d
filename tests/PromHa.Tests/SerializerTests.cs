using Akka.Actor;
using Akka.Configuration;
using PromHa.Messages;
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

    public static TheoryData<IPromHaMessage> Samples() =>
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
        new LedgerSync("a", 0),
        new LedgerEvents("a", [new MasterChanged(1, "a", "no-master", DateTimeOffset.UnixEpoch, null)]),
        new GetHistory(10),
    ];

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

    [Fact]
    public void Every_message_type_in_the_contracts_assembly_has_a_manifest()
    {
        var types = typeof(IPromHaMessage).Assembly.GetTypes()
            .Where(t => t is { IsClass: true, IsAbstract: false } && typeof(IPromHaMessage).IsAssignableFrom(t));
        Assert.All(types, t => Assert.Contains(t, PromHaSerializer.KnownTypes));
    }
}
