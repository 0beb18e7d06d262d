using PromHa.Messages.Alerts;

namespace PromHa.Node.Alerts;

/// <summary>Why a notification is sent (the X-PromHa-Reason header), or that it is not.</summary>
public static class DeliveryReasons
{
    public const string First = "first";
    public const string AlertsAdded = "alerts-added";
    public const string Resolved = "resolved";
    public const string Changed = "changed";
    public const string Repeat = "repeat";
    public const string AfterFailover = "after-failover";
    public const string Duplicate = "duplicate";
}

public sealed record Decision(bool Deliver, string Reason);

/// <summary>
/// Whether the master sends a notification, and why. Alertmanager's own rule for "already sent" is
/// the receiver, group key and the firing and resolved sets; PromHa keys its record the same way. The
/// same key again within the receiver's repeat_interval is a duplicate (another node's Alertmanager,
/// or a retry after the gate's answer was lost); after it, Alertmanager's repeat. Times are the
/// acceptance times, so that a slow receiver does not turn a duplicate into a repeat. A
/// notification accepted under an earlier master is sent "after a failover".
/// </summary>
public static class DeliveryDecision
{
    /// <summary>Repeats are sent on a group_interval tick at or after repeat_interval; duplicates come within seconds.</summary>
    public const double DuplicateWithin = 0.9;

    public static Decision Decide(NotificationRecord r, DateTimeOffset? sameKeyDeliveredAcceptedAt, NotificationRecord? lastOfGroup,
        TimeSpan repeatInterval, long currentEpoch)
    {
        if (sameKeyDeliveredAcceptedAt is { } seen)
        {
            if (r.AcceptedAt - seen < repeatInterval * DuplicateWithin) return new Decision(false, DeliveryReasons.Duplicate);
            return new Decision(true, DeliveryReasons.Repeat);
        }
        if (r.Epoch < currentEpoch) return new Decision(true, DeliveryReasons.AfterFailover);
        if (lastOfGroup is null) return new Decision(true, DeliveryReasons.First);
        if (r.Firing.Except(lastOfGroup.Firing).Any()) return new Decision(true, DeliveryReasons.AlertsAdded);
        if (r.Resolved.Count > 0) return new Decision(true, DeliveryReasons.Resolved);
        return new Decision(true, DeliveryReasons.Changed);
    }

    /// <summary>Alertmanager's notion of the same notification: receiver, group key, sorted firing and resolved fingerprints.</summary>
    public static string DedupKey(string receiver, int target, string groupKey, IEnumerable<string> firing, IEnumerable<string> resolved)
    {
        var text = $"{receiver}\n{target}\n{groupKey}\n{string.Join(',', firing.Order(StringComparer.Ordinal))}\n{string.Join(',', resolved.Order(StringComparer.Ordinal))}";
        return Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(text))).ToLowerInvariant();
    }
}
