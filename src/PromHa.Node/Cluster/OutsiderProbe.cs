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
    private readonly object _lock = new();
    private Task<int>? _last;
    private long _startedAt;

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
}
