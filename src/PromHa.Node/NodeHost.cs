using Akka.Cluster.Hosting;
using Akka.Configuration;
using Akka.Hosting;
using Akka.Remote.Hosting;
using PromHa.Node.Alerts;
using PromHa.Node.Cluster;
using PromHa.Node.Config;
using PromHa.Node.Groups;
using PromHa.Node.Health;
using PromHa.Node.Http;
using PromHa.Node.Web;
using PromHa.Node.Master;
using PromHa.Node.Reload;
using PromHa.Node.RemoteWrite;
using PromHa.Node.Security;
using PromHa.Node.Settings;
using PromHa.Node.Storage;
using PromHa.Node.Supervision;
using Prometheus;

namespace PromHa.Node;

/// <summary>
/// Builds one PromHa node: Kestrel for the HTTP surface and one ActorSystem (Akka.Hosting) with the
/// cluster, the master singleton and the per-node actors. Tests start nodes through this same code,
/// as real `promha run` processes.
/// </summary>
public static class NodeHost
{
    public const string SystemName = "promha";

    public static WebApplication Build(NodeSettings s)
    {
        // In a cluster of several groups every series this node serves names its group, so that
        // rules and dashboards count masters per group (before any metric exists: prometheus-net's rule)
        if (s.Cluster.Groups.Count > 0)
            Metrics.DefaultRegistry.SetStaticLabels(new Dictionary<string, string> { ["promha_group"] = GroupScope.Own(s).Name });
        Directory.CreateDirectory(s.DataDir);
        // Uploads spooled by a node that crashed mid-request: nobody reads them any more.
        var spool = Path.Combine(s.DataDir, "config", "uploads");
        if (Directory.Exists(spool))
            foreach (var f in Directory.EnumerateFiles(spool, "*.upload")) File.Delete(f);
        // PromHa reads promha.yml, not appsettings.json: do not keep an inotify watcher on the working
        // directory for it (its thread woke on every file change there).
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = ["--hostBuilder:reloadConfigOnChange=false"] });
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "HH:mm:ss.fff ";
            o.IncludeScopes = false;
        });
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        builder.Logging.AddFilter("Microsoft.Hosting", LogLevel.Warning);
        SettingsLoader.TryHostPort(s.Http.Listen, out var httpHost, out var httpPort);
        var tls = NodeTls.Load(s.Tls);
        builder.WebHost.ConfigureKestrel(k =>
        {
            Action<Microsoft.AspNetCore.Server.Kestrel.Core.ListenOptions> https = l =>
            {
                if (s.Tls.Http) l.UseHttps(tls!.Certificate);
            };
            if (httpHost is "0.0.0.0" or "*") k.ListenAnyIP(httpPort, https);
            else k.Listen(System.Net.IPAddress.Parse(httpHost == "localhost" ? "127.0.0.1" : httpHost), httpPort, https);
        });
        builder.Host.ConfigureHostOptions(o => o.ShutdownTimeout = TimeSpan.FromSeconds(15));

        var view = new NodeView(s.Node.Name, s.IsWitness) { Group = GroupScope.Own(s).Name };
        var groupsView = new GroupsView(GroupScope.All(s));
        builder.Services.AddSingleton(groupsView);
        var token = AdminToken.Load(s);
        if (token is not null) builder.Services.AddSingleton(token);
        builder.Services.AddApiErrors();
        builder.Services.AddMasterProxy();
        builder.Services.AddSingleton(s);
        builder.Services.AddSingleton(view);
        var routes = new GateRoutes();
        builder.Services.AddSingleton(routes);
        builder.Services.AddAkka(SystemName, akka =>
        {
            ConfigureAkka(akka, s, view, tls, routes, NodeGates.For(s, token));
            akka.AddGroupsWatchActor(groupsView);
        });

        // Only what helps an operator: PromHa's own metrics and the process's; no runtime event counters.
        ProcessMetrics.Register();

        // The outbox is opened (and upgraded) once before anything starts: one this promha cannot
        // read stops the start with its reason instead of leaving a master whose gate never delivers.
        try
        {
            foreach (var g in GroupScope.Served(s)) new OutboxStore(Path.Combine(s.DataDir, g.OutboxFile)).Dispose();
        }
        catch (OutboxVersionException e) { throw new SettingsException(e.Message); }

        var app = builder.Build();
        // the journal's database before the ledger recovers from it
        Journal.Prepare(s, app.Logger, TimeSpan.FromSeconds(30));
        // Prometheus starts from the live dir: fill it from the conf dir if this node has none yet.
        new LiveTree(s).Bootstrap(s.Node.Name, app.Logger);
        if (token is null)
            app.Logger.LogWarning("No admin token configured (http.tokenFile, {Env} or the systemd credential {Cred}): anyone who reaches {Listen} " +
                                  "can change the configuration and the master", AdminToken.EnvVar, AdminToken.CredentialName, s.Http.Listen);
        else app.Logger.LogInformation("Admin API needs the token from {Source}", token.Source);
        app.UseApiErrors();
        app.MapWebPage();
        app.MapPromHaEndpoints();
        // the peers' proof that this process exited (PeerCrashActor)
        app.MapLifeLine(() =>
        {
            var self = Akka.Cluster.Cluster.Get(app.Services.GetRequiredService<Akka.Actor.ActorSystem>()).SelfUniqueAddress;
            return $"{self.Address}#{self.Uid}";
        });
        app.MapGateEndpoints();
        app.MapRemoteWriteEndpoints();
        app.MapMasterProxy();
        app.MapGroupEndpoints();
        app.MapMetrics("/metrics");
        return app;
    }

    /// <summary>The seed list without this node's own entry (written as its host, localhost or 127.0.0.1).</summary>
    public static List<string> OtherSeeds(NodeSettings s) => s.Cluster.Seeds.Where(seed =>
        !(SettingsLoader.TryHostPort(seed, out var host, out var port) && port == s.Cluster.AdvertisedPort &&
          (host == s.Cluster.AdvertisedHost || host is "localhost" or "127.0.0.1"))).ToList();

    /// <summary>akka.ssl.tcp with TLS (the DotNetty transport's scheme), akka.tcp without.</summary>
    public static string Protocol(NodeSettings s) => s.Tls.Enabled ? "akka.ssl.tcp" : "akka.tcp";

    public static void ConfigureAkka(AkkaConfigurationBuilder akka, NodeSettings s, NodeView view, NodeTls? tls, GateRoutes routes, NodeGates gates)
    {
        var hoconDir = Path.Combine(AppContext.BaseDirectory, "hocon");
        var generated = Journal.Hocon(s);
        if (s.Cluster.TieBreaker.Database.Length > 0)
            generated += "\n" + File.ReadAllText(Path.Combine(hoconDir, "dblease.hocon")) +
                         $"\npromha.database-lease.connection-string = {Journal.Quote(s.Cluster.TieBreaker.Database)}" +
                         $"\npromha.database-lease.heartbeat-timeout = {s.Cluster.TieBreaker.DatabaseLeaseTtlMs}ms\n";
        else if (s.Cluster.TieBreaker.Targets.Count > 0)
            generated += "\n" + File.ReadAllText(Path.Combine(hoconDir, "tiebreaker.hocon")) +
                         $"\npromha.tiebreaker-lease.targets = [{string.Join(",", s.Cluster.TieBreaker.Targets.Select(t => $"\"{t}\""))}]" +
                         $"\npromha.tiebreaker-lease.connect-timeout = {s.Cluster.TieBreaker.TimeoutMs}ms\n";

        if (tls is not null) generated += "\n" + TlsHandshakeVeto.Hocon;
        akka.AddHocon(ConfigurationFactory.ParseString(generated), HoconAddMode.Prepend);
        foreach (var file in new[] { "cluster.hocon", "serialization.hocon", "persistence.hocon" })
            akka.AddHocon(ConfigurationFactory.ParseString(File.ReadAllText(Path.Combine(hoconDir, file))), HoconAddMode.Append);

        var peers = OtherSeeds(s);
        // the groups this node serves: a server's own, or every group that lists a witness
        var groups = GroupScope.Served(s);
        var deaths = new PeerDeaths();
        var outsiders = new OutsiderProbe(peers);
        var timings = new MasterTimings(
            TimeSpan.FromMilliseconds(s.Timing.LeaseMs),
            TimeSpan.FromMilliseconds(s.Timing.LeaseMarginMs),
            TimeSpan.FromMilliseconds(s.Timing.UnhealthyAfterMs),
            TimeSpan.FromMilliseconds(Math.Max(3 * s.Timing.ProbeIntervalMs, 3000)),
            s.Cluster.Seeds.Count);

        akka.ConfigureLoggers(l =>
            {
                l.ClearLoggers();
                l.AddLoggerFactory();
            })
            .WithRemoting(new RemoteOptions
            {
                HostName = s.Cluster.Host,
                Port = s.Cluster.Port,
                PublicHostName = s.Cluster.AdvertisedHost,
                PublicPort = s.Cluster.AdvertisedPort,
                EnableSsl = tls is not null,
                Ssl = tls?.RemotingOptions() ?? new Akka.Remote.Hosting.SslOptions(),
            })
            .WithClustering(new ClusterOptions
            {
                Roles = MemberRoles.For(s.Node.Name, s.IsWitness, groups),
                SeedNodes = s.Cluster.Seeds.Select(seed => $"{Protocol(s)}://{SystemName}@{seed}").ToArray(),
            })
            .WithDistributedPubSub(role: null!)
            .AddStartup((system, _) =>
            {
                if (tls is not null) TlsHandshakeVeto.Install(system);
            })
            .AddJoinPacerActor()
            .AddMembershipActor(s.Node.Name)
            .AddLedgerActor(s.Node.Name, view, timings.LeaseDuration, groups)
            .AddPeerCrashActor(view, deaths, Console.ApiAccess.ForPeers(s))
            .AddMasterActor(s.Node.Name, timings, outsiders, deaths, view.Time, groups)
            .AddConfigVersionsActor(s.Node.Name, timings.ConfiguredNodes, outsiders, view.Time, groups)
            .AddSplitBrainWatchActor(s, view, peers)
            .AddSingletonWatchActor(groups)
            .AddRemovedWatchActor(s, view, timings.ConfiguredNodes)
            .AddRoleActor(s.Node.Name, view, timings.LeaseDuration, timings.ConfiguredNodes, groups[0])
            .AddHealthProbeActor(s, view)
            .AddReloaderActor(s)
            .AddConfigSyncActor(s, view, routes, gates)
            .AddCandidateActor(s)
            .AddConfDirActor(s, view)
            .AddBundleFetcherActor(s, view, Console.ApiAccess.ForPeers(s, AdminToken.Load(s)?.PeerSecret()))
            .AddOutboxActor(s, TimeProvider.System) // its times are compared with other nodes' wall clocks
            .AddNotificationGateActor(s, view, routes)
            .AddRemoteWriteGateActor(s, view)
            .AddMasterChangedAlertActor(s, view)
            .AddRoleHooksActor(s, view)
            .AddServerSupervisorActors(s, view.Time);
    }
}
