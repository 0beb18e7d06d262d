namespace PromHa.Node.Cluster;

/// <summary>
/// The peer incarnations (address and UID) this node proved dead by their refused ports
/// (<see cref="PeerCrashActor"/>). A master singleton that starts on this node later reads it, so
/// that it does not wait out the lease of a master whose process is known to be gone.
/// </summary>
public sealed class PeerDeaths
{
    private const int Keep = 64;
    private readonly object _lock = new();
    private readonly List<string> _order = [];
    private readonly HashSet<string> _dead = [];

    public void Add(string incarnation)
    {
        lock (_lock)
        {
            if (!_dead.Add(incarnation)) return;
            _order.Add(incarnation);
            if (_order.Count <= Keep) return;
            _dead.Remove(_order[0]);
            _order.RemoveAt(0);
        }
    }

    public IReadOnlyCollection<string> Snapshot()
    {
        lock (_lock) return _dead.ToList();
    }
}
