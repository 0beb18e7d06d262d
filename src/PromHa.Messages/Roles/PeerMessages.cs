namespace PromHa.Messages.Roles;

/// <summary>
/// Published on the node's own event stream (never sent over the wire) when this node proved a
/// peer's process dead: its cluster port and its HTTP port both refused connections, twice. The
/// master singleton on this node then treats that incarnation's lease as void.
/// </summary>
public sealed record PeerProvenDead(string Node, string Incarnation, string Evidence);
