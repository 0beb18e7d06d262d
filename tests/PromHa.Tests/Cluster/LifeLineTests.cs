using System.Net;
using System.Net.Sockets;
using System.Text;
using PromHa.Node.Cluster;
using PromHa.Node.Console;

namespace PromHa.Tests.Cluster;

/// <summary>
/// The lifeline's verdicts against a server on loopback that ends the stream each way a kernel or a
/// firewall can: only an orderly end of the TCP stream after the expected incarnation is evidence.
/// </summary>
public class LifeLineTests
{
    private const string Incarnation = "akka.ssl.tcp://promha@127.0.0.1:4053#42";

    private static byte[] Chunk(string text)
    {
        var body = Encoding.ASCII.GetBytes(text);
        return Encoding.ASCII.GetBytes($"{body.Length:x}\r\n").Concat(body).Concat("\r\n"u8.ToArray()).ToArray();
    }

    private static readonly byte[] Headers = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"u8.ToArray();

    /// <summary>Serves one connection: writes <paramref name="before"/>, then ends it as <paramref name="end"/> says.</summary>
    private static async Task<LifeLine.Outcome> Against(Func<Socket, Task> serve, TimeSpan? silence = null)
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var server = Task.Run(async () =>
        {
            using var s = await listener.AcceptSocketAsync();
            var buf = new byte[4096];
            await s.ReceiveAsync(buf); // the request
            await serve(s);
        });
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        var outcome = await LifeLine.Hold($"http://127.0.0.1:{port}", Incarnation, ApiAccess.None, cts.Token, silence);
        await server.WaitAsync(TimeSpan.FromSeconds(10));
        return outcome;
    }

    private static async Task Open(Socket s, string incarnation = Incarnation)
    {
        await s.SendAsync(Headers);
        await s.SendAsync(Chunk($"incarnation {incarnation}\n"));
        await s.SendAsync(Chunk("\n"));
        await Task.Delay(100);
    }

    [Fact]
    public async Task An_orderly_end_mid_response_is_a_process_that_exited()
    {
        var o = await Against(async s =>
        {
            await Open(s);
            s.Close(); // what the kernel does for a process that exits: FIN
        });
        Assert.Equal(LifeLine.End.Died, o.End);
        Assert.True(o.WasOpen);
    }

    [Fact]
    public async Task A_reset_is_what_a_rejecting_firewall_sends_and_proves_nothing()
    {
        var o = await Against(async s =>
        {
            await Open(s);
            s.LingerState = new LingerOption(true, 0); // close with RST, as iptables' tcp-reset does
            s.Close();
        });
        Assert.Equal(LifeLine.End.Lost, o.End);
        Assert.Contains("reset", o.Detail);
    }

    [Fact]
    public async Task A_graceful_shutdown_says_bye_and_proves_nothing()
    {
        var o = await Against(async s =>
        {
            await Open(s);
            await s.SendAsync(Chunk("bye\n"));
            await s.SendAsync("0\r\n\r\n"u8.ToArray());
            await Task.Delay(100);
            s.Close();
        });
        Assert.Equal(LifeLine.End.Bye, o.End);
    }

    [Fact]
    public async Task Another_incarnation_at_the_url_says_nothing_of_the_watched_one()
    {
        var o = await Against(async s =>
        {
            await Open(s, "akka.ssl.tcp://promha@127.0.0.1:4053#43");
            s.Close();
        });
        Assert.Equal(LifeLine.End.OtherIncarnation, o.End);
    }

    [Fact]
    public async Task A_stream_that_ends_before_naming_its_incarnation_proves_nothing()
    {
        var o = await Against(async s =>
        {
            await s.SendAsync(Headers);
            await Task.Delay(50);
            s.Close();
        });
        Assert.Equal(LifeLine.End.Lost, o.End);
        Assert.False(o.WasOpen);
    }

    [Fact]
    public async Task Silence_is_a_cut_link_or_a_paused_process_and_proves_nothing()
    {
        var o = await Against(async s =>
        {
            await Open(s);
            await Task.Delay(1500);
        }, silence: TimeSpan.FromMilliseconds(500));
        Assert.Equal(LifeLine.End.Lost, o.End);
        Assert.Contains("silent", o.Detail);
    }

    [Fact]
    public async Task A_refused_connection_proves_nothing()
    {
        int port;
        using (var l = new TcpListener(IPAddress.Loopback, 0))
        {
            l.Start();
            port = ((IPEndPoint)l.LocalEndpoint).Port;
        }
        var o = await LifeLine.Hold($"http://127.0.0.1:{port}", Incarnation, ApiAccess.None, CancellationToken.None);
        Assert.Equal(LifeLine.End.Lost, o.End);
        Assert.False(o.WasOpen);
    }
}

/// <summary>The kernel's word on who ended a connection: CLOSE_WAIT only after the peer's FIN.</summary>
public class ClosedByPeerTests
{
    private static (Socket Client, Socket Server) Pair()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var client = new Socket(SocketType.Stream, ProtocolType.Tcp);
        client.Connect((IPEndPoint)listener.LocalEndpoint);
        return (client, listener.AcceptSocket());
    }

    [Fact]
    public void A_fin_from_the_peer_is_seen()
    {
        var (client, server) = Pair();
        using (client)
        {
            server.Close();
            Assert.Equal(0, client.Receive(new byte[16]));
            Assert.True(LifeLine.ClosedByPeer(client));
        }
    }

    [Fact]
    public void An_end_this_side_made_itself_is_not_the_peer_closing()
    {
        var (client, server) = Pair();
        using (client)
        using (server)
        {
            // reads now return 0, with nothing received from the peer
            client.Shutdown(SocketShutdown.Receive);
            Assert.Equal(0, client.Receive(new byte[16]));
            Assert.False(LifeLine.ClosedByPeer(client));
        }
    }
}
