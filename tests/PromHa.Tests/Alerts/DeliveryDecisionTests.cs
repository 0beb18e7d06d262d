using PromHa.Messages.Alerts;
using PromHa.Node.Alerts;

namespace PromHa.Tests.Alerts;

public sealed class DeliveryDecisionTests
{
    private static readonly DateTimeOffset T0 = new(2026, 11, 30, 12, 0, 0, TimeSpan.Zero);
    private static readonly TimeSpan Repeat = TimeSpan.FromHours(4);

    private static NotificationRecord Rec(string[] firing, string[] resolved, DateTimeOffset at, long epoch = 3) =>
        new(Guid.NewGuid().ToString("N"), "chat", 0, "{}:{alertname=\"X\"}",
            DeliveryDecision.DedupKey("chat", 0, "{}:{alertname=\"X\"}", firing, resolved), firing, resolved, [], at, "node-a", epoch);

    [Fact]
    public void The_dedup_key_is_alertmanagers_own_receiver_group_and_sorted_sets()
    {
        Assert.Equal(DeliveryDecision.DedupKey("r", 0, "g", ["b", "a"], []), DeliveryDecision.DedupKey("r", 0, "g", ["a", "b"], []));
        Assert.NotEqual(DeliveryDecision.DedupKey("r", 0, "g", ["a"], ["b"]), DeliveryDecision.DedupKey("r", 0, "g", ["a", "b"], []));
        Assert.NotEqual(DeliveryDecision.DedupKey("r", 0, "g", ["a"], []), DeliveryDecision.DedupKey("r", 1, "g", ["a"], []));
    }

    [Fact]
    public void The_same_notification_within_the_repeat_interval_is_a_duplicate_and_after_it_a_repeat()
    {
        var r = Rec(["a"], [], T0 + TimeSpan.FromSeconds(30));
        Assert.Equal(new Decision(false, "duplicate"), DeliveryDecision.Decide(r, T0, null, Repeat, 3));
        var later = Rec(["a"], [], T0 + Repeat);
        Assert.Equal(new Decision(true, "repeat"), DeliveryDecision.Decide(later, T0, null, Repeat, 3));
    }

    [Fact]
    public void Why_a_notification_is_sent()
    {
        var previous = Rec(["a"], [], T0);
        Assert.Equal("first", DeliveryDecision.Decide(Rec(["a"], [], T0), null, null, Repeat, 3).Reason);
        Assert.Equal("alerts-added", DeliveryDecision.Decide(Rec(["a", "b"], [], T0), null, previous, Repeat, 3).Reason);
        Assert.Equal("resolved", DeliveryDecision.Decide(Rec([], ["a"], T0), null, previous, Repeat, 3).Reason);
        Assert.Equal("changed", DeliveryDecision.Decide(Rec([], [], T0), null, previous, Repeat, 3).Reason);
        // accepted under the previous master, delivered by this one
        Assert.Equal("after-failover", DeliveryDecision.Decide(Rec(["a"], [], T0, epoch: 2), null, null, Repeat, 3).Reason);
        // but a duplicate stays a duplicate across a failover
        Assert.False(DeliveryDecision.Decide(Rec(["a"], [], T0 + TimeSpan.FromSeconds(5), epoch: 2), T0, null, Repeat, 3).Deliver);
    }
}
