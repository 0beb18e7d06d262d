using Prometheus;

namespace PromHa.Node.Config;

/// <summary>Configuration metrics on /metrics.</summary>
public static class ConfigMetrics
{
    public static readonly Gauge Latest = Metrics.CreateGauge("promha_config_version_latest", "The latest committed config version this node knows.");
    public static readonly Gauge Applied = Metrics.CreateGauge("promha_config_version_applied", "The config version this node's Prometheus and Alertmanager run.");
    public static readonly Counter ReloadFailures = Metrics.CreateCounter("promha_config_reload_failures_total",
        "Versions this node could not apply (validation, reload or verification failed) and rolled back.");
    public static readonly Gauge LastApplySeconds = Metrics.CreateGauge("promha_config_last_apply_seconds",
        "How long the last apply took: render, validate, swap, reload and verify.");
    public static readonly Counter Rejected = Metrics.CreateCounter("promha_config_candidates_rejected_total",
        "Candidate trees this node refused because validation failed.", "source");
    public static readonly Gauge LastRejected = Metrics.CreateGauge("promha_config_last_rejected_timestamp_seconds",
        "When this node last refused a candidate tree (Unix time).");
}
