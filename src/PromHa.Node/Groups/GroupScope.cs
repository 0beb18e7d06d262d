using Akka.Actor;
using Akka.Cluster;
using PromHa.Messages.Config;
using PromHa.Messages.Roles;
using PromHa.Node.Cluster;

namespace PromHa.Node.Groups;

/// <summary>
/// One HA group: the nodes that elect a master among themselves and share a conf tree, versions
/// and notifications. The cluster (membership, downing) spans every group; a group's singletons,
/// ledger and topics are named after it. The default group keeps the names a single-group cluster
/// has always used, so its journal (role history, versions) stays its own when groups are added.
/// </summary>
/// <param name="Nodes">The group's node names (witnesses included); empty: every member (no groups configured).</param>
public sealed record GroupScope(string Name, IReadOnlySet<string> Nodes)
{
    public const string DefaultName = "default";
    public const string RolePrefix = "group-";
    /// <summary>Names a group cannot have: its actors' names would be the default group's proxies' ("master-proxy").</summary>
    public static readonly IReadOnlySet<string> Reserved = new HashSet<string> { "proxy" };

    /// <summary>A cluster without groups: every member is in the one group.</summary>
    public static readonly GroupScope Whole = new(DefaultName, new HashSet<string>());

    /// <summary>Whether members are filtered by the group's cluster role.</summary>
    public bool Scoped => Nodes.Count > 0;

    private string Suffix => Name == DefaultName ? "" : "-" + Name;

    /// <summary>The cluster role every member of the group carries (null: no groups).</summary>
    public string? Role => Scoped ? RolePrefix + Name : null;

    public string Ledger => "ledger" + Suffix;
    public string LedgerPersistenceId => "promha-ledger" + Suffix;
    public string MasterSingleton => "master" + Suffix;
    /// <summary>A witness's proxy to the master singleton of a group other than its first (whose proxy Akka.Hosting registers).</summary>
    public string MasterProxy => MasterSingleton + "-proxy";
    public string ConfigVersionsSingleton => "config-versions" + Suffix;
    /// <summary>The notification gate's outbox actor and its SQLite file: a witness keeps one per group, so groups never see each other's notifications.</summary>
    public string Outbox => "outbox" + Suffix;
    public string OutboxFile => "outbox" + Suffix + ".db";
    public string RolesTopic => Topics.Roles + Suffix;
    public string ConfigTopic => ConfigTopics.Config + Suffix;
    /// <summary>The remote-write gates' marks: a group's receivers are its own, even under the same name as another group's.</summary>
    public string RemoteWriteTopic => "promha-remote-write" + Suffix;

    public bool Includes(Member m) => !Scoped || m.HasRole(Role!);

    /// <summary>
    /// Of these members' addresses, those whose per-node actors (role, config sync) follow this
    /// group: every server of it, and a witness only for the first group it serves (its own, see
    /// <see cref="Own"/>); the others would take another group's epochs and versions for theirs.
    /// </summary>
    public IEnumerable<Address> OwnedBy(Akka.Cluster.Cluster cluster, IEnumerable<Address> addresses)
    {
        if (!Scoped) return addresses;
        var members = cluster.State.Members.ToDictionary(m => m.Address);
        return addresses.Where(a => !members.TryGetValue(a, out var m) || !MemberRoles.IsWitness(m) ||
                                    m.Roles.Where(r => r.StartsWith(RolePrefix, StringComparison.Ordinal)).Min(StringComparer.Ordinal) == Role);
    }

    /// <summary>This node's ledger of the group (a witness has one per group it serves).</summary>
    public IActorRef LocalLedger(ActorSystem system) => Local(system, Ledger);

    /// <summary>A top-level actor of this node by name, already started (as the hosting extensions start them, in order).</summary>
    public static IActorRef Local(ActorSystem system, string name)
    {
        var provider = ((ExtendedActorSystem)system).Provider;
        return provider.ResolveActorRef(new RootActorPath(provider.DefaultAddress) / "user" / name);
    }

    /// <param name="allSeeds">The cluster's configured size, the group's when groups are configured.</param>
    public int ConfiguredNodes(int allSeeds) => Scoped ? Nodes.Count : allSeeds;

    /// <summary>Every group in the settings; one <see cref="Whole"/> group without <c>cluster.groups</c>.</summary>
    public static IReadOnlyList<GroupScope> All(Settings.NodeSettings s) => s.Cluster.Groups.Count == 0
        ? [Whole]
        : s.Cluster.Groups.OrderBy(g => g.Key, StringComparer.Ordinal)
            .Select(g => new GroupScope(g.Key, g.Value.ToHashSet(StringComparer.Ordinal))).ToList();

    /// <summary>The groups this node serves: a server's one group, or every group that lists a witness.</summary>
    public static IReadOnlyList<GroupScope> Served(Settings.NodeSettings s) =>
        s.Cluster.Groups.Count == 0 ? [Whole] : All(s).Where(g => g.Nodes.Contains(s.Node.Name)).ToList();

    /// <summary>The group whose actors this node's role, config and gates belong to (a witness: the first it serves).</summary>
    public static GroupScope Own(Settings.NodeSettings s) => Served(s)[0];
}
