using System.Text;
using PromHa.Messages.Alerts;
using PromHa.Node.Alerts;

namespace PromHa.Tests.Alerts;

/// <summary>
/// One step of a generated scenario: <see cref="Gap"/> group_intervals after the previous step,
/// alerts change (<see cref="Toggles"/>: bit i flips alert i, firing or resolving it), then every
/// Alertmanager flushes. <see cref="Copies"/>: bit i, Alertmanager i's copies of this step's
/// notifications reach the gates (none set: the first's); <see cref="Jitter"/>: 4 bits of 100 ms per
/// Alertmanager on top of its place (i x 5 s, the gossip peer wait); <see cref="Retry"/>: the first
/// arriving copy is sent again 3 s later (its gate's answer was lost); <see cref="Failover"/> just
/// before the flush: 1 the master delivered its next notification but the outcome was lost, 2 it
/// stopped before sending; <see cref="Lazy"/>: the master delivers this step's notifications 20 s
/// later, not as each arrives (a backlog).
/// </summary>
public sealed record SimStep(int Gap, int Toggles, int Copies, int Jitter, bool Retry, int Failover, bool Lazy)
{
    public override string ToString() => $"new({Gap}, {Toggles}, {Copies}, {Jitter}, {(Retry ? "true" : "false")}, {Failover}, {(Lazy ? "true" : "false")})";
}

/// <summary>A whole generated scenario: one receiver's webhook, its groups and alerts, 2 or 3 Alertmanagers.</summary>
public sealed record SimScenario(bool SendResolved, int Alertmanagers, int RepeatTicks, int Groups, int AlertsPerGroup, SimStep[] Steps)
{
    public override string ToString() =>
        $"new SimScenario({(SendResolved ? "true" : "false")}, {Alertmanagers}, {RepeatTicks}, {Groups}, {AlertsPerGroup}, [{string.Join(", ", Steps.Select(s => s.ToString()))}])";
}

/// <summary>What reached the receiver, as an idempotent receiver counts it (a delivery id twice is once).</summary>
public sealed record Received(string Id, string Group, string Content, string Reason, bool AfterFailover);

/// <summary>
/// Drives one never-failing Alertmanager (the model) and PromHa's gate with the same scenario. The
/// gate side: every Alertmanager is the same model fed the same alerts, so each sends the same
/// notifications; their copies reach the gates late and out of order, some twice, some never (but
/// one always, and none of a group's next notification before one of its last: an Alertmanager's log
/// holds a notification only once a gate accepted it, its own or, by gossip, another's, and repeats
/// it repeat_interval after that); the
/// replicated delivery record is one <see cref="OutboxStore"/> (what a majority holds); the master
/// takes the deliverable notifications from it and decides with <see cref="DeliveryDecision"/>, as
/// NotificationGateActor does; failovers lose an outcome or stop a delivery before it is sent.
/// </summary>
public static class GateSimulation
{
    public static readonly TimeSpan GroupInterval = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan PeerWait = TimeSpan.FromSeconds(5);
    private static readonly DateTimeOffset T0 = new(2026, 12, 1, 0, 0, 0, TimeSpan.Zero);
    private const string Receiver = "pager";

    public static (List<ModelNotification> Expected, List<Received> Got) Run(SimScenario sc, Action<string>? trace = null)
    {
        var repeat = GroupInterval * sc.RepeatTicks;
        var model = new AlertmanagerModel(sc.SendResolved, repeat);
        var groups = Enumerable.Range(0, sc.Groups).Select(g => $"g{g}").ToList();
        var expected = new List<ModelNotification>();
        // the gate's inputs, in time: a copy's arrival, the master delivering, a failover
        var events = new List<(DateTimeOffset At, int Order, Action<GateState> Act)>();
        var lastArrival = new DateTimeOffset[sc.Alertmanagers];
        // when the gates first accepted each group's previous notification
        var previousAccepted = new Dictionary<string, DateTimeOffset>();
        var now = T0;
        var seq = 0;
        foreach (var step in sc.Steps)
        {
            now += GroupInterval * Math.Max(1, step.Gap);
            var changeAt = now - TimeSpan.FromSeconds(3);
            for (var g = 0; g < sc.Groups; g++)
                for (var a = 0; a < sc.AlertsPerGroup; a++)
                {
                    if ((step.Toggles >> (g * sc.AlertsPerGroup + a) & 1) == 0) continue;
                    var fp = $"{groups[g]}{(char)('a' + a)}";
                    if (model.IsFiring(groups[g], fp)) model.Resolve(groups[g], fp, changeAt);
                    else model.Fire(groups[g], fp, changeAt);
                }
            if (step.Failover != 0)
            {
                var fate = step.Failover;
                events.Add((now - TimeSpan.FromSeconds(1), seq++, s => s.Failover(fate)));
            }
            var copies = step.Copies & ((1 << sc.Alertmanagers) - 1);
            if (copies == 0) copies = 1;
            foreach (var group in groups)
            {
                if (model.Flush(group, now) is not { } n) continue;
                expected.Add(n);
                var first = true;
                var earliest = DateTimeOffset.MaxValue;
                for (var am = 0; am < sc.Alertmanagers; am++)
                {
                    if ((copies >> am & 1) == 0) continue;
                    // one Alertmanager sends a group's notifications in order, each after the last was answered
                    var at = now + PeerWait * am + TimeSpan.FromMilliseconds(100 * (step.Jitter >> (4 * am) & 15));
                    if (at <= lastArrival[am]) at = lastArrival[am] + TimeSpan.FromMilliseconds(1);
                    // Alertmanager logs a notification once a gate accepted it (gossip shares the log):
                    // what follows it in the group's sequence comes after a copy of it was accepted,
                    // and a repeat repeat_interval after that (the log entry's time)
                    if (previousAccepted.TryGetValue(group, out var prev))
                    {
                        if (n.Reason == "repeat" && at < prev + repeat) at = prev + repeat + TimeSpan.FromMilliseconds(100 * (step.Jitter >> (4 * am) & 15));
                        if (at <= prev) at = prev + TimeSpan.FromMilliseconds(1);
                    }
                    lastArrival[am] = at;
                    earliest = at < earliest ? at : earliest;
                    var from = am;
                    events.Add((at, seq++, s => s.Arrive(n, from, at)));
                    if (!step.Lazy) events.Add((at, seq++, s => s.Deliver(s.Now)));
                    if (first && step.Retry)
                    {
                        var again = at + TimeSpan.FromSeconds(3);
                        lastArrival[am] = again;
                        events.Add((again, seq++, s => s.Arrive(n, from, again)));
                        if (!step.Lazy) events.Add((again, seq++, s => s.Deliver(s.Now)));
                    }
                    first = false;
                }
                previousAccepted[group] = earliest;
            }
            // a master with a backlog delivers it a while later
            if (step.Lazy) events.Add((now + TimeSpan.FromSeconds(20), seq++, s => s.Deliver(s.Now)));
        }
        events.Add((now + TimeSpan.FromMinutes(10), seq++, s => s.Deliver(s.Now)));

        using var state = new GateState(repeat, sc.SendResolved) { Trace = trace };
        foreach (var (at, _, act) in events.OrderBy(e => e.At).ThenBy(e => e.Order))
        {
            state.Now = at;
            act(state);
        }
        return (expected, state.Received);
    }

    /// <summary>The gate's side: the replicated delivery record, the master's epoch, and the receiver.</summary>
    private sealed class GateState(TimeSpan repeat, bool sendResolved) : IDisposable
    {
        private readonly OutboxStore _store = new(":memory:");
        private readonly HashSet<string> _receivedIds = [];
        private long _epoch = 1;
        private int _ids;
        private int _settled;
        public DateTimeOffset Now { get; set; }
        public Action<string>? Trace { get; set; }
        public List<Received> Received { get; } = [];

        public void Arrive(ModelNotification n, int alertmanager, DateTimeOffset at)
        {
            var firing = n.Alerts.Where(a => !a.Resolved).Select(a => DeliveryDecision.Alert(a.Fingerprint, a.StartsAt)).Order(StringComparer.Ordinal).ToList();
            var resolved = n.Alerts.Where(a => a.Resolved).Select(a => DeliveryDecision.Alert(a.Fingerprint, a.StartsAt)).Order(StringComparer.Ordinal).ToList();
            var ends = n.Alerts.Where(a => a.EndsAt is not null).Select(a => DeliveryDecision.Alert(a.Fingerprint, a.EndsAt)).Order(StringComparer.Ordinal).ToList();
            var id = $"{++_ids:D4}";
            _store.Add(new NotificationRecord(id, Receiver, 0, n.Group, DeliveryDecision.DedupKey(Receiver, 0, n.Group, firing, resolved),
                firing, resolved, Encoding.UTF8.GetBytes(n.Content), at, $"node-{alertmanager}", _epoch, ends));
        }

        /// <summary>The master delivers every deliverable notification, group by group, in order.</summary>
        public void Deliver(DateTimeOffset at)
        {
            while (_store.Deliverable(new HashSet<string>(), new HashSet<string>()) is { Count: > 0 } list)
                foreach (var d in list)
                {
                    var decision = Decide(d);
                    Trace?.Invoke($"{at:mm:ss.fff} {d.Record.GroupKey} {d.Record.Id} by {d.Record.AcceptedBy} at {d.Record.AcceptedAt:mm:ss.fff} [{string.Join(' ', d.Record.Firing)} / {string.Join(' ', d.Record.Resolved)}] last={d.LastOfGroup?.Id}@{d.LastOfGroup?.AcceptedAt:mm:ss.fff} same={d.SameContent?.Id} -> {decision}");
                    if (decision.Deliver) Receive(d.Record, decision);
                    _store.Settle(new DeliveryOutcome(d.Record.Id, decision.Deliver ? DeliveryState.Delivered : DeliveryState.Duplicate,
                        decision.Reason, "master", _epoch, at + TimeSpan.FromMilliseconds(++_settled), 1, null, decision.DuplicateOf));
                }
        }

        /// <summary>The master dies while delivering the oldest deliverable notification; the next one has a higher epoch.</summary>
        public void Failover(int fate)
        {
            var next = _store.Deliverable(new HashSet<string>(), new HashSet<string>()).FirstOrDefault();
            if (fate == 1 && next is not null && Decide(next) is { Deliver: true } decision) Receive(next.Record, decision);
            _epoch++;
        }

        private Decision Decide(Deliverable d) => DeliveryDecision.Decide(d.Record, d.LastOfGroup, d.SameContent, repeat, sendResolved, _epoch, d.Ended);

        private void Receive(NotificationRecord r, Decision decision)
        {
            if (!_receivedIds.Add(r.Id)) return; // the same delivery id again: an idempotent receiver drops it
            Received.Add(new Received(r.Id, r.GroupKey, Encoding.UTF8.GetString(r.Payload), decision.Reason,
                decision.Reason == DeliveryReasons.AfterFailover));
        }

        public void Dispose() => _store.Dispose();
    }
}
