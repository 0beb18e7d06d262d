using System.Collections.Concurrent;
using System.Net;
using System.Text;
using System.Text.Json;

namespace PromHa.Node.Sink;

/// <summary>One alert of a delivered notification: its alertname, the trigger's name label, its status, fingerprint and start.</summary>
public sealed record DeliveredAlert(string Alert, string Name, string Status, string Fingerprint, DateTimeOffset StartsAt);

/// <summary>One webhook the sink received, with the gate's headers.</summary>
public sealed record Delivery(DateTimeOffset At, string? Id, string? Reason, string? Node, long Epoch, string Status,
    IReadOnlyList<DeliveredAlert> Alerts, string GroupKey, string Summary = "",
    DateTimeOffset? AcceptedAt = null)
{
    /// <summary>The trigger (label name) of a notification's alerts.</summary>
    public string Name => Alerts.Count > 0 ? Alerts[0].Name : "";
}

/// <summary>
/// A real webhook receiver on 127.0.0.1, standing in for the operators' chat/SMS forwarder: records
/// every delivery with the gate's headers (and writes one line per delivery to a log, for the demo),
/// can be made to fail, and serves /metrics with promha_demo_trigger, which the demo's rule fires on.
/// The demo runs it, and the end-to-end tests assert on what it received.
/// </summary>
public sealed class WebhookSink : IDisposable
{
    private readonly HttpListener _listener = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private readonly ConcurrentQueue<Delivery> _deliveries = new();

    public int Port { get; }
    public string WebhookUrl => $"http://127.0.0.1:{Port}/webhook";
    public string Target => $"127.0.0.1:{Port}";
    /// <summary>promha_demo_trigger{name=...} values served on /metrics; the demo's rule fires for each one at 1.</summary>
    public ConcurrentDictionary<string, int> Triggers { get; } = new();
    public int Trigger { set => Triggers["demo"] = value; }
    /// <summary>Requests answered with an error while <see cref="Failing"/>.</summary>
    public int Refused => _refused;
    private int _refused;
    /// <summary>While true the sink answers 503 (a receiver that is down).</summary>
    public volatile bool Failing;
    /// <summary>Also write each delivery's line to stdout (`promha sink`: `docker compose logs -f sink`).</summary>
    public bool Echo { get; init; }
    public IReadOnlyList<Delivery> Deliveries => _deliveries.ToList();

    private readonly string? _logPath;
    private readonly object _logLock = new();

    /// <param name="port">the port to listen on; the lab hands out claimed loopback ports, each once per process
    /// (the managed HttpListener may still route a closed listener's prefix, so a port is not reused)</param>
    /// <param name="logPath">one line per delivery is appended here</param>
    /// <param name="everyAddress">listen on every address (`promha sink` in a container) instead of 127.0.0.1</param>
    public WebhookSink(int port, string? logPath = null, bool everyAddress = false)
    {
        _logPath = logPath;
        Port = port;
        _listener.Prefixes.Add(everyAddress ? $"http://+:{Port}/" : $"http://127.0.0.1:{Port}/");
        _listener.Start();
        _loop = Task.Run(Loop);
    }

    private async Task Loop()
    {
        while (!_stop.IsCancellationRequested)
        {
            HttpListenerContext ctx;
            try { ctx = await _listener.GetContextAsync(); }
            catch (Exception) when (_stop.IsCancellationRequested) { return; }
            catch (HttpListenerException) { return; }
            try { Handle(ctx); }
            catch (Exception) { ctx.Response.StatusCode = 500; }
            finally { ctx.Response.Close(); }
        }
    }

    private void Handle(HttpListenerContext ctx)
    {
        if (ctx.Request.Url!.AbsolutePath == "/metrics")
        {
            // a name "g7.b" also carries set="g7": group_by [alertname, set] makes one group of a set's triggers
            var text = Encoding.UTF8.GetBytes("# TYPE promha_demo_trigger gauge\n" +
                string.Concat(Triggers.Select(t => $"promha_demo_trigger{{name=\"{t.Key}\"{(t.Key.IndexOf('.') is > 0 and var dot ? $",set=\"{t.Key[..dot]}\"" : "")}}} {t.Value}\n")));
            ctx.Response.ContentType = "text/plain; version=0.0.4";
            ctx.Response.OutputStream.Write(text);
            return;
        }
        if (ctx.Request.HttpMethod is "GET" or "HEAD")
        {
            // What arrived so far, one line per notification (curl the compose demos' sink)
            var lines = Encoding.UTF8.GetBytes(string.Concat(Deliveries.Select(d => Line(d) + "\n")));
            ctx.Response.ContentType = "text/plain; charset=utf-8";
            ctx.Response.OutputStream.Write(lines);
            return;
        }
        using var reader = new StreamReader(ctx.Request.InputStream);
        var body = reader.ReadToEnd();
        if (Failing)
        {
            Interlocked.Increment(ref _refused);
            ctx.Response.StatusCode = 503;
            return;
        }
        using var doc = JsonDocument.Parse(body);
        var root = doc.RootElement;
        var alerts = root.GetProperty("alerts").EnumerateArray().Select(a => new DeliveredAlert(
            a.GetProperty("labels").TryGetProperty("alertname", out var n) ? n.GetString()! : "",
            a.GetProperty("labels").TryGetProperty("name", out var t) ? t.GetString()! : "",
            a.GetProperty("status").GetString()!,
            a.GetProperty("fingerprint").GetString()!,
            a.TryGetProperty("startsAt", out var sa) && sa.TryGetDateTimeOffset(out var start) ? start : default)).ToList();
        var h = ctx.Request.Headers;
        var delivery = new Delivery(DateTimeOffset.UtcNow, h["X-PromHa-Delivery-Id"], h["X-PromHa-Reason"], h["X-PromHa-Node"],
            long.TryParse(h["X-PromHa-Epoch"], out var e) ? e : -1, root.GetProperty("status").GetString()!, alerts,
            root.GetProperty("groupKey").GetString()!,
            root.TryGetProperty("commonAnnotations", out var ca) && ca.TryGetProperty("summary", out var sum) ? sum.GetString() ?? "" : "",
            long.TryParse(h["X-PromHa-Accepted-At"], out var acc) ? DateTimeOffset.FromUnixTimeMilliseconds(acc) : null);
        _deliveries.Enqueue(delivery);
        var line = Line(delivery);
        lock (_logLock)
        {
            if (_logPath is not null) File.AppendAllText(_logPath, line + "\n");
            if (Echo) System.Console.WriteLine(line);
        }
        ctx.Response.StatusCode = 200;
    }

    private static string Line(Delivery d) =>
        $"{d.At:yyyy-MM-dd HH:mm:ss.fff} {d.Status,-8} [{string.Join(", ", d.Alerts.Select(a => $"{a.Alert}{(a.Name.Length > 0 ? $"/{a.Name}" : "")}:{a.Status}"))}] " +
        $"from {d.Node} (epoch {d.Epoch}, {d.Reason}) id={d.Id}";

    public string Describe() => string.Join("\n", Deliveries.Select(Line));

    public void Dispose()
    {
        _stop.Cancel();
        _listener.Close();
        try { _loop.Wait(TimeSpan.FromSeconds(5)); } catch (AggregateException) { }
    }
}
