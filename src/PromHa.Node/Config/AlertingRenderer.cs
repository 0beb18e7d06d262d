using System.Text;
using System.Text.RegularExpressions;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace PromHa.Node.Config;

/// <summary>Where this node's Alertmanager reaches the node's notification gate, and how it proves itself there.</summary>
public sealed record GateRendering(string BaseUrl, string? Credentials, string? CaFile);

/// <summary>How this node's own servers reach its gates: Alertmanager the notification gate, Prometheus the remote-write gate.</summary>
public sealed record NodeGates(GateRendering? Notifications, GateRendering? RemoteWrite)
{
    public static NodeGates For(PromHa.Node.Settings.NodeSettings s, PromHa.Node.Http.AdminToken? token) =>
        new(Alerts.GateEndpoints.Rendering(s, token), PromHa.Node.RemoteWrite.RemoteWriteEndpoints.Rendering(s, token));
}

/// <summary>
/// The alerting half of rendering. prometheus.yml: every Prometheus sends to every node's
/// Alertmanager (alerts still flow when any one node is down) and drops the replica label from
/// alerts (one alert from N replicas stays one alert). alertmanager.yml: every webhook the gate can
/// carry points at the node's gate, which delivers only on the master; the other integrations
/// (email, Slack, PagerDuty, webhooks with TLS or OAuth settings) stay on the master's
/// Alertmanager only and are removed from a standby's.
/// </summary>
public static class AlertingRenderer
{
    public static void AddAlerting(YamlMappingNode root, string replicaLabel, IReadOnlyList<string> alertmanagers)
    {
        var alerting = Mapping(root, "alerting", ConfigRenderer.PrometheusFile);
        var relabels = Sequence(alerting, "alert_relabel_configs", ConfigRenderer.PrometheusFile);
        relabels.Children.Insert(0, new YamlMappingNode
        {
            { "action", "labeldrop" },
            { "regex", replicaLabel },
        });
        if (alertmanagers.Count == 0) return;
        var sets = Sequence(alerting, "alertmanagers", ConfigRenderer.PrometheusFile);
        foreach (var group in alertmanagers.Select(u => new Uri(u)).GroupBy(u => (u.Scheme, Path: u.AbsolutePath.TrimEnd('/'))))
        {
            var set = new YamlMappingNode();
            if (group.Key.Scheme != "http") set.Add("scheme", group.Key.Scheme);
            if (group.Key.Path.Length > 0) set.Add("path_prefix", group.Key.Path);
            set.Add("static_configs", new YamlSequenceNode(new YamlMappingNode
            {
                { "targets", new YamlSequenceNode(group.Select(u => new YamlScalarNode(u.Authority)).Distinct()) },
            }));
            sets.Children.Add(set);
        }
    }

    /// <summary>The authored alertmanager.yml as this node's Alertmanager runs it.</summary>
    public static byte[] RenderAlertmanager(byte[] authored, GateRendering gate, bool isMaster)
    {
        var root = ConfigRenderer.Parse(authored, ConfigRenderer.AlertmanagerFile);
        if (!root.Children.TryGetValue(new YamlScalarNode("receivers"), out var receiversNode) || receiversNode is not YamlSequenceNode receivers)
            return authored;
        foreach (var receiver in receivers.Children.OfType<YamlMappingNode>())
        {
            var name = Scalar(receiver, "name") ?? "";
            foreach (var (key, value) in receiver.Children.ToList())
            {
                var field = ((YamlScalarNode)key).Value ?? "";
                if (!field.EndsWith("_configs", StringComparison.Ordinal)) continue;
                if (field != "webhook_configs" || value is not YamlSequenceNode hooks)
                {
                    if (!isMaster) receiver.Children.Remove(key); // on the master's Alertmanager only
                    continue;
                }
                var rendered = new YamlSequenceNode();
                for (var i = 0; i < hooks.Children.Count; i++)
                {
                    if (hooks.Children[i] is not YamlMappingNode hook) continue;
                    if (GateTable.Carries(hook, out _)) rendered.Add(GateHook(hook, gate, name, i));
                    else if (isMaster) rendered.Add(hook);
                }
                receiver.Children[key] = rendered;
            }
        }
        var header = $"# Rendered by PromHa ({(isMaster ? "master" : "standby")}): webhooks go through this node's notification gate; edit the master's conf tree instead.\n";
        return Encoding.UTF8.GetBytes(header + ConfigRenderer.Save(root));
    }

    private static YamlMappingNode GateHook(YamlMappingNode hook, GateRendering gate, string receiver, int index)
    {
        var rendered = new YamlMappingNode
        {
            { "url", $"{gate.BaseUrl.TrimEnd('/')}/{Uri.EscapeDataString(receiver)}/{index}" },
        };
        foreach (var keep in new[] { "send_resolved", "max_alerts" })
            if (hook.Children.TryGetValue(new YamlScalarNode(keep), out var v)) rendered.Add(keep, v);
        var http = new YamlMappingNode();
        if (gate.Credentials is { } c) http.Add("authorization", new YamlMappingNode { { "credentials", new YamlScalarNode(c) { Style = ScalarStyle.DoubleQuoted } } });
        if (gate.CaFile is { } ca) http.Add("tls_config", new YamlMappingNode { { "ca_file", ca } });
        if (http.Children.Count > 0) rendered.Add("http_config", http);
        return rendered;
    }

    internal static string? Scalar(YamlMappingNode m, string key) =>
        m.Children.TryGetValue(new YamlScalarNode(key), out var v) && v is YamlScalarNode s ? s.Value : null;

    private static YamlMappingNode Mapping(YamlMappingNode parent, string key, string file)
    {
        if (parent.Children.TryGetValue(new YamlScalarNode(key), out var node))
        {
            if (node is YamlMappingNode m) return m;
            if (node is not YamlScalarNode { Value: null or "" or "~" or "null" }) throw new ConfTreeException(file, $"'{key}' must be a mapping");
        }
        var created = new YamlMappingNode();
        parent.Children[new YamlScalarNode(key)] = created;
        return created;
    }

    private static YamlSequenceNode Sequence(YamlMappingNode parent, string key, string file)
    {
        if (parent.Children.TryGetValue(new YamlScalarNode(key), out var node))
        {
            if (node is YamlSequenceNode s) return s;
            if (node is not YamlScalarNode { Value: null or "" or "~" or "null" }) throw new ConfTreeException(file, $"'{key}' must be a list");
        }
        var created = new YamlSequenceNode();
        parent.Children[new YamlScalarNode(key)] = created;
        return created;
    }
}

/// <summary>A real receiver's webhook, as the authored alertmanager.yml names it: what the gate delivers to.</summary>
/// <param name="SendResolved">the webhook's send_resolved (Alertmanager's default for webhooks: true)</param>
public sealed record WebhookTarget(string Receiver, int Index, string Url, string? Authorization, bool SendResolved = true);

/// <summary>
/// The webhooks of the authored alertmanager.yml that the gate carries, and each receiver's shortest
/// repeat_interval (a re-send after it is a repeat, before it a duplicate).
/// </summary>
public sealed class GateTable
{
    public static readonly GateTable Empty = new(new Dictionary<(string, int), WebhookTarget>(), new Dictionary<string, TimeSpan>(), []);
    private static readonly TimeSpan DefaultRepeat = TimeSpan.FromHours(4);
    private static readonly HashSet<string> CarriedHttpKeys = ["basic_auth", "authorization", "bearer_token", "follow_redirects", "enable_http2"];

    private readonly IReadOnlyDictionary<(string, int), WebhookTarget> _targets;
    private readonly IReadOnlyDictionary<string, TimeSpan> _repeat;

    private GateTable(IReadOnlyDictionary<(string, int), WebhookTarget> targets, IReadOnlyDictionary<string, TimeSpan> repeat, IReadOnlyList<string> direct)
    {
        _targets = targets;
        _repeat = repeat;
        Direct = direct;
    }

    public IReadOnlyCollection<WebhookTarget> Targets => (IReadOnlyCollection<WebhookTarget>)_targets.Values;

    /// <summary>Integrations left to the master's Alertmanager, as "receiver: kind" (docs/architecture.md: what each kind is promised).</summary>
    public IReadOnlyList<string> Direct { get; }

    public WebhookTarget? Target(string receiver, int index) => _targets.GetValueOrDefault((receiver, index));

    public TimeSpan RepeatInterval(string receiver) => _repeat.GetValueOrDefault(receiver, DefaultRepeat);

    /// <summary>Whether the gate can deliver this webhook itself: a plain URL and credentials it can send.</summary>
    public static bool Carries(YamlMappingNode hook, out string? why)
    {
        why = null;
        if (AlertingRenderer.Scalar(hook, "url") is not { Length: > 0 }) why = "no url (url_file is read by Alertmanager only)";
        else if (hook.Children.TryGetValue(new YamlScalarNode("http_config"), out var http) && http is YamlMappingNode h)
        {
            var other = h.Children.Keys.OfType<YamlScalarNode>().Select(k => k.Value ?? "").FirstOrDefault(k => !CarriedHttpKeys.Contains(k));
            if (other is not null) why = $"http_config.{other}";
            else if (h.Children.TryGetValue(new YamlScalarNode("basic_auth"), out var ba) && ba is YamlMappingNode b && Scalar(b, "password_file") is not null)
                why = "http_config.basic_auth.password_file";
            else if (h.Children.TryGetValue(new YamlScalarNode("authorization"), out var au) && au is YamlMappingNode a && Scalar(a, "credentials_file") is not null)
                why = "http_config.authorization.credentials_file";
        }
        return why is null;
    }

    public static GateTable Parse(byte[]? authored)
    {
        if (authored is null) return Empty;
        var root = ConfigRenderer.Parse(authored, ConfigRenderer.AlertmanagerFile);
        var targets = new Dictionary<(string, int), WebhookTarget>();
        var direct = new List<string>();
        if (root.Children.TryGetValue(new YamlScalarNode("receivers"), out var rs) && rs is YamlSequenceNode receivers)
            foreach (var receiver in receivers.Children.OfType<YamlMappingNode>())
            {
                var name = Scalar(receiver, "name") ?? "";
                foreach (var (key, value) in receiver.Children)
                {
                    var field = ((YamlScalarNode)key).Value ?? "";
                    if (!field.EndsWith("_configs", StringComparison.Ordinal)) continue;
                    if (field != "webhook_configs" || value is not YamlSequenceNode hooks)
                    {
                        direct.Add($"{name}: {field[..^"_configs".Length]}");
                        continue;
                    }
                    for (var i = 0; i < hooks.Children.Count; i++)
                    {
                        if (hooks.Children[i] is not YamlMappingNode hook) continue;
                        if (Carries(hook, out var why))
                            targets[(name, i)] = new WebhookTarget(name, i, Scalar(hook, "url")!, Authorization(hook),
                                YamlBool(Scalar(hook, "send_resolved")) ?? true);
                        else direct.Add($"{name}: webhook {i} ({why})");
                    }
                }
            }
        var repeat = new Dictionary<string, TimeSpan>();
        if (root.Children.TryGetValue(new YamlScalarNode("route"), out var r) && r is YamlMappingNode route)
            Walk(route, null, DefaultRepeat, repeat);
        return new GateTable(targets, repeat, direct);
    }

    private static void Walk(YamlMappingNode route, string? receiver, TimeSpan repeat, Dictionary<string, TimeSpan> into)
    {
        receiver = Scalar(route, "receiver") ?? receiver;
        if (Scalar(route, "repeat_interval") is { } ri && ParseDuration(ri) is { } d) repeat = d;
        if (receiver is not null) into[receiver] = into.TryGetValue(receiver, out var known) && known < repeat ? known : repeat;
        if (route.Children.TryGetValue(new YamlScalarNode("routes"), out var children) && children is YamlSequenceNode list)
            foreach (var child in list.Children.OfType<YamlMappingNode>()) Walk(child, receiver, repeat, into);
    }

    private static string? Authorization(YamlMappingNode hook)
    {
        if (!hook.Children.TryGetValue(new YamlScalarNode("http_config"), out var http) || http is not YamlMappingNode h) return null;
        if (h.Children.TryGetValue(new YamlScalarNode("basic_auth"), out var ba) && ba is YamlMappingNode b)
            return "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes($"{Scalar(b, "username")}:{Scalar(b, "password")}"));
        if (h.Children.TryGetValue(new YamlScalarNode("authorization"), out var au) && au is YamlMappingNode a)
            return $"{Scalar(a, "type") ?? "Bearer"} {Scalar(a, "credentials")}";
        return Scalar(h, "bearer_token") is { } t ? $"Bearer {t}" : null;
    }

    private static string? Scalar(YamlMappingNode m, string key) => AlertingRenderer.Scalar(m, key);

    /// <summary>
    /// A boolean as Alertmanager reads it (Go's yaml.v2, YAML 1.1: yes/no/on/off/y/n too), so that
    /// the gate's send_resolved is the one the Alertmanager acts on; null when it is not one
    /// (amtool refuses the file then).
    /// </summary>
    public static bool? YamlBool(string? text) => text switch
    {
        "y" or "Y" or "yes" or "Yes" or "YES" or "true" or "True" or "TRUE" or "on" or "On" or "ON" => true,
        "n" or "N" or "no" or "No" or "NO" or "false" or "False" or "FALSE" or "off" or "Off" or "OFF" => false,
        _ => null,
    };

    /// <summary>Prometheus's duration syntax (1h30m, 4h, 90s, 1d, 500ms); null when it is not one.</summary>
    public static TimeSpan? ParseDuration(string text)
    {
        var m = Regex.Match(text.Trim(), @"^((\d+)y)?((\d+)w)?((\d+)d)?((\d+)h)?((\d+)m)?((\d+)s)?((\d+)ms)?$");
        if (!m.Success || text.Trim().Length == 0) return null;
        long Part(int g) => m.Groups[g].Success ? long.Parse(m.Groups[g].Value) : 0;
        return TimeSpan.FromDays(Part(2) * 365 + Part(4) * 7 + Part(6)) + TimeSpan.FromHours(Part(8)) + TimeSpan.FromMinutes(Part(10)) +
               TimeSpan.FromSeconds(Part(12)) + TimeSpan.FromMilliseconds(Part(14));
    }
}
