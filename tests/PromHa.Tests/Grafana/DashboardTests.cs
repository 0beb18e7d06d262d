using System.Text;
using System.Text.RegularExpressions;
using PromHa.Node.Alerts;
using PromHa.Node.Cluster;
using PromHa.Node.Config;
using PromHa.Node.Health;
using Prometheus;

namespace PromHa.Tests.Grafana;

/// <summary>
/// The Grafana dashboard (deploy/grafana/promha.json) names only metrics that promha exports. Its
/// queries run against a real Prometheus in the end-to-end failover test.
/// </summary>
public sealed partial class DashboardTests
{
    private static string DashboardPath => Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "../../../../../deploy/grafana/promha.json"));

    [GeneratedRegex(@"\b(?:promha|process|dotnet)_[a-z_]+\b")]
    private static partial Regex MetricName();

    [Fact]
    public async Task Every_metric_the_dashboard_names_is_one_promha_exports()
    {
        var names = MetricName().Matches(File.ReadAllText(DashboardPath)).Select(m => m.Value).ToHashSet();
        Assert.True(names.Count >= 15, $"only {names.Count} metric names in {DashboardPath}");
        // the metric classes register their families when first touched
        _ = (AlertMetrics.Received, NodeMetrics.IsMaster, ConfigMetrics.Latest);
        ProcessMetrics.Register();
        using var text = new MemoryStream();
        await Metrics.DefaultRegistry.CollectAndExportAsTextAsync(text);
        var families = Regex.Matches(Encoding.UTF8.GetString(text.ToArray()), @"^# TYPE (\S+)", RegexOptions.Multiline)
            .Select(m => m.Groups[1].Value).ToHashSet();
        Assert.DoesNotContain(names, n => !families.Contains(n));
    }
}
