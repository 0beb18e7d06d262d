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
    public static readonly Gauge BehindSeconds = Metrics.CreateGauge("promha_config_behind_seconds",
        "How long this node has not run the latest committed config version it knows (0 when it runs it); alert PromHaConfigBehind.");
    public static readonly Counter FetchFailures = Metrics.CreateCounter("promha_config_fetch_failures_total",
        "Bundles of config versions this node could not fetch from any member (tried again on the next anti-entropy round).");
    public static readonly Counter Rejected = Metrics.CreateCounter("promha_config_candidates_rejected_total",
        "Candidate trees this node refused because validation failed.", "source");
    public static readonly Gauge LastRejected = Metrics.CreateGauge("promha_config_last_rejected_timestamp_seconds",
        "When this node last refused a candidate tree (Unix time).");
}
