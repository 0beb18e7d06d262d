namespace PromHa.Messages.Health;

/// <summary>
/// A node's view of its local Prometheus and Alertmanager, sent to the master singleton after every
/// probe. A witness runs neither and is never eligible for the master role. <see cref="PrometheusDown"/>:
/// not merely unhealthy but gone (its port refused twice, or its supervised process exited).
/// </summary>
public sealed record NodeHealth(
    string Node,
    bool Witness,
    bool PrometheusHealthy,
    bool PrometheusReady,
    bool AlertmanagerHealthy,
    string? Detail,
    DateTimeOffset At,
    string? PrometheusUrl = null,
    string? ApiUrl = null,
    string? AlertmanagerUrl = null,
    bool PrometheusDown = false) : IPromHaMessage;
