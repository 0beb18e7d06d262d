namespace PromHa.Node.Replication;

/// <summary>
/// Raft's commit rule for PromHa's ledgers, in one place: a record counts once a majority of the
/// configured nodes' ledgers hold it, so that any later majority holds it too. The cluster's size is
/// the nodes configured (the seed list) or the members present, whichever is more: a node that
/// formed a cluster of its own cannot outvote the real one. A pair is the documented exception: a
/// majority of two is both, so its survivor alone commits and the tie-breaker decides who survives.
/// </summary>
public static class Quorum
{
    public static int Size(int configured, int members) => Math.Max(configured, members);

    /// <summary>How many ledgers make a majority of <paramref name="size"/>; one in a pair.</summary>
    public static int Majority(int size) => size <= 2 ? 1 : size / 2 + 1;

    public static bool IsMajority(int ledgers, int size) => ledgers >= Majority(size);

    /// <summary>Why a record journaled on only <paramref name="ledgers"/> ledgers does not count.</summary>
    public static string NotCommitted(int ledgers, int size) =>
        $"journaled on {ledgers} of the {size} configured nodes' ledgers, not a majority";

    /// <summary>
    /// Whether the ledger heads read so far must include the latest record. Every record is
    /// committed on a majority, so the heads of any majority include it (quorum intersection). A
    /// pair cannot intersect: it waits for every reachable member's head.
    /// </summary>
    /// <param name="headsRead">Heads read among the current members.</param>
    /// <param name="reachableMissing">Reachable members whose head was not read yet.</param>
    public static bool KnowsLatest(int headsRead, int reachableMissing, int size) =>
        size <= 2 ? reachableMissing == 0 : headsRead * 2 > size;
}
