using PromHa.Node.RemoteWrite;
using PromHa.Node.RemoteWrite.Prompb;

namespace PromHa.Tests.RemoteWrite;

public sealed class WriteRequestCodecTests
{
    internal static WriteRequest Request(params (string Name, long[] Ms)[] series)
    {
        var r = new WriteRequest();
        r.Metadata.Add(new MetricMetadata { MetricFamilyName = "up", Help = "h", Type = 1 });
        foreach (var (name, ms) in series)
        {
            var ts = new TimeSeries();
            ts.Labels.Add(new Label { Name = "__name__", Value = name });
            ts.Samples.Add(ms.Select(t => new Sample { Timestamp = t, Value = t / 1000.0 }));
            ts.Exemplars.Add(ms.Select(t => new Exemplar { Timestamp = t, Value = 1 }));
            r.Timeseries.Add(ts);
        }
        return r;
    }

    internal static WriteBatch Batch(params (string Name, long[] Ms)[] series) => WriteRequestCodec.Batch(WriteRequestCodec.Encode(Request(series)));

    [Fact]
    public void A_batch_reads_what_it_covers_and_round_trips()
    {
        var b = Batch(("a", [1000, 2000]), ("b", [1500]));
        Assert.Equal((1000L, 2000L, 2, 3), (b.MinMs, b.MaxMs, b.Series, b.Samples));
        var back = WriteRequestCodec.Decode(b.Body);
        Assert.Equal(Request(("a", [1000, 2000]), ("b", [1500])), back);
    }

    internal static ulong H(string name) => WriteRequestCodec.Hash(Request((name, [0])).Timeseries[0]);

    [Fact]
    public void After_keeps_of_each_series_what_comes_after_its_mark_drops_emptied_series_and_keeps_metadata()
    {
        var b = Batch(("a", [1000, 2000, 3000]), ("b", [1500]), ("c", [500]));
        var after = WriteRequestCodec.After(b, new Dictionary<ulong, long> { [H("a")] = 2000, [H("b")] = 1500 })!;
        var r = WriteRequestCodec.Decode(after.Body);
        Assert.Equal(["a", "c"], r.Timeseries.Select(t => t.Labels[0].Value));
        Assert.Equal([3000L], r.Timeseries[0].Samples.Select(s => s.Timestamp));
        Assert.Equal([3000L], r.Timeseries[0].Exemplars.Select(s => s.Timestamp));
        Assert.Equal([500L], r.Timeseries[1].Samples.Select(s => s.Timestamp)); // no mark: all of it
        Assert.Single(r.Metadata);
        Assert.Same(b, WriteRequestCodec.After(b, new Dictionary<ulong, long> { [H("a")] = 999 })); // nothing to drop: the body as it came
        Assert.Null(WriteRequestCodec.After(b, new Dictionary<ulong, long> { [H("a")] = 3000, [H("b")] = 1500, [H("c")] = 500 }));
    }

    [Fact]
    public void A_series_has_the_same_hash_whichever_replica_wrote_it_and_another_one_has_another()
    {
        Assert.Equal(H("a"), H("a"));
        Assert.NotEqual(H("a"), H("b"));
        var spans = Batch(("a", [1000, 2000]), ("b", [1500])).Spans;
        Assert.Equal([(H("a"), 1000L, 2000L), (H("b"), 1500L, 1500L)], spans.Select(x => (x.Hash, x.MinMs, x.MaxMs)));
    }

    [Fact]
    public void Split_halves_by_series_then_by_samples_down_to_one_sample()
    {
        var (a, b) = WriteRequestCodec.Split(Batch(("a", [1000]), ("b", [2000]), ("c", [3000])))!.Value;
        Assert.Equal((1, 2), (a.Series, b.Series));
        var (x, y) = WriteRequestCodec.Split(Batch(("a", [1000, 2000, 3000])))!.Value;
        Assert.Equal([1000L], WriteRequestCodec.Decode(x.Body).Timeseries[0].Samples.Select(s => s.Timestamp));
        Assert.Equal([2000L, 3000L], WriteRequestCodec.Decode(y.Body).Timeseries[0].Samples.Select(s => s.Timestamp));
        Assert.Null(WriteRequestCodec.Split(Batch(("a", [1000]))));
    }

    [Fact]
    public void A_body_that_is_not_snappy_protobuf_is_refused()
    {
        Assert.Throws<InvalidDataException>(() => WriteRequestCodec.Batch("not snappy"u8.ToArray()));
    }

    [Fact]
    public void A_new_writer_sends_a_series_only_half_an_interval_after_the_old_writers_last_sample()
    {
        var own = new OwnIntervals();
        own.Annotate(Batch(("a", [1200])));
        var b = own.Annotate(Batch(("a", [6200, 11200])));
        Assert.Equal(5000, b.Spans[0].IntervalMs);
        // the old writer's last sample at 5000: 6200 would be a second sample of that round
        var after = WriteRequestCodec.After(b, new Dictionary<ulong, long> { [H("a")] = 5000 })!;
        Assert.Equal([11200L], WriteRequestCodec.Decode(after.Body).Timeseries[0].Samples.Select(s => s.Timestamp));
        Assert.Equal(5000, after.Spans[0].IntervalMs);
        // its last at 3000: 6200 is 3.2 s later, more than half an interval: it goes
        after = WriteRequestCodec.After(b, new Dictionary<ulong, long> { [H("a")] = 3000 })!;
        Assert.Equal([6200L, 11200L], WriteRequestCodec.Decode(after.Body).Timeseries[0].Samples.Select(s => s.Timestamp));
    }
}
