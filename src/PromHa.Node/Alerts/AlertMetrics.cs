using Prometheus;

namespace PromHa.Node.Alerts;

/// <summary>The notification gate's metrics on /metrics, per receiver.</summary>
public static class AlertMetrics
{
    public static readonly Counter Received = Metrics.CreateCounter("promha_notifications_received_total",
        "Notifications this node's Alertmanager handed to its gate and the gate accepted (stored on a majority of the nodes).", "receiver");
    public static readonly Counter Refused = Metrics.CreateCounter("promha_notifications_refused_total",
        "Notifications the gate answered with an error (Alertmanager sends them again): not stored on a majority, unknown webhook, too large.", "receiver", "why");
    public static readonly Counter Delivered = Metrics.CreateCounter("promha_notifications_delivered_total",
        "Notifications the master delivered to the real receiver, by why they were sent.", "receiver", "reason");
    public static readonly Counter Deduplicated = Metrics.CreateCounter("promha_notifications_deduplicated_total",
        "Notifications not sent, by why: copy (another node's Alertmanager sent the same), retry (the same again from one node), " +
        "within-repeat (nothing new since the group's last delivery, younger than repeat_interval), nothing-new (only resolved alerts the receiver never saw firing), " +
        "stale (alerts the receiver was told resolved, firing again with the same start: a lagging replica).",
        "receiver", "why");
    public static readonly Counter Failed = Metrics.CreateCounter("promha_notifications_failed_total",
        "Notifications still undeliverable after alerts.giveUpAfterSeconds of retries; kept in the outbox and listed by the API.", "receiver");
    public static readonly Counter Retried = Metrics.CreateCounter("promha_notifications_retried_total",
        "Delivery attempts repeated after a receiver error.", "receiver");
    public static readonly Gauge OutboxPending = Metrics.CreateGauge("promha_outbox_pending",
        "Notifications in this node's outbox that no master settled yet.", "receiver");
    public static readonly Gauge OutboxOldest = Metrics.CreateGauge("promha_outbox_oldest_pending_seconds",
        "Age of the oldest pending notification in this node's outbox.", "receiver");
}
