using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Akka.Actor;
using Akka.Actor.Setup;
using Akka.Configuration;
using Akka.Remote.Transport.DotNetty;
using PromHa.Node.Cluster;

namespace PromHa.Tests.Cluster;

/// <summary>
/// Akka.Remote stops a node on any failed outbound TLS handshake. Real remoting over loopback: a
/// handshake cut by the network must leave the node running, one refused for its certificate must not.
/// </summary>
public sealed class TlsHandshakeVetoTests : IDisposable
{
    private readonly X509Certificate2 _cert;
    private readonly List<ActorSystem> _systems = [];

    public TlsHandshakeVetoTests()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var self = new CertificateRequest("CN=node", key, HashAlgorithmName.SHA256)
            .CreateSelfSigned(DateTimeOffset.Now.AddDays(-1), DateTimeOffset.Now.AddDays(1));
        _cert = X509CertificateLoader.LoadPkcs12(self.Export(X509ContentType.Pkcs12), null);
    }

    private ActorSystem Node(string name, bool acceptPeers)
    {
        var hocon = $$"""
            akka.loglevel = INFO
            akka.actor.provider = remote
            akka.remote.retry-gate-closed-for = 500ms
            akka.remote.dot-netty.tcp { hostname = 127.0.0.1, port = 0, enable-ssl = true }
            akka.coordinated-shutdown.exit-clr = off
            {{TlsHandshakeVeto.Hocon}}
            """;
        var setup = ActorSystemSetup.Create(BootstrapSetup.Create().WithConfig(ConfigurationFactory.ParseString(hocon)),
            new DotNettySslSetup(_cert, false, true, (_, _, _, _, _) => acceptPeers));
        var system = ActorSystem.Create(name, setup);
        TlsHandshakeVeto.Install(system);
        _systems.Add(system);
        return system;
    }

    [Fact]
    public async Task A_handshake_cut_by_the_network_does_not_stop_the_node()
    {
        // a peer's port behind a proxy whose upstream is gone: it reads the ClientHello and closes
        var proxy = new TcpListener(IPAddress.Loopback, 0);
        proxy.Start();
        using var stop = new CancellationTokenSource();
        var closer = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                using var c = await proxy.AcceptTcpClientAsync(stop.Token);
                try { _ = await c.GetStream().ReadAsync(new byte[4096], stop.Token); } catch (Exception) { } // any ClientHello bytes, then close
            }
        });
        var a = Node("a", acceptPeers: true);
        var cs = CoordinatedShutdown.Get(a);
        var target = $"akka.ssl.tcp://b@127.0.0.1:{((IPEndPoint)proxy.LocalEndpoint).Port}/user/x";
        for (var i = 0; i < 3; i++)
        {
            a.ActorSelection(target).Tell("hello");
            await Task.Delay(1500);
        }
        Assert.False(a.WhenTerminated.IsCompleted, "the node stopped on a handshake cut by the network");
        Assert.Null(cs.ShutdownReason);
        // and it still stops when asked
        await cs.Run(CoordinatedShutdown.ClrExitReason.Instance).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.True(a.WhenTerminated.IsCompleted);
        await stop.CancelAsync();
        proxy.Stop();
    }

    [Fact]
    public async Task A_peer_certificate_refused_still_stops_the_node_with_79()
    {
        var a = Node("a", acceptPeers: false);
        var b = Node("b", acceptPeers: true);
        var port = ((ExtendedActorSystem)b).Provider.DefaultAddress.Port;
        a.ActorSelection($"akka.ssl.tcp://b@127.0.0.1:{port}/user/x").Tell("hello");
        await a.WhenTerminated.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(ExitCodes.TlsHandshakeFailed, CoordinatedShutdown.Get(a).ShutdownReason!.ExitCode);
    }

    public void Dispose()
    {
        foreach (var s in _systems) s.Terminate().Wait(TimeSpan.FromSeconds(10));
        _cert.Dispose();
    }
}
