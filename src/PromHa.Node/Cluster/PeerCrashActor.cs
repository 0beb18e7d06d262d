using System.Net.Sockets;
using Akka.Actor;
using Akka.Cluster;
using Akka.Event;
using Akka.Hosting;
using Akka.Remote;
using PromHa.Messages.Roles;
using PromHa.Node.Replication;

namespace PromHa.Node.Cluster;

/// <summary>
/// Tells a crashed peer from a silent one. When a connection to a member drops (the remoting layer
/// reports it disassociated), this actor connects to the member's cluster port and, when
/// known, its HTTP port. A live promha never refuses its own ports; a process that died with its host
/// still up leaves them unbound, and the host's kernel answers with a reset at once. Both refused,
/// twice, 100 ms apart: that incarnation is gone. This node publishes <see cref="PeerProvenDead"/>
/// locally, so that the master singleton voids a dead master's lease instead of waiting it out, and
/// downs it (the singletons move off it at once when it was the oldest member). A cut link, a paused
/// process or a lost host drop packets silently or time out, which proves nothing: those stay on
/// the failure detector and the lease. A firewall that rejects (TCP reset) on both ports would look
/// the same as a dead process (see the README, "Fast failover").
/// </summary>
public sealed class PeerCrashActor : ReceiveActor
{
    public const string Name = "peer-crash";
    private static readonly TimeSpan Recheck = TimeSpan.FromMilliseconds(100);
    private const int Attempts = 5;
    private static readonly TimeSpan ConnectTimeout = TimeSpan.FromMilliseconds(300);

    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly Akka.Cluster.Cluster _cluster = Akka.Cluster.Cluster.Get(Context.System);
    private readonly NodeView _view;
    private readonly PeerDeaths _deaths;
    /// <summary>
    /// Each incarnation is probed once, right after its connection dropped: the failed reconnects
    /// that follow are not probed, so that a process restarted on the same port is not hit by
    /// connections without a TLS handshake while it joins.
    /// </summary>
    private readonly HashSet<UniqueAddress> _probed = [];

    public PeerCrashActor(NodeView view, PeerDeaths deaths)
    {
        _view = view;
        _deaths = deaths;
        Receive<DisassociatedEvent>(e => Suspect(e.RemoteAddress));
        Receive<Verdict>(OnVerdict);
    }

    private sealed record Verdict(UniqueAddress Member, string Name, string? Evidence);

    protected override void PreStart()
    {
        Context.System.EventStream.Subscribe(Self, typeof(DisassociatedEvent));
    }

    protected override void PostStop() => Context.System.EventStream.Unsubscribe(Self);

    private static bool Serving(Member m) =>
        m.Status is MemberStatus.Up or MemberStatus.WeaklyUp or MemberStatus.Joining or MemberStatus.Leaving;

    private void Suspect(Address address)
    {
        if (address == _cluster.SelfAddress) return;
        var member = _cluster.State.Members.FirstOrDefault(m => m.Address == address);
        if (member is null || !Serving(member) || MemberRoles.NodeName(member) is not { } name) return;
        // forget incarnations that are no longer members, then probe this one once
        _probed.IntersectWith(_cluster.State.Members.Select(m => m.UniqueAddress));
        if (!_probed.Add(member.UniqueAddress)) return;
        var api = _view.Current.Status?.Nodes.FirstOrDefault(n => n.Node == name)?.ApiUrl is { } url &&
                  Uri.TryCreate(url, UriKind.Absolute, out var u) ? (u.Host, u.Port) : ((string, int)?)null;
        Prove(member.UniqueAddress, name, api).PipeTo(Self);
    }

    /// <summary>
    /// Two refusals in a row prove it. A process being killed drops its connections a moment before
    /// its listening sockets close, so a port that still accepts right after the drop is asked again
    /// a few times before that counts as alive.
    /// </summary>
    private static async Task<Verdict> Prove(UniqueAddress member, string name, (string Host, int Port)? api)
    {
        var host = member.Address.Host!;
        var port = member.Address.Port!.Value;
        var refusedInARow = 0;
        for (var i = 0; i < Attempts && refusedInARow < 2; i++)
        {
            if (i > 0) await Task.Delay(Recheck);
            var refused = await Refused(host, port) && (api is not { } a || await Refused(a.Host, a.Port));
            // accepted once more after the first try: alive (its link dropped for another reason)
            if (!refused && i > 0) break;
            refusedInARow = refused ? refusedInARow + 1 : 0;
        }
        if (refusedInARow < 2) return new Verdict(member, name, null);
        var ports = api is { } p ? $"cluster port {host}:{port} and HTTP port {p.Host}:{p.Port}" : $"cluster port {host}:{port}";
        return new Verdict(member, name, $"{ports} refused connections twice, {Recheck.TotalMilliseconds:F0} ms apart");
    }

    /// <summary>Only a refusal (the host answered: nothing listens there) counts; a timeout or an unreachable network proves nothing.</summary>
    private static async Task<bool> Refused(string host, int port)
    {
        using var cts = new CancellationTokenSource(ConnectTimeout);
        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        try
        {
            await socket.ConnectAsync(host, port, cts.Token);
            return false;
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionRefused)
        {
            return true;
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException)
        {
            return false;
        }
    }

    private void OnVerdict(Verdict v)
    {
        if (v.Evidence is null) return;
        // the same incarnation, still a member: not one that restarted meanwhile, not one that left
        var member = _cluster.State.Members.FirstOrDefault(m => m.UniqueAddress.Equals(v.Member));
        if (member is null || !Serving(member)) return;
        var incarnation = LedgerMembers.Incarnation(member);
        _log.Warning("{0} ({1}) is gone: {2}; downing it", v.Name, incarnation, v.Evidence);
        _deaths.Add(incarnation);
        Context.System.EventStream.Publish(new PeerProvenDead(v.Name, incarnation, v.Evidence));
        // Downed and unreachable at once: Akka removes only members that are both, and the
        // singletons move off a dead oldest member only once it is removed. Removed early, a
        // process restarted on the same address joins at once; while the old incarnation was still
        // a member, such a restart could not join for half a minute (`promha bench failover`).
        if (_cluster.FailureDetector is { } detector && _cluster.Settings.FailureDetectorImplementationClass.Contains(nameof(DeadAwareFailureDetector)))
            DeadAwareFailureDetector.MarkDead(detector, member.Address);
        _cluster.Down(member.Address);
    }
}

public static class PeerCrashActorHostingExtensions
{
    public static AkkaConfigurationBuilder AddPeerCrashActor(this AkkaConfigurationBuilder builder, NodeView view, PeerDeaths deaths) =>
        builder.WithActors((system, _) => system.ActorOf(Props.Create(() => new PeerCrashActor(view, deaths)), PeerCrashActor.Name));
}
