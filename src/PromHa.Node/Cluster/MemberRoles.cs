using PromHa.Node.Groups;

namespace PromHa.Node.Cluster;

/// <summary>
/// Cluster roles carry what the singleton needs to know about a member without asking it:
/// its PromHa node name and whether it is a witness.
/// </summary>
public static class MemberRoles
{
    public const string NamePrefix = "node-"; // no ":" or "=": Akka.Hosting writes roles into HOCON unquoted
    public const string Witness = "witness";
    public const string Server = "server";

    /// <param name="groups">The groups the node serves (a witness may serve several); they are roles only when groups are configured.</param>
    public static string[] For(string nodeName, bool witness, IEnumerable<GroupScope>? groups = null) =>
        [NamePrefix + nodeName, witness ? Witness : Server, .. (groups ?? []).Select(g => g.Role).OfType<string>()];

    public static string? NodeName(Akka.Cluster.Member m) =>
        m.Roles.FirstOrDefault(r => r.StartsWith(NamePrefix, StringComparison.Ordinal))?[NamePrefix.Length..];

    public static bool IsWitness(Akka.Cluster.Member m) => m.HasRole(Witness);
}
