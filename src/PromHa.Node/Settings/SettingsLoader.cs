using System.Net;
using Microsoft.Extensions.Configuration;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;
using PromHa.Node.Groups;

namespace PromHa.Node.Settings;

/// <summary>A node config that cannot run; the message names the file and the field.</summary>
public sealed class SettingsException(string message) : Exception(message);

/// <summary>
/// Reads promha.yml (YamlDotNet), lets PROMHA_* environment variables and --set key=value flags
/// override it, binds it to <see cref="NodeSettings"/> and checks every field before anything starts.
/// </summary>
public static class SettingsLoader
{
    public const string EnvPrefix = "PROMHA_";

    /// <summary>The console's variables, and the token (read by AdminToken): not settings keys.</summary>
    public static readonly HashSet<string> ConsoleVariables = ["PROMHA_API", "PROMHA_TOKEN", "PROMHA_TOKEN_FILE", "PROMHA_CA_FILE"];

    public static NodeSettings Load(string? path, IEnumerable<KeyValuePair<string, string?>> overrides,
        IDictionary<string, string?>? environment = null)
    {
        var source = path ?? "(no config file)";
        var builder = new ConfigurationBuilder();
        if (path is not null)
        {
            if (!File.Exists(path)) throw new SettingsException($"{path}: file not found");
            builder.AddInMemoryCollection(FlattenYaml(path));
        }
        // PROMHA_CLUSTER__PORT=4054 overrides cluster.port
        var env = environment ?? Environment.GetEnvironmentVariables().Cast<System.Collections.DictionaryEntry>()
            .ToDictionary(e => (string)e.Key, e => (string?)e.Value);
        builder.AddInMemoryCollection(env
            .Where(e => e.Key.StartsWith(EnvPrefix, StringComparison.Ordinal) && !ConsoleVariables.Contains(e.Key))
            .Select(e => KeyValuePair.Create(e.Key[EnvPrefix.Length..].Replace("__", ":"), e.Value)));
        builder.AddInMemoryCollection(overrides.Select(o => KeyValuePair.Create(o.Key.Replace('.', ':'), o.Value)));
        var configuration = builder.Build();

        var settings = new NodeSettings();
        try
        {
            configuration.Bind(settings, o => o.ErrorOnUnknownConfiguration = true);
        }
        catch (InvalidOperationException e)
        {
            throw new SettingsException($"{source}: {Describe(e)}");
        }
        Validate(settings, source);
        Normalize(settings);
        return settings;
    }

    private static string Describe(InvalidOperationException e)
    {
        // "...were not found on the instance of PromHa.Node.Settings.ClusterSection. 'prot'"
        var unknown = System.Text.RegularExpressions.Regex.Match(e.Message, @"not found on the instance of [\w.]*\.(\w+)[:.] (.*)$");
        if (unknown.Success)
        {
            var section = unknown.Groups[1].Value.Replace("Section", "").Replace("NodeSettings", "top level").ToLowerInvariant();
            return $"unknown setting {unknown.Groups[2].Value} ({section}); check the spelling, or a PROMHA_* environment variable";
        }
        // The binder names the key as "cluster:port"; operators wrote "cluster.port".
        var msg = e.InnerException is { } inner ? $"{e.Message} ({inner.Message})" : e.Message;
        return msg.Replace(':', '.').Replace("'. (", "' (");
    }

    public static IEnumerable<KeyValuePair<string, string?>> FlattenYaml(string path)
    {
        var stream = new YamlStream();
        try
        {
            using var reader = File.OpenText(path);
            stream.Load(reader);
        }
        catch (YamlException e)
        {
            throw new SettingsException($"{path}: line {e.Start.Line}, column {e.Start.Column}: {e.InnerException?.Message ?? e.Message}");
        }
        var result = new List<KeyValuePair<string, string?>>();
        if (stream.Documents.Count == 0) return result;
        if (stream.Documents[0].RootNode is not YamlMappingNode root)
            throw new SettingsException($"{path}: the top level must be a mapping of settings");
        Walk(root, "", result);
        return result;
    }

    private static void Walk(YamlNode node, string prefix, List<KeyValuePair<string, string?>> into)
    {
        switch (node)
        {
            case YamlMappingNode map:
                foreach (var (k, v) in map.Children)
                    Walk(v, prefix.Length == 0 ? ((YamlScalarNode)k).Value! : $"{prefix}:{((YamlScalarNode)k).Value}", into);
                break;
            case YamlSequenceNode seq:
                var i = 0;
                foreach (var item in seq.Children) Walk(item, $"{prefix}:{i++}", into);
                break;
            case YamlScalarNode scalar:
                into.Add(KeyValuePair.Create(prefix, scalar.Value));
                break;
        }
    }

    private static void Validate(NodeSettings s, string source)
    {
        void Fail(string field, string reason) => throw new SettingsException($"{source}: {field}: {reason}");

        if (string.IsNullOrWhiteSpace(s.Node.Name)) Fail("node.name", "is required (a short unique name, e.g. prom-a)");
        if (s.Node.Name.Any(c => !(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.')))
            Fail("node.name", $"'{s.Node.Name}' may only contain letters, digits, '-', '_' and '.'");
        if (s.Cluster.Port is < 1 or > 65535) Fail("cluster.port", $"must be 1-65535 (got {s.Cluster.Port})");
        if (string.IsNullOrWhiteSpace(s.Cluster.Host)) Fail("cluster.host", "is required");
        if (s.Cluster.PublicPort is < 0 or > 65535) Fail("cluster.publicPort", $"must be 1-65535, or 0 for cluster.port (got {s.Cluster.PublicPort})");
        if (s.Cluster.Seeds.Count == 0) Fail("cluster.seeds", "list every seed node as host:port (this node included if it is one)");
        foreach (var seed in s.Cluster.Seeds)
            if (!TryHostPort(seed, out _, out _)) Fail("cluster.seeds", $"'{seed}' is not host:port");
        ValidateGroups(s, Fail);
        foreach (var target in s.Cluster.TieBreaker.Targets)
            if (!TryHostPort(target, out _, out _)) Fail("cluster.tieBreaker.targets", $"'{target}' is not host:port");
        if (s.Cluster.TieBreaker.Database.Length > 0)
        {
            if (s.Cluster.TieBreaker.Targets.Count > 0) Fail("cluster.tieBreaker", "set targets or database, not both");
            if (Storage.PostgresConnection.Check(s.Cluster.TieBreaker.Database) is { } why) Fail("cluster.tieBreaker.database", why);
            if (s.Cluster.TieBreaker.DatabaseLeaseTtlMs is < 2000 or > 120000)
                Fail("cluster.tieBreaker.databaseLeaseTtlMs", $"must be 2000-120000 (got {s.Cluster.TieBreaker.DatabaseLeaseTtlMs})");
        }
        for (var i = 0; i < s.RemoteWrite.Count; i++)
        {
            var rw = s.RemoteWrite[i];
            var at = $"remoteWrite[{i}]";
            if (!(Uri.TryCreate(rw.Url, UriKind.Absolute, out var u) && u.Scheme is "http" or "https"))
                Fail($"{at}.url", $"'{rw.Url}' is not an http(s) URL (e.g. http://victoria:8428/api/v1/write)");
            if (rw.Mode is not (RemoteWriteTarget.MasterOnly or RemoteWriteTarget.AllReplicas))
                Fail($"{at}.mode", $"'{rw.Mode}' is not {RemoteWriteTarget.MasterOnly} or {RemoteWriteTarget.AllReplicas}");
            if (rw.Name.Length > 0 && !System.Text.RegularExpressions.Regex.IsMatch(rw.Name, "^[a-zA-Z0-9_.-]{1,64}$"))
                Fail($"{at}.name", $"'{rw.Name}' may only contain letters, digits, '-', '_' and '.'");
            foreach (var (field, file) in new[] { ("bearerTokenFile", rw.BearerTokenFile), ("basicAuthPasswordFile", rw.BasicAuthPasswordFile) })
                if (file.Length > 0 && !File.Exists(file)) Fail($"{at}.{field}", $"{file} not found");
            if (rw.BearerTokenFile.Length > 0 && rw.BasicAuthUsername.Length > 0) Fail(at, "bearerTokenFile or basic auth, not both");
            if ((rw.BasicAuthUsername.Length > 0) != (rw.BasicAuthPasswordFile.Length > 0))
                Fail(at, "basicAuthUsername and basicAuthPasswordFile go together");
            if (rw.BufferBytes < 1024 * 1024) Fail($"{at}.bufferBytes", $"must be at least 1048576 (got {rw.BufferBytes})");
            if (rw.BufferSeconds is < 10 or > 86400) Fail($"{at}.bufferSeconds", $"must be 10-86400 (got {rw.BufferSeconds})");
        }
        if (s.RemoteWrite.Select((rw, i) => rw.EffectiveName(i)).GroupBy(n => n).FirstOrDefault(g => g.Count() > 1) is { } dup)
            Fail("remoteWrite", $"two receivers named '{dup.Key}'");
        switch (s.Journal.Provider)
        {
            case JournalProvider.Postgresql:
                if (s.Journal.ConnectionString.Length == 0) Fail("journal.connectionString", "is required with provider postgresql (Host=...;Database=...;Username=...)");
                if (Storage.PostgresConnection.Check(s.Journal.ConnectionString) is { } why) Fail("journal.connectionString", why);
                if (s.Journal.Schema.Length > 0 && !System.Text.RegularExpressions.Regex.IsMatch(s.Journal.Schema, "^[a-z_][a-z0-9_]{0,62}$"))
                    Fail("journal.schema", $"'{s.Journal.Schema}' must be a lower-case SQL name ([a-z_][a-z0-9_]*, at most 63)");
                break;
            case JournalProvider.Sqlite when s.Journal.ConnectionString.Length > 0 || s.Journal.Schema.Length > 0:
                Fail("journal", "connectionString and schema are for provider postgresql (SQLite lives in dataDir)");
                break;
        }
        if (!TryHostPort(s.Http.Listen, out _, out _)) Fail("http.listen", $"'{s.Http.Listen}' is not host:port");
        if (string.IsNullOrWhiteSpace(s.DataDir)) Fail("dataDir", "is required (PromHa keeps its journal there)");
        foreach (var (name, server) in new[] { ("prometheus", s.Prometheus), ("alertmanager", s.Alertmanager) })
        {
            switch (server.Mode)
            {
                case ServerMode.External when !Uri.TryCreate(server.Url, UriKind.Absolute, out _):
                    Fail($"{name}.url", $"'{server.Url}' is not an absolute URL (external mode needs one)");
                    break;
                case ServerMode.Supervised:
                    if (!TryHostPort(server.Listen, out _, out _)) Fail($"{name}.listen", $"'{server.Listen}' is not host:port (supervised mode needs one)");
                    if (string.IsNullOrWhiteSpace(s.ConfDir)) Fail("confDir", $"is required when {name} is supervised");
                    // A node that already runs a version has its files in the live dir.
                    else if (!File.Exists(Path.Combine(s.ConfDir, $"{name}.yml")) &&
                             !(s.DataDir.Length > 0 && File.Exists(Path.Combine(s.Config.EffectiveLiveDir(s.DataDir), $"{name}.yml"))))
                        Fail("confDir", $"{Path.Combine(s.ConfDir, $"{name}.yml")} not found ({name} is supervised and reads it)");
                    break;
            }
        }
        if (s.Alertmanager.ClusterListen is { Length: > 0 } gossip && gossip != "off" && !TryHostPort(gossip, out _, out _))
            Fail("alertmanager.clusterListen", $"'{gossip}' is not host:port (or \"off\")");
        foreach (var peer in s.Alertmanager.ClusterPeers)
            if (!TryHostPort(peer, out _, out _)) Fail("alertmanager.clusterPeers", $"'{peer}' is not host:port");
        if (s.Alerts.GiveUpAfterSeconds < 10) Fail("alerts.giveUpAfterSeconds", $"must be at least 10 (got {s.Alerts.GiveUpAfterSeconds})");
        if (s.Alerts.RetentionHours < 1) Fail("alerts.retentionHours", $"must be at least 1 (got {s.Alerts.RetentionHours})");
        if (s.Alerts.MaxPayloadBytes < 64 * 1024) Fail("alerts.maxPayloadBytes", $"must be at least 65536 (got {s.Alerts.MaxPayloadBytes})");
        foreach (var hook in s.Hooks.OnRoleChange)
            if (!File.Exists(hook)) Fail("hooks.onRoleChange", $"{hook} not found");
            else if (!OperatingSystem.IsWindows() && (File.GetUnixFileMode(hook) & (UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute)) == 0)
                Fail("hooks.onRoleChange", $"{hook} is not executable (chmod +x)");
        if (s.Hooks.TimeoutSeconds is < 1 or > 3600) Fail("hooks.timeoutSeconds", $"must be 1-3600 (got {s.Hooks.TimeoutSeconds})");
        if (s.Alerts.GateUrl.Length > 0 && !(Uri.TryCreate(s.Alerts.GateUrl, UriKind.Absolute, out var gate) && gate.Scheme is "http" or "https"))
            Fail("alerts.gateUrl", $"'{s.Alerts.GateUrl}' is not an http(s) URL (e.g. http://node-a:8480)");
        var tls = s.Tls;
        var tlsFiles = new[] { ("tls.caFile", tls.CaFile), ("tls.certFile", tls.CertFile), ("tls.keyFile", tls.KeyFile) };
        if (tlsFiles.Any(f => f.Item2.Length > 0))
            foreach (var (field, file) in tlsFiles)
            {
                if (file.Length == 0) Fail(field, "is required when TLS is on (set tls.caFile, tls.certFile and tls.keyFile; `promha certs init` makes them)");
                else if (!File.Exists(file)) Fail(field, $"{file} not found");
            }
        if (tls.Http && !tls.Enabled) Fail("tls.http", "needs tls.certFile and tls.keyFile (the API serves the node's certificate)");
        var c = s.Config;
        if (string.IsNullOrWhiteSpace(c.ReplicaLabel) || !System.Text.RegularExpressions.Regex.IsMatch(c.ReplicaLabel, "^[a-zA-Z_][a-zA-Z0-9_]*$"))
            Fail("config.replicaLabel", $"'{c.ReplicaLabel}' is not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*)");
        if (c.Backups < 1) Fail("config.backups", $"must be at least 1 (got {c.Backups})");
        if (c.ChunkBytes is < 1024 or > 90 * 1024) Fail("config.chunkBytes", $"must be 1024-92160 so a chunk fits a remoting frame (got {c.ChunkBytes})");
        if (c.MaxBundleBytes < 1024 * 1024) Fail("config.maxBundleBytes", $"must be at least 1048576 (1 MiB) (got {c.MaxBundleBytes})");
        if (c.MaxFileBytes < 64 * 1024) Fail("config.maxFileBytes", $"must be at least 65536 (got {c.MaxFileBytes})");
        if (c.DebounceMs is < 0 or > 60000) Fail("config.debounceMs", $"must be 0-60000 (got {c.DebounceMs})");
        var t = s.Timing;
        if (t.LeaseMs < 500) Fail("timing.leaseMs", $"must be at least 500 (got {t.LeaseMs})");
        // Timers fire up to one scheduler tick (100 ms, hocon/cluster.hocon) late: the margin must cover that.
        if (t.LeaseMarginMs < 200 || t.LeaseMarginMs >= t.LeaseMs / 2)
            Fail("timing.leaseMarginMs", $"must be at least 200 and less than half of timing.leaseMs (got {t.LeaseMarginMs})");
        if (t.ProbeIntervalMs < 100) Fail("timing.probeIntervalMs", $"must be at least 100 (got {t.ProbeIntervalMs})");
    }

    private static void ValidateGroups(NodeSettings s, Action<string, string> fail)
    {
        static bool IsGroupName(string g) => g.Length is > 0 and <= 40 && char.IsAsciiLetterLower(g[0]) &&
                                             g.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c == '-');
        var groups = s.Cluster.Groups;
        if (groups.Count == 0)
        {
            if (s.Group.Length > 0 && s.Group != GroupScope.DefaultName)
                fail("group", $"'{s.Group}' is not listed: name the nodes of every group in cluster.groups (e.g. {s.Group}: [{s.Node.Name}, ...])");
            return;
        }
        foreach (var (name, nodes) in groups)
        {
            if (!IsGroupName(name)) fail("cluster.groups", $"'{name}' is not a group name (lower-case letters, digits and '-', starting with a letter)");
            if (GroupScope.Reserved.Contains(name)) fail("cluster.groups", $"'{name}' is reserved (PromHa's own actors use it); choose another group name");
            if (nodes.Distinct().Count() < 2) fail($"cluster.groups.{name}", "needs at least two nodes (a master and a standby, or a pair's witness)");
            if (nodes.Distinct().Count() != nodes.Count) fail($"cluster.groups.{name}", "names a node twice");
        }
        var mine = groups.Where(g => g.Value.Contains(s.Node.Name)).Select(g => g.Key).Order(StringComparer.Ordinal).ToList();
        if (mine.Count == 0) fail("cluster.groups", $"no group lists this node ({s.Node.Name})");
        if (!s.IsWitness && mine.Count > 1)
            fail("cluster.groups", $"{s.Node.Name} runs a Prometheus and is listed in {string.Join(" and ", mine)}: a server is in one group (only a witness may serve several)");
        if (s.Group.Length > 0 && !mine.Contains(s.Group))
            fail("group", $"'{s.Group}' does not list this node in cluster.groups (it is in {string.Join(", ", mine)})");
    }

    private static void Normalize(NodeSettings s)
    {
        s.DataDir = Path.GetFullPath(s.DataDir);
        if (!string.IsNullOrEmpty(s.ConfDir)) s.ConfDir = Path.GetFullPath(s.ConfDir);
        s.Config.LiveDir = Path.GetFullPath(s.Config.EffectiveLiveDir(s.DataDir));
        if (s.Prometheus.Mode == ServerMode.Supervised && s.Prometheus.Binary.Length == 0) s.Prometheus.Binary = "/usr/bin/prometheus";
        if (s.Alertmanager.Mode == ServerMode.Supervised && s.Alertmanager.Binary.Length == 0) s.Alertmanager.Binary = "/usr/bin/prometheus-alertmanager";
        if (s.Alertmanager.Mode == ServerMode.Supervised && s.Alertmanager.ClusterListen.Length == 0 && TryHostPort(s.Alertmanager.Listen, out var amHost, out _))
            s.Alertmanager.ClusterListen = $"{amHost}:9094";
        // one node per host: every seed's host, this node's gossip port
        if (s.Alertmanager.ClusterPeers.Count == 0 && TryHostPort(s.Alertmanager.ClusterListen, out _, out var gossipPort))
            s.Alertmanager.ClusterPeers = s.Cluster.Seeds
                .Where(seed => TryHostPort(seed, out var h, out _) && h != s.Cluster.AdvertisedHost)
                .Select(seed => { TryHostPort(seed, out var h, out _); return $"{h}:{gossipPort}"; }).ToList();
    }

    /// <summary>A listen host meaning every address of the machine (0.0.0.0, ::, *): not one to dial.</summary>
    public static bool IsAnyAddress(string host) => host is "0.0.0.0" or "::" or "*";

    public static bool TryHostPort(string value, out string host, out int port)
    {
        host = ""; port = 0;
        var i = value.LastIndexOf(':');
        if (i <= 0 || !int.TryParse(value[(i + 1)..], out port) || port is < 1 or > 65535) return false;
        host = value[..i].Trim('[', ']');
        return host.Length > 0;
    }
}
