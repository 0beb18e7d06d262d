using Akka.Actor;
using PromHa.Messages.Cluster;
using PromHa.Node.Replication;

namespace PromHa.Node.Cluster;

/// <summary>
/// Whether the configured nodes missing from this node's cluster are up outside it (a node alone, or
/// a side without a majority, must not take a role while they might form the real cluster). One
/// per node, shared by both singletons (master and config-versions, which usually run on the same
/// node): one round of connects per second whoever asks, instead of one each.
/// </summary>
public sealed class OutsiderProbe(IReadOnlyList<string> seeds)
{
    private static readonly TimeSpan Fresh = TimeSpan.FromMilliseconds(900);
    private static readonly TimeSpan ConnectTimeout = TimeSpan.FromMilliseconds(500);
    private static readonly TimeSpan AskTimeout = TimeSpan.FromSeconds(2);
    private readonly object _lock = new();
    private Task<int>? _last;
    private long _startedAt;

    /// <summary>The cluster's configured nodes (its seeds), whatever groups they form.</summary>
    public int ConfiguredNodes => seeds.Count;

    /// <summary>How many missing configured nodes accept a connection; a probe under way or under a second old is shared.</summary>
    public Task<int> AliveOutsiders(Akka.Cluster.Cluster cluster)
    {
        lock (_lock)
        {
            if (_last is not null && (!_last.IsCompleted || Environment.TickCount64 - _startedAt < Fresh.TotalMilliseconds)) return _last;
            _startedAt = Environment.TickCount64;
            return _last = TieBreakerLease.CountReachable(ClusterAddresses.MissingSeeds(cluster, seeds), ConnectTimeout);
        }
    }

    /// <summary>
    /// A missing configured node that is Up in a cluster of a majority of the configured nodes, one
    /// that does not hold this incarnation: proof that this node is on an island (two clusters
    /// cannot both hold a majority). Null when none says so, answers or is asked.
    /// </summary>
    public async Task<Membership?> MajorityElsewhere(ActorSystem system, Akka.Cluster.Cluster cluster, int configuredNodes) =>
        (await Memberships(system, cluster)).FirstOrDefault(m => ProvesIsland(m, configuredNodes));

    /// <summary>What each configured node outside this cluster says of itself; those that do not answer are left out.</summary>
    public async Task<IReadOnlyList<Membership>> Memberships(ActorSystem system, Akka.Cluster.Cluster cluster)
    {
        var self = cluster.SelfMember;
        var asker = LedgerMembers.Incarnation(self);
        var asks = ClusterAddresses.MissingSeeds(cluster, seeds).Select(async seed =>
        {
            if (!Settings.SettingsLoader.TryHostPort(seed, out var host, out var port)) return null;
            var at = new Address(self.Address.Protocol, self.Address.System, host, port);
            try
            {
                return await system.ActorSelection(new RootActorPath(at) / "user" / MembershipActor.Name)
                    .Ask<Membership>(new GetMembership(asker), AskTimeout);
            }
            catch (Exception)
            {
                return null; // not answering says nothing
            }
        });
        var replies = await Task.WhenAll(asks);
        return replies.OfType<Membership>().ToList();
    }

    /// <summary>Up in a cluster of a majority of the configured nodes, without the asker's incarnation.</summary>
    public static bool ProvesIsland(Membership m, int configuredNodes) => !m.HoldsAsker && m.UpMembers * 2 > configuredNodes;

    /// <summary>
    /// <paramref name="node"/> answers from the address of <paramref name="incarnation"/> as another
    /// process: the one it names no longer holds that port, so it is gone (with any lease it held).
    /// </summary>
    public static bool ProvesGone(Membership m, string node, string incarnation) =>
        m.Node == node && m.Incarnation != incarnation && LedgerMembers.SameAddress(m.Incarnation, incarnation);
}
