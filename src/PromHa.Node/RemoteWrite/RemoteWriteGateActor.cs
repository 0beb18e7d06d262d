using System.Net.Http.Headers;
using Akka.Actor;
using Akka.Cluster.Tools.PublishSubscribe;
using Akka.Event;
using Akka.Hosting;
using PromHa.Messages.RemoteWrite;
using PromHa.Node.Cluster;
using PromHa.Node.Groups;
using PromHa.Node.Settings;
using Prometheus;

namespace PromHa.Node.RemoteWrite;

/// <summary>A batch from the local Prometheus for a master-only receiver (the HTTP endpoint asks).</summary>
public sealed record AcceptWrite(string Receiver, WriteBatch Batch);

/// <summary>What the endpoint answers Prometheus: 204 kept, 503 full (it retries), 404 no such receiver.</summary>
public sealed record AcceptWriteAnswer(int Status, string Message);

/// <summary>
/// The remote-write gate of every master-only receiver (<see cref="RemoteWriteGateState"/>): takes
/// the local Prometheus's batches, forwards them in order while this node holds the master lease,
/// tells the other nodes how far the receiver acknowledged, and otherwise holds what the master has
/// not confirmed. The role moves without a reload of any Prometheus.
/// </summary>
public sealed class RemoteWriteGateActor : ReceiveActor, IWithTimers
{
    /// <summary>The marks of the default group; another group's gates use <see cref="GroupScope.RemoteWriteTopic"/>.</summary>
    public const string Topic = "promha-remote-write";
    private static readonly TimeSpan TickEvery = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan PublishEvery = TimeSpan.FromMilliseconds(250);
    /// <summary>How often marks and intervals of series not written for bufferSeconds are forgotten.</summary>
    private static readonly TimeSpan PruneEvery = TimeSpan.FromMinutes(1);
    /// <summary>A batch is only started with this much lease left: a send must not outlive the role by much.</summary>
    private static readonly TimeSpan LeaseNeeded = TimeSpan.FromMilliseconds(400);

    private static readonly Gauge PendingBytes = Metrics.CreateGauge("promha_remote_write_pending_bytes",
        "Bytes of remote-write batches this node's gate holds (standby: not yet confirmed by the master; master: not yet sent).", "receiver");
    private static readonly Gauge AckedSeconds = Metrics.CreateGauge("promha_remote_write_acked_timestamp_seconds",
        "The newest sample timestamp the receiver acknowledged, as this node knows it.", "receiver");
    private static readonly Gauge ForwardingGauge = Metrics.CreateGauge("promha_remote_write_forwarding",
        "1 while this node's gate forwards to the receiver (it is master).", "receiver");
    private static readonly Counter ForwardedSamples = Metrics.CreateCounter("promha_remote_write_forwarded_samples_total",
        "Samples this node's gate sent and the receiver acknowledged.", "receiver");
    private static readonly Counter DroppedSamples = Metrics.CreateCounter("promha_remote_write_rejected_samples_total",
        "Samples the receiver refused for good (one series at a time, after splitting the batch).", "receiver");
    private static readonly Counter Failures = Metrics.CreateCounter("promha_remote_write_send_failures_total",
        "Sends that failed and will be retried.", "receiver");

    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly NodeSettings _settings;
    /// <summary>The marks' topic: the node's group's, fixed for the node's life.</summary>
    private readonly string _topic;
    private readonly NodeView _view;
    private readonly Dictionary<string, Receiver> _receivers = new();
    private readonly IActorRef _mediator = DistributedPubSub.Get(Context.System).Mediator;
    private DateTimeOffset _lastPublish = DateTimeOffset.MinValue;

    public ITimerScheduler Timers { get; set; } = null!;

    private sealed class Receiver(string name, RemoteWriteTarget target, RemoteWriteGateState state, HttpClient http)
    {
        public OwnIntervals Intervals { get; } = new();
        public string Name { get; } = name;
        public RemoteWriteTarget Target { get; } = target;
        public RemoteWriteGateState State { get; set; } = state;
        public HttpClient Http { get; } = http;
        public DateTimeOffset NotBefore { get; set; } = DateTimeOffset.MinValue;
        public TimeSpan Backoff { get; set; } = TimeSpan.Zero;
    }

    private sealed record Tick
    {
        public static readonly Tick Instance = new();
    }

    private sealed record SendResult(string Receiver, long Seq, SendOutcome Outcome, WriteBatch? Sent, (WriteBatch, WriteBatch)? Halves, string? Error);

    /// <summary>Marks per message: a remoting frame holds 128,000 bytes, and a mark is ~40 bytes of JSON.</summary>
    private const int MarksPerMessage = 1500;
    private DateTimeOffset _lastPrune = DateTimeOffset.UtcNow;

    public RemoteWriteGateActor(NodeSettings settings, NodeView view)
    {
        _settings = settings;
        _topic = GroupScope.Own(settings).RemoteWriteTopic;
        _view = view;
        foreach (var (target, name) in MasterOnly(settings))
        {
            var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
            http.DefaultRequestHeaders.UserAgent.ParseAdd("promha-remote-write-gate");
            if (target.BearerTokenFile.Length > 0)
                http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", File.ReadAllText(target.BearerTokenFile).Trim());
            else if (target.BasicAuthUsername.Length > 0)
                http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(
                    System.Text.Encoding.UTF8.GetBytes($"{target.BasicAuthUsername}:{File.ReadAllText(target.BasicAuthPasswordFile).Trim()}")));
            _receivers[name] = new Receiver(name, target,
                RemoteWriteGateState.Initial(target.BufferBytes, TimeSpan.FromSeconds(target.BufferSeconds)), http);
        }

        Receive<AcceptWrite>(a =>
        {
            if (!_receivers.TryGetValue(a.Receiver, out var r))
            {
                Sender.Tell(new AcceptWriteAnswer(404, $"404: no master-only receiver named '{a.Receiver}' in promha.yml"));
                return;
            }
            var (next, accepted) = r.State.Accept(r.Intervals.Annotate(a.Batch), DateTimeOffset.UtcNow);
            r.State = next;
            Sender.Tell(accepted
                ? new AcceptWriteAnswer(204, "")
                : new AcceptWriteAnswer(503, $"503: the gate holds {r.State.PendingBytes} bytes for {r.Name} (remoteWrite bufferBytes); Prometheus retries"));
            Pump(r);
        });
        Receive<RemoteWriteAcked>(m =>
        {
            if (m.Node == _settings.Node.Name || !_receivers.TryGetValue(m.Receiver, out var r)) return;
            r.State = r.State.HeardAcked(m.Series.Zip(m.SeriesMs), m.Final);
            Pump(r);
        });
        Receive<SendResult>(OnSent);
        Receive<Tick>(_ => OnTick());
        Receive<SubscribeAck>(_ => { });
    }

    /// <summary>The master-only receivers of promha.yml with their names (remote_write's and the gate URL's).</summary>
    public static IEnumerable<(RemoteWriteTarget Target, string Name)> MasterOnly(NodeSettings s) =>
        s.RemoteWrite.Select((t, i) => (t, t.EffectiveName(i))).Where(x => x.t.Mode == RemoteWriteTarget.MasterOnly);

    protected override void PreStart()
    {
        if (_receivers.Count == 0) return;
        _mediator.Tell(new Subscribe(_topic, Self));
        Timers.StartPeriodicTimer("tick", Tick.Instance, TickEvery);
    }

    private bool MayForward(DateTimeOffset now) => _view.IsMaster && _view.LeaseLeft(now) > LeaseNeeded;

    private void OnTick()
    {
        var now = DateTimeOffset.UtcNow;
        var master = _view.IsMaster;
        var publish = now - _lastPublish >= PublishEvery;
        var prune = now - _lastPrune > PruneEvery;
        foreach (var r in _receivers.Values)
        {
            if (master && !r.State.Forwarding)
            {
                r.State = r.State.Promote(now);
                _log.Info("Remote write {0}: this node is master; sending to {1} of each series what comes after its mark ({2} series marked, newest {3})",
                    r.Name, r.Target.Url, r.State.FilterMarks.Count, Show(r.State.Known));
            }
            else if (!master && r.State.Forwarding)
            {
                r.State = r.State.StepDown();
                _log.Info("Remote write {0}: no longer master; holding (acknowledged through {1})", r.Name, Show(r.State.Acked));
            }
            PublishFinalIfDue(r);
            r.State = r.State.Expire(now);
            if (publish && r.State.Forwarding) Publish(r, final: false);
            if (prune)
            {
                r.State = r.State.Prune();
                r.Intervals.Prune((now - r.Target.BufferSeconds * TimeSpan.FromSeconds(1)).ToUnixTimeMilliseconds());
            }
            PendingBytes.WithLabels(r.Name).Set(r.State.PendingBytes);
            ForwardingGauge.WithLabels(r.Name).Set(r.State.Forwarding ? 1 : 0);
            if (r.State.Known != long.MinValue) AckedSeconds.WithLabels(r.Name).Set(r.State.Known / 1000.0);
            Pump(r);
        }
        if (publish) _lastPublish = now;
        if (prune) _lastPrune = now;
    }

    /// <summary>The final mark, once the last batch a stepped-down gate sent is back.</summary>
    private void PublishFinalIfDue(Receiver r)
    {
        var (state, publish) = r.State.TakeFinal();
        r.State = state;
        if (publish) Publish(r, final: true);
    }

    /// <summary>What the receiver acknowledged since the last message, in chunks; the final mark goes even when empty.</summary>
    private void Publish(Receiver r, bool final)
    {
        var (state, delta) = r.State.TakeDelta();
        r.State = state;
        if (delta.Count == 0 && !final) return;
        var chunks = delta.Chunk(MarksPerMessage).ToList();
        if (chunks.Count == 0) chunks.Add([]);
        for (var i = 0; i < chunks.Count; i++)
            _mediator.Tell(new Publish(_topic, new RemoteWriteAcked(r.Name, _settings.Node.Name, _view.Current.Epoch,
                final && i == chunks.Count - 1, chunks[i].Select(c => c.Hash).ToArray(), chunks[i].Select(c => c.Ms).ToArray())));
    }

    /// <summary>Starts the next send of a receiver, if the gate forwards, nothing is in flight and the backoff is over.</summary>
    private void Pump(Receiver r)
    {
        var now = DateTimeOffset.UtcNow;
        if (!r.State.Forwarding || r.State.InFlight is not null || now < r.NotBefore || !MayForward(now)) return;
        var (state, next) = r.State.Next(now);
        if (next is null) return;
        r.State = state;
        WriteBatch? batch;
        try
        {
            batch = WriteRequestCodec.After(next.Batch, r.State.FilterMarks);
        }
        catch (InvalidDataException e)
        {
            Self.Tell(new SendResult(r.Name, next.Seq, SendOutcome.Rejected, null, null, e.Message));
            return;
        }
        if (batch is null) // all of it came before the filter: the old master sent it
        {
            Self.Tell(new SendResult(r.Name, next.Seq, SendOutcome.Acked, null, null, null));
            return;
        }
        Send(r, next.Seq, batch).PipeTo(Self);
    }

    private static async Task<SendResult> Send(Receiver r, long seq, WriteBatch batch)
    {
        try
        {
            using var content = new ByteArrayContent(batch.Body);
            content.Headers.ContentType = new MediaTypeHeaderValue("application/x-protobuf");
            content.Headers.ContentEncoding.Add("snappy");
            using var request = new HttpRequestMessage(HttpMethod.Post, r.Target.Url) { Content = content };
            request.Headers.Add("X-Prometheus-Remote-Write-Version", "0.1.0");
            using var response = await r.Http.SendAsync(request);
            var code = (int)response.StatusCode;
            if (code is >= 200 and < 300) return new SendResult(r.Name, seq, SendOutcome.Acked, batch, null, null);
            var body = await response.Content.ReadAsStringAsync();
            var error = $"HTTP {code}: {(body.Length > 300 ? body[..300] : body).Trim()}";
            if (code is >= 400 and < 500 && code != 429)
                return new SendResult(r.Name, seq, SendOutcome.Rejected, batch, WriteRequestCodec.Split(batch), error);
            return new SendResult(r.Name, seq, SendOutcome.Retry, batch, null, error);
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or IOException)
        {
            return new SendResult(r.Name, seq, SendOutcome.Retry, batch, null, e.GetBaseException().Message);
        }
    }

    private void OnSent(SendResult m)
    {
        if (!_receivers.TryGetValue(m.Receiver, out var r)) return;
        var droppedBefore = r.State.Dropped;
        r.State = r.State.Sent(m.Seq, m.Outcome, m.Sent, m.Halves);
        switch (m.Outcome)
        {
            case SendOutcome.Acked:
                r.Backoff = TimeSpan.Zero;
                r.NotBefore = DateTimeOffset.MinValue;
                ForwardedSamples.WithLabels(r.Name).Inc(m.Sent?.Samples ?? 0);
                break;
            case SendOutcome.Retry:
                r.Backoff = r.Backoff == TimeSpan.Zero ? TimeSpan.FromMilliseconds(100) : TimeSpan.FromTicks(Math.Min(r.Backoff.Ticks * 2, TimeSpan.FromSeconds(5).Ticks));
                r.NotBefore = DateTimeOffset.UtcNow + r.Backoff;
                Failures.WithLabels(r.Name).Inc();
                _log.Warning("Remote write {0}: sending to {1} failed ({2}); again in {3} ms", r.Name, r.Target.Url, m.Error, (int)r.Backoff.TotalMilliseconds);
                break;
            case SendOutcome.Rejected when m.Halves is null:
                DroppedSamples.WithLabels(r.Name).Inc(r.State.Dropped - droppedBefore);
                _log.Warning("Remote write {0}: {1} refused a series for good ({2}); dropped {3} sample(s)", r.Name, r.Target.Url, m.Error, r.State.Dropped - droppedBefore);
                break;
            case SendOutcome.Rejected:
                _log.Info("Remote write {0}: {1} refused a batch ({2}); sending it in halves", r.Name, r.Target.Url, m.Error);
                break;
        }
        PublishFinalIfDue(r);
        Pump(r);
    }

    private static string Show(long ms) => ms == long.MinValue ? "nothing (no mark heard)" : DateTimeOffset.FromUnixTimeMilliseconds(ms).ToString("HH:mm:ss.fff");
}

public sealed class RemoteWriteGateKey;

public static class RemoteWriteGateActorHostingExtensions
{
    public static AkkaConfigurationBuilder AddRemoteWriteGateActor(this AkkaConfigurationBuilder builder, NodeSettings settings, NodeView view) =>
        builder.WithActors((system, registry) =>
            registry.Register<RemoteWriteGateKey>(system.ActorOf(Props.Create(() => new RemoteWriteGateActor(settings, view)), "remote-write")));
}
