using System.CommandLine;
using PromHa.Lab;
using PromHa.Node.Sink;

using PromHa.Node.Console;

namespace PromHa.LabTool;

/// <summary>
/// `promha-lab demo`: N nodes on this machine, each supervising its own real Prometheus and
/// Alertmanager, sharing a conf that scrapes the nodes and a node_exporter. Ctrl-C stops all.
/// </summary>
public static class DemoCommand
{
    public const string InstallHint = "sudo apt-get install -y prometheus prometheus-alertmanager prometheus-node-exporter";

    public static Command Create()
    {
        var nodes = new Option<int>("--nodes", "-n") { Description = "How many nodes", DefaultValueFactory = _ => 3 };
        var witness = new Option<bool>("--witness") { Description = "Add a witness node (no Prometheus; votes only)" };
        var dir = new Option<string?>("--dir") { Description = "Where the demo keeps its files (default: a new temp dir)" };
        var demo = new Command("demo", "Run a local PromHa cluster beside real Prometheus and Alertmanager servers") { nodes, witness, dir };
        demo.SetAction((p, ct) => Run(p.GetValue(nodes), p.GetValue(witness), p.GetValue(dir), ct));
        return demo;
    }

    private static async Task<int> Run(int nodeCount, bool witness, string? dir, CancellationToken ct)
    {
        if (nodeCount is < 1 or > 20)
        {
            await System.Console.Error.WriteLineAsync("promha-lab demo: --nodes must be 1-20");
            return 64;
        }
        var baseDir = dir ?? Directory.CreateTempSubdirectory("promha-demo").FullName;
        Directory.CreateDirectory(baseDir);
        // The receiver every notification goes to: one line per delivery in notifications.log. It
        // also serves the metric the demo's DemoTrigger rule fires on, set from the start.
        using var sink = new WebhookSink(LoopbackPorts.Claim(1)[0], Path.Combine(baseDir, "notifications.log"));
        sink.Trigger = 1;
        var options = new LocalClusterOptions
        {
            Nodes = nodeCount, Witnesses = witness ? 1 : 0, NodeExporter = true,
            Alerting = new LocalAlerting(sink.WebhookUrl, sink.Target, GroupInterval: "5s"),
        };
        var missing = LocalCluster.MissingBinaries(options);
        if (missing.Count > 0)
        {
            await System.Console.Error.WriteLineAsync(
                $"promha-lab demo: missing {string.Join(", ", missing)}.\nInstall them with:\n  {InstallHint}");
            return 3;
        }
        await using var cluster = LocalCluster.Create(baseDir, options);
        System.Console.WriteLine($"Starting {nodeCount} PromHa nodes{(witness ? " and a witness" : "")} in {baseDir} ...");
        try
        {
            await cluster.StartAll(ct);
            var master = await cluster.WaitForSingleMaster(TimeSpan.FromSeconds(60), ct: ct);
            PrintUrls(cluster, master, sink);
            await Watch(cluster, master.Name, ct);
        }
        catch (OperationCanceledException) { }
        catch (TimeoutException e)
        {
            await System.Console.Error.WriteLineAsync(e.Message);
            return 1;
        }
        System.Console.WriteLine("\nStopping every node, Prometheus and Alertmanager ...");
        return 0;
    }

    private static void PrintUrls(LocalCluster cluster, LocalNode master, WebhookSink sink)
    {
        System.Console.WriteLine();
        foreach (var n in cluster.Nodes)
        {
            System.Console.WriteLine($"{n.Name,-9} promha {n.HttpUrl}   (pid {n.Process?.Id})" + (n.Witness ? "   witness" : ""));
            if (n.Witness) continue;
            System.Console.WriteLine($"{"",-9} prometheus {n.PrometheusUrl}   alertmanager {n.AlertmanagerUrl}");
        }
        if (cluster.NodeExporterPort is { } ne) System.Console.WriteLine($"node_exporter http://127.0.0.1:{ne}/metrics");
        // the full path: a newcomer's shell has no promha on its PATH
        var promha = string.Join(' ', LocalClusterOptions.DefaultPromhaCommand());
        System.Console.WriteLine($"""

            TLS:    on between the nodes (mutual, cluster CA {cluster.CaFile}; a node without one of its certificates cannot join)
            Token:  the admin token is in {cluster.TokenFile}; changes (config apply, rollback, switchover) and config
                    contents need it:  export PROMHA_TOKEN_FILE={cluster.TokenFile}
            Page:   open {cluster.Nodes[0].HttpUrl}/ in a browser (every node serves it; actions ask for the token)
            Master: {master.Name}   (GET {master.HttpUrl}/primary -> 200)
            Try:    {promha} status --api {cluster.Nodes[0].HttpUrl}
                    {promha} cluster show --api {cluster.Nodes[0].HttpUrl}
                    kill -9 {master.Process?.Id}    # crash the master's node, watch the role move
            Config: edit the master's conf tree {master.ConfDir}
                    (e.g. add a file_sd file under business/demo/job/), then
                    {promha} config versions --api {cluster.Nodes[0].HttpUrl}
                    {promha} config status --api {cluster.Nodes[0].HttpUrl}
                    {promha} config diff 1 2 --api {cluster.Nodes[0].HttpUrl}   # needs the token
            Alerts: every notification reaches the demo's webhook receiver ({sink.WebhookUrl}) once, through the
                    master's notification gate; each is one line in
                    tail -f {Path.Combine(cluster.BaseDir, "notifications.log")}
                    DemoTrigger fires from the start; kill {cluster.NodeExporter?.Id} (node_exporter) fires NodeExporterDown
                    after 10 s; kill -9 the master after that: still exactly one notification each.
                    curl {cluster.Nodes[0].HttpUrl}/api/v1/notifications   # the outbox: delivered, duplicates, failures
            Logs:   {cluster.BaseDir}/<node>/promha.log
            Ctrl-C stops everything.
            """);
    }

    private static async Task Watch(LocalCluster cluster, string master, CancellationToken ct)
    {
        var exited = new HashSet<string>();
        while (!ct.IsCancellationRequested)
        {
            await Task.Delay(1000, ct);
            foreach (var n in cluster.Nodes.Where(n => n.Process is { HasExited: true } && exited.Add(n.Name)))
                System.Console.WriteLine($"{DateTime.Now:HH:mm:ss} {n.Name} exited (code {n.Process!.ExitCode})");
            var masters = await cluster.Masters();
            var now = masters.Count == 1 ? masters[0].Name : null;
            if (now is not null && now != master)
            {
                var status = await cluster.Status(masters[0]);
                System.Console.WriteLine($"{DateTime.Now:HH:mm:ss} master is now {now} (epoch {status?.Epoch})");
                master = now;
            }
        }
    }
}
