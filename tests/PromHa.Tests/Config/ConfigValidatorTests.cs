using PromHa.Node.Config;

namespace PromHa.Tests.Config;

/// <summary>Runs the real promtool and amtool (installed by .ci/run, as on every PromHa host).</summary>
public sealed class ConfigValidatorTests : IDisposable
{
    private readonly string _staging = Directory.CreateTempSubdirectory("promha-staging").FullName;
    private static readonly ValidationTools Tools = new("/usr/bin/promtool", "/usr/bin/amtool", NeedAlertmanagerConfig: true);

    public void Dispose() => Directory.Delete(_staging, true);

    private static ConfBundle Tree(string rules = "groups: []\n", string am = "route:\n  receiver: d\nreceivers:\n  - name: d\n") =>
        ConfBundle.Of(new Dictionary<string, byte[]>
        {
            ["prometheus.yml"] = "rule_files: ['rule/*.rules']\nscrape_configs:\n  - job_name: j\n    file_sd_configs:\n      - files: ['job/*.yml']\n"u8.ToArray(),
            ["rule/r.rules"] = System.Text.Encoding.UTF8.GetBytes(rules),
            ["job/x.yml"] = "- targets: ['127.0.0.1:1']\n"u8.ToArray(),
            ["alertmanager.yml"] = System.Text.Encoding.UTF8.GetBytes(am),
        });

    [Fact]
    public async Task The_shipped_rules_for_PromHas_own_metrics_pass_promtool()
    {
        var rules = PromHa.Node.Demo.LocalCluster.ShippedRules();
        foreach (var alert in new[] { "PromHaNoMaster", "PromHaSplitBrain", "PromHaFailover", "PromHaNodeMissing", "PromHaReloadFailing",
                     "PromHaCandidateRejected", "PromHaOutboxBacklog", "PromHaNotificationsFailing" })
            Assert.Contains($"alert: {alert}\n", rules);
        Assert.Null(await ConfigValidator.Validate(Tree(rules: rules), _staging, Tools));
        // and the copy in deploy/ is the one embedded
        var repo = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "../../../../../deploy/rules/promha.rules.yml"));
        Assert.Equal(File.ReadAllText(repo), rules);
    }

    [Fact]
    public async Task A_valid_tree_passes()
    {
        Assert.Null(await ConfigValidator.Validate(Tree(), _staging, Tools));
        // the next check rewrites only what changed
        Assert.NotNull(await ConfigValidator.Validate(Tree(rules: "not: [valid"), _staging, Tools));
        Assert.Null(await ConfigValidator.Validate(Tree(), _staging, Tools));
    }

    [Fact]
    public async Task A_broken_rule_file_is_named_with_promtools_reason()
    {
        var error = await ConfigValidator.Validate(Tree(rules: "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up == = 0\n"), _staging, Tools);
        Assert.NotNull(error);
        Assert.Contains("rule/r.rules", error);
        Assert.Contains("parse error", error);
    }

    [Fact]
    public async Task An_undefined_receiver_is_refused_by_amtool()
    {
        var error = await ConfigValidator.Validate(Tree(am: "route:\n  receiver: nobody\nreceivers:\n  - name: d\n"), _staging, Tools);
        Assert.NotNull(error);
        Assert.Contains("undefined receiver \"nobody\"", error);
    }

    [Fact]
    public async Task A_missing_tool_says_how_to_install_it()
    {
        var error = await ConfigValidator.Validate(Tree(), _staging, Tools with { Promtool = "/nonexistent/promtool" });
        Assert.Contains("apt-get install", error);
    }
}
