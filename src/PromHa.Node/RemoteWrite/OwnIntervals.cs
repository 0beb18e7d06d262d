namespace PromHa.Node.RemoteWrite;

/// <summary>
/// How often this node's Prometheus scrapes each series, learnt from the batches it writes (the gap
/// between a series' newest sample and the one before). The gate needs it at a hand-over: the new
/// writer's first sample of a series goes only if it comes more than half an interval after the old
/// writer's last (<see cref="SeriesSpan.Threshold"/>). One writer per receiver: not thread-safe.
/// </summary>
public sealed class OwnIntervals
{
    private readonly Dictionary<ulong, (long Last, long Interval)> _series = new();

    public int Count => _series.Count;

    /// <summary>The batch with each series' interval filled in, as known before it (or from within it).</summary>
    public WriteBatch Annotate(WriteBatch batch)
    {
        var spans = new SeriesSpan[batch.Spans.Length];
        for (var i = 0; i < spans.Length; i++)
        {
            var sp = batch.Spans[i];
            var interval = 0L;
            if (_series.TryGetValue(sp.Hash, out var seen))
            {
                interval = sp.MinMs > seen.Last ? sp.MinMs - seen.Last : seen.Interval;
                _series[sp.Hash] = (Math.Max(seen.Last, sp.MaxMs), interval);
            }
            else _series[sp.Hash] = (sp.MaxMs, 0);
            spans[i] = sp with { IntervalMs = interval };
        }
        return batch with { Spans = spans };
    }

    /// <summary>Forgets series not written since <paramref name="beforeMs"/>.</summary>
    public void Prune(long beforeMs)
    {
        foreach (var gone in _series.Where(kv => kv.Value.Last < beforeMs).Select(kv => kv.Key).ToList()) _series.Remove(gone);
    }
}
