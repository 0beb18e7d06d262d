using System.Diagnostics;

namespace PromHa.Node;

/// <summary>
/// Wall-clock time that never jumps backwards: leases are measured with it, and an NTP step must
/// not extend or cut a lease.
/// </summary>
public static class Clock
{
    private static readonly DateTimeOffset Start = DateTimeOffset.UtcNow;
    private static readonly Stopwatch Watch = Stopwatch.StartNew();

    public static DateTimeOffset Now => Start + Watch.Elapsed;
}
