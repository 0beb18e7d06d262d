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
        var rules = PromHa.Lab.LocalCluster.ShippedRules();
        foreach (var alert in new[] { "PromHaNoMaster", "PromHaSplitBrain", "PromHaFailover", "PromHaNodeMissing", "PromHaReloadFailing",
                     "PromHaCandidateRejected", "PromHaConfigBehind", "PromHaOutboxBacklog", "PromHaNotificationsFailing", "PromHaNotificationsSwallowed" })
            Assert.Contains($"alert: {alert}\n", rules);
        Assert.Null(await ConfigValidator.Validate(Tree(rules: rules), _staging, Tools));
        // and the copy in deploy/ is the one embedded
        var repo = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "../../../../../deploy/rules/promha.rules.yml"));
        Assert.Equal(File.ReadAllText(repo), rules);
    }

    /// <summary>
    /// promtool's own rule tests: a failover (the old master's last scrape still says 1 while the new
    /// master says 1) and a promoted federate standby's copies of the old master's series are no
    /// split brain; two masters for a minute, or promha_split_brain, are.
    /// </summary>
    [Fact]
    public Task PromHaSplitBrain_fires_for_two_masters_not_for_a_failover()
        => PromtoolTestRules("""
                rule_files: [promha.rules.yml]
                evaluation_interval: 5s
                tests:
                  - name: failover, the old master's last scrape lags one interval
                    interval: 5s
                    input_series:
                      - series: 'promha_is_master{job="promha",instance="a"}'
                        values: '1 1 1 1 stale'
                      - series: 'promha_is_master{job="promha",instance="b"}'
                        values: '0 0 0 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1'
                      # a promoted federate standby's copy of the old master's series, until it goes stale
                      - series: 'promha_is_master{job="promha",instance="a",promha_replica="a"}'
                        values: '1 1 1 1 1 1 1 stale'
                    alert_rule_test:
                      - { eval_time: 20s, alertname: PromHaSplitBrain, exp_alerts: [] }
                      - { eval_time: 60s, alertname: PromHaSplitBrain, exp_alerts: [] }
                  - name: two HA groups with a master each
                    interval: 5s
                    input_series:
                      - series: 'promha_is_master{job="promha",instance="a1",promha_group="shard-a"}'
                        values: '1x20'
                      - series: 'promha_is_master{job="promha",instance="b1",promha_group="shard-b"}'
                        values: '1x20'
                      - series: 'promha_is_master{job="promha",instance="b2",promha_group="shard-b"}'
                        values: '0x20'
                    alert_rule_test:
                      - { eval_time: 60s, alertname: PromHaSplitBrain, exp_alerts: [] }
                      - { eval_time: 60s, alertname: PromHaNoMaster, exp_alerts: [] }
                  - name: two masters for a minute
                    interval: 5s
                    input_series:
                      - series: 'promha_is_master{job="promha",instance="a"}'
                        values: '1x20'
                      - series: 'promha_is_master{job="promha",instance="b"}'
                        values: '0 0 1x18'
                    alert_rule_test:
                      - { eval_time: 20s, alertname: PromHaSplitBrain, exp_alerts: [] }
                      - eval_time: 60s
                        alertname: PromHaSplitBrain
                        exp_alerts:
                          - exp_labels: { severity: critical }
                            exp_annotations:
                              summary: "More than one PromHa master"
                              description: "Two nodes hold the master role (a pure pair whose link was cut); the lower epoch rejoins as standby when the link returns."
                """);

    /// <summary>`promtool test rules` on the shipped rules with this test file.</summary>
    private static async Task PromtoolTestRules(string testYaml)
    {
        var dir = Directory.CreateTempSubdirectory("promha-ruletest").FullName;
        try
        {
            await File.WriteAllTextAsync(Path.Combine(dir, "promha.rules.yml"), PromHa.Lab.LocalCluster.ShippedRules());
            await File.WriteAllTextAsync(Path.Combine(dir, "test.yml"), testYaml);
            var psi = new System.Diagnostics.ProcessStartInfo("/usr/bin/promtool", ["test", "rules", "test.yml"])
                { WorkingDirectory = dir, RedirectStandardOutput = true, RedirectStandardError = true };
            using var p = System.Diagnostics.Process.Start(psi)!;
            var output = await p.StandardOutput.ReadToEndAsync() + await p.StandardError.ReadToEndAsync();
            await p.WaitForExitAsync();
            Assert.True(p.ExitCode == 0, output);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    /// <summary>
    /// Copies from the other Alertmanagers outnumber deliveries in every cluster without gossip: no
    /// alert. More notifications judged nothing new than sent, for 10 minutes (the flapping alert of
    /// the old rule), and a receiver that got nothing at all while the gate swallowed: the alert.
    /// </summary>
    [Fact]
    public Task PromHaNotificationsSwallowed_fires_when_the_gate_suppresses_more_than_copies()
        => PromtoolTestRules("""
                rule_files: [promha.rules.yml]
                evaluation_interval: 1m
                tests:
                  - name: copies only
                    interval: 1m
                    input_series:
                      - series: 'promha_notifications_delivered_total{job="promha",instance="a",receiver="pager",reason="first"}'
                        values: '0+1x40'
                      - series: 'promha_notifications_deduplicated_total{job="promha",instance="a",receiver="pager",why="copy"}'
                        values: '0+2x40'
                      - series: 'promha_notifications_deduplicated_total{job="promha",instance="a",receiver="pager",why="within-repeat"}'
                        values: '0+0x40'
                    alert_rule_test:
                      - { eval_time: 30m, alertname: PromHaNotificationsSwallowed, exp_alerts: [] }
                  - name: a flapping alert swallowed
                    interval: 1m
                    input_series:
                      - series: 'promha_notifications_delivered_total{job="promha",instance="a",receiver="pager",reason="first"}'
                        values: '0+1x40'
                      - series: 'promha_notifications_deduplicated_total{job="promha",instance="a",receiver="pager",why="within-repeat"}'
                        values: '0+3x40'
                      - series: 'promha_notifications_deduplicated_total{job="promha",instance="b",receiver="chat",why="nothing-new"}'
                        values: '0+1x40'
                    alert_rule_test:
                      - { eval_time: 8m, alertname: PromHaNotificationsSwallowed, exp_alerts: [] }
                      - eval_time: 30m
                        alertname: PromHaNotificationsSwallowed
                        exp_alerts:
                          - exp_labels: { severity: warning, receiver: pager }
                            exp_annotations:
                              summary: "The gate suppresses more notifications for pager than it delivers"
                              description: "For 10 minutes more notifications were judged nothing new than were sent: GET /api/v1/notifications shows for each which delivery it duplicated."
                          - exp_labels: { severity: warning, receiver: chat }
                            exp_annotations:
                              summary: "The gate suppresses more notifications for chat than it delivers"
                              description: "For 10 minutes more notifications were judged nothing new than were sent: GET /api/v1/notifications shows for each which delivery it duplicated."
                """);

    /// <summary>A node catching up within 2 minutes is no alert; one behind for longer is.</summary>
    [Fact]
    public Task PromHaConfigBehind_fires_for_a_node_behind_for_over_two_minutes()
        => PromtoolTestRules("""
                rule_files: [promha.rules.yml]
                evaluation_interval: 15s
                tests:
                  - name: one node catches up in a minute, another stays behind
                    interval: 15s
                    input_series:
                      - series: 'promha_config_behind_seconds{job="promha",instance="a"}'
                        values: '0 15 30 45 60 0 0 0 0 0 0 0 0 0 0 0'
                      - series: 'promha_config_behind_seconds{job="promha",instance="b"}'
                        values: '0+15x20'
                    alert_rule_test:
                      - { eval_time: 1m, alertname: PromHaConfigBehind, exp_alerts: [] }
                      - eval_time: 3m
                        alertname: PromHaConfigBehind
                        exp_alerts:
                          - exp_labels: { severity: warning, instance: b }
                            exp_annotations:
                              summary: "b has not run the latest config version for over 2 minutes"
                              description: "`promha config status` shows what it runs, what it is doing (fetching, applying, failed) and its last error."
                """);

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

    /// <summary>
    /// Every field the notification gate takes out of the authored alertmanager.yml (the URL it
    /// delivers to, the credentials it sends, send_resolved, max_alerts, the repeat interval),
    /// broken: refused with amtool's own words, although rendering replaced the webhook with the
    /// gate's (whose rendered file alone passes amtool for the first five).
    /// </summary>
    [Theory]
    [InlineData("url: '::not a url'", "missing protocol scheme")]
    [InlineData("url: 'ftp://files.example/hook'", "unsupported scheme \"ftp\"")]
    [InlineData("url: 'http://'", "missing host for URL")]
    [InlineData("url: 'http://x.example/'\n        http_config:\n          basic_auth: {username: u, password: p, password_file: /etc/pw}",
        "at most one of basic_auth password & password_file")]
    [InlineData("url: 'http://x.example/'\n        http_config:\n          authorization: {type: Basic, credentials: c}",
        "authorization type cannot be set to \"basic\"")]
    [InlineData("url: 'http://x.example/'\n        http_config:\n          bearer_token: t\n          authorization: {credentials: c}",
        "authorization is not compatible with bearer_token")]
    [InlineData("url: 'http://x.example/'\n        http_config:\n          basic_auth: {username: u, password: p}\n          authorization: {credentials: c}",
        "at most one of basic_auth, oauth2 & authorization")]
    [InlineData("url: 'http://x.example/'\n        send_resolved: maybe", "cannot unmarshal !!str `maybe` into bool")]
    [InlineData("url: 'http://x.example/'\n        max_alerts: -1", "cannot unmarshal !!int `-1` into uint64")]
    [InlineData("url: 'http://x.example/'", "not a valid duration string: \"soon\"", "soon")]
    public async Task What_the_gate_takes_from_the_authored_alertmanager_yml_is_checked_by_amtool_as_written(string hook, string reason,
        string repeat = "4h")
    {
        var am = $"route:\n  receiver: pager\n  repeat_interval: {repeat}\nreceivers:\n  - name: pager\n    webhook_configs:\n      - {hook}\n";
        var authored = Tree(am: am);
        var rendered = ConfigRenderer.Render(authored, new RenderContext("n1", PromHa.Node.Settings.ConfigMode.Mirror, "promha_replica", true, null, [])
        {
            Alertmanagers = ["http://127.0.0.1:9093"],
            Gate = new GateRendering("http://127.0.0.1:8480/gate", "gate-secret", null),
        });
        var error = await ConfigValidator.Validate(rendered, _staging, Tools, authored);
        Assert.NotNull(error);
        Assert.Contains(reason, error);
        Assert.Contains("alertmanager.yml (as written", error);
        Assert.DoesNotContain(".promha-authored", error);
        // nothing of the check is left in the staging dir
        Assert.False(File.Exists(Path.Combine(_staging, ".promha-authored-alertmanager.yml")));
    }

    [Fact]
    public async Task A_webhook_the_gate_replaced_with_its_own_is_still_refused_when_the_users_url_is_not_one()
    {
        var am = "route:\n  receiver: pager\nreceivers:\n  - name: pager\n    webhook_configs:\n      - url: '::not a url'\n";
        var rendered = ConfigRenderer.Render(Tree(am: am), new RenderContext("n1", PromHa.Node.Settings.ConfigMode.Mirror, "promha_replica", true, null, [])
        {
            Gate = new GateRendering("http://127.0.0.1:8480/gate", null, null),
        });
        // the rendered file alone passes: the gate's URL replaced the user's
        Assert.Null(await ConfigValidator.Validate(rendered, _staging, Tools));
        Assert.Contains("missing protocol scheme", await ConfigValidator.Validate(rendered, _staging, Tools, Tree(am: am)));
    }

    [Fact]
    public async Task A_missing_tool_says_how_to_install_it()
    {
        var error = await ConfigValidator.Validate(Tree(), _staging, Tools with { Promtool = "/nonexistent/promtool" });
        Assert.Contains("apt-get install", error);
    }
}
