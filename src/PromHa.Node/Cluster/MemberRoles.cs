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

    public static string[] For(string nodeName, bool witness) =>
        [NamePrefix + nodeName, witness ? Witness : Server];

    public static string? NodeName(Akka.Cluster.Member m) =>
        m.Roles.FirstOrDefault(r => r.StartsWith(NamePrefix, StringComparison.Ordinal))?[NamePrefix.Length..];

    public static bool IsWitness(Akka.Cluster.Member m) => m.HasRole(Witness);
}
