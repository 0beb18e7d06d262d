using System.Text;
using PromHa.Node.Config;
using PromHa.Node.Settings;
using YamlDotNet.RepresentationModel;

namespace PromHa.Tests.Alerts;

public sealed class AlertingRendererTests
{
    private const string Prometheus = """
        global:
          scrape_interval: 5s
        alerting:
          alert_relabel_configs:
            - action: labeldrop
              regex: dc
          alertmanagers:
            - static_configs:
                - targets: ['am.example:9093']
        scrape_configs: []
        """;

    private const string Alertmanager = """
        route:
          receiver: chat
          repeat_interval: 2h
          routes:
            - receiver: pager
              repeat_interval: 30m
              matchers: ['severity="page"']
            - receiver: chat
              repeat_interval: 10m
        receivers:
          - name: chat
            webhook_configs:
              - url: http://chat.example/hook
                send_resolved: false
                max_alerts: 5
                http_config:
                  basic_auth: {username: bot, password: s3cret}
              - url: https://secure.example/hook
                http_config:
                  tls_config: {ca_file: /etc/ca.pem}
          - name: pager
            email_configs:
              - to: oncall@example.com
                smarthost: mail.example:25
                from: am@example.com
            slack_configs:
              - api_url: https://hooks.slack.example/x
                channel: '#ops'
        """;

    private static ConfBundle Bundle(string prometheus = Prometheus) => ConfBundle.Of(new Dictionary<string, byte[]>
    {
        ["prometheus.yml"] = Encoding.UTF8.GetBytes(prometheus),
        ["alertmanager.yml"] = Encoding.UTF8.GetBytes(Alertmanager),
    });

    private static RenderContext Ctx(bool master) => new RenderContext("node-b", ConfigMode.Mirror, "promha_replica", master, null, [])
    {
        Alertmanagers = ["http://127.0.0.1:9093", "http://10.0.0.2:9093", "https://10.0.0.3:9443/am"],
        Gate = new GateRendering("http://127.0.0.1:8480/gate", "gate-secret", null),
    };

    private static YamlMappingNode Yaml(byte[] content)
    {
        var s = new YamlStream();
        s.Load(new StringReader(Encoding.UTF8.GetString(content)));
        return (YamlMappingNode)s.Documents[0].RootNode;
    }

    [Fact]
    public void Every_Prometheus_sends_to_every_Alertmanager_without_the_replica_label_and_keeps_the_users_alerting()
    {
        var root = Yaml(ConfigRenderer.Render(Bundle(), Ctx(false)).Get("prometheus.yml")!);
        var alerting = (YamlMappingNode)root["alerting"];
        var relabel = (YamlSequenceNode)alerting["alert_relabel_configs"];
        Assert.Equal("labeldrop", relabel[0]["action"].ToString());
        Assert.Equal("promha_replica", relabel[0]["regex"].ToString());
        Assert.Equal("dc", relabel[1]["regex"].ToString()); // the user's own, after ours
        var sets = (YamlSequenceNode)alerting["alertmanagers"];
        Assert.Equal(3, sets.Children.Count);
        Assert.Contains("am.example:9093", sets[0].ToString());
        Assert.Equal(["127.0.0.1:9093", "10.0.0.2:9093"], ((YamlSequenceNode)sets[1]["static_configs"][0]["targets"]).Select(t => t.ToString()));
        Assert.Equal("https", sets[2]["scheme"].ToString());
        Assert.Equal("/am", sets[2]["path_prefix"].ToString());
    }

    [Fact]
    public void Without_alerting_of_its_own_a_config_gets_PromHa_s()
    {
        var root = Yaml(ConfigRenderer.Render(Bundle("scrape_configs: []\n"), Ctx(false)).Get("prometheus.yml")!);
        Assert.Equal(2, ((YamlSequenceNode)root["alerting"]["alertmanagers"]).Children.Count);
    }

    [Fact]
    public void Webhooks_the_gate_carries_point_at_it_and_the_other_integrations_stay_on_the_master_only()
    {
        var standby = Yaml(ConfigRenderer.Render(Bundle(), Ctx(false)).Get("alertmanager.yml")!);
        var master = Yaml(ConfigRenderer.Render(Bundle(), Ctx(true)).Get("alertmanager.yml")!);
        foreach (var (root, isMaster) in new[] { (standby, false), (master, true) })
        {
            var chat = (YamlMappingNode)root["receivers"][0];
            var hooks = (YamlSequenceNode)chat["webhook_configs"];
            Assert.Equal("http://127.0.0.1:8480/gate/chat/0", hooks[0]["url"].ToString());
            Assert.Equal("false", hooks[0]["send_resolved"].ToString());
            Assert.Equal("5", hooks[0]["max_alerts"].ToString());
            Assert.Equal("gate-secret", hooks[0]["http_config"]["authorization"]["credentials"].ToString());
            Assert.DoesNotContain("s3cret", hooks.ToString()); // the receiver's own credentials stay with the gate
            // a webhook with TLS settings is sent by the master's Alertmanager itself
            Assert.Equal(isMaster ? 2 : 1, hooks.Children.Count);
            var pager = (YamlMappingNode)root["receivers"][1];
            Assert.Equal(isMaster, pager.Children.ContainsKey("email_configs"));
            Assert.Equal(isMaster, pager.Children.ContainsKey("slack_configs"));
        }
    }

    [Fact]
    public void The_gate_table_knows_each_webhook_its_credentials_and_each_receivers_shortest_repeat_interval()
    {
        var table = GateTable.Parse(Encoding.UTF8.GetBytes(Alertmanager));
        var chat = table.Target("chat", 0)!;
        Assert.Equal("http://chat.example/hook", chat.Url);
        Assert.Equal("Basic " + Convert.ToBase64String("bot:s3cret"u8.ToArray()), chat.Authorization);
        Assert.Null(table.Target("chat", 1)); // TLS settings: left to Alertmanager
        Assert.Equal(TimeSpan.FromMinutes(10), table.RepeatInterval("chat"));
        Assert.Equal(TimeSpan.FromMinutes(30), table.RepeatInterval("pager"));
        Assert.Equal(TimeSpan.FromHours(4), table.RepeatInterval("unknown"));
        Assert.Equal(["chat: webhook 1 (http_config.tls_config)", "pager: email", "pager: slack"], table.Direct);
    }

    [Theory]
    [InlineData("4h", 4 * 3600)]
    [InlineData("1h30m", 5400)]
    [InlineData("90s", 90)]
    [InlineData("1d", 86400)]
    [InlineData("1w", 7 * 86400)]
    public void Durations_read_as_Prometheus_writes_them(string text, int seconds) =>
        Assert.Equal(TimeSpan.FromSeconds(seconds), GateTable.ParseDuration(text));

    /// <summary>send_resolved as Alertmanager (Go's yaml.v2, YAML 1.1) reads it: the gate must agree with the Alertmanager it fronts.</summary>
    [Theory]
    [InlineData("false", false)]
    [InlineData("no", false)]
    [InlineData("off", false)]
    [InlineData("N", false)]
    [InlineData("true", true)]
    [InlineData("yes", true)]
    [InlineData("On", true)]
    public void The_gate_reads_send_resolved_as_Alertmanager_does(string written, bool sendResolved)
    {
        var am = $"route:\n  receiver: r\nreceivers:\n  - name: r\n    webhook_configs:\n      - url: http://x.example/\n        send_resolved: {written}\n";
        Assert.Equal(sendResolved, GateTable.Parse(Encoding.UTF8.GetBytes(am)).Target("r", 0)!.SendResolved);
    }

    [Fact]
    public void A_broken_alertmanager_yml_names_the_file()
    {
        var bundle = ConfBundle.Of(new Dictionary<string, byte[]>
        {
            ["prometheus.yml"] = "scrape_configs: []\n"u8.ToArray(),
            ["alertmanager.yml"] = "route: [\n"u8.ToArray(),
        });
        var e = Assert.Throws<ConfTreeException>(() => ConfigRenderer.Render(bundle, Ctx(false)));
        Assert.StartsWith("alertmanager.yml: YAML syntax error", e.Message);
    }
}
