using CsCheck;
using PromHa.Node.RemoteWrite;
using static PromHa.Tests.RemoteWrite.WriteRequestCodecTests;

namespace PromHa.Tests.RemoteWrite;

/// <summary>
/// The master-only gate against a model of what really happens: two replicas scrape the same
/// targets at their own phases, each Prometheus writes one batch a second to its node's gate, the
/// master's gate forwards to a receiver that refuses a whole batch for one out-of-order sample
/// (Prometheus 2.42), marks travel with delays, and the role moves by a switchover or a crash.
/// </summary>
public sealed class RemoteWriteGateStateTests
{
    private static readonly DateTimeOffset T0 = DateTimeOffset.UnixEpoch.AddDays(20000);
    private const long Interval = 1000;
    private const long End = 24000;

    private static RemoteWriteGateState Fresh() => RemoteWriteGateState.Initial(1 << 30, TimeSpan.FromMinutes(10));

    private static (ulong, long)[] Mark(string series, long ms) => [(H(series), ms)];

    [Fact]
    public void A_standby_forgets_what_the_master_confirmed_and_a_promoted_gate_sends_of_each_series_what_comes_after_its_mark()
    {
        var s = Fresh();
        (s, _) = s.Accept(Batch(("a", [1000, 2000]), ("b", [1500])), T0);
        (s, _) = s.Accept(Batch(("a", [3000]), ("b", [2500])), T0);
        s = s.HeardAcked([.. Mark("a", 2000), .. Mark("b", 1500)], final: false);
        Assert.Single(s.Pending);
        // b's mark is older than a's: a single mark for both would have cut b's 2500
        s = s.HeardAcked(Mark("a", 3200), final: true).Promote(T0.AddSeconds(1));
        var (s2, next) = s.Next(T0.AddSeconds(1));
        var sent = WriteRequestCodec.After(next!.Batch, s2.FilterMarks)!;
        Assert.Equal([(H("b"), 2500L, 2500L)], sent.Spans.Select(x => (x.Hash, x.MinMs, x.MaxMs)));
        s2 = s2.Sent(next.Seq, SendOutcome.Acked, sent);
        Assert.Equal(2500, s2.Marks[H("b")]);
        Assert.Empty(s2.Pending);
        var (published, delta) = s2.TakeDelta();
        Assert.Equal([(H("b"), 2500L)], delta);
        Assert.Empty(published.TakeDelta().Delta);
    }

    [Fact]
    public void A_promoted_gate_waits_for_the_old_masters_final_mark_a_while_then_goes_on()
    {
        var s = Fresh();
        (s, _) = s.Accept(Batch(("a", [1000])), T0);
        s = s.HeardAcked(Mark("a", 500), final: false).Promote(T0);
        Assert.Null(s.Next(T0.AddMilliseconds(100)).Next);
        Assert.NotNull(s.Next(T0.AddSeconds(2)).Next); // a crash: nobody says final
        var heard = s.HeardAcked(Mark("a", 1000), final: true); // a switchover: the last word arrives, and covers the batch
        Assert.Empty(heard.Pending);
        Assert.Equal(1000, heard.FilterMarks[H("a")]);
    }

    [Fact]
    public void A_stepped_down_gate_sends_its_final_mark_after_the_batch_in_flight()
    {
        var s = Fresh().HeardAcked([], final: true).Promote(T0);
        (s, _) = s.Accept(Batch(("a", [1000])), T0);
        var (sending, next) = s.Next(T0);
        var down = sending.StepDown();
        Assert.False(down.TakeFinal().Publish);
        down = down.Sent(next!.Seq, SendOutcome.Acked, next.Batch);
        var (after, publish) = down.TakeFinal();
        Assert.True(publish);
        Assert.Equal(1000, after.Acked);
        Assert.False(after.TakeFinal().Publish);
    }

    [Fact]
    public void A_full_gate_refuses_so_that_prometheus_keeps_the_batch_and_retries()
    {
        var b = Batch(("a", [1000]));
        var s = RemoteWriteGateState.Initial(b.Bytes + 1, TimeSpan.FromMinutes(1));
        (s, var first) = s.Accept(b, T0);
        (s, var second) = s.Accept(Batch(("a", [2000])), T0);
        Assert.True(first);
        Assert.False(second);
    }

    /// <summary>One generated run: phases, batch delays, mark delays, the event and its timing.</summary>
    public sealed record Run(int[] PhaseA, int[] PhaseB, int Series, int[] BatchLagA, int[] BatchLagB, int MarkLag, bool Crash, int SwitchAtMs,
        int PromoteAfterMs, bool InFlightLands)
    {
        public override string ToString() =>
            $"phases A [{string.Join(",", PhaseA.Take(Series))}] B [{string.Join(",", PhaseB.Take(Series))}] ms, {Series} series, mark lag {MarkLag} ms, {(Crash ? "crash" : "switchover")} at {SwitchAtMs} ms, " +
            $"promote after {PromoteAfterMs} ms, in-flight lands {InFlightLands}, batch lags A [{string.Join(",", BatchLagA)}] B [{string.Join(",", BatchLagB)}]";
    }

    private static readonly Gen<Run> Runs = Gen.Select(Gen.Int[0, 999].Array[3], Gen.Int[0, 999].Array[3], Gen.Int[1, 3], Gen.Int[0, 400].Array[30], Gen.Int[0, 400].Array[30],
        Gen.Int[0, 600], Gen.Bool, Gen.Int[160, 280], Gen.Int[50, 3000], Gen.Bool,
        // the event falls on a step of the simulation (50 ms)
        (pa, pb, n, la, lb, ml, crash, at, promote, lands) => new Run(pa, pb, n, la, lb, ml, crash, at * 50, promote, lands));

    [Fact]
    public void Through_a_switchover_no_interval_is_missing_or_crowded_and_one_writer_follows_the_other_and_through_a_crash_at_most_one_is_missing()
    {
        Runs.Where(r => r.PhaseA.Zip(r.PhaseB).All(p => p.Item1 != p.Item2)).Sample(run =>
        {
            var (received, dropped, switched) = Simulate(run);
            Assert.True(switched, "the role never moved");
            if (!run.Crash) Assert.True(dropped == 0, $"{dropped} sample(s) refused by the receiver in a switchover");
            foreach (var (series, samples) in received)
            {
                var shown = string.Join(" ", samples);
                // in order (the receiver refuses anything else), from the first scrape on
                for (var i = 1; i < samples.Count; i++) Assert.True(samples[i] > samples[i - 1]);
                // one writer, then the other: never both at once
                var k = int.Parse(series[1..]);
                var writers = samples.Select(t => t % Interval == run.PhaseA[k] ? 'A' : 'B').ToList();
                var changes = writers.Zip(writers.Skip(1)).Count(p => p.Item1 != p.Item2);
                Assert.True(changes <= 1 && writers[0] == 'A', $"{series}: writers {new string(writers.ToArray())}: {shown}");
                var gaps = samples.Zip(samples.Skip(1), (a, b) => b - a).ToList();
                var missing = gaps.Sum(g => g > 1.5 * Interval ? (int)Math.Round(g / (double)Interval) - 1 : 0);
                Assert.True(missing <= (run.Crash ? 1 : 0), $"{series}: {missing} interval(s) missing: {shown}");
                // at the hand-over the new writer's first sample comes half an interval or more after the old writer's last
                if (!run.Crash) Assert.True(gaps.All(g => g >= Interval / 2), $"{series}: two samples within half an interval: {shown}");
                Assert.True(samples[^1] >= End - 2500, $"{series} stops at {samples[^1]}");
            }
        }, iter: 1000, print: r => r.ToString());
    }

    /// <summary>24 s of two replicas (A master first); returns the receiver's sample times per series, and how many samples it refused.</summary>
    private static (Dictionary<string, List<long>> Received, long Dropped, bool Switched) Simulate(Run run)
    {
        var gates = new[] { Fresh(), Fresh() };
        var phase = new[] { run.PhaseA, run.PhaseB };
        var lags = new[] { run.BatchLagA, run.BatchLagB };
        var written = new long[] { -1, -1 }; // each Prometheus has written its scrapes up to here
        var intervals = new[] { new OwnIntervals(), new OwnIntervals() };
        var received = Enumerable.Range(0, run.Series).ToDictionary(i => $"s{i}", _ => new List<long>());
        var marks = new List<(long At, int To, IReadOnlyList<(ulong, long)> Series, bool Final)>();
        var dead = new bool[2];
        var master = 0;
        gates[0] = gates[0].HeardAcked([], final: true).Promote(T0);
        (int Gate, PendingBatch Batch, long LandsAt)? inFlight = null;
        var promoteAt = long.MaxValue;
        long lastPublish = 0;
        for (long now = 0; now <= End; now += 50)
        {
            var at = T0.AddMilliseconds(now);
            // each Prometheus writes last second's scrapes once a second, a little late
            for (var g = 0; g < 2; g++)
            {
                if (dead[g] || now % 1000 != 0 || now == 0) continue;
                var lag = lags[g][(int)(now / 1000) % lags[g].Length];
                var upTo = Math.Max(written[g], now - lag);
                var series = received.Keys.Select((name, i) => (name, Enumerable.Range(0, 30).Select(k => k * Interval + phase[g][i])
                    .Where(t => t > written[g] && t <= upTo).ToArray())).Where(x => x.Item2.Length > 0).ToArray();
                written[g] = upTo;
                if (series.Length == 0) continue;
                var batch = intervals[g].Annotate(Batch(series));
                (gates[g], _) = gates[g].Accept(batch, at);
            }
            // marks arrive
            foreach (var m in marks.Where(m => m.At <= now).ToList())
            {
                marks.Remove(m);
                if (!dead[m.To]) gates[m.To] = gates[m.To].HeardAcked(m.Series, m.Final);
            }
            // the event
            if (now == run.SwitchAtMs)
            {
                if (run.Crash)
                {
                    dead[0] = true;
                    if (inFlight is { Gate: 0 } f && !run.InFlightLands) inFlight = null;
                }
                else gates[0] = gates[0].StepDown();
                promoteAt = now + run.PromoteAfterMs;
                master = -1;
            }
            if (now >= promoteAt && master == -1)
            {
                master = 1;
                gates[1] = gates[1].Promote(at);
            }
            // the receiver answers the batch in flight (100 ms later), Prometheus 2.42's rules
            if (inFlight is { } flight && flight.LandsAt <= now)
            {
                inFlight = null;
                var body = WriteRequestCodec.Decode(flight.Batch.Batch.Body);
                var ok = body.Timeseries.All(ts =>
                {
                    var name = ts.Labels.Single().Value;
                    var last = received[name].Count == 0 ? long.MinValue : received[name][^1];
                    return ts.Samples.All(s => s.Timestamp > last) && ts.Samples.Zip(ts.Samples.Skip(1)).All(p => p.Item2.Timestamp > p.Item1.Timestamp);
                });
                if (ok)
                    foreach (var ts in body.Timeseries)
                    {
                        var list = received[ts.Labels.Single().Value];
                        list.AddRange(ts.Samples.Select(x => x.Timestamp));
                    }
                if (!dead[flight.Gate])
                    gates[flight.Gate] = gates[flight.Gate].Sent(flight.Batch.Seq, ok ? SendOutcome.Acked : SendOutcome.Rejected,
                        flight.Batch.Batch, ok ? null : WriteRequestCodec.Split(flight.Batch.Batch));
            }
            // gates publish marks every 250 ms (final when due), the master sends
            for (var g = 0; g < 2; g++)
            {
                if (dead[g]) continue;
                var (taken, final) = gates[g].TakeFinal();
                gates[g] = taken;
                if (final || (gates[g].Forwarding && now - lastPublish >= 250))
                {
                    var (published, delta) = gates[g].TakeDelta();
                    gates[g] = published;
                    if (final || delta.Count > 0) marks.Add((now + run.MarkLag, 1 - g, delta, final));
                }
                if (inFlight is null && gates[g].Forwarding)
                {
                    var (state, next) = gates[g].Next(at);
                    gates[g] = state;
                    if (next is not null)
                    {
                        var filtered = WriteRequestCodec.After(next.Batch, gates[g].FilterMarks);
                        if (filtered is null) gates[g] = gates[g].Sent(next.Seq, SendOutcome.Acked, null);
                        else inFlight = (g, next with { Batch = filtered }, now + 100);
                    }
                }
            }
            if (now - lastPublish >= 250) lastPublish = now;
        }
        return (received, gates[0].Dropped + gates[1].Dropped, master == 1);
    }
}
