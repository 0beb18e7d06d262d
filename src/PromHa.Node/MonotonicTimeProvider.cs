using System.Diagnostics;

namespace PromHa.Node;

/// <summary>
/// Wall-clock time that never jumps backwards: leases are measured with it, and an NTP step must
/// not extend or cut a lease. Actors get it injected (through <see cref="Cluster.NodeView.Time"/>
/// or their Add...Actor wiring), so that tests drive lease, retry and repeat logic with a
/// FakeTimeProvider instead of sleeping.
/// </summary>
public sealed class MonotonicTimeProvider : TimeProvider
{
    public static readonly MonotonicTimeProvider Instance = new();

    private readonly DateTimeOffset _start = DateTimeOffset.UtcNow;
    private readonly long _startTimestamp = Stopwatch.GetTimestamp();

    private MonotonicTimeProvider() { }

    public override DateTimeOffset GetUtcNow() => _start + Stopwatch.GetElapsedTime(_startTimestamp);
}
