using System.IO.Compression;
using System.Net;
using System.Text.Json;
using Akka.Actor;
using Akka.Cluster;
using Akka.Event;
using Akka.Hosting;
using Polly;
using Polly.Retry;
using PromHa.Messages.Alerts;
using PromHa.Node.Cluster;
using PromHa.Node.Config;
using PromHa.Node.Groups;
using PromHa.Node.Replication;
using PromHa.Node.Settings;

namespace PromHa.Node.Alerts;

/// <summary>Local: a webhook body the node's Alertmanager posted to the gate.</summary>
public sealed record AcceptNotification(string Receiver, int Target, byte[] Body);

/// <summary>The HTTP answer to Alertmanager: 200 only once a majority of the outboxes hold the notification.</summary>
public sealed record AcceptAnswer(int Status, string Message);

/// <summary>The webhooks the running config names: set on every apply, read by the gate and the HTTP endpoint.</summary>
public sealed class GateRoutes
{
    private volatile GateTable _table = GateTable.Empty;

    public GateTable Table
    {
        get => _table;
        set => _table = value;
    }

    /// <summary>The config version the table comes from (0: none applied yet).</summary>
    public long Version { get; set; }
}

/// <summary>
/// The notification gate. Every node's Alertmanager delivers its webhooks here. Accepting: the
/// notification goes into the replicated delivery record (a majority of the nodes' outboxes, through
/// <see cref="ReplicatedLog{TEntry,TAck}"/>) before Alertmanager gets its 2xx, so that whoever is
/// master next finds it. Delivering: only while this node holds the master lease, with time to spare,
/// and only after it read a majority of the outboxes for this epoch (so it knows what the previous
/// master settled); one notification at a time per alert group, in order, retried with backoff (Polly),
/// each outcome replicated like the notification.
/// </summary>
public sealed class NotificationGateActor : ReceiveActor, IWithTimers
{
    public const string Name = "gate";
    /// <summary>A compressed payload must fit one remoting frame (128,000 bytes) with its record.</summary>
    public const int MaxCompressedPayload = 100 * 1024;
    /// <summary>A delivery starts only with this much lease left: it ends before a successor may begin.</summary>
    public static readonly TimeSpan LeaseToSpare = TimeSpan.FromMilliseconds(500);
    private static readonly TimeSpan AttemptTimeout = TimeSpan.FromSeconds(10);

    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly Akka.Cluster.Cluster _cluster = Akka.Cluster.Cluster.Get(Context.System);
    private readonly NodeSettings _s;
    private readonly NodeView _view;
    private DateTimeOffset Now => _view.Time.GetUtcNow();
    private readonly GateRoutes _routes;
    private readonly IActorRef _outbox;
    private readonly ReplicatedLog<NotificationRecord, NotificationRecorded> _records;
    private readonly ReplicatedLog<DeliveryOutcome, NotificationRecorded> _outcomes;
    private readonly HttpClient _http = new() { Timeout = AttemptTimeout };
    /// <summary>Notifications being delivered or settled, with their receiver's group: one at a time per group.</summary>
    private readonly Dictionary<string, (string Group, CancellationTokenSource Cancel)> _inFlight = new();
    private long _syncedEpoch = -1;
    private bool _syncing;
    private bool _asking;
    private bool _askAgain;
    private int _ticks;

    /// <summary>The node's own group: its notifications are stored on the outboxes of that group's nodes only.</summary>
    private readonly GroupScope _group;

    public NotificationGateActor(NodeSettings s, NodeView view, GateRoutes routes, IActorRef outbox)
    {
        _s = s;
        _group = GroupScope.Own(s);
        _view = view;
        _routes = routes;
        _outbox = outbox;
        _records = new ReplicatedLog<NotificationRecord, NotificationRecorded>(
            new LogSpec<NotificationRecord, NotificationRecorded>(r => new RecordNotification(r), (a, r) => a.Id == r.Id,
                (r, why) => new DiscardNotification(r.Id, why), _group.Outbox),
            Context.System, () => _outbox, LiveMembers, ClusterSize);
        _outcomes = new ReplicatedLog<DeliveryOutcome, NotificationRecorded>(
            new LogSpec<DeliveryOutcome, NotificationRecorded>(o => new RecordDeliveryOutcome(o), (a, o) => a.Id == o.Id,
                (o, why) => new DiscardNotification(o.Id, why), _group.Outbox),
            Context.System, () => _outbox, LiveMembers, ClusterSize);

        Receive<AcceptNotification>(Accept);
        Receive<OutboxChanged>(_ => Ask());
        Receive<Tick>(_ => OnTick());
        Receive<OutboxesSynced>(OnSynced);
        Receive<DeliverableList>(OnDeliverable);
        Receive<Sent>(OnSent);
        Receive<Settled>(st =>
        {
            _inFlight.Remove(st.Id);
            Ask();
        });
    }

    public ITimerScheduler Timers { get; set; } = null!;

    private sealed record Tick
    {
        public static readonly Tick Instance = new();
    }

    /// <summary>A delivery ended: delivered, given up, or stopped because the lease ran short (no outcome then).</summary>
    private sealed record Sent(NotificationRecord Record, string Reason, long Epoch, bool Ok, bool Stopped, int Attempts, string? Error);

    private sealed record Settled(string Id);

    protected override void PreStart() => Timers.StartPeriodicTimer("tick", Tick.Instance, TimeSpan.FromSeconds(1));

    protected override void PostStop()
    {
        foreach (var (_, c) in _inFlight.Values) c.Cancel();
        _http.Dispose();
    }

    private IReadOnlyCollection<Address> LiveMembers()
    {
        var state = _cluster.State;
        return state.Members.Where(m => m.Status is MemberStatus.Joining or MemberStatus.WeaklyUp or MemberStatus.Up && !state.Unreachable.Contains(m) && _group.Includes(m))
            .Select(m => m.Address).ToList();
    }

    /// <summary>The group's size for majorities: its configured nodes or its members present, whichever is more.</summary>
    private int ClusterSize() => Quorum.Size(_group.ConfiguredNodes(_s.Cluster.Seeds.Count), _cluster.State.Members.Count(_group.Includes));

    // ---- accepting ---------------------------------------------------------------------------

    private void Accept(AcceptNotification a)
    {
        var replyTo = Sender;
        void Refuse(int status, string why, string metric)
        {
            AlertMetrics.Refused.WithLabels(a.Receiver, metric).Inc();
            _log.Warning("Refused a notification for {0}/{1} (HTTP {2}): {3}", a.Receiver, a.Target, status, why);
            replyTo.Tell(new AcceptAnswer(status, why));
        }

        if (_routes.Table.Target(a.Receiver, a.Target) is null)
        {
            Refuse(404, $"receiver '{a.Receiver}' has no webhook #{a.Target} in the running alertmanager.yml (config version {_routes.Version})", "unknown");
            return;
        }
        string groupKey;
        List<string> firing = [], resolved = [], ends = [];
        try
        {
            using var doc = JsonDocument.Parse(a.Body);
            groupKey = doc.RootElement.GetProperty("groupKey").GetString() ?? "";
            foreach (var alert in doc.RootElement.GetProperty("alerts").EnumerateArray())
            {
                var fp = alert.TryGetProperty("fingerprint", out var f) && f.GetString() is { Length: > 0 } s ? s : LabelsHash(alert);
                DateTimeOffset? startsAt = alert.TryGetProperty("startsAt", out var sa) && sa.ValueKind == JsonValueKind.String &&
                                           sa.TryGetDateTimeOffset(out var start) ? start : null;
                var isResolved = alert.TryGetProperty("status", out var st) && st.GetString() == "resolved";
                (isResolved ? resolved : firing).Add(DeliveryDecision.Alert(fp, startsAt));
                if (isResolved && alert.TryGetProperty("endsAt", out var ea) && ea.ValueKind == JsonValueKind.String && ea.TryGetDateTimeOffset(out var end))
                    ends.Add(DeliveryDecision.Alert(fp, end));
            }
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            Refuse(400, $"not an Alertmanager webhook payload: {e.Message}", "invalid");
            return;
        }
        firing.Sort(StringComparer.Ordinal);
        resolved.Sort(StringComparer.Ordinal);
        ends.Sort(StringComparer.Ordinal);
        var payload = Gzip(a.Body);
        if (payload.Length > MaxCompressedPayload)
        {
            Refuse(413, $"the notification is {a.Body.Length} bytes ({payload.Length} compressed), more than the delivery record carries ({MaxCompressedPayload}); " +
                        "set max_alerts on this webhook in alertmanager.yml", "too-large");
            return;
        }
        var record = new NotificationRecord(Guid.CreateVersion7().ToString("N"), a.Receiver, a.Target, groupKey,
            DeliveryDecision.DedupKey(a.Receiver, a.Target, groupKey, firing, resolved), firing, resolved, payload,
            DateTimeOffset.UtcNow, _s.Node.Name, _view.Current.Epoch, ends);
        var size = ClusterSize();
        var log = _records;
        var logger = _log;
        log.Append(record).ContinueWith(t =>
        {
            if (!t.IsCompletedSuccessfully)
            {
                AlertMetrics.Refused.WithLabels(a.Receiver, "not-stored").Inc();
                replyTo.Tell(new AcceptAnswer(503, $"this node's outbox did not store the notification: {t.Exception?.GetBaseException().Message}"));
                return;
            }
            var acks = t.Result.Acks.Count;
            if (Quorum.IsMajority(acks, size))
            {
                AlertMetrics.Received.WithLabels(a.Receiver).Inc();
                replyTo.Tell(new AcceptAnswer(200, $"accepted as {record.Id} ({acks} of {size} outboxes)"));
                return;
            }
            var why = Quorum.NotCommitted(acks, size);
            log.Discard(record, why);
            AlertMetrics.Refused.WithLabels(a.Receiver, "no-majority").Inc();
            logger.Warning("Notification for {0} not accepted: {1}; Alertmanager sends it again", a.Receiver, why);
            replyTo.Tell(new AcceptAnswer(503, $"not accepted: {why}; Alertmanager retries"));
        }, TaskScheduler.Default);
    }

    private static string LabelsHash(JsonElement alert)
    {
        var labels = alert.TryGetProperty("labels", out var l) && l.ValueKind == JsonValueKind.Object
            ? string.Join(',', l.EnumerateObject().Select(p => $"{p.Name}={p.Value}").Order(StringComparer.Ordinal))
            : alert.GetRawText();
        return Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(labels)))[..16].ToLowerInvariant();
    }

    public static byte[] Gzip(byte[] data)
    {
        using var ms = new MemoryStream();
        using (var gz = new GZipStream(ms, CompressionLevel.Fastest)) gz.Write(data);
        return ms.ToArray();
    }

    public static byte[] Gunzip(byte[] data)
    {
        using var gz = new GZipStream(new MemoryStream(data), CompressionMode.Decompress);
        using var ms = new MemoryStream();
        gz.CopyTo(ms);
        return ms.ToArray();
    }

    // ---- delivering (master only) ----------------------------------------------------------

    private bool CanDeliver(long epoch) => _view.IsMaster && _view.Current.Epoch == epoch && _view.LeaseLeft(Now) > LeaseToSpare;

    private void OnTick()
    {
        _ticks++;
        if (!_view.IsMaster)
        {
            if (_inFlight.Count > 0) _log.Warning("No longer master: stopping {0} delivery(ies); the next master sends them", _inFlight.Count);
            foreach (var (_, c) in _inFlight.Values) c.Cancel();
            _syncedEpoch = -1;
            return;
        }
        var epoch = _view.Current.Epoch;
        // a new reign reads a majority of the outboxes first: what the previous master settled is on one of them
        if (_syncedEpoch != epoch || _ticks % 5 == 0)
        {
            if (!_syncing)
            {
                _syncing = true;
                var others = LiveMembers().Where(m => m != _cluster.SelfAddress).ToList();
                _outbox.Tell(new SyncOutboxes(others, _syncedEpoch == epoch ? 0 : Quorum.Majority(ClusterSize()), epoch));
            }
            if (_syncedEpoch != epoch) return;
        }
        Ask();
    }

    private void OnSynced(OutboxesSynced s)
    {
        _syncing = false;
        if (s.Epoch != _view.Current.Epoch || !_view.IsMaster) return;
        if (s.Answered < s.Needed)
        {
            _log.Warning("Read {0} of the {1} outboxes a new master needs before it delivers; trying again", s.Answered, s.Needed);
            return;
        }
        if (_syncedEpoch != s.Epoch) _log.Info("Gate open for epoch {0}: read {1} outbox(es); delivering", s.Epoch, s.Answered);
        _syncedEpoch = s.Epoch;
        Ask();
    }

    private void Ask()
    {
        if (_asking)
        {
            _askAgain = true; // the answer on its way may predate what just arrived
            return;
        }
        if (_syncedEpoch != _view.Current.Epoch || !CanDeliver(_syncedEpoch)) return;
        _asking = true;
        _outbox.Tell(new GetDeliverable(_inFlight.Keys.ToHashSet(), _inFlight.Values.Select(v => v.Group).ToHashSet()));
    }

    private void OnDeliverable(DeliverableList list)
    {
        _asking = false;
        if (_askAgain)
        {
            _askAgain = false;
            Self.Tell(OutboxChanged.Instance);
        }
        var epoch = _view.Current.Epoch;
        if (epoch != _syncedEpoch) return;
        var table = _routes.Table;
        foreach (var d in list.Items)
        {
            var r = d.Record;
            if (_inFlight.ContainsKey(r.Id) || !CanDeliver(epoch)) continue;
            if (table.Target(r.Receiver, r.Target) is not { } target)
            {
                Settle(r, DeliveryState.Failed, "no-webhook", epoch, 0,
                    $"receiver '{r.Receiver}' has no webhook #{r.Target} in the running alertmanager.yml (config version {_routes.Version})");
                continue;
            }
            var decision = DeliveryDecision.Decide(r, d.LastOfGroup, d.SameContent, table.RepeatInterval(r.Receiver), target.SendResolved, epoch, d.Ended);
            if (!decision.Deliver)
            {
                AlertMetrics.Deduplicated.WithLabels(r.Receiver, decision.Reason).Inc();
                _log.Info("Notification {0} for {1} not sent ({2}{3})", r.Id, r.Receiver, decision.Reason,
                    decision.DuplicateOf is { } of ? $" of {of}" : "");
                Settle(r, DeliveryState.Duplicate, decision.Reason, epoch, 0, null, decision.DuplicateOf);
                continue;
            }
            var cancel = new CancellationTokenSource();
            _inFlight[r.Id] = (OutboxActor.GroupOf(r), cancel);
            Deliver(r, target, decision.Reason, epoch, cancel.Token).PipeTo(Self);
        }
    }

    private async Task<Sent> Deliver(NotificationRecord r, WebhookTarget target, string reason, long epoch, CancellationToken cancel)
    {
        var attempts = 0;
        var view = _view;
        bool StillMaster() => view.IsMaster && view.Current.Epoch == epoch && view.LeaseLeft(view.Time.GetUtcNow()) > LeaseToSpare;
        var log = _log;
        var pipeline = new ResiliencePipelineBuilder<HttpResponseMessage>()
            .AddTimeout(TimeSpan.FromSeconds(_s.Alerts.GiveUpAfterSeconds))
            .AddRetry(new RetryStrategyOptions<HttpResponseMessage>
            {
                ShouldHandle = args => ValueTask.FromResult(StillMaster() && !cancel.IsCancellationRequested && Retryable(args.Outcome)),
                MaxRetryAttempts = int.MaxValue,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = TimeSpan.FromMilliseconds(500),
                MaxDelay = TimeSpan.FromSeconds(10),
                OnRetry = args =>
                {
                    AlertMetrics.Retried.WithLabels(r.Receiver).Inc();
                    log.Warning("Delivery {0} to {1} failed ({2}); retry {3} in {4:F1}s", r.Id, r.Receiver, Describe(args.Outcome),
                        args.AttemptNumber + 1, args.RetryDelay.TotalSeconds);
                    return default;
                },
            })
            .Build();
        var body = Gunzip(r.Payload);
        try
        {
            using var response = await pipeline.ExecuteAsync(async ct =>
            {
                attempts++;
                if (!StillMaster()) throw new OperationCanceledException("the master lease runs short");
                using var request = new HttpRequestMessage(HttpMethod.Post, target.Url) { Content = new ByteArrayContent(body) };
                request.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
                if (target.Authorization is { } auth) request.Headers.TryAddWithoutValidation("Authorization", auth);
                request.Headers.Add("X-PromHa-Delivery-Id", r.Id);
                request.Headers.Add("X-PromHa-Reason", reason);
                request.Headers.Add("X-PromHa-Epoch", epoch.ToString(System.Globalization.CultureInfo.InvariantCulture));
                request.Headers.Add("X-PromHa-Node", _s.Node.Name);
                // when the gate took it from Alertmanager: the receiver can tell what the gate added
                request.Headers.Add("X-PromHa-Accepted-At", r.AcceptedAt.ToUnixTimeMilliseconds().ToString(System.Globalization.CultureInfo.InvariantCulture));
                request.Headers.UserAgent.ParseAdd("PromHa-gate/1");
                return await _http.SendAsync(request, ct);
            }, cancel);
            if (response.IsSuccessStatusCode) return new Sent(r, reason, epoch, true, false, attempts, null);
            if (!StillMaster() || cancel.IsCancellationRequested) return new Sent(r, reason, epoch, false, true, attempts, "lease");
            return new Sent(r, reason, epoch, false, false, attempts, $"HTTP {(int)response.StatusCode} {response.ReasonPhrase}");
        }
        catch (Polly.Timeout.TimeoutRejectedException)
        {
            return new Sent(r, reason, epoch, false, false, attempts, $"still failing after {_s.Alerts.GiveUpAfterSeconds} s of retries");
        }
        catch (Exception e) when (!StillMaster() || cancel.IsCancellationRequested)
        {
            return new Sent(r, reason, epoch, false, true, attempts, e.Message);
        }
        catch (Exception e)
        {
            return new Sent(r, reason, epoch, false, false, attempts, e.Message);
        }
    }

    private static bool Retryable(Outcome<HttpResponseMessage> outcome) => outcome switch
    {
        { Exception: HttpRequestException or TaskCanceledException or TimeoutException } => true,
        { Result: { } resp } => (int)resp.StatusCode >= 500 || resp.StatusCode is HttpStatusCode.RequestTimeout or HttpStatusCode.TooManyRequests,
        _ => false,
    };

    private static string Describe(Outcome<HttpResponseMessage> o) =>
        o.Exception is { } e ? e.Message : $"HTTP {(int)o.Result!.StatusCode} {o.Result.ReasonPhrase}";

    private void OnSent(Sent s)
    {
        var r = s.Record;
        if (s.Stopped)
        {
            _inFlight.Remove(r.Id);
            _log.Warning("Delivery {0} to {1} stopped: this node's master lease ran short; the next master sends it", r.Id, r.Receiver);
            return;
        }
        if (s.Ok)
        {
            AlertMetrics.Delivered.WithLabels(r.Receiver, s.Reason).Inc();
            _log.Info("Delivered {0} to {1} ({2}, {3} attempt(s), {4} firing, {5} resolved)", r.Id, r.Receiver, s.Reason, s.Attempts, r.Firing.Count, r.Resolved.Count);
            Settle(r, DeliveryState.Delivered, s.Reason, s.Epoch, s.Attempts, null);
        }
        else
        {
            AlertMetrics.Failed.WithLabels(r.Receiver).Inc();
            _log.Error("Gave up delivering {0} to {1} after {2} attempt(s): {3}; kept in the outbox (GET /api/v1/notifications)",
                r.Id, r.Receiver, s.Attempts, s.Error ?? "");
            Settle(r, DeliveryState.Failed, s.Reason, s.Epoch, s.Attempts, s.Error);
        }
    }

    /// <summary>Replicates an outcome; the receiver's next notification waits until this node's outbox holds it.</summary>
    private void Settle(NotificationRecord r, DeliveryState state, string reason, long epoch, int attempts, string? error, string? duplicateOf = null)
    {
        var outcome = new DeliveryOutcome(r.Id, state, reason, _s.Node.Name, epoch, DateTimeOffset.UtcNow, attempts, error, duplicateOf);
        if (!_inFlight.ContainsKey(r.Id)) _inFlight[r.Id] = (OutboxActor.GroupOf(r), new CancellationTokenSource());
        var self = Self;
        var size = ClusterSize();
        var logger = _log;
        // The group's next notification may go once this node's outbox holds the outcome (its
        // deduplication reads it there); the copies on the other outboxes follow in the background.
        // Released once: when the local outbox took it, or when the append ended otherwise.
        var released = 0;
        void Release()
        {
            if (Interlocked.Exchange(ref released, 1) == 0) self.Tell(new Settled(r.Id));
        }
        _outcomes.Append(outcome, Release).ContinueWith(t =>
        {
            Release();
            if (t.IsCompletedSuccessfully && !Quorum.IsMajority(t.Result.Acks.Count, size))
                logger.Warning("The outcome of {0} reached {1} of {2} outboxes; anti-entropy carries it further", r.Id, t.Result.Acks.Count, size);
        }, TaskScheduler.Default);
    }
}

/// <summary>Marker key for the node's notification gate.</summary>
public sealed class GateKey;

public static class NotificationGateActorHostingExtensions
{
    public static AkkaConfigurationBuilder AddNotificationGateActor(this AkkaConfigurationBuilder builder, NodeSettings s, NodeView view, GateRoutes routes) =>
        builder.WithActors((system, registry) =>
        {
            var outbox = registry.Get<OutboxKey>();
            registry.Register<GateKey>(system.ActorOf(Props.Create(() => new NotificationGateActor(s, view, routes, outbox)), NotificationGateActor.Name));
        });
}
