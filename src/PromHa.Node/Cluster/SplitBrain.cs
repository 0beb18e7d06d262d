using PromHa.Node.Http;

namespace PromHa.Node.Cluster;

/// <summary>A side's claim to the master role: its epoch and its master.</summary>
public sealed record MasterClaim(long Epoch, string? Master)
{
    /// <summary>
    /// Which claim keeps the role when the two sides of a cut pair meet again: the higher epoch; on
    /// equal epochs (both sides promoted from the same one) the master whose name sorts first, so
    /// both sides reach the same verdict without talking to each other.
    /// </summary>
    public bool Beats(MasterClaim other) =>
        Epoch != other.Epoch
            ? Epoch > other.Epoch
            : string.CompareOrdinal(Master ?? "\uffff", other.Master ?? "\uffff") < 0;
}

/// <summary>Another master seen outside this node's cluster: what `promha status` shows on each side.</summary>
public sealed record SplitView(
    string Peer,
    string PeerMaster,
    long PeerEpoch,
    string? OurMaster,
    long OurEpoch,
    bool ThisSideKeeps,
    DateTimeOffset Since);

/// <summary>
/// A pure pair whose link was cut while both nodes still reached the tie-breaker targets has two
/// clusters of one, each with a master. The pure decision, tested without actors: given this side's
/// claim and the peer's /api/v1/status, is there a second master, who keeps the role, and does
/// this node leave now to rejoin the peer's cluster as a standby (only once the peer's cluster
/// port answers again, or the restart would only form another cluster of one).
/// </summary>
public static class SplitBrain
{
    public sealed record Verdict(SplitView? View, bool Rejoin);

    public static Verdict Decide(string self, string selfAddress, MasterClaim ours, string peerName, StatusResponse peer,
        bool peerClusterReachable, SplitView? previous, DateTimeOffset now)
    {
        // The peer's cluster includes this node: one cluster, nothing to settle (membership is
        // catching up). A peer without a master competes for nothing.
        var inPeersCluster = peer.Members.Any(m => m.Node == self || m.Address.EndsWith("@" + selfAddress, StringComparison.Ordinal));
        if (inPeersCluster || peer.Master is null || peer.Epoch <= 0) return new Verdict(null, false);
        var theirs = new MasterClaim(peer.Epoch, peer.Master);
        if (theirs == ours) return new Verdict(null, false);
        var keeps = ours.Master is not null && ours.Beats(theirs);
        var since = previous is { } p && p.Peer == peerName && p.PeerEpoch == peer.Epoch ? p.Since : now;
        var view = new SplitView(peerName, peer.Master, peer.Epoch, ours.Master, ours.Epoch, keeps, since);
        return new Verdict(view, !keeps && peerClusterReachable);
    }
}
