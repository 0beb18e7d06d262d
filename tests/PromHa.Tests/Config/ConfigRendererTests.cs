using System.Text;
using PromHa.Node.Config;
using PromHa.Node.Settings;

namespace PromHa.Tests.Config;

public sealed class ConfigRendererTests
{
    private const string Prometheus = """
        global:
          scrape_interval: 5s
          external_labels:
            dc: east
        rule_files:
          - business/a/rule/*.rules
        scrape_configs:
          - job_name: web
            relabel_configs:
              - source_labels: [__address__]
                regex: "(.+):\\d+"
                target_label: host
            file_sd_configs:
              - files: ['business/a/job/*.yml']
        """;

    private static ConfBundle Bundle(string prometheus = Prometheus) => ConfBundle.Of(new Dictionary<string, byte[]>
    {
        ["prometheus.yml"] = Encoding.UTF8.GetBytes(prometheus),
        ["business/a/job/x.yml"] = "- targets: ['h:1']\n"u8.ToArray(),
    });

    private static RenderContext Ctx(ConfigMode mode = ConfigMode.Mirror, bool master = false, string? masterProm = null) =>
        new("node-b", mode, "promha_replica", master, masterProm, ["{job=~\".+\"}"]);

    private static string Rendered(ConfBundle b) => Encoding.UTF8.GetString(b.Get("prometheus.yml")!);

    [Fact]
    public void Mirror_adds_the_replica_label_and_keeps_everything_else()
    {
        var text = Rendered(ConfigRenderer.Render(Bundle(), Ctx()));
        Assert.Contains("promha_replica: \"node-b\"", text);
        Assert.Contains("dc: east", text);
        Assert.Contains("job_name: web", text);
        Assert.Contains(@"regex: ""(.+):\\d+""", text); // escapes survive the round trip
        Assert.Contains("business/a/rule/*.rules", text);
    }

    [Fact]
    public void Other_files_are_copied_as_they_are()
    {
        var b = Bundle();
        Assert.Equal(b.Get("business/a/job/x.yml"), ConfigRenderer.Render(b, Ctx()).Get("business/a/job/x.yml"));
    }

    [Fact]
    public void A_federating_standby_scrapes_only_the_masters_federate_endpoint()
    {
        var text = Rendered(ConfigRenderer.Render(Bundle(), Ctx(ConfigMode.Federate, master: false, masterProm: "10.0.0.1:9090")));
        Assert.Contains("job_name: promha-federate", text);
        Assert.Contains("honor_labels: true", text);
        Assert.Contains("honor_timestamps: false", text);
        Assert.Contains("metrics_path: /federate", text);
        Assert.Contains("match[]", text);
        Assert.Contains("'{job=~\".+\"}'", text);
        Assert.Contains("10.0.0.1:9090", text);
        // the own jobs stay, every target dropped: their series go stale (a removed job's would not)
        var web = Job(text, "web");
        Assert.Contains("relabel_configs:\n- source_labels:\n- __address__\nregex: '.*'\naction: drop", web);
        Assert.DoesNotContain("rule_files", text);
        Assert.Contains("promha_replica: \"node-b\"", text);
        Assert.Contains("scrape_interval: 5s", text);
    }

    [Fact]
    public void The_master_in_federate_mode_runs_the_real_targets_and_the_same_federate_job_without_a_target()
    {
        var master = ConfigRenderer.Render(Bundle(), Ctx(ConfigMode.Federate, master: true, masterProm: "10.0.0.1:9090"));
        var standby = ConfigRenderer.Render(Bundle(), Ctx(ConfigMode.Federate, master: false, masterProm: "10.0.0.1:9090"));
        var text = Rendered(master);
        Assert.Contains("job_name: web", text);
        Assert.Contains("business/a/rule/*.rules", text);
        // A promotion changes only the targets file: Prometheus then marks the federated copies stale
        // (a job removed by a reload would not be), so the new master's rules never see two masters.
        Assert.Equal(FederateJob(Rendered(standby)), FederateJob(text));
        Assert.Contains("file_sd_configs:\n- files:\n- promha-federate.yml", FederateJob(text));
        Assert.EndsWith("- targets: []\n", Encoding.UTF8.GetString(master.Get(ConfigRenderer.FederateTargetsFile)!));
        Assert.Contains("- targets: ['10.0.0.1:9090']", Encoding.UTF8.GetString(standby.Get(ConfigRenderer.FederateTargetsFile)!));
        Assert.True(ConfigRenderer.Rewrites(Ctx(ConfigMode.Federate, master: true, masterProm: "10.0.0.1:9090")));
        Assert.False(ConfigRenderer.Rewrites(Ctx()));
        Assert.Null(ConfigRenderer.Render(Bundle(), Ctx()).Get(ConfigRenderer.FederateTargetsFile));
    }

    /// <summary>The federate job's block of a rendered prometheus.yml, indentation removed.</summary>
    private static string FederateJob(string prometheusYml) => Job(prometheusYml, ConfigRenderer.FederateJob);

    /// <summary>A job's block of a rendered prometheus.yml, indentation removed.</summary>
    private static string Job(string prometheusYml, string name)
    {
        var lines = prometheusYml.Split('\n');
        var start = Array.FindIndex(lines, l => l.TrimEnd().EndsWith($"job_name: {name}"));
        Assert.True(start >= 0, prometheusYml);
        var dash = lines[start].Length - lines[start].TrimStart().Length;
        var block = lines.Skip(start + 1).TakeWhile(l => l.Length - l.TrimStart().Length > dash).Prepend(lines[start]);
        return string.Join("\n", block.Select(l => l.Trim()));
    }

    [Fact]
    public void A_yaml_syntax_error_names_the_file_and_line()
    {
        var e = Assert.Throws<ConfTreeException>(() => ConfigRenderer.Render(Bundle("global:\n  scrape_interval: [5s\n"), Ctx()));
        Assert.Contains("prometheus.yml", e.Message);
        Assert.Contains("line", e.Message);
    }

    [Fact]
    public void A_tree_without_prometheus_yml_is_refused()
    {
        var e = Assert.Throws<ConfTreeException>(() => ConfigRenderer.Render(
            ConfBundle.Of(new Dictionary<string, byte[]> { ["alertmanager.yml"] = "route: {}\n"u8.ToArray() }), Ctx()));
        Assert.Contains("prometheus.yml", e.Message);
    }

    [Fact]
    public void An_empty_prometheus_yml_still_gets_the_label()
    {
        Assert.Contains("promha_replica", Rendered(ConfigRenderer.Render(Bundle(""), Ctx())));
    }

    private static readonly RemoteWriteTarget[] Receivers =
    [
        new() { Url = "http://vm:8428/api/v1/write", Mode = RemoteWriteTarget.AllReplicas },
        new() { Url = "http://mimir:9009/api/v1/push", Mode = RemoteWriteTarget.MasterOnly, Name = "mimir", BearerTokenFile = "/etc/promha/mimir.token" },
    ];

    [Fact]
    public void Remote_storage_is_written_by_every_replica_or_by_the_master_alone_without_the_replica_label()
    {
        var operators = Prometheus + "\nremote_write:\n  - url: http://archive:9201/write\n";
        var master = ConfigRenderer.Parse(ConfigRenderer.Render(Bundle(operators), Ctx(master: true) with { RemoteWrite = Receivers }).Get("prometheus.yml")!);
        var standby = ConfigRenderer.Parse(ConfigRenderer.Render(Bundle(operators), Ctx(master: false) with { RemoteWrite = Receivers }).Get("prometheus.yml")!);
        static List<YamlDotNet.RepresentationModel.YamlMappingNode> Writes(YamlDotNet.RepresentationModel.YamlMappingNode root) =>
            ((YamlDotNet.RepresentationModel.YamlSequenceNode)root["remote_write"]).Children.Cast<YamlDotNet.RepresentationModel.YamlMappingNode>().ToList();
        static string Url(YamlDotNet.RepresentationModel.YamlMappingNode w) => w["url"].ToString();

        Assert.Equal(["http://archive:9201/write", "http://vm:8428/api/v1/write", "http://mimir:9009/api/v1/push"], Writes(master).Select(Url));
        Assert.Equal(["http://archive:9201/write", "http://vm:8428/api/v1/write"], Writes(standby).Select(Url));
        foreach (var w in Writes(master).Skip(1))
        {
            var drop = (YamlDotNet.RepresentationModel.YamlMappingNode)((YamlDotNet.RepresentationModel.YamlSequenceNode)w["write_relabel_configs"]).Children.Single();
            Assert.Equal(("labeldrop", "promha_replica"), (drop["action"].ToString(), drop["regex"].ToString()));
        }
        Assert.Equal(["promha-0", "mimir"], Writes(master).Skip(1).Select(w => w["name"].ToString()));
        Assert.Equal("/etc/promha/mimir.token", ((YamlDotNet.RepresentationModel.YamlMappingNode)Writes(master)[2]["authorization"])["credentials_file"].ToString());
        // the operator's own receiver is left as written
        Assert.False(Writes(master)[0].Children.ContainsKey(new YamlDotNet.RepresentationModel.YamlScalarNode("write_relabel_configs")));
        // nothing configured, nothing added
        Assert.DoesNotContain("remote_write", Rendered(ConfigRenderer.Render(Bundle(), Ctx(master: true))));
    }

    [Fact]
    public void A_remote_write_that_is_not_a_list_is_refused_naming_the_file()
    {
        var e = Assert.Throws<ConfTreeException>(() => ConfigRenderer.Render(Bundle(Prometheus + "\nremote_write: http://x\n"), Ctx(master: true) with { RemoteWrite = Receivers }));
        Assert.Contains("prometheus.yml", e.Message);
        Assert.Contains("remote_write", e.Message);
    }

    [Fact]
    public void The_rendered_remote_write_passes_promtool()
    {
        if (!File.Exists("/usr/bin/promtool")) Assert.Fail("promtool is needed: apt-get install -y prometheus");
        var dir = Directory.CreateTempSubdirectory("promha-rw").FullName;
        try
        {
            var token = Path.Combine(dir, "token");
            File.WriteAllText(token, "t");
            var rendered = ConfigRenderer.Render(Bundle(), Ctx(master: true) with
            {
                RemoteWrite = [Receivers[0], new RemoteWriteTarget { Url = "https://mimir/api/v1/push", Name = "m", BearerTokenFile = token }],
            });
            ConfTree.Sync(dir, rendered);
            var psi = new System.Diagnostics.ProcessStartInfo("/usr/bin/promtool", ["check", "config", "--syntax-only", Path.Combine(dir, "prometheus.yml")])
                { RedirectStandardOutput = true, RedirectStandardError = true };
            using var p = System.Diagnostics.Process.Start(psi)!;
            var output = p.StandardOutput.ReadToEnd() + p.StandardError.ReadToEnd();
            p.WaitForExit();
            Assert.True(p.ExitCode == 0, output);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }
}
