using System.Net.Sockets;
using Akka.Actor;
using Akka.Coordination;
using Akka.Event;

namespace PromHa.Node.Cluster;

/// <summary>
/// The "ping node" tie-breaker for a pure two-node pair, plugged into Akka's lease-majority
/// split-brain strategy. When a node loses its peer, Akka asks for this lease; it is granted only
/// while this node still reaches a majority of the configured targets (TCP connect). A crashed peer
/// therefore always loses to the survivor. A cut link between two hosts that both still reach the
/// targets grants it on both sides (two masters) — docs/architecture.md says so, and the epoch settles it
/// when the link returns.
/// </summary>
public sealed class TieBreakerLease : Lease
{
    private readonly ILoggingAdapter _log;
    private readonly IReadOnlyList<string> _targets;
    private readonly TimeSpan _timeout;
    private volatile bool _held;

    public TieBreakerLease(LeaseSettings settings, ExtendedActorSystem system) : base(settings)
    {
        _log = Logging.GetLogger(system, typeof(TieBreakerLease));
        _targets = settings.LeaseConfig.GetStringList("targets").ToList();
        _timeout = settings.LeaseConfig.GetTimeSpan("connect-timeout", TimeSpan.FromMilliseconds(500));
    }

    public override async Task<bool> Acquire()
    {
        var reached = await CountReachable(_targets, _timeout);
        _held = reached * 2 > _targets.Count;
        _log.Warning("Tie-breaker: reached {0} of {1} targets ({2}); {3}", reached, _targets.Count,
            string.Join(", ", _targets), _held ? "this side stays up" : "this side steps down");
        return _held;
    }

    public override Task<bool> Acquire(Action<Exception?> leaseLostCallback) => Acquire();

    public override Task<bool> Release()
    {
        _held = false;
        return Task.FromResult(true);
    }

    public override bool CheckLease() => _held;

    public static async Task<int> CountReachable(IReadOnlyList<string> targets, TimeSpan timeout)
    {
        var results = await Task.WhenAll(targets.Select(t => Reaches(t, timeout)));
        return results.Count(ok => ok);
    }

    private static async Task<bool> Reaches(string target, TimeSpan timeout)
    {
        if (!PromHa.Node.Settings.SettingsLoader.TryHostPort(target, out var host, out var port)) return false;
        try
        {
            using var client = new TcpClient();
            using var cts = new CancellationTokenSource(timeout);
            await client.ConnectAsync(host, port, cts.Token);
            return true;
        }
        catch (Exception)
        {
            return false;
        }
    }
}
