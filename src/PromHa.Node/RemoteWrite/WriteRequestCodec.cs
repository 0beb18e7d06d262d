using Google.Protobuf;
using PromHa.Node.RemoteWrite.Prompb;
using Snappier;

namespace PromHa.Node.RemoteWrite;

/// <summary>
/// One series of a batch: the hash of its labels (the same on every replica), its oldest and newest
/// sample, and how often this replica scrapes it (0: not known yet; <see cref="OwnIntervals"/>).
/// </summary>
public readonly record struct SeriesSpan(ulong Hash, long MinMs, long MaxMs, long IntervalMs = 0)
{
    /// <summary>
    /// What of this series may go after the old writer's last sample <paramref name="mark"/>: only
    /// samples more than half an interval later. The first then falls half an interval to one and a
    /// half after the old writer's last: no two samples of one scrape round, no round missing.
    /// </summary>
    public long Threshold(long mark) => mark + IntervalMs / 2;
}

/// <summary>A remote-write request as the gate keeps it: the body as sent, and what it covers, series by series.</summary>
public sealed record WriteBatch(byte[] Body, int Samples, SeriesSpan[] Spans)
{
    public int Bytes => Body.Length + Spans.Length * 24;
    /// <summary>Series with at least one sample.</summary>
    public int Series => Spans.Length;
    public long MinMs => Spans.Length == 0 ? long.MaxValue : Spans.Min(s => s.MinMs);
    public long MaxMs => Spans.Length == 0 ? long.MinValue : Spans.Max(s => s.MaxMs);

    /// <summary>Whether every sample comes after what <paramref name="marks"/> says was sent of its series.</summary>
    public bool AllAfter(IReadOnlyDictionary<ulong, long> marks) =>
        Spans.All(s => !marks.TryGetValue(s.Hash, out var sent) || s.MinMs > s.Threshold(sent));
}

/// <summary>
/// Prometheus's remote-write bodies (snappy block format around a protobuf WriteRequest): read
/// what a batch covers, keep only what comes after a timestamp, split one in two.
/// </summary>
public static class WriteRequestCodec
{
    /// <summary>Reads a body; a body that is not snappy protobuf throws <see cref="InvalidDataException"/>.</summary>
    public static WriteRequest Decode(byte[] body)
    {
        try
        {
            return WriteRequest.Parser.ParseFrom(Snappy.DecompressToArray(body));
        }
        catch (Exception e) when (e is InvalidProtocolBufferException or InvalidDataException or ArgumentException or IndexOutOfRangeException)
        {
            throw new InvalidDataException($"not a snappy-compressed remote-write request ({e.Message})", e);
        }
    }

    public static byte[] Encode(WriteRequest request) => Snappy.CompressToArray(request.ToByteArray());

    public static WriteBatch Batch(byte[] body) => Describe(Decode(body), body);

    public static WriteBatch Describe(WriteRequest request, byte[] body)
    {
        var samples = 0;
        var spans = new List<SeriesSpan>(request.Timeseries.Count);
        foreach (var ts in request.Timeseries)
        {
            long smin = long.MaxValue, smax = long.MinValue;
            foreach (var t in Timestamps(ts))
            {
                smin = Math.Min(smin, t);
                smax = Math.Max(smax, t);
                samples++;
            }
            if (smax != long.MinValue) spans.Add(new SeriesSpan(Hash(ts), smin, smax));
        }
        return new WriteBatch(body, samples, spans.ToArray());
    }

    /// <summary>A request cut from <paramref name="from"/>, encoded and described, its series keeping the intervals <paramref name="from"/> knew.</summary>
    private static WriteBatch Recut(WriteRequest request, WriteBatch from)
    {
        var intervals = from.Spans.ToDictionary(sp => sp.Hash, sp => sp.IntervalMs);
        var cut = Describe(request, Encode(request));
        return cut with { Spans = cut.Spans.Select(sp => sp with { IntervalMs = intervals.GetValueOrDefault(sp.Hash) }).ToArray() };
    }

    /// <summary>A copy of a series with only the samples, histograms and exemplars whose timestamps <paramref name="keep"/> takes.</summary>
    private static TimeSeries Where(TimeSeries ts, Func<long, bool> keep)
    {
        var copy = ts.Clone();
        copy.Samples.Clear();
        copy.Samples.Add(ts.Samples.Where(s => keep(s.Timestamp)));
        copy.Histograms.Clear();
        copy.Histograms.Add(ts.Histograms.Where(h => keep(h.Timestamp)));
        copy.Exemplars.Clear();
        copy.Exemplars.Add(ts.Exemplars.Where(e => keep(e.Timestamp)));
        return copy;
    }

    private static IEnumerable<long> Timestamps(TimeSeries ts) =>
        ts.Samples.Select(s => s.Timestamp).Concat(ts.Histograms.Select(h => h.Timestamp));

    /// <summary>FNV-1a over the labels in order (Prometheus sends them sorted): the same series has the same hash on every node.</summary>
    public static ulong Hash(TimeSeries ts)
    {
        var h = 14695981039346656037UL;
        foreach (var l in ts.Labels)
        {
            foreach (var c in l.Name) h = (h ^ c) * 1099511628211UL;
            h = (h ^ 0xff) * 1099511628211UL;
            foreach (var c in l.Value) h = (h ^ c) * 1099511628211UL;
            h = (h ^ 0xfe) * 1099511628211UL;
        }
        return h;
    }

    /// <summary>
    /// The part of a batch that comes after what <paramref name="marks"/> says was sent, series by
    /// series: samples, histograms and exemplars at or before a series' mark are dropped, a series
    /// left with nothing is dropped; metadata is kept. Null when nothing is left.
    /// </summary>
    public static WriteBatch? After(WriteBatch batch, IReadOnlyDictionary<ulong, long> marks)
    {
        if (batch.AllAfter(marks)) return batch;
        var request = Decode(batch.Body);
        var kept = new WriteRequest();
        kept.Metadata.Add(request.Metadata);
        var spans = batch.Spans.ToDictionary(sp => sp.Hash);
        foreach (var ts in request.Timeseries)
        {
            var hash = Hash(ts);
            if (!marks.TryGetValue(hash, out var mark))
            {
                kept.Timeseries.Add(ts);
                continue;
            }
            var afterMs = spans.TryGetValue(hash, out var span) ? span.Threshold(mark) : mark;
            var copy = Where(ts, t => t > afterMs);
            if (copy.Samples.Count > 0 || copy.Histograms.Count > 0) kept.Timeseries.Add(copy);
        }
        return kept.Timeseries.Count == 0 ? null : Recut(kept, batch);
    }

    /// <summary>
    /// A batch as two halves: by series when it has two or more (metadata with the first), else its
    /// one series by samples; null for a single sample. Splitting down to one sample isolates the
    /// one a receiver refuses (Prometheus refuses a whole request for one out-of-order sample).
    /// </summary>
    public static (WriteBatch First, WriteBatch Second)? Split(WriteBatch batch)
    {
        var request = Decode(batch.Body);
        var a = new WriteRequest();
        var b = new WriteRequest();
        a.Metadata.Add(request.Metadata);
        if (request.Timeseries.Count >= 2)
        {
            var half = request.Timeseries.Count / 2;
            a.Timeseries.Add(request.Timeseries.Take(half));
            b.Timeseries.Add(request.Timeseries.Skip(half));
        }
        else if (request.Timeseries.Count == 1 && request.Timeseries[0].Samples.Count >= 2)
        {
            // samples are in time order: the first half up to its last timestamp, the rest after
            var ts = request.Timeseries[0];
            var cut = ts.Samples[ts.Samples.Count / 2 - 1].Timestamp;
            if (ts.Samples[^1].Timestamp <= cut) return null; // one timestamp throughout: nothing to halve
            a.Timeseries.Add(Where(ts, t => t <= cut));
            b.Timeseries.Add(Where(ts, t => t > cut));
        }
        else return null;
        return (Recut(a, batch), Recut(b, batch));
    }
}
