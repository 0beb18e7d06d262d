using System.Text;
using PromHa.Node.Settings;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace PromHa.Node.Config;

/// <summary>Everything that makes one node's effective files differ from the bundle.</summary>
public sealed record RenderContext(
    string Node,
    ConfigMode Mode,
    string ReplicaLabel,
    bool IsMaster,
    string? MasterPrometheus,
    IReadOnlyList<string> FederateMatch)
{
    /// <summary>Every node's Alertmanager (base URLs): every Prometheus sends to all of them.</summary>
    public IReadOnlyList<string> Alertmanagers { get; init; } = [];
    /// <summary>The node's notification gate; null renders alertmanager.yml as authored (a node without one).</summary>
    public GateRendering? Gate { get; init; }
    /// <summary>promha.yml's remote storage.</summary>
    public IReadOnlyList<RemoteWriteTarget> RemoteWrite { get; init; } = [];
    /// <summary>This node's remote-write gate (master-only receivers go through it); null: they are rendered on the master alone.</summary>
    public GateRendering? RemoteWriteGate { get; init; }
}

/// <summary>
/// Turns a bundle into the files one node runs. Every node's prometheus.yml gets an external label
/// naming the replica, so a downstream store can deduplicate the pair. In federate mode a standby's
/// prometheus.yml scrapes the master's /federate instead of the targets; promha.yml's remote
/// storage is added (master-only receivers on the master alone). All other files are copied as they are.
/// </summary>
public static class ConfigRenderer
{
    public const string PrometheusFile = "prometheus.yml";
    public const string AlertmanagerFile = "alertmanager.yml";
    public const string FederateJob = "promha-federate";
    /// <summary>The federate job's target, a file_sd file beside prometheus.yml: the master's Prometheus on a standby, none on the master.</summary>
    public const string FederateTargetsFile = "promha-federate.yml";

    public static ConfBundle Render(ConfBundle bundle, RenderContext ctx)
    {
        var source = bundle.Get(PrometheusFile) ?? throw new ConfTreeException(PrometheusFile, "missing: a conf tree needs prometheus.yml at its root");
        var root = Parse(source);
        var federate = Federates(ctx);
        if (federate) root = FederateStandby(root);
        if (Rewrites(ctx)) AddFederateJob(root, ctx);
        var global = Child(root, "global");
        var labels = Child(global, "external_labels");
        labels.Children[new YamlScalarNode(ctx.ReplicaLabel)] = new YamlScalarNode(ctx.Node) { Style = ScalarStyle.DoubleQuoted };
        AlertingRenderer.AddAlerting(root, ctx.ReplicaLabel, ctx.Alertmanagers);
        AddRemoteWrite(root, ctx);

        var header = federate
            ? $"# Rendered by PromHa for {ctx.Node} (standby, federating {ctx.MasterPrometheus}); edit the master's conf tree instead.\n"
            : $"# Rendered by PromHa for {ctx.Node}; edit the master's conf tree instead.\n";
        // the other files as they are, hashes included (a 10,000-file tree is not hashed again)
        var files = bundle.Files.Values.Where(f => f.Path != PrometheusFile && !(ctx.Gate is not null && f.Path == AlertmanagerFile))
            .Append(BundleFile.Of(PrometheusFile, Encoding.UTF8.GetBytes(header + Save(root))));
        if (Rewrites(ctx))
            files = files.Where(f => f.Path != FederateTargetsFile).Append(BundleFile.Of(FederateTargetsFile, Encoding.UTF8.GetBytes(federate
                ? $"# Rendered by PromHa: the master's Prometheus, which this standby federates\n- targets: ['{ctx.MasterPrometheus}']\n"
                // A group without targets, not an empty list: after a reload Prometheus's file
                // discovery sends nothing for an empty file, and the job would keep its old target.
                : "# Rendered by PromHa: this node is master (or knows no master yet) and federates nobody\n- targets: []\n")));
        if (ctx.Gate is { } gate && bundle.Get(AlertmanagerFile) is { } am)
            files = files.Append(BundleFile.Of(AlertmanagerFile, AlertingRenderer.RenderAlertmanager(am, gate, ctx.IsMaster)));
        return ConfBundle.Of(files);
    }

    /// <summary>
    /// Whether this node's files differ from the candidate's by more than the replica label: only a
    /// federating standby's do. Every other render was checked with the tools as a candidate.
    /// </summary>
    public static bool Federates(RenderContext ctx) => ctx.Mode == ConfigMode.Federate && !ctx.IsMaster && ctx.MasterPrometheus is not null;

    /// <summary>Whether this node's prometheus.yml differs from the candidate's by more than the replica label (federate mode adds a job).</summary>
    public static bool Rewrites(RenderContext ctx) => ctx.Mode == ConfigMode.Federate;

    /// <summary>Parses prometheus.yml far enough to edit it; a syntax error names the line and column.</summary>
    public static YamlMappingNode Parse(byte[] content, string file = PrometheusFile)
    {
        var stream = new YamlStream();
        try
        {
            stream.Load(new StringReader(Encoding.UTF8.GetString(content)));
        }
        catch (YamlException e)
        {
            throw new ConfTreeException(file, $"YAML syntax error at line {e.Start.Line}, column {e.Start.Column}: {e.InnerException?.Message ?? e.Message}");
        }
        if (stream.Documents.Count == 0) return new YamlMappingNode();
        return stream.Documents[0].RootNode as YamlMappingNode
               ?? throw new ConfTreeException(file, "the top level must be a mapping");
    }

    private static YamlMappingNode FederateStandby(YamlMappingNode original)
    {
        // Keep global settings, alerting and remote storage; the standby scrapes only the master.
        // Rules stay with the master: the standby receives their results through /federate (a rule
        // group removed by a reload has its series marked stale).
        // Every job stays, with all its targets dropped: Prometheus marks a dropped target's series
        // stale, but never those of a job a reload removes. A node that scraped the targets itself
        // (as master, or at its first start before it knew a master) would otherwise keep its last
        // samples for five minutes beside the federated copies, and after a promotion within them its
        // rules saw them as current (seen: a dead master's promha_is_master 1, long after it died).
        var root = new YamlMappingNode();
        foreach (var (key, value) in original.Children)
        {
            if (key is YamlScalarNode { Value: "scrape_configs" } && value is YamlSequenceNode jobs)
                root.Children[key] = new YamlSequenceNode(jobs.Children.Select(j => j is YamlMappingNode job ? WithoutTargets(job) : j));
            else if (key is YamlScalarNode { Value: not ("scrape_configs" or "scrape_config_files" or "rule_files") })
                root.Children[key] = value;
        }
        return root;
    }

    /// <summary>A copy of a scrape job that drops every target it discovers (before its own relabelling).</summary>
    private static YamlMappingNode WithoutTargets(YamlMappingNode job)
    {
        var copy = new YamlMappingNode(job.Children);
        var drop = new YamlMappingNode
        {
            { "source_labels", new YamlSequenceNode(new YamlScalarNode("__address__")) },
            { "regex", new YamlScalarNode(".*") { Style = ScalarStyle.SingleQuoted } },
            { "action", "drop" },
        };
        var existing = job.Children.TryGetValue(new YamlScalarNode("relabel_configs"), out var r) && r is YamlSequenceNode seq ? seq.Children : [];
        copy.Children[new YamlScalarNode("relabel_configs")] = new YamlSequenceNode(existing.Prepend(drop));
        return copy;
    }

    /// <summary>
    /// Every node in federate mode has the federate job; the master's has no target.
    /// Its targets come from a file_sd file so that a role change changes only that file: when
    /// the old master's target leaves it, Prometheus marks the federated series stale two scrape
    /// intervals later. A job removed by a reload is never marked stale, and a promoted standby
    /// would keep the old master's copies for five minutes beside its own series.
    /// </summary>
    private static void AddFederateJob(YamlMappingNode root, RenderContext ctx)
    {
        if (root.Children.TryGetValue(new YamlScalarNode("scrape_configs"), out var existing) && existing is YamlSequenceNode jobs)
            jobs.Children.Add(FederateJobNode(ctx));
        else root.Children[new YamlScalarNode("scrape_configs")] = new YamlSequenceNode(FederateJobNode(ctx)); // a standby's only job
    }

    private static YamlMappingNode FederateJobNode(RenderContext ctx) => new()
    {
        { "job_name", FederateJob },
        { "honor_labels", "true" },
        // Federated samples carry the master's timestamps, and Prometheus never marks samples with
        // their own timestamps stale: the copies would outlive a failover by five minutes.
        { "honor_timestamps", "false" },
        { "metrics_path", "/federate" },
        { "params", new YamlMappingNode { { "match[]", new YamlSequenceNode(ctx.FederateMatch.Select(m => new YamlScalarNode(m) { Style = ScalarStyle.SingleQuoted })) } } },
        { "file_sd_configs", new YamlSequenceNode(new YamlMappingNode { { "files", new YamlSequenceNode(new YamlScalarNode(FederateTargetsFile)) } }) },
    };

    /// <summary>
    /// promha.yml's receivers, after any the operator's prometheus.yml has. all-replicas: every node
    /// writes to the receiver. master-only: every node writes to its own gate, which forwards while
    /// the node is master (RemoteWriteGateActor), so the same file serves either role and a failover
    /// reloads nothing; one shard keeps the batches in order (the gate's acknowledged mark relies on
    /// it). Without a gate, master-only receivers are written by the master alone. Each drops the
    /// replica label on the way out: the receiver keeps one series per target whoever wrote it.
    /// </summary>
    private static void AddRemoteWrite(YamlMappingNode root, RenderContext ctx)
    {
        var targets = ctx.RemoteWrite.Select((rw, i) => (rw, i))
            .Where(t => t.rw.Mode == RemoteWriteTarget.AllReplicas || ctx.IsMaster || ctx.RemoteWriteGate is not null).ToList();
        if (targets.Count == 0) return;
        YamlSequenceNode list;
        if (root.Children.TryGetValue(new YamlScalarNode("remote_write"), out var existing) && existing is not YamlScalarNode { Value: null or "" or "~" or "null" })
            list = existing as YamlSequenceNode ?? throw new ConfTreeException(PrometheusFile, "'remote_write' must be a list");
        else root.Children[new YamlScalarNode("remote_write")] = list = new YamlSequenceNode();
        foreach (var (rw, i) in targets)
        {
            var name = rw.EffectiveName(i);
            var gated = rw.Mode == RemoteWriteTarget.MasterOnly && ctx.RemoteWriteGate is not null;
            var entry = new YamlMappingNode
            {
                { "name", name },
                { "url", new YamlScalarNode(gated ? $"{ctx.RemoteWriteGate!.BaseUrl}/{name}" : rw.Url) { Style = ScalarStyle.DoubleQuoted } },
                {
                    "write_relabel_configs", new YamlSequenceNode(new YamlMappingNode
                    {
                        { "action", "labeldrop" },
                        { "regex", new YamlScalarNode(ctx.ReplicaLabel) { Style = ScalarStyle.SingleQuoted } },
                    })
                },
            };
            if (gated)
            {
                var gate = ctx.RemoteWriteGate!;
                if (gate.Credentials is { } c) entry.Add("authorization", new YamlMappingNode { { "credentials", new YamlScalarNode(c) { Style = ScalarStyle.DoubleQuoted } } });
                if (gate.CaFile is { } ca) entry.Add("tls_config", new YamlMappingNode { { "ca_file", ca } });
                entry.Add("queue_config", new YamlMappingNode
                {
                    { "min_shards", "1" }, { "max_shards", "1" }, { "capacity", "10000" },
                    { "max_samples_per_send", "2000" }, { "batch_send_deadline", "1s" },
                    { "min_backoff", "30ms" }, { "max_backoff", "1s" },
                });
            }
            else
            {
                if (rw.BearerTokenFile.Length > 0)
                    entry.Add("authorization", new YamlMappingNode { { "credentials_file", rw.BearerTokenFile } });
                if (rw.BasicAuthUsername.Length > 0)
                    entry.Add("basic_auth", new YamlMappingNode { { "username", rw.BasicAuthUsername }, { "password_file", rw.BasicAuthPasswordFile } });
            }
            list.Add(entry);
        }
    }

    private static YamlMappingNode Child(YamlMappingNode parent, string key)
    {
        if (parent.Children.TryGetValue(new YamlScalarNode(key), out var node))
        {
            if (node is YamlMappingNode m) return m;
            if (node is YamlScalarNode { Value: null or "" or "~" or "null" }) { }
            else throw new ConfTreeException(PrometheusFile, $"'{key}' must be a mapping");
        }
        var created = new YamlMappingNode();
        parent.Children[new YamlScalarNode(key)] = created;
        return created;
    }

    public static string Save(YamlMappingNode root)
    {
        var w = new StringWriter();
        new YamlStream(new YamlDocument(root)).Save(w, assignAnchors: false);
        var text = w.ToString();
        // YamlDotNet closes the document with "...": valid YAML, but noise in a file people read.
        return text.EndsWith("...\n") ? text[..^4] : text.EndsWith("...\r\n") ? text[..^5] : text;
    }
}
