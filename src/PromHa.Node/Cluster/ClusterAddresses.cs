using Akka.Actor;

namespace PromHa.Node.Cluster;

/// <summary>Cluster addresses written the way seeds are configured: host:port.</summary>
public static class ClusterAddresses
{
    public static string HostPort(Address a) => $"{a.Host}:{a.Port}";

    /// <summary>The configured seeds that are not members of this node's cluster right now.</summary>
    public static List<string> MissingSeeds(Akka.Cluster.Cluster cluster, IEnumerable<string> seeds)
    {
        var members = cluster.State.Members.Select(m => HostPort(m.Address)).ToHashSet();
        return seeds.Where(s => !members.Contains(s)).ToList();
    }
}
