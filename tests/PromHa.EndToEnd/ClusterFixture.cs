using System.Net;
using System.Net.Sockets;
using PromHa.Lab;
using PromHa.Node.Sink;
using Xunit.Abstractions;

// Two lanes side by side, each one test at a time (see Lanes).
[assembly: CollectionBehavior(MaxParallelThreads = 2)]

namespace PromHa.EndToEnd;

/// <summary>
/// The suite's lanes: xUnit collections run side by side, the tests of one collection one at a time,
/// so a lane never runs two clusters at once. <see cref="Netns"/>: the partition cases in network
/// namespaces (mostly waiting out cuts: the machine is ~80 % idle then), and after them the pair and
/// group tests on loopback, so that both lanes take about as long (in CI they were 6.2 and 13.4 min:
/// the suite took as long as the loopback lane; with the group cases 17.1 and 15.5 min, and the alert
/// tests moved over to even them). <see cref="Loopback"/>: every other test on
/// 127.0.0.1 (clusters, Docker, the browser). Still two clusters at most at once. Measured on this 2-core machine
/// (docs/tests.md): one lane ~25 min, two ~16 min; three (two loopback clusters at once) 10m20s once,
/// then a master's /primary answering slower than the observer's 300 ms and a pair not rejoining
/// within 60 s: more load than the guarantees are tested under. Ports come from one process-wide
/// pool (LoopbackPorts.Claim, one machine-wide claim per port), so clusters of two lanes never share one.
/// </summary>
public static class Lanes
{
    public const string Netns = "netns";
    public const string Loopback = "loopback";
}

/// <summary>
/// Starts a real cluster for one test: `promha run` processes (the binary built from src/) beside
/// real Prometheus servers, on free loopback ports, in a temp dir. Everything is stopped by PID
/// when the test ends, pass or fail; the node logs go to the test output on failure.
/// </summary>
public sealed class RealCluster : IAsyncDisposable
{
    public static readonly TimeSpan Generous = TimeSpan.FromSeconds(60);
    private readonly ITestOutputHelper _output;
    private readonly string _dir;
    private TcpListener? _tieBreakerTarget;
    private readonly List<LinkProxy> _links = [];

    public LocalCluster Cluster { get; }
    /// <summary>The cluster's own PostgreSQL server, when its journals or its tie-breaker use one.</summary>
    public PostgresServer? Postgres { get; private set; }

    private RealCluster(ITestOutputHelper output, string dir, LocalCluster cluster, TcpListener? tieBreaker)
    {
        _output = output;
        _dir = dir;
        Cluster = cluster;
        _tieBreakerTarget = tieBreaker;
    }

    public static async Task<RealCluster> Start(ITestOutputHelper output, int nodes, int witnesses = 0,
        bool tieBreaker = false, LocalServers servers = LocalServers.External, bool alertmanager = false,
        PromHa.Node.Settings.ConfigMode configMode = PromHa.Node.Settings.ConfigMode.Mirror, bool cuttableLinks = false,
        bool httpsApi = false, LocalAlerting? alerting = null, IReadOnlyList<string>? hooks = null,
        JournalMix journals = JournalMix.Sqlite, bool databaseTieBreaker = false, IReadOnlyList<(string Url, string Mode)>? remoteWrite = null,
        IReadOnlyList<(string Name, int Nodes)>? groups = null, string? scrapeInterval = null, Func<LocalNode, bool>? start = null)
    {
        var options = new LocalClusterOptions
        {
            Nodes = nodes,
            Witnesses = witnesses,
            Servers = servers,
            Alertmanager = alertmanager,
            ConfigMode = configMode,
            PublicClusterPorts = cuttableLinks,
            HttpsApi = httpsApi,
            Alerting = alerting,
            Hooks = hooks ?? [],
            RemoteWrite = remoteWrite ?? [],
            Groups = groups ?? [],
            ScrapeInterval = scrapeInterval,
        };
        var missing = LocalCluster.MissingBinaries(options);
        if (missing.Count > 0)
            throw new InvalidOperationException(
                $"End-to-end tests need {string.Join(", ", missing)}: apt-get install -y prometheus prometheus-alertmanager prometheus-node-exporter");
        TcpListener? target = null;
        if (tieBreaker)
        {
            // the "ping node" both sides of the pair can reach, like a gateway
            target = new TcpListener(IPAddress.Loopback, 0);
            target.Start();
            options = options with { TieBreakerTargets = [$"127.0.0.1:{((IPEndPoint)target.LocalEndpoint).Port}"] };
        }
        var dir = Directory.CreateTempSubdirectory("promha-e2e").FullName;
        PostgresServer? pg = null;
        if (journals != JournalMix.Sqlite || databaseTieBreaker)
        {
            pg = await PostgresServer.Start(dir);
            var db = pg.ConnectionString;
            options = options with
            {
                PostgresJournal = journals == JournalMix.Sqlite ? null : db,
                Journals = journals,
                TieBreakerDatabase = databaseTieBreaker ? db : null,
            };
        }
        var cluster = LocalCluster.Create(dir, options);
        var rc = new RealCluster(output, dir, cluster, target) { Postgres = pg };
        try
        {
            if (cuttableLinks)
                foreach (var n in cluster.Nodes) rc._links.Add(new LinkProxy(n.PublicClusterPort, n.ClusterPort));
            await cluster.StartAll(which: start);
        }
        catch
        {
            await rc.DisposeAsync();
            throw;
        }
        return rc;
    }

    /// <summary>
    /// Each node journaled where its settings say: a PostgreSQL node in its own schema (and no
    /// promha.db), a SQLite node in its data dir (and no schema).
    /// </summary>
    public async Task CheckJournals(ITestOutputHelper output)
    {
        foreach (var n in Cluster.Nodes)
        {
            var schema = PromHa.Node.Storage.Journal.SchemaFor(n.Name);
            var rows = Postgres is null ? "" : await Postgres.Query($"SELECT to_regclass('{schema}.journal') IS NOT NULL") == "t"
                ? await Postgres.Query($"SELECT count(*) FROM {schema}.journal")
                : "-1";
            var sqlite = File.Exists(Path.Combine(n.DataDir, "promha.db"));
            output.WriteLine($"{n.Name}: {(Cluster.OnPostgres(n) ? "postgresql" : "sqlite")} journal; {schema}.journal rows: {rows}; promha.db: {sqlite}");
            if (Cluster.OnPostgres(n))
            {
                Assert.True(long.Parse(rows) > 0, $"{n.Name} journals in PostgreSQL but {schema}.journal has {rows} rows");
                Assert.False(sqlite, $"{n.Name} journals in PostgreSQL but wrote {n.DataDir}/promha.db");
            }
            else
            {
                Assert.True(sqlite, $"{n.Name} journals in SQLite but has no promha.db");
                Assert.True(rows is "" or "-1", $"{n.Name} journals in SQLite but {schema}.journal exists");
            }
        }
    }

    public LocalNode Node(string name) => Cluster.Nodes.Single(n => n.Name == name);

    /// <summary>Cuts every node's cluster link (start with cuttableLinks): HTTP and tie-breaker targets stay reachable.</summary>
    public void CutLinks() => _links.ForEach(l => l.Cut());

    public void RestoreLinks() => _links.ForEach(l => l.Restore());

    public async ValueTask DisposeAsync()
    {
        _output.WriteLine(Cluster.LogTails(40));
        // A test is over: kill -9 every node at once (by PID) instead of stopping them one by one
        // with a graceful hand-over each (seconds per node); their servers are stopped next.
        foreach (var n in Cluster.Nodes) Cluster.Kill(n);
        await Cluster.DisposeAsync();
        foreach (var l in _links) await l.DisposeAsync();
        _tieBreakerTarget?.Stop();
        if (Postgres is not null) await Postgres.DisposeAsync();
        if (Environment.GetEnvironmentVariable("KEEP_E2E_DIRS") == "1") _output.WriteLine($"kept {_dir}");
        else try { Directory.Delete(_dir, true); } catch (IOException) { }
    }
}
