using PromHa.Messages.Roles;

namespace PromHa.Messages.Ledger;

/// <summary>Persist this role change in the receiving node's journal; answered with <see cref="Recorded"/>.</summary>
public sealed record RecordMasterChanged(MasterChanged Change) : IEpochMessage
{
    public long Epoch => Change.Epoch;
}

public sealed record Recorded(string Node, long Epoch) : IEpochMessage;

/// <summary>Asks a ledger for its highest epoch; a starting singleton asks every member.</summary>
public sealed record GetLedgerHead : IPromHaMessage
{
    public static readonly GetLedgerHead Instance = new();
}

public sealed record LedgerHead(string Node, long Epoch, MasterChanged? Last) : IEpochMessage;

/// <summary>Anti-entropy between ledgers: "I have up to <see cref="Epoch"/>; send me what is newer".</summary>
public sealed record LedgerSync(string Node, long Epoch) : IEpochMessage;

public sealed record LedgerEvents(string Node, IReadOnlyList<MasterChanged> Events) : IPromHaMessage;

public sealed record GetHistory(int Limit) : IPromHaMessage;
