using System.Net;
using System.Net.Sockets;

namespace PromHa.EndToEnd;

/// <summary>
/// A loopback TCP forwarder in front of a node's cluster port (the node advertises the proxy's
/// port), so a test can cut the link between nodes like a pulled cable: while cut, bytes already
/// in flight are swallowed and new connections are refused; HTTP and the tie-breaker targets are
/// not affected. Restoring drops the frozen connections, and the nodes reconnect.
/// </summary>
public sealed class LinkProxy : IAsyncDisposable
{
    private readonly int _listenPort;
    private readonly int _targetPort;
    private readonly List<(TcpClient A, TcpClient B)> _pairs = [];
    private readonly CancellationTokenSource _stop = new();
    private TcpListener? _listener;
    private volatile bool _cut;

    public LinkProxy(int listenPort, int targetPort)
    {
        _listenPort = listenPort;
        _targetPort = targetPort;
        Listen();
    }

    public void Cut()
    {
        _cut = true;
        _listener?.Stop();
        _listener = null;
    }

    public void Restore()
    {
        DropConnections();
        _cut = false;
        Listen();
    }

    private void DropConnections()
    {
        lock (_pairs)
        {
            foreach (var (a, b) in _pairs)
            {
                a.Dispose();
                b.Dispose();
            }
            _pairs.Clear();
        }
    }

    private void Listen()
    {
        var listener = new TcpListener(IPAddress.Loopback, _listenPort);
        listener.Start();
        _listener = listener;
        _ = Accept(listener);
    }

    private async Task Accept(TcpListener listener)
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient inbound;
            try { inbound = await listener.AcceptTcpClientAsync(_stop.Token); }
            catch (Exception) { return; } // stopped (cut or disposed)
            var outbound = new TcpClient();
            try { await outbound.ConnectAsync(IPAddress.Loopback, _targetPort, _stop.Token); }
            catch (Exception)
            {
                inbound.Dispose();
                outbound.Dispose();
                continue;
            }
            lock (_pairs) _pairs.Add((inbound, outbound));
            _ = Pump(inbound, outbound);
            _ = Pump(outbound, inbound);
        }
    }

    private async Task Pump(TcpClient from, TcpClient to)
    {
        var buffer = new byte[16 * 1024];
        try
        {
            var src = from.GetStream();
            var dst = to.GetStream();
            while (true)
            {
                var n = await src.ReadAsync(buffer, _stop.Token);
                if (n == 0) break;
                if (!_cut) await dst.WriteAsync(buffer.AsMemory(0, n), _stop.Token); // cut: swallowed, like a lost packet
            }
        }
        catch (Exception) { /* closed by either side, a restore or dispose */ }
        if (_cut) return; // a cut link does not tell the other side anything
        from.Dispose();
        to.Dispose();
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener?.Stop();
        DropConnections();
        _stop.Dispose();
    }
}
