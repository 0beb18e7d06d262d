namespace PromHa.Messages.Cluster;

/// <summary>
/// Asked of a configured node outside the asker's cluster by a node without a majority (one that
/// may have started a cluster of its own after a restart, an island): which cluster the asked node
/// is in. <see cref="AskerIncarnation"/> is the asker's address and UID as the ledgers name it.
/// </summary>
public sealed record GetMembership(string AskerIncarnation) : IPromHaMessage;

/// <summary>
/// <see cref="Node"/>'s view of its cluster: how many members are Up and reachable from it (0 while
/// it is not Up itself), and whether the asker's incarnation is one of its members.
/// <see cref="Incarnation"/> is the answering process itself (address and UID, as the ledgers name
/// it): an answer from another incarnation at a master's address proves that master's process gone.
/// </summary>
public sealed record Membership(string Node, int UpMembers, bool HoldsAsker, string Incarnation) : IPromHaMessage;
