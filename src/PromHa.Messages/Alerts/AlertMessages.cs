namespace PromHa.Messages.Alerts;

/// <summary>
/// One notification an Alertmanager handed to a node's gate, as the delivery record keeps it.
/// <see cref="Firing"/> and <see cref="Resolved"/> hold its alerts as `fingerprint@startsAt` (unix ms;
/// records from before 2026-12 hold the fingerprint alone): the fingerprint is what Alertmanager
/// deduplicates by, the start tells a new firing of an alert from the old one. The dedup key is the
/// notification's content: receiver, webhook, group key and those sorted sets. The payload is the
/// webhook body as Alertmanager sent it, gzip-compressed (a remoting frame holds 128,000 bytes).
/// <see cref="Ends"/> says when each resolved alert ended, as `fingerprint@endsAt` (unix ms; empty in
/// records from before it): a replica's "still firing" that began before that end is the old firing.
/// </summary>
public sealed record NotificationRecord(
    string Id,
    string Receiver,
    int Target,
    string GroupKey,
    string DedupKey,
    IReadOnlyList<string> Firing,
    IReadOnlyList<string> Resolved,
    byte[] Payload,
    DateTimeOffset AcceptedAt,
    string AcceptedBy,
    long Epoch,
    IReadOnlyList<string>? Ends = null) : IPromHaMessage;

/// <summary>What happened to a notification: delivered, a duplicate that was not sent, or given up after the retry limit.</summary>
public enum DeliveryState { Pending, Delivered, Duplicate, Failed }

/// <summary>
/// The outcome of one notification, replicated like the notification itself. For a duplicate,
/// <see cref="Reason"/> says why it was not sent (copy, retry, within-repeat, nothing-new, stale) and
/// <see cref="DuplicateOf"/> names the delivered notification it duplicates.
/// </summary>
public sealed record DeliveryOutcome(
    string Id,
    DeliveryState State,
    string Reason,
    string By,
    long Epoch,
    DateTimeOffset At,
    int Attempts,
    string? Error,
    string? DuplicateOf = null) : IPromHaMessage;

/// <summary>Keep this notification in the receiving node's outbox; answered with <see cref="NotificationRecorded"/>.</summary>
public sealed record RecordNotification(NotificationRecord Record) : IPromHaMessage;

public sealed record NotificationRecorded(string Node, string Id) : IPromHaMessage;

/// <summary>Keep this outcome in the receiving node's outbox; answered with <see cref="NotificationRecorded"/>.</summary>
public sealed record RecordDeliveryOutcome(DeliveryOutcome Outcome) : IPromHaMessage;

/// <summary>A notification that did not reach a majority of the outboxes: its gate answered Alertmanager with an error, so Alertmanager sends it again.</summary>
public sealed record DiscardNotification(string Id, string Reason) : IPromHaMessage;

/// <summary>
/// Anti-entropy between outboxes: the master asks every member for what it holds, the pending
/// notifications and what was settled since <see cref="Since"/>, and tells each the outcomes it lacks.
/// </summary>
public sealed record GetOutbox(DateTimeOffset Since, DateTimeOffset? AfterAt = null, string? AfterId = null) : IPromHaMessage;

/// <summary>
/// An outbox's answer to <see cref="GetOutbox"/>, one page of it in acceptance order: pending
/// notifications with their payloads, settled ones without (their keys are what deduplication
/// needs), and their outcomes. <see cref="More"/>: ask again after the last record for the next page
/// (a page fits one remoting frame).
/// </summary>
public sealed record OutboxContents(string Node, IReadOnlyList<NotificationRecord> Records, IReadOnlyList<DeliveryOutcome> Outcomes,
    bool More = false) : IPromHaMessage;
