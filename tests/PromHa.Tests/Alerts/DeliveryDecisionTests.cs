using PromHa.Messages.Alerts;
using PromHa.Node.Alerts;

namespace PromHa.Tests.Alerts;

public sealed class DeliveryDecisionTests
{
    private static readonly DateTimeOffset T0 = new(2026, 11, 30, 12, 0, 0, TimeSpan.Zero);
    private static readonly TimeSpan Repeat = TimeSpan.FromHours(4);
    private const string Group = "{}:{alertname=\"X\"}";

    /// <summary>An alert as the gate keeps it: a fingerprint firing since a minute after T0.</summary>
    private static string A(string fp, int startMinute = 0) => DeliveryDecision.Alert(fp, T0.AddMinutes(startMinute));

    private static NotificationRecord Rec(string[] firing, string[] resolved, DateTimeOffset at, long epoch = 3, string by = "node-a") =>
        new(Guid.NewGuid().ToString("N"), "chat", 0, Group, DeliveryDecision.DedupKey("chat", 0, Group, firing, resolved), firing, resolved, [], at, by, epoch);

    private static Decision Decide(NotificationRecord r, NotificationRecord? last, NotificationRecord? same = null, bool sendResolved = true) =>
        DeliveryDecision.Decide(r, last, same, Repeat, sendResolved, 3);

    [Fact]
    public void The_dedup_key_is_the_content_sorted_sets_of_alerts_with_their_start()
    {
        Assert.Equal(DeliveryDecision.DedupKey("r", 0, "g", ["b", "a"], []), DeliveryDecision.DedupKey("r", 0, "g", ["a", "b"], []));
        Assert.NotEqual(DeliveryDecision.DedupKey("r", 0, "g", ["a"], ["b"]), DeliveryDecision.DedupKey("r", 0, "g", ["a", "b"], []));
        Assert.NotEqual(DeliveryDecision.DedupKey("r", 0, "g", ["a"], []), DeliveryDecision.DedupKey("r", 1, "g", ["a"], []));
        // a new firing of the same alert is other news
        Assert.NotEqual(DeliveryDecision.DedupKey("r", 0, "g", [A("a", 0)], []), DeliveryDecision.DedupKey("r", 0, "g", [A("a", 5)], []));
        Assert.Equal("a", DeliveryDecision.Fingerprint(A("a", 5)));
        Assert.Equal("old", DeliveryDecision.Fingerprint("old")); // a record from before starts were kept
    }

    [Fact]
    public void A_copy_from_another_alertmanager_or_a_retry_names_the_delivery_it_duplicates()
    {
        var delivered = Rec([A("a")], [], T0);
        Assert.Equal(new Decision(false, "copy", delivered.Id), Decide(Rec([A("a")], [], T0.AddSeconds(15), by: "node-b"), delivered, delivered));
        Assert.Equal(new Decision(false, "retry", delivered.Id), Decide(Rec([A("a")], [], T0.AddSeconds(3)), delivered, delivered));
        // a late copy of an older notification, after the group moved on, is still a copy
        var resolved = Rec([], [A("a")], T0.AddMinutes(1));
        Assert.Equal(new Decision(false, "copy", delivered.Id), Decide(Rec([A("a")], [], T0.AddSeconds(70), by: "node-b"), resolved, delivered));
    }

    [Fact]
    public void Nothing_new_within_the_repeat_interval_is_not_sent_and_after_it_is_a_repeat()
    {
        var last = Rec([A("a"), A("b")], [], T0);
        Assert.Equal(new Decision(false, "within-repeat", last.Id), Decide(Rec([A("a")], [], T0.AddMinutes(5)), last));
        Assert.Equal(new Decision(true, "repeat"), Decide(Rec([A("a"), A("b")], [], T0 + Repeat), last, last));
        // only resolved alerts the receiver never saw firing
        Assert.Equal(new Decision(false, "nothing-new"), Decide(Rec([], [A("a")], T0), null));
    }

    /// <summary>The flapping alert: fires, resolves, fires again within repeat_interval; each change is paged.</summary>
    [Fact]
    public void An_alert_that_resolves_and_fires_again_is_sent_again()
    {
        var fired = Rec([A("a", 0)], [], T0);
        var resolved = Rec([], [A("a", 0)], T0.AddSeconds(20));
        Assert.Equal(new Decision(true, "resolved"), Decide(resolved, fired));
        var again = Rec([A("a", 1)], [], T0.AddSeconds(40));
        // its content is not the first firing's (another start), and against the last it is new
        Assert.Equal(new Decision(true, "refired"), Decide(again, resolved));
        // before startsAt was kept (the old rule's key), the same firing set 40 s later was a "duplicate" of the first
        Assert.Equal(new Decision(true, "refired"), Decide(Rec(["a"], [], T0.AddSeconds(40)), Rec([], ["a"], T0.AddSeconds(20))));
    }

    /// <summary>Seen end to end: a lagging replica's "still firing" reached an Alertmanager after the resolution and it sent x firing again.</summary>
    [Fact]
    public void A_firing_the_receiver_was_told_ended_is_not_sent_again_but_a_new_firing_is()
    {
        var resolved = Rec([], [A("x", 1)], T0.AddMinutes(2));
        var ended = new HashSet<string> { A("x", 1) };
        Assert.Equal(new Decision(false, "stale", resolved.Id),
            DeliveryDecision.Decide(Rec([A("x", 1)], [], T0.AddMinutes(2).AddSeconds(1), by: "node-b"), resolved, null, Repeat, true, 3, ended));
        Assert.Equal(new Decision(true, "refired"),
            DeliveryDecision.Decide(Rec([A("x", 3)], [], T0.AddMinutes(3)), resolved, null, Repeat, true, 3, new HashSet<string>()));
        // beside real news the stale alert goes along; it does not make news of its own
        Assert.Equal(new Decision(true, "alerts-added"),
            DeliveryDecision.Decide(Rec([A("x", 1), A("y", 3)], [], T0.AddMinutes(3)), resolved, null, Repeat, true, 3, ended));
        // Seen in CI: x fired again (start 3) and that was delivered; then the old firing (start 1)
        // came late from another Alertmanager. Without its stale alert nothing is left, which is
        // no news, not "the group resolved" (it was sent as a resolution carrying x firing).
        var refired = Rec([A("x", 3)], [], T0.AddMinutes(3));
        Assert.Equal(new Decision(false, "stale", refired.Id),
            DeliveryDecision.Decide(Rec([A("x", 1)], [], T0.AddMinutes(3).AddSeconds(2), by: "node-b"), refired, null, Repeat, true, 3, ended));
    }

    /// <summary>
    /// Seen end to end: x resolved was delivered, then hold fired in the same group ([hold+] delivered);
    /// Prometheus resent x resolved, the Alertmanager took it into the group again and sent
    /// [hold+ x-] as "resolved". The receiver had that resolution; only a new one is news.
    /// </summary>
    [Fact]
    public void A_resolution_the_receiver_already_had_is_not_sent_again_a_resolution_of_a_later_firing_is()
    {
        var hold = Rec([A("hold", 5)], [], T0.AddMinutes(5));
        var again = Rec([A("hold", 5)], [A("x", 1)], T0.AddMinutes(6));
        Assert.Equal(new Decision(false, "stale", hold.Id),
            DeliveryDecision.Decide(again, hold, null, Repeat, true, 3, new HashSet<string> { A("x", 1) }));
        // without the knowledge Alertmanager's own rule sends it: its log entry lacks x
        Assert.Equal(new Decision(true, "resolved"), Decide(again, hold));
        // x fired again after the end and resolved: that resolution is news
        Assert.Equal(new Decision(true, "resolved"),
            DeliveryDecision.Decide(Rec([A("hold", 5)], [A("x", 7)], T0.AddMinutes(8)), hold, null, Repeat, true, 3, new HashSet<string>()));
    }

    /// <summary>
    /// Seen end to end (fresh-clone CI): a replica's failed scrape resolved x (start s0) and its next
    /// evaluation fired it again (start s2); when x really ended, the first replica to resolve it had
    /// it since s0, and the Alertmanager's merge keeps the earliest start, so the end of the second
    /// firing carried the first resolution's content and was taken for its copy: the receiver was
    /// left with x firing. Its end (after s2) says it is news; a late copy of the first resolution
    /// (it ended before s2) is still a copy. Through the outbox, as the gate decides.
    /// </summary>
    [Fact]
    public void The_end_of_a_refired_alert_is_sent_though_its_content_is_the_first_resolution_s()
    {
        using var store = new OutboxStore(":memory:");
        var s0 = T0;
        var t1 = T0.AddSeconds(11);  // the failed scrape
        var s2 = T0.AddSeconds(12);  // fires again at the next evaluation
        var t3 = T0.AddSeconds(20);  // the real end
        var n = 0;
        NotificationRecord Note(string[] firing, string[] resolved, string[] ends, DateTimeOffset at, string by = "node-a") =>
            new($"{++n}", "chat", 0, Group, DeliveryDecision.DedupKey("chat", 0, Group, firing, resolved), firing, resolved, [], at, by, 3, ends);
        Decision Offer(NotificationRecord r)
        {
            store.Add(r);
            var d = store.Deliverable(new HashSet<string>(), new HashSet<string>()).Single();
            var decision = DeliveryDecision.Decide(d.Record, d.LastOfGroup, d.SameContent, Repeat, true, 3, d.Ended);
            store.Settle(new DeliveryOutcome(r.Id, decision.Deliver ? DeliveryState.Delivered : DeliveryState.Duplicate, decision.Reason, "node-a", 3,
                r.AcceptedAt.AddMilliseconds(5), 1, null, decision.DuplicateOf));
            return decision;
        }
        var x0 = DeliveryDecision.Alert("x", s0);
        Assert.Equal("first", Offer(Note([x0], [], [], s0.AddSeconds(1))).Reason);
        Assert.Equal("resolved", Offer(Note([], [x0], [DeliveryDecision.Alert("x", t1)], t1.AddMilliseconds(500))).Reason);
        Assert.Equal("refired", Offer(Note([DeliveryDecision.Alert("x", s2)], [], [], s2.AddMilliseconds(500))).Reason);
        // a late copy of the first resolution from another Alertmanager: it ended before the new firing
        var late = Offer(Note([], [x0], [DeliveryDecision.Alert("x", t1)], s2.AddSeconds(2), by: "node-b"));
        Assert.False(late.Deliver, late.ToString());
        // the real end: the first resolution's content, a later end
        Assert.Equal(new Decision(true, "resolved"), Offer(Note([], [x0], [DeliveryDecision.Alert("x", t3)], t3.AddMilliseconds(500))));
        // and its copies are copies
        Assert.False(Offer(Note([], [x0], [DeliveryDecision.Alert("x", t3.AddMilliseconds(300))], t3.AddSeconds(2), by: "node-c")).Deliver);
    }

    /// <summary>
    /// Found in review: a lagging replica's x (its old start) went along with new y as alerts-added,
    /// so the group's last delivery names x firing since before the first resolution; a late copy
    /// of that resolution (the same end) is still a copy, not the end of a new firing.
    /// </summary>
    [Fact]
    public void A_late_copy_of_a_resolution_stays_a_copy_when_the_last_delivery_carried_the_old_firing()
    {
        var x0 = A("x", 0);
        var end = DeliveryDecision.Alert("x", T0.AddMinutes(2));
        var resolved = Rec([], [x0], T0.AddMinutes(2)) with { Ends = [end] };
        var withY = Rec([x0, A("y", 3)], [], T0.AddMinutes(3));
        var lateCopy = Rec([], [x0], T0.AddMinutes(3).AddSeconds(5), by: "node-b") with { Ends = [end] };
        Assert.Equal(new Decision(false, "copy", resolved.Id), Decide(lateCopy, withY, resolved));
        // x really ending later is news
        var later = Rec([], [x0], T0.AddMinutes(4), by: "node-b") with { Ends = [DeliveryDecision.Alert("x", T0.AddMinutes(4))] };
        Assert.True(Decide(later, withY, resolved).Deliver);
    }

    [Fact]
    public void Without_send_resolved_a_new_firing_of_an_alert_is_sent_although_its_resolution_never_was()
    {
        var fired = Rec([A("a", 0)], [], T0);
        Assert.Equal(new Decision(true, "refired"), Decide(Rec([A("a", 1)], [], T0.AddMinutes(1)), fired, sendResolved: false));
        // with send_resolved the same is a copy whose start another Alertmanager saw differently: by
        // Alertmanager's hash (the labels) the very alerts of the last delivery
        Assert.Equal(new Decision(false, "copy", fired.Id), Decide(Rec([A("a", 1)], [], T0.AddMinutes(1), by: "node-b"), fired));
        var resolved = Rec([], [A("a", 0)], T0.AddMinutes(2));
        Assert.Equal(new Decision(false, "copy", resolved.Id), Decide(Rec([], [A("a", 1)], T0.AddMinutes(2), by: "node-b"), resolved));
    }

    [Fact]
    public void Why_a_notification_is_sent()
    {
        var previous = Rec([A("a")], [], T0);
        Assert.Equal("first", Decide(Rec([A("a")], [], T0), null).Reason);
        Assert.Equal("alerts-added", Decide(Rec([A("a"), A("b")], [], T0), previous).Reason);
        Assert.Equal("resolved", Decide(Rec([], [A("a")], T0), previous).Reason);
        Assert.Equal("resolved", Decide(Rec([A("b")], [A("a")], T0), Rec([A("a"), A("b")], [], T0)).Reason);
        // without send_resolved a resolved alert beside firing ones is nothing new (it is not even in the payload)
        Assert.Equal("within-repeat", Decide(Rec([A("b")], [A("a")], T0), Rec([A("a"), A("b")], [], T0), sendResolved: false).Reason);
        // accepted under the previous master, delivered by this one
        Assert.Equal("after-failover", Decide(Rec([A("a")], [], T0, epoch: 2), null).Reason);
        // but a copy stays a copy across a failover
        Assert.False(Decide(Rec([A("a")], [], T0 + TimeSpan.FromSeconds(5), epoch: 2), previous, previous).Deliver);
    }
}
