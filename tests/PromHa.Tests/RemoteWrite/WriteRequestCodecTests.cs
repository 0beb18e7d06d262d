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

    [Fact]
    public void After_keeps_only_newer_samples_and_exemplars_drops_emptied_series_and_keeps_metadata()
    {
        var b = Batch(("a", [1000, 2000, 3000]), ("b", [1500]));
        var after = WriteRequestCodec.After(b, 2000)!;
        var r = WriteRequestCodec.Decode(after.Body);
        Assert.Single(r.Timeseries);
        Assert.Equal([3000L], r.Timeseries[0].Samples.Select(s => s.Timestamp));
        Assert.Equal([3000L], r.Timeseries[0].Exemplars.Select(s => s.Timestamp));
        Assert.Single(r.Metadata);
        Assert.Same(b, WriteRequestCodec.After(b, 999)); // nothing to drop: the body as it came
        Assert.Null(WriteRequestCodec.After(b, 3000));
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
}
