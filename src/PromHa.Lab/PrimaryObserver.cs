using System.Diagnostics;
using System.Text;

using PromHa.Node.Sink;

namespace PromHa.Lab;

/// <summary>One observer round: what every node's /primary answered, polled in parallel.</summary>
/// <param name="At">When the round started.</param>
/// <param name="Codes">Per node (cluster order): the HTTP status, 0 when the connection failed, -1 on timeout.</param>
/// <param name="Ms">Per node: how long the answer took.</param>
public sealed record ObserverRound(DateTimeOffset At, int[] Codes, int[] Ms)
{
    public int Masters => Codes.Count(c => c == 200);
}

/// <summary>What a timeline of observer rounds says: the one reading the tests and the benchmarks share.</summary>
public static class ObserverTimeline
{
    /// <summary>The longest stretch in which no node answered 200, and when it began.</summary>
    public static (TimeSpan Longest, DateTimeOffset? From) LongestWithoutMaster(IReadOnlyList<ObserverRound> rounds) =>
        LongestWhere(rounds, r => r.Masters == 0);

    /// <summary>The longest stretch in which node <paramref name="i"/> did not answer 200.</summary>
    public static TimeSpan LongestWithout200(IReadOnlyList<ObserverRound> rounds, int i) => LongestWhere(rounds, r => r.Codes[i] != 200).Longest;

    /// <summary>When no node was master at the heal: how long after it the first one answered 200.</summary>
    public static double? MasterAfterHeal(IReadOnlyList<ObserverRound> rounds, DateTimeOffset? healed)
    {
        if (healed is not { } h) return null;
        var atHeal = rounds.LastOrDefault(r => r.At <= h);
        if (atHeal is null || atHeal.Masters > 0) return null;
        return rounds.FirstOrDefault(r => r.At > h && r.Masters > 0) is { } first ? (first.At - h).TotalSeconds : null;
    }

    private static (TimeSpan Longest, DateTimeOffset? From) LongestWhere(IReadOnlyList<ObserverRound> rounds, Func<ObserverRound, bool> missing)
    {
        var longest = TimeSpan.Zero;
        DateTimeOffset? from = null, since = null;
        foreach (var r in rounds)
        {
            if (missing(r)) since ??= r.At;
            else if (since is { } s)
            {
                if (r.At - s > longest) (longest, from) = (r.At - s, s);
                since = null;
            }
        }
        if (since is { } open && rounds.Count > 0 && rounds[^1].At - open > longest) (longest, from) = (rounds[^1].At - open, open);
        return (longest, from);
    }
}

/// <summary>
/// Polls every node's /primary from outside the cluster (the root namespace, through each node's
/// observer link in a lab) every <c>interval</c>, all nodes at once per round, the way a load
/// balancer's health check would, and keeps every round with its time. Marks (cut, heal) go into
/// the same timeline.
/// </summary>
public sealed class PrimaryObserver : IAsyncDisposable
{
    private readonly IReadOnlyList<LocalNode> _nodes;
    private readonly TimeSpan _interval;
    private readonly HttpClient[] _clients;
    private readonly List<ObserverRound> _rounds = [];
    private readonly List<(DateTimeOffset At, string What)> _marks = [];
    private readonly CancellationTokenSource _stop = new();
    private Task? _loop;

    public PrimaryObserver(IReadOnlyList<LocalNode> nodes, TimeSpan? interval = null, TimeSpan? timeout = null)
    {
        _nodes = nodes;
        _interval = interval ?? TimeSpan.FromMilliseconds(50);
        var t = timeout ?? TimeSpan.FromMilliseconds(300);
        _clients = nodes.Select(_ => new HttpClient(new SocketsHttpHandler { ConnectTimeout = t, UseProxy = false }) { Timeout = t }).ToArray();
    }

    public IReadOnlyList<LocalNode> Nodes => _nodes;

    public void Start() => _loop = Task.Run(Loop);

    public void Mark(string what)
    {
        lock (_marks) _marks.Add((DateTimeOffset.Now, what));
    }

    public IReadOnlyList<ObserverRound> Rounds
    {
        get { lock (_rounds) return _rounds.ToList(); }
    }

    public IReadOnlyList<(DateTimeOffset At, string What)> Marks
    {
        get { lock (_marks) return _marks.ToList(); }
    }

    public DateTimeOffset? MarkTime(string what) => Marks.Where(m => m.What == what).Select(m => (DateTimeOffset?)m.At).FirstOrDefault();

    private async Task Loop()
    {
        while (!_stop.IsCancellationRequested)
        {
            var at = DateTimeOffset.Now;
            var results = await Task.WhenAll(_nodes.Select((n, i) => Poll(i, n)));
            lock (_rounds) _rounds.Add(new ObserverRound(at, results.Select(r => r.Code).ToArray(), results.Select(r => r.Ms).ToArray()));
            var wait = at + _interval - DateTimeOffset.Now;
            try
            {
                if (wait > TimeSpan.Zero) await Task.Delay(wait, _stop.Token);
            }
            catch (OperationCanceledException) { }
        }
    }

    private async Task<(int Code, int Ms)> Poll(int i, LocalNode n)
    {
        var sw = Stopwatch.StartNew();
        try
        {
            using var r = await _clients[i].GetAsync($"{n.HttpUrl}/primary", HttpCompletionOption.ResponseHeadersRead);
            return ((int)r.StatusCode, (int)sw.ElapsedMilliseconds);
        }
        catch (TaskCanceledException) { return (-1, (int)sw.ElapsedMilliseconds); }
        catch (HttpRequestException e) when (e.InnerException is TimeoutException or OperationCanceledException) { return (-1, (int)sw.ElapsedMilliseconds); }
        catch (HttpRequestException) { return (0, (int)sw.ElapsedMilliseconds); }
    }

    public async Task StopAsync()
    {
        await _stop.CancelAsync();
        if (_loop is not null) await _loop;
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        foreach (var c in _clients) c.Dispose();
        _stop.Dispose();
    }

    public static string Show(int code) => code switch
    {
        200 => "MASTER",
        503 => "503",
        0 => "down",
        -1 => "timeout",
        _ => code.ToString(),
    };

    /// <summary>
    /// The timeline between two instants: the marks, and every round whose answers differ from the
    /// round before (plus the rounds to highlight, marked with "!!").
    /// </summary>
    public string Timeline(DateTimeOffset from, DateTimeOffset to, IReadOnlySet<ObserverRound>? highlight = null)
    {
        var sb = new StringBuilder($"observer timeline {from:HH:mm:ss.fff}..{to:HH:mm:ss.fff} (changes only; {string.Join(" ", _nodes.Select(n => n.Name))}):\n");
        var rounds = Rounds;
        var events = new List<(DateTimeOffset At, int Order, string Line)>();
        string? previous = null;
        foreach (var r in rounds)
        {
            var line = string.Join(" ", r.Codes.Select((c, i) => $"{_nodes[i].Name}={Show(c)}"));
            var hot = highlight?.Contains(r) == true;
            if (r.At >= from && r.At <= to && (line != previous || hot))
                events.Add((r.At, 1, $"{(hot ? "!!" : "  ")} {r.At:HH:mm:ss.fff} {line}  (ms: {string.Join(",", r.Ms)})"));
            previous = line;
        }
        foreach (var (at, what) in Marks)
            if (at >= from && at <= to) events.Add((at, 0, $"== {at:HH:mm:ss.fff} {what}"));
        foreach (var e in events.OrderBy(e => e.At).ThenBy(e => e.Order)) sb.AppendLine(e.Line);
        return sb.ToString();
    }
}
