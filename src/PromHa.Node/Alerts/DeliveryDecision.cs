using PromHa.Messages.Alerts;

namespace PromHa.Node.Alerts;

/// <summary>Why a notification is sent (the X-PromHa-Reason header), or why it is not.</summary>
public static class DeliveryReasons
{
    public const string First = "first";
    public const string AlertsAdded = "alerts-added";
    /// <summary>An alert the receiver last heard of as resolved (or, without send_resolved, a new firing of it) fires again.</summary>
    public const string Refired = "refired";
    public const string Resolved = "resolved";
    public const string Repeat = "repeat";
    public const string AfterFailover = "after-failover";

    // not sent (DeliveryState.Duplicate), the `why` of promha_notifications_deduplicated_total
    /// <summary>The same notification from another node's Alertmanager.</summary>
    public const string Copy = "copy";
    /// <summary>The same notification again from the same node's gate (its Alertmanager did not get the answer and sent it again).</summary>
    public const string Retry = "retry";
    /// <summary>Nothing new since the group's last delivered notification, which is younger than repeat_interval.</summary>
    public const string WithinRepeat = "within-repeat";
    /// <summary>Only alerts the receiver never heard of as firing, now resolved (Alertmanager does not send those either).</summary>
    public const string NothingNew = "nothing-new";
    /// <summary>
    /// Only alerts of a firing the receiver was told ended: one replica's late "still firing" (it began
    /// before the end), or that resolution again (Prometheus resends resolved alerts, and an
    /// Alertmanager that already dropped the alert from its group takes it in anew).
    /// </summary>
    public const string Stale = "stale";
}

/// <summary>The gate's verdict on one notification; a suppressed one names the delivery it duplicates, where there is one.</summary>
public sealed record Decision(bool Deliver, string Reason, string? DuplicateOf = null);

/// <summary>
/// Whether the master sends a notification, and why: Alertmanager's own rule (notify/notify.go,
/// DedupStage.needsUpdate, 0.25) applied to the group's notification log, where PromHa's log entry is
/// the group's last <em>delivered</em> notification. Every node's Alertmanager runs the same rule
/// against its own log, so what reaches the gate is each Alertmanager's copy of the same sequence;
/// the gate sends each notification of that sequence once:
/// <list type="number">
/// <item>a copy: the same alerts in the same states (fingerprint, status and startsAt, so that a
/// new firing of an alert is not the old one) as a notification of the group delivered within
/// 0.9 x repeat_interval, even one delivered before the last (copies arrive late and out of order);</item>
/// <item>otherwise needsUpdate against the last delivered one: no entry -> only if something fires;
/// a firing alert the entry lacks -> send; nothing firing -> send if the entry had firing alerts;
/// a resolved alert the entry lacks (send_resolved) -> send; else only after repeat_interval.</item>
/// </list>
/// Times are the acceptance times (when the gate took the notification), so that a slow receiver does
/// not turn a copy into a repeat; 0.9 allows for the nodes' clocks. A notification accepted under an
/// earlier master is sent "after a failover".
/// </summary>
public static class DeliveryDecision
{
    /// <summary>Repeats come on a group_interval tick at or after repeat_interval; copies within seconds.</summary>
    public const double CopyWindow = 0.9;

    /// <param name="r">the notification to decide on</param>
    /// <param name="lastOfGroup">the group's last delivered notification (Alertmanager's log entry), if any</param>
    /// <param name="sameContent">a delivered notification of the group with r's dedup key, the one accepted closest to r</param>
    /// <param name="sendResolved">the webhook's send_resolved: without it Alertmanager logs resolutions it never sends</param>
    /// <param name="ended">r's alerts, firing or resolved, that began before a delivered notification of the group reported them ended</param>
    public static Decision Decide(NotificationRecord r, NotificationRecord? lastOfGroup, NotificationRecord? sameContent,
        TimeSpan repeatInterval, bool sendResolved, long currentEpoch, IReadOnlySet<string>? ended = null)
    {
        var window = repeatInterval * CopyWindow;
        // An end of the firing the receiver last heard of is news, even with the content of an older
        // resolution: seen end to end, x fired (start s), resolved, fired again (start s2) and
        // resolved; the Alertmanager merged the replicas' resolutions to the earliest start s, so the
        // second resolution's content was the first's. A late copy of the first ended before s2.
        var endsLast = EndsLastFiring(r, lastOfGroup, sameContent);
        if (endsLast.Count == 0 && sameContent is not null && (r.AcceptedAt - sameContent.AcceptedAt).Duration() < window)
            return new Decision(false, sameContent.AcceptedBy == r.AcceptedBy ? DeliveryReasons.Retry : DeliveryReasons.Copy, sameContent.Id);
        // A firing that ended does not begin again (a new firing starts after the end): an Alertmanager
        // that merged a lagging or restarted replica's "still firing" after the resolution says it fires. Not news.
        // Nor is a resolution the receiver already had: seen end to end, Prometheus resent x resolved,
        // the Alertmanager took it into the group again and, its log entry being a later notification,
        // sent it once more.
        var stale = ended is { Count: > 0 } ? r.Firing.Where(ended.Contains).ToList() : [];
        var told = ended is { Count: > 0 } ? r.Resolved.Where(a => ended.Contains(a) && !endsLast.Contains(a)).ToList() : [];
        var news = stale.Count + told.Count == 0 ? r
            : r with { Firing = r.Firing.Except(stale).ToList(), Resolved = r.Resolved.Except(told).ToList() };
        // Nothing left once the stale alerts are out is no news: needsUpdate would read an empty
        // notification after a firing one as "all resolved" and send the stale firing as that.
        var why = news.Firing.Count + news.Resolved.Count == 0 ? null : NeedsUpdate(news, lastOfGroup, sendResolved, window);
        if (why is not null) return new Decision(true, r.Epoch < currentEpoch ? DeliveryReasons.AfterFailover : why);
        if (stale.Count + told.Count > 0) return new Decision(false, DeliveryReasons.Stale, lastOfGroup?.Id);
        if (lastOfGroup is null) return new Decision(false, DeliveryReasons.NothingNew);
        // the last one's alerts by Alertmanager's hash, seen from another replica a moment apart: a copy
        if (SameAlerts(r.Firing, lastOfGroup.Firing) && SameAlerts(r.Resolved, lastOfGroup.Resolved))
            return new Decision(false, lastOfGroup.AcceptedBy == r.AcceptedBy ? DeliveryReasons.Retry : DeliveryReasons.Copy, lastOfGroup.Id);
        return new Decision(false, lastOfGroup.Firing.Count == 0 && r.Firing.Count == 0 ? DeliveryReasons.NothingNew : DeliveryReasons.WithinRepeat,
            lastOfGroup.Id);
    }

    /// <summary>
    /// r's resolved alerts that end a firing of the group's last delivered notification: they ended
    /// (r's Ends) after that firing began. Empty for records without times.
    /// </summary>
    private static HashSet<string> EndsLastFiring(NotificationRecord r, NotificationRecord? lastOfGroup, NotificationRecord? sameContent)
    {
        var result = new HashSet<string>(StringComparer.Ordinal);
        if (lastOfGroup is null || r.Ends is not { Count: > 0 } ends || r.Resolved.Count == 0) return result;
        var began = TimesByFingerprint(lastOfGroup.Firing);
        var ended = TimesByFingerprint(ends);
        // the delivered resolution with r's content: r is news only if it ended later than that one
        var endedBefore = TimesByFingerprint(sameContent?.Ends ?? []);
        foreach (var a in r.Resolved)
            if (began.TryGetValue(Fingerprint(a), out var start) && ended.TryGetValue(Fingerprint(a), out var end) && end > start &&
                !(endedBefore.TryGetValue(Fingerprint(a), out var before) && end <= before))
                result.Add(a);
        return result;
    }

    /// <summary>Alerts kept as `fingerprint@unix-ms` (starts or ends), as fingerprint -> time; those without a time are left out.</summary>
    public static Dictionary<string, long> TimesByFingerprint(IEnumerable<string> ends)
    {
        var result = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var e in ends.Where(HasTime)) result[Fingerprint(e)] = Time(e);
        return result;
    }

    private static bool SameAlerts(IEnumerable<string> a, IEnumerable<string> b) => Fingerprints(a).SetEquals(Fingerprints(b));

    /// <summary>needsUpdate, by fingerprint as Alertmanager hashes alerts; null: not needed, else the reason to send.</summary>
    private static string? NeedsUpdate(NotificationRecord r, NotificationRecord? entry, bool sendResolved, TimeSpan window)
    {
        if (entry is null) return r.Firing.Count > 0 ? DeliveryReasons.First : null;
        var entryFiring = Fingerprints(entry.Firing);
        var added = r.Firing.Select(Fingerprint).Where(f => !entryFiring.Contains(f)).ToList();
        if (added.Count > 0)
        {
            var entryResolved = Fingerprints(entry.Resolved);
            return added.Any(entryResolved.Contains) ? DeliveryReasons.Refired : DeliveryReasons.AlertsAdded;
        }
        // Without send_resolved the log entry holds resolutions the receiver never saw: an alert
        // firing since another time than the entry's fired again after one of them.
        if (!sendResolved && r.Firing.Any(a => !entry.Firing.Contains(a) && HasTime(a))) return DeliveryReasons.Refired;
        if (r.Firing.Count == 0) return entry.Firing.Count > 0 ? DeliveryReasons.Resolved : null;
        if (sendResolved)
        {
            var entryResolved = Fingerprints(entry.Resolved);
            if (r.Resolved.Any(a => !entryResolved.Contains(Fingerprint(a)))) return DeliveryReasons.Resolved;
        }
        return r.AcceptedAt - entry.AcceptedAt >= window ? DeliveryReasons.Repeat : null;
    }

    /// <summary>
    /// An alert as the delivery record keeps it: its fingerprint, and when it started firing (which
    /// tells a new firing of the same alert from the old one).
    /// </summary>
    public static string Alert(string fingerprint, DateTimeOffset? startsAt) =>
        startsAt is { } s ? $"{fingerprint}@{s.ToUnixTimeMilliseconds()}" : fingerprint;

    public static string Fingerprint(string alert) => alert.IndexOf('@') is var at and >= 0 ? alert[..at] : alert;

    /// <summary>Whether an alert (fingerprint@unix-ms) carries its time: records from before 2026-12 do not.</summary>
    public static bool HasTime(string alert) => alert.Contains('@');

    /// <summary>The time (unix ms) an alert carries after its fingerprint.</summary>
    public static long Time(string alert) => long.Parse(alert.AsSpan(alert.IndexOf('@') + 1), System.Globalization.CultureInfo.InvariantCulture);

    private static HashSet<string> Fingerprints(IEnumerable<string> alerts) => alerts.Select(Fingerprint).ToHashSet(StringComparer.Ordinal);

    /// <summary>
    /// The content of a notification: receiver, webhook, group key and its alerts (<see cref="Alert"/>) by
    /// state. Two notifications with one key carry the same news; a new firing of an alert makes a new key.
    /// </summary>
    public static string DedupKey(string receiver, int target, string groupKey, IEnumerable<string> firing, IEnumerable<string> resolved)
    {
        var text = $"{receiver}\n{target}\n{groupKey}\n{string.Join(',', firing.Order(StringComparer.Ordinal))}\n{string.Join(',', resolved.Order(StringComparer.Ordinal))}";
        return Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(text))).ToLowerInvariant();
    }
}
