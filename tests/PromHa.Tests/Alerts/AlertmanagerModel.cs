namespace PromHa.Tests.Alerts;

/// <summary>One alert in a notification: its fingerprint, firing or resolved, since when it fires and, resolved, when it ended.</summary>
public sealed record ModelAlert(string Fingerprint, bool Resolved, DateTimeOffset StartsAt, DateTimeOffset? EndsAt = null)
{
    public override string ToString() => $"{Fingerprint}{(Resolved ? "-" : "+")}{StartsAt.ToUnixTimeSeconds() % 100000}";
}

/// <summary>A notification one Alertmanager sends to the webhook: the group's alerts and why Alertmanager sent it.</summary>
public sealed record ModelNotification(string Group, IReadOnlyList<ModelAlert> Alerts, string Reason, DateTimeOffset At)
{
    /// <summary>What the receiver learns: the alerts and their states, in a stable order.</summary>
    public string Content => string.Join(' ', Alerts.Select(a => a.ToString()).Order(StringComparer.Ordinal));

    public override string ToString() => $"{Group}[{Content}] {Reason}";
}

/// <summary>
/// A reference model of what one Alertmanager 0.25 that never fails sends to one webhook, written
/// from its source, not from PromHa's gate:
/// - dispatch/dispatch.go, aggrGroup: alerts of a group are flushed every group_interval (here: at
///   every <see cref="Flush"/>); after a flush that succeeded, resolved alerts are deleted from the group;
/// - provider/mem + types.Alert: an alert that fires again after it resolved does not overlap the
///   old one and replaces it, with a new StartsAt;
/// - notify/notify.go, DedupStage.needsUpdate against the group's notification log entry (the last
///   notification logged), hashing alerts by their labels (here: the fingerprint);
/// - RetryStage: without send_resolved, resolved alerts are left out of what is sent, and a
///   notification of resolved alerts only is logged as sent without sending anything;
/// - SetNotifiesStage: the log entry becomes the firing and resolved hashes and the time.
/// </summary>
public sealed class AlertmanagerModel(bool sendResolved, TimeSpan repeatInterval)
{
    private sealed record Held(string Fingerprint, DateTimeOffset StartsAt, DateTimeOffset? EndsAt);

    private sealed record Entry(HashSet<string> Firing, HashSet<string> Resolved, DateTimeOffset Timestamp);

    private readonly Dictionary<string, Dictionary<string, Held>> _groups = new();
    private readonly Dictionary<string, Entry> _log = new();

    /// <summary>Prometheus sends a firing alert: a new one, or one that resolved (a new firing with a new start).</summary>
    public void Fire(string group, string fingerprint, DateTimeOffset at)
    {
        var alerts = Group(group);
        if (alerts.TryGetValue(fingerprint, out var held) && held.EndsAt is null) return; // still firing: same alert
        alerts[fingerprint] = new Held(fingerprint, at, null);
    }

    /// <summary>Prometheus sends the alert resolved.</summary>
    public void Resolve(string group, string fingerprint, DateTimeOffset at)
    {
        var alerts = Group(group);
        if (alerts.TryGetValue(fingerprint, out var held) && held.EndsAt is null) alerts[fingerprint] = held with { EndsAt = at };
    }

    public bool IsFiring(string group, string fingerprint) =>
        Group(group).TryGetValue(fingerprint, out var held) && held.EndsAt is null;

    /// <summary>The group's flush at a group_interval tick: the notification sent, if any.</summary>
    public ModelNotification? Flush(string group, DateTimeOffset now)
    {
        var alerts = Group(group);
        if (alerts.Count == 0) return null;
        var firing = alerts.Values.Where(a => a.EndsAt is null).Select(a => a.Fingerprint).ToHashSet();
        var resolved = alerts.Values.Where(a => a.EndsAt is not null).Select(a => a.Fingerprint).ToHashSet();
        _log.TryGetValue(group, out var entry);
        ModelNotification? sent = null;
        if (NeedsUpdate(entry, firing, resolved, now) is { } reason)
        {
            var payload = alerts.Values.Where(a => sendResolved || a.EndsAt is null)
                .Select(a => new ModelAlert(a.Fingerprint, a.EndsAt is not null, a.StartsAt, a.EndsAt)).ToList();
            // RetryStage: with nothing firing and no send_resolved, nothing goes out, yet it is logged
            if (sendResolved || firing.Count > 0) sent = new ModelNotification(group, payload, reason, now);
            _log[group] = new Entry(firing, resolved, now);
        }
        // the flush succeeded: resolved alerts leave the group
        foreach (var fp in resolved) alerts.Remove(fp);
        return sent;
    }

    /// <summary>needsUpdate, returning why it is needed (PromHa's reason names) or null.</summary>
    private string? NeedsUpdate(Entry? entry, HashSet<string> firing, HashSet<string> resolved, DateTimeOffset now)
    {
        if (entry is null) return firing.Count > 0 ? "first" : null;
        if (!firing.IsSubsetOf(entry.Firing))
            return firing.Except(entry.Firing).Any(entry.Resolved.Contains) ? "refired" : "alerts-added";
        if (firing.Count == 0) return entry.Firing.Count > 0 ? "resolved" : null;
        if (sendResolved && !resolved.IsSubsetOf(entry.Resolved)) return "resolved";
        return entry.Timestamp < now - repeatInterval ? "repeat" : null;
    }

    private Dictionary<string, Held> Group(string group) =>
        _groups.TryGetValue(group, out var g) ? g : _groups[group] = new Dictionary<string, Held>();
}
