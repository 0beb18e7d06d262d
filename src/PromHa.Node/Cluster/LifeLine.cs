using System.Net.Sockets;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Hosting;
using PromHa.Node.Console;

namespace PromHa.Node.Cluster;

/// <summary>
/// A lifeline: one long HTTP response from a peer's API port that never ends while the peer's process
/// lives. It names the incarnation that serves it, then sends a newline every
/// <see cref="Beat"/>. When the process exits (kill -9, a crash, OOM), its kernel closes the socket
/// with a FIN in the middle of the response: that proves the incarnation gone, and it is the one thing
/// a network cannot forge. A firewall that rejects answers with resets or ICMP, a cut link or a lost
/// host with silence, a paused process with silence; none of them end a TCP stream in order. The
/// end counts only when this host's kernel holds the socket in CLOSE_WAIT (a FIN received), not when
/// it gave the connection up itself (this host's own packets dropped by a filter).
/// A graceful shutdown says "bye" first, and proves nothing (the node leaves and hands over).
/// </summary>
public static class LifeLine
{
    public const string Path = "/api/v1/lifeline";
    public static readonly TimeSpan Beat = TimeSpan.FromSeconds(2);
    /// <summary>No more than this many open lifelines per node: each peer holds one.</summary>
    private const int MaxOpen = 64;
    private static int _open;

    public enum End
    {
        /// <summary>The stream ended in order mid-response: the serving process exited.</summary>
        Died,
        /// <summary>The peer said bye: a graceful shutdown, proves nothing.</summary>
        Bye,
        /// <summary>Another incarnation answered at that URL (a restart): proves nothing about the watched one.</summary>
        OtherIncarnation,
        /// <summary>Refused, reset, silent, timed out, or an HTTP error: proves nothing.</summary>
        Lost,
    }

    public sealed record Outcome(End End, string Detail, bool WasOpen);

    public static void MapLifeLine(this WebApplication app, Func<string> incarnation) =>
        app.MapGet(Path, async (HttpContext ctx, IHostApplicationLifetime life) =>
        {
            if (Interlocked.Increment(ref _open) > MaxOpen)
            {
                Interlocked.Decrement(ref _open);
                ctx.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
                await ctx.Response.WriteAsync($"more than {MaxOpen} lifelines open\n");
                return;
            }
            try
            {
                ctx.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
                ctx.Response.ContentType = "text/plain";
                ctx.Response.Headers.CacheControl = "no-store";
                using var stop = CancellationTokenSource.CreateLinkedTokenSource(ctx.RequestAborted, life.ApplicationStopping);
                try
                {
                    await ctx.Response.WriteAsync($"incarnation {incarnation()}\n", stop.Token);
                    await ctx.Response.Body.FlushAsync(stop.Token);
                    while (true)
                    {
                        await Task.Delay(Beat, stop.Token);
                        await ctx.Response.WriteAsync("\n", stop.Token);
                        await ctx.Response.Body.FlushAsync(stop.Token);
                    }
                }
                catch (Exception e) when (e is OperationCanceledException or IOException) { }
                // Never let the handler throw: Kestrel would abort the connection, which a peer could
                // read as this process gone while it still runs.
                if (!ctx.RequestAborted.IsCancellationRequested)
                    try { await ctx.Response.WriteAsync("bye\n", ctx.RequestAborted); }
                    catch (Exception e) when (e is OperationCanceledException or IOException) { }
            }
            finally
            {
                Interlocked.Decrement(ref _open);
            }
        }).ExcludeFromDescription();

    /// <summary>
    /// Holds a lifeline to <paramref name="apiUrl"/> for as long as it runs; returns how it ended.
    /// Only <see cref="End.Died"/> (an orderly end of the TCP stream, seen below TLS and HTTP, before
    /// any bye, from the expected incarnation) is evidence.
    /// </summary>
    public static async Task<Outcome> Hold(string apiUrl, string expected, ApiAccess access, CancellationToken ct,
        TimeSpan? silence = null, Action? opened = null)
    {
        var quiet = silence ?? Beat * 3;
        Tap? tap = null;
        var handler = (SocketsHttpHandler)access.Handler();
        handler.ConnectTimeout = TimeSpan.FromSeconds(2);
        handler.PooledConnectionLifetime = Timeout.InfiniteTimeSpan;
        handler.ConnectCallback = async (context, token) =>
        {
            var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                await socket.ConnectAsync(context.DnsEndPoint, token);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
            return tap = new Tap(socket);
        };
        using var http = new HttpClient(handler, disposeHandler: true) { Timeout = Timeout.InfiniteTimeSpan };
        var open = false;
        using var wait = CancellationTokenSource.CreateLinkedTokenSource(ct);
        try
        {
            wait.CancelAfter(quiet);
            using var response = await http.GetAsync(apiUrl.TrimEnd('/') + Path, HttpCompletionOption.ResponseHeadersRead, wait.Token);
            if (!response.IsSuccessStatusCode) return new(End.Lost, $"HTTP {(int)response.StatusCode}", false);
            await using var body = await response.Content.ReadAsStreamAsync(wait.Token);
            using var reader = new StreamReader(body);
            var first = await reader.ReadLineAsync(wait.Token);
            if (first is null || !first.StartsWith("incarnation ", StringComparison.Ordinal))
                return new(End.Lost, $"not a lifeline: '{first}'", false);
            var serving = first["incarnation ".Length..];
            if (serving != expected) return new(End.OtherIncarnation, $"served by {serving}", false);
            open = true;
            opened?.Invoke();
            while (true)
            {
                wait.CancelAfter(quiet);
                var line = await reader.ReadLineAsync(wait.Token);
                if (line == "bye") return new(End.Bye, "said bye (a graceful shutdown)", true);
                // a complete response without bye: the server ended it on purpose, not by exiting
                if (line is null) return new(End.Lost, "ended without bye", true);
            }
        }
        catch (Exception e) when (e is HttpRequestException or IOException or OperationCanceledException or SocketException)
        {
            if (ct.IsCancellationRequested) return new(End.Lost, "stopped watching", open);
            if (open && tap is { ClosedByPeer: true, Reset: false })
                return new(End.Died, $"the lifeline from {apiUrl} ended with a FIN mid-response (its process exited)", true);
            var why = e is OperationCanceledException ? $"silent for {quiet.TotalSeconds:F0} s"
                : tap?.Reset == true ? "reset" : e.InnerException?.Message ?? e.Message;
            return new(End.Lost, why, open);
        }
    }

    /// <summary>
    /// Whether the peer's kernel sent this socket a FIN: Linux then holds the connection in CLOSE_WAIT
    /// until this side closes. A read that returns 0 is not enough on its own: a connection this
    /// host's kernel gave up on (its own outbound packets dropped by a filter, retransmissions
    /// failing) also reads as an end, in state CLOSE, with nothing received from the peer.
    /// </summary>
    public static bool ClosedByPeer(Socket socket)
    {
        const int tcpInfo = 11, closeWait = 8;
        if (!OperatingSystem.IsLinux()) return false;
        try
        {
            var info = new byte[104];
            return socket.GetRawSocketOption(6 /* IPPROTO_TCP */, tcpInfo, info) > 0 && info[0] == closeWait;
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException or PlatformNotSupportedException)
        {
            return false;
        }
    }

    /// <summary>The raw TCP stream under TLS and HTTP, telling a FIN from the peer from a reset or a local abort.</summary>
    private sealed class Tap(Socket socket) : Stream
    {
        private readonly NetworkStream inner = new(socket, ownsSocket: true);
        private volatile bool _closedByPeer, _reset;
        public bool ClosedByPeer => _closedByPeer;
        public bool Reset => _reset;

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            try
            {
                var n = await inner.ReadAsync(buffer, cancellationToken);
                if (n == 0 && buffer.Length > 0) _closedByPeer = LifeLine.ClosedByPeer(socket);
                return n;
            }
            catch (IOException e) when (e.InnerException is SocketException { SocketErrorCode: SocketError.ConnectionReset or SocketError.ConnectionAborted })
            {
                _reset = true;
                throw;
            }
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer, offset, count, default).GetAwaiter().GetResult();
        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) => inner.WriteAsync(buffer, cancellationToken);
        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => inner.WriteAsync(buffer, offset, count, cancellationToken);
        public override void Write(byte[] buffer, int offset, int count) => inner.Write(buffer, offset, count);
        public override void Flush() => inner.Flush();
        public override Task FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing) inner.Dispose();
            base.Dispose(disposing);
        }
    }
}
