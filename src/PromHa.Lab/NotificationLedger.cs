using PromHa.Node.Sink;

namespace PromHa.Lab;

/// <summary>One firing of one alert as the receiver saw it: from its start, the deliveries that said it fires and that it resolved.</summary>
public sealed record AlertCycle(string Name, DateTimeOffset StartsAt, IReadOnlyList<Delivery> Firing, IReadOnlyList<Delivery> Resolved);

/// <summary>What a receiver got, against what the alerts did.</summary>
/// <param name="LostFiring">alert cycles (name @ n-th firing) that fired but no delivery said so</param>
/// <param name="LostResolved">cycles that resolved but no delivery said so</param>
/// <param name="DoubledByContent">deliveries with another id but the very content of an earlier delivery of their group, within the repeat interval</param>
/// <param name="DoubledById">deliveries of an id already received (a crash between the receiver's answer and the outcome's record; a receiver can drop them)</param>
public sealed record LedgerReport(IReadOnlyList<AlertCycle> Cycles, IReadOnlyList<string> LostFiring, IReadOnlyList<string> LostResolved,
    IReadOnlyList<Delivery> DoubledByContent, IReadOnlyList<Delivery> DoubledById);

/// <summary>
/// Counts a webhook receiver's deliveries per alert and per firing cycle (the alerts' startsAt), not
/// only per delivery id, so that an alert that fires again is an expectation of its own: the
/// flapping alert the first dedup rule swallowed is a lost cycle here. Used by the end-to-end tests
/// and `promha-lab bench alerts`.
/// </summary>
public static class NotificationLedger
{
    /// <summary>Starts closer than this are one firing seen by replicas that evaluated a moment apart.</summary>
    private static readonly TimeSpan SameStart = TimeSpan.FromSeconds(3);

    /// <param name="expected">per trigger name: how many times it fired, and how many of those firings resolved</param>
    public static LedgerReport Count(IEnumerable<Delivery> deliveries, IReadOnlyDictionary<string, (int Fired, int Resolved)> expected, TimeSpan repeatInterval)
    {
        var seenIds = new HashSet<string>();
        var doubledById = new List<Delivery>();
        var unique = new List<Delivery>();
        foreach (var d in deliveries.OrderBy(d => d.At))
            if (d.Id is { } id && !seenIds.Add(id)) doubledById.Add(d);
            else unique.Add(d);

        var doubledByContent = new List<Delivery>();
        foreach (var group in unique.GroupBy(d => d.GroupKey))
        {
            var earlier = new List<(string Content, DateTimeOffset At)>();
            foreach (var d in group)
            {
                var content = Content(d);
                if (earlier.Any(e => e.Content == content && d.At - e.At < repeatInterval * 0.9)) doubledByContent.Add(d);
                earlier.Add((content, d.At));
            }
        }

        var cycles = new List<AlertCycle>();
        var lostFiring = new List<string>();
        var lostResolved = new List<string>();
        foreach (var (name, (fired, resolved)) in expected)
        {
            var mine = unique.SelectMany(d => d.Alerts.Where(a => a.Name == name).Select(a => (Delivery: d, Alert: a))).ToList();
            var starts = new List<DateTimeOffset>();
            foreach (var s in mine.Select(m => m.Alert.StartsAt).Distinct().Order())
                if (starts.Count == 0 || s - starts[^1] > SameStart) starts.Add(s);
            var ofName = starts.Select(s => new AlertCycle(name, s,
                mine.Where(m => m.Alert.Status == "firing" && (m.Alert.StartsAt - s).Duration() <= SameStart).Select(m => m.Delivery).ToList(),
                mine.Where(m => m.Alert.Status == "resolved" && (m.Alert.StartsAt - s).Duration() <= SameStart).Select(m => m.Delivery).ToList())).ToList();
            cycles.AddRange(ofName);
            var firedSeen = ofName.Count(c => c.Firing.Count > 0);
            for (var i = firedSeen; i < fired; i++) lostFiring.Add($"{name}@{i + 1}");
            var resolvedSeen = ofName.Count(c => c.Resolved.Count > 0);
            for (var i = resolvedSeen; i < resolved; i++) lostResolved.Add($"{name}@{i + 1}");
        }
        return new LedgerReport(cycles, lostFiring, lostResolved, doubledByContent, doubledById);
    }

    /// <summary>A delivery's news: its alerts, their states and starts.</summary>
    public static string Content(Delivery d) =>
        string.Join(' ', d.Alerts.Select(a => $"{a.Fingerprint}{(a.Status == "resolved" ? "-" : "+")}{a.StartsAt.ToUnixTimeMilliseconds()}").Order(StringComparer.Ordinal));
}
