using System.Diagnostics;
using System.Net.Sockets;
using PromHa.Node.Settings;

namespace PromHa.Node.Cluster;

/// <summary>
/// A node downed while cut off restarts (exit 3, started again by its supervisor) while its link may
/// still be cut. Its first associations were then attempted into the cut, and after the heal one
/// peer sometimes never reached the new incarnation: the split-brain resolver downed both as
/// indirectly connected, once the master among them (fresh-clone CI; docs/failover.md records that
/// restarting sooner made it more frequent). So a node that was downed waits, before its remoting
/// starts, until a seed's host answers on the cluster link (a connection accepted, or refused: the
/// host is there), at most <see cref="Bound"/>; then it starts as always.
/// </summary>
public static class SeedLink
{
    public static readonly TimeSpan Bound = TimeSpan.FromSeconds(20);
    private static readonly TimeSpan MarkerFresh = TimeSpan.FromMinutes(5);

    private static string Marker(NodeSettings s) => Path.Combine(s.DataDir, "downed-at");

    /// <summary>Remembers that this process was downed, for the next start.</summary>
    public static void RememberDowned(NodeSettings s)
    {
        try
        {
            File.WriteAllText(Marker(s), DateTimeOffset.UtcNow.ToString("O"));
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }

    /// <summary>After a recent downing: until a seed's host answers (or <see cref="Bound"/>); the time waited, or null when there was no need.</summary>
    public static async Task<TimeSpan?> WaitAfterDowning(NodeSettings s, CancellationToken ct, TimeSpan? bound = null)
    {
        var limit = bound ?? Bound;
        var marker = Marker(s);
        if (!File.Exists(marker)) return null;
        var fresh = DateTime.UtcNow - File.GetLastWriteTimeUtc(marker) < MarkerFresh;
        File.Delete(marker);
        var seeds = NodeHost.OtherSeeds(s);
        if (!fresh || seeds.Count == 0) return null;
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < limit && !ct.IsCancellationRequested)
        {
            // every seed at once, with a short connect timeout and pause: a connection attempt
            // made into the cut waits for its SYN's retransmission, and one by one at 1 s each the
            // restarted nodes noticed the heal 0.6-0.8 s after it
            var answers = await Task.WhenAll(seeds.Select(seed =>
                SettingsLoader.TryHostPort(seed, out var host, out var port) ? Answers(host, port, ct) : Task.FromResult(false)));
            if (answers.Any(a => a)) return sw.Elapsed;
            await Task.Delay(Pause, ct);
        }
        return sw.Elapsed;
    }

    private static readonly TimeSpan Pause = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan ConnectTimeout = TimeSpan.FromMilliseconds(400);

    private static async Task<bool> Answers(string host, int port, CancellationToken ct)
    {
        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(ConnectTimeout);
        try
        {
            await socket.ConnectAsync(host, port, timeout.Token);
            return true;
        }
        catch (SocketException e) when (e.SocketErrorCode is SocketError.ConnectionRefused)
        {
            return true; // the host is there; its promha is not (yet)
        }
        catch (SocketException e) when (e.SocketErrorCode is SocketError.HostNotFound or SocketError.TryAgain or SocketError.NoData)
        {
            return true; // a name that does not resolve (yet): nothing to learn from waiting here
        }
        catch (SocketException)
        {
            return false; // unreachable, timed out: the link may still be cut
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            return false;
        }
    }
}
