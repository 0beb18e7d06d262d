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
public sealed record WriteBatch(byte[] Body, long MinMs, long MaxMs, int Series, int Samples, SeriesSpan[] Spans)
{
    public int Bytes => Body.Length + Spans.Length * 24;

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
        long min = long.MaxValue, max = long.MinValue;
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
            if (smax == long.MinValue) continue;
            spans.Add(new SeriesSpan(Hash(ts), smin, smax));
            min = Math.Min(min, smin);
            max = Math.Max(max, smax);
        }
        return new WriteBatch(body, min, max, request.Timeseries.Count, samples, spans.ToArray());
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
        var intervals = batch.Spans.ToDictionary(sp => sp.Hash, sp => sp);
        foreach (var ts in request.Timeseries)
        {
            var hash = Hash(ts);
            if (!marks.TryGetValue(hash, out var mark))
            {
                kept.Timeseries.Add(ts);
                continue;
            }
            var afterMs = intervals.TryGetValue(hash, out var span) ? span.Threshold(mark) : mark;
            var copy = ts.Clone();
            copy.Samples.Clear();
            copy.Samples.Add(ts.Samples.Where(s => s.Timestamp > afterMs));
            copy.Histograms.Clear();
            copy.Histograms.Add(ts.Histograms.Where(h => h.Timestamp > afterMs));
            copy.Exemplars.Clear();
            copy.Exemplars.Add(ts.Exemplars.Where(e => e.Timestamp > afterMs));
            if (copy.Samples.Count > 0 || copy.Histograms.Count > 0) kept.Timeseries.Add(copy);
        }
        if (kept.Timeseries.Count == 0) return null;
        var described = Describe(kept, Encode(kept));
        return described with { Spans = described.Spans.Select(sp => intervals.TryGetValue(sp.Hash, out var was) ? sp with { IntervalMs = was.IntervalMs } : sp).ToArray() };
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
            var ts = request.Timeseries[0];
            var half = ts.Samples.Count / 2;
            var first = ts.Clone();
            first.Samples.Clear();
            first.Samples.Add(ts.Samples.Take(half));
            first.Histograms.Clear();
            first.Exemplars.Clear();
            first.Exemplars.Add(ts.Exemplars.Where(e => e.Timestamp <= ts.Samples[half - 1].Timestamp));
            var second = ts.Clone();
            second.Samples.Clear();
            second.Samples.Add(ts.Samples.Skip(half));
            second.Exemplars.Clear();
            second.Exemplars.Add(ts.Exemplars.Where(e => e.Timestamp > ts.Samples[half - 1].Timestamp));
            a.Timeseries.Add(first);
            b.Timeseries.Add(second);
        }
        else return null;
        var intervals = batch.Spans.ToDictionary(sp => sp.Hash, sp => sp.IntervalMs);
        WriteBatch Keep(WriteBatch d) => d with { Spans = d.Spans.Select(sp => sp with { IntervalMs = intervals.GetValueOrDefault(sp.Hash) }).ToArray() };
        return (Keep(Describe(a, Encode(a))), Keep(Describe(b, Encode(b))));
    }
}
