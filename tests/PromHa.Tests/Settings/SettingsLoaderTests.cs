using PromHa.Node.Settings;

namespace PromHa.Tests.Settings;

public class SettingsLoaderTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("promha-settings").FullName;
    private static readonly Dictionary<string, string?> NoEnv = new();

    public void Dispose() => Directory.Delete(_dir, true);

    private string Write(string yaml)
    {
        var path = Path.Combine(_dir, "promha.yml");
        File.WriteAllText(path, yaml);
        return path;
    }

    private const string Valid = """
        node:
          name: prom-a
        cluster:
          port: 4053
          seeds: [127.0.0.1:4053, 127.0.0.1:4054]
        http:
          listen: 127.0.0.1:8480
        dataDir: data
        prometheus:
          mode: external
          url: http://127.0.0.1:9090
        """;

    [Fact]
    public void Loads_yaml_and_lets_environment_and_flags_override_it()
    {
        var path = Write(Valid);
        var env = new Dictionary<string, string?> { ["PROMHA_CLUSTER__PORT"] = "5000", ["OTHER"] = "x" };
        var s = SettingsLoader.Load(path, [KeyValuePair.Create("http.listen", (string?)"127.0.0.1:9999")], env);
        Assert.Equal("prom-a", s.Node.Name);
        Assert.Equal(5000, s.Cluster.Port);
        Assert.Equal("127.0.0.1:9999", s.Http.Listen);
        Assert.Equal(ServerMode.External, s.Prometheus.Mode);
        Assert.Equal(["127.0.0.1:4053", "127.0.0.1:4054"], s.Cluster.Seeds);
        Assert.False(s.IsWitness);
        Assert.True(Path.IsPathRooted(s.DataDir));
    }

    [Fact]
    public void A_container_node_reaches_its_servers_on_loopback_and_names_its_service_to_the_others()
    {
        // A container binds every address; its node talks to its own servers on 127.0.0.1 and
        // tells the other nodes the service name (cluster.publicHost).
        Directory.CreateDirectory(Path.Combine(_dir, "conf"));
        File.WriteAllText(Path.Combine(_dir, "conf", "prometheus.yml"), "");
        File.WriteAllText(Path.Combine(_dir, "conf", "alertmanager.yml"), "");
        var path = Write($"""
            node:
              name: node-a
            cluster:
              host: 0.0.0.0
              publicHost: node-a
              seeds: [node-a:4053, node-b:4053, node-c:4053]
            http:
              listen: 0.0.0.0:8480
            dataDir: data
            confDir: {_dir}/conf
            prometheus:
              mode: supervised
              listen: 0.0.0.0:9090
            alertmanager:
              mode: supervised
              listen: "[::]:9093"
            """);
        var s = SettingsLoader.Load(path, [], NoEnv);
        Assert.Equal("http://127.0.0.1:9090", s.Prometheus.EffectiveUrl);
        Assert.Equal("http://127.0.0.1:9093", s.Alertmanager.EffectiveUrl);
        Assert.Equal("http://node-a:9090", s.Advertised(s.Prometheus.EffectiveUrl));
        Assert.Equal("http://node-a:8480", s.ApiUrl);
        Assert.Equal(["node-b:9094", "node-c:9094"], s.Alertmanager.ClusterPeers);
    }

    [Fact]
    public void An_alertmanager_in_another_container_reaches_the_gate_at_alerts_gateUrl()
    {
        var path = Write(Valid + "\nalertmanager:\n  mode: external\n  url: http://alertmanager-a:9093\n");
        var local = SettingsLoader.Load(path, [], NoEnv);
        Assert.Equal("http://127.0.0.1:8480/gate", PromHa.Node.Alerts.GateEndpoints.Rendering(local, null)!.BaseUrl);
        var sidecar = SettingsLoader.Load(path, [KeyValuePair.Create("alerts.gateUrl", (string?)"http://node-a:8480/")], NoEnv);
        Assert.Equal("http://node-a:8480/gate", PromHa.Node.Alerts.GateEndpoints.Rendering(sidecar, null)!.BaseUrl);
        var e = Assert.Throws<SettingsException>(() => SettingsLoader.Load(path, [KeyValuePair.Create("alerts.gateUrl", (string?)"node-a:8480")], NoEnv));
        Assert.Contains("alerts.gateUrl", e.Message);
    }

    [Fact]
    public void A_node_without_servers_is_a_witness()
    {
        var s = SettingsLoader.Load(Write(Valid.Replace("prometheus:\n  mode: external\n  url: http://127.0.0.1:9090", "")), [], NoEnv);
        Assert.True(s.IsWitness);
    }

    [Theory]
    [InlineData("port: 4053", "port: 99999", "cluster.port")]
    [InlineData("port: 4053", "port: abc", "cluster.port")]
    [InlineData("name: prom-a", "name: \"\"", "node.name")]
    [InlineData("name: prom-a", "name: a b", "node.name")]
    [InlineData("url: http://127.0.0.1:9090", "url: not-a-url", "prometheus.url")]
    [InlineData("listen: 127.0.0.1:8480", "listen: nowhere", "http.listen")]
    [InlineData("seeds: [127.0.0.1:4053, 127.0.0.1:4054]", "seeds: [a-host]", "cluster.seeds")]
    [InlineData("dataDir: data", "dataDirectory: data", "dataDirectory")]
    [InlineData("mode: external", "mode: sidecarr", "prometheus.mode")]
    [InlineData("dataDir: data", "dataDir: data\ntiming:\n  leaseMarginMs: 50", "timing.leaseMarginMs")]
    [InlineData("dataDir: data", "dataDir: data\ntiming:\n  leaseMs: 1000\n  leaseMarginMs: 600", "timing.leaseMarginMs")]
    [InlineData("dataDir: data", "dataDir: data\njournal:\n  provider: postgresql", "journal.connectionString")]
    [InlineData("dataDir: data", "dataDir: data\njournal:\n  provider: postgresql\n  connectionString: 'Host=db;Username=p'", "journal.connectionString")]
    [InlineData("dataDir: data", "dataDir: data\njournal:\n  provider: postgresql\n  connectionString: 'Hots=db;Database=p'", "journal.connectionString")]
    [InlineData("dataDir: data", "dataDir: data\njournal:\n  provider: postgresql\n  connectionString: 'Host=db;Database=p'\n  schema: 'x; drop'", "journal.schema")]
    [InlineData("dataDir: data", "dataDir: data\njournal:\n  provider: mysql", "journal.provider")]
    [InlineData("dataDir: data", "dataDir: data\njournal:\n  connectionString: 'Host=db;Database=p'", "journal")]
    [InlineData("seeds: [127.0.0.1:4053, 127.0.0.1:4054]", "seeds: [127.0.0.1:4053, 127.0.0.1:4054]\n  tieBreaker:\n    targets: [10.0.0.1:22]\n    database: 'Host=db;Database=p'", "cluster.tieBreaker")]
    [InlineData("seeds: [127.0.0.1:4053, 127.0.0.1:4054]", "seeds: [127.0.0.1:4053, 127.0.0.1:4054]\n  tieBreaker:\n    database: 'Host=db'", "cluster.tieBreaker.database")]
    [InlineData("seeds: [127.0.0.1:4053, 127.0.0.1:4054]", "seeds: [127.0.0.1:4053, 127.0.0.1:4054]\n  tieBreaker:\n    database: 'Host=db;Database=p'\n    databaseLeaseTtlMs: 500", "databaseLeaseTtlMs")]
    public void A_bad_field_is_named_with_the_file(string from, string to, string field)
    {
        var path = Write(Valid.Replace(from, to));
        var e = Assert.Throws<SettingsException>(() => SettingsLoader.Load(path, [], NoEnv));
        Assert.Contains(path, e.Message);
        Assert.Contains(field, e.Message, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public void A_yaml_syntax_error_names_the_line()
    {
        var path = Write("node:\n  name: [unclosed\n");
        var e = Assert.Throws<SettingsException>(() => SettingsLoader.Load(path, [], NoEnv));
        Assert.Contains(path, e.Message);
        Assert.Contains("line", e.Message);
    }

    [Fact]
    public void Supervised_mode_needs_the_servers_config_file()
    {
        var path = Write(Valid.Replace("mode: external\n  url: http://127.0.0.1:9090", "mode: supervised\n  listen: 127.0.0.1:9090") + "\nconfDir: conf\n");
        var e = Assert.Throws<SettingsException>(() => SettingsLoader.Load(path, [], NoEnv));
        Assert.Contains("prometheus.yml not found", e.Message);
    }

    [Fact]
    public void A_postgresql_journal_gets_a_schema_per_node_and_sqlite_stays_the_default()
    {
        var sqlite = SettingsLoader.Load(Write(Valid), [], NoEnv);
        Assert.Equal(JournalProvider.Sqlite, sqlite.Journal.Provider);
        var hocon = Akka.Configuration.ConfigurationFactory.ParseString(PromHa.Node.Storage.Journal.Hocon(sqlite));
        Assert.Equal($"Data Source={Path.Combine(sqlite.DataDir, "promha.db")}", hocon.GetString("akka.persistence.journal.sql.connection-string"));

        // a quote and a backslash in the password survive HOCON
        var pg = SettingsLoader.Load(Write(Valid.Replace("name: prom-a", "name: Prom-A.1") +
            "\njournal:\n  provider: postgresql\n  connectionString: 'Host=db;Database=promha;Username=p;Password=a\"b\\c'\n"), [], NoEnv);
        Assert.Equal("promha_prom_a_1", PromHa.Node.Storage.Journal.Schema(pg));
        hocon = Akka.Configuration.ConfigurationFactory.ParseString(PromHa.Node.Storage.Journal.Hocon(pg));
        foreach (var plugin in new[] { "journal", "snapshot-store" })
        {
            Assert.Equal("Host=db;Database=promha;Username=p;Password=a\"b\\c", hocon.GetString($"akka.persistence.{plugin}.sql.connection-string"));
            Assert.Equal(PromHa.Node.Storage.Journal.PostgresProvider, hocon.GetString($"akka.persistence.{plugin}.sql.provider-name"));
            Assert.Equal("promha_prom_a_1", hocon.GetString($"akka.persistence.{plugin}.sql.default.schema-name"));
        }
        Assert.Equal("p@db:5432/promha", PromHa.Node.Storage.PostgresConnection.Describe(pg.Journal.ConnectionString));
    }

    private const string TwoGroups = """
          groups:
            shard-a: [prom-a, prom-b, witness]
            shard-b: [prom-c, prom-d, witness]

        """;

    /// <summary>A server is in the one group that lists it; a witness serves every group that lists it; without groups, one default group.</summary>
    [Fact]
    public void Groups_name_their_nodes_a_server_is_in_one_and_a_witness_serves_every_group_that_lists_it()
    {
        var none = SettingsLoader.Load(Write(Valid), [], NoEnv);
        Assert.Equal([PromHa.Node.Groups.GroupScope.Whole], PromHa.Node.Groups.GroupScope.Served(none));

        var server = SettingsLoader.Load(Write(Valid.Replace("  seeds: [127.0.0.1:4053, 127.0.0.1:4054]\n", "  seeds: [127.0.0.1:4053, 127.0.0.1:4054]\n" + TwoGroups)), [], NoEnv);
        var own = Assert.Single(PromHa.Node.Groups.GroupScope.Served(server));
        Assert.Equal(("shard-a", 3, "group-shard-a", "ledger-shard-a", "promha-ledger-shard-a"), (own.Name, own.ConfiguredNodes(2), own.Role, own.Ledger, own.LedgerPersistenceId));
        Assert.Equal(["shard-a", "shard-b"], PromHa.Node.Groups.GroupScope.All(server).Select(g => g.Name));

        var witnessYaml = Valid.Replace("name: prom-a", "name: witness").Replace("prometheus:\n  mode: external\n  url: http://127.0.0.1:9090", "")
            .Replace("  seeds: [127.0.0.1:4053, 127.0.0.1:4054]\n", "  seeds: [127.0.0.1:4053, 127.0.0.1:4054]\n" + TwoGroups);
        var witness = SettingsLoader.Load(Write(witnessYaml), [], NoEnv);
        Assert.Equal(["shard-a", "shard-b"], PromHa.Node.Groups.GroupScope.Served(witness).Select(g => g.Name));
        // the default group keeps the names a cluster without groups uses (journals stay readable)
        var dflt = new PromHa.Node.Groups.GroupScope("default", new HashSet<string> { "a", "b" });
        Assert.Equal(("ledger", "promha-ledger", "master", "promha.roles"), (dflt.Ledger, dflt.LedgerPersistenceId, dflt.MasterSingleton, dflt.RolesTopic));
    }

    [Theory]
    [InlineData("group: shard-z\n", "", "group: 'shard-z' is not listed")]
    [InlineData("group: shard-b\n", "TWO", "group: 'shard-b' does not list this node")]
    [InlineData("", "  groups:\n    Shard-A: [prom-a, prom-b]\n", "'Shard-A' is not a group name")]
    [InlineData("", "  groups:\n    shard-a: [prom-a]\n", "cluster.groups.shard-a: needs at least two nodes")]
    [InlineData("", "  groups:\n    proxy: [prom-a, prom-b]\n", "'proxy' is reserved")]
    [InlineData("", "  groups:\n    shard-a: [prom-b, prom-c]\n", "no group lists this node (prom-a)")]
    [InlineData("", "  groups:\n    shard-a: [prom-a, prom-b]\n    shard-b: [prom-a, prom-c]\n", "a server is in one group")]
    public void A_group_setting_that_cannot_hold_is_refused_naming_the_field(string group, string groups, string expected)
    {
        var yaml = Valid.Replace("  seeds: [127.0.0.1:4053, 127.0.0.1:4054]\n",
            "  seeds: [127.0.0.1:4053, 127.0.0.1:4054]\n" + (groups == "TWO" ? TwoGroups : groups)) + "\n" + group;
        var e = Assert.Throws<SettingsException>(() => SettingsLoader.Load(Write(yaml), [], NoEnv));
        Assert.Contains(expected, e.Message);
    }
}
