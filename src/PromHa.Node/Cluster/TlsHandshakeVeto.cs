using System.Reflection;
using System.Security.Authentication;
using System.Security.Cryptography;
using Akka;
using Akka.Actor;
using Akka.Event;
using Akka.Util;

namespace PromHa.Node.Cluster;

/// <summary>
/// Akka.Remote 1.5.74 stops the whole node (exit 79) on any failed TLS handshake of an outbound
/// connection, a connection closed or reset mid-handshake included: a link that drops, a proxy, or a
/// peer that crashes while another node connects to it. There is no setting for it. For an HA daemon
/// a network blip must not restart the node, so a first shutdown phase (hocon/cluster.hocon,
/// <c>recover = off</c>) cancels such a run when the handshake failed for a network reason; a
/// certificate or crypto failure still stops the node with 79. The run is made runnable again by
/// resetting two private fields of CoordinatedShutdown (checked at start; without them Akka's
/// default stays). Akka logs "Exiting with [ExitCode:79]" before the cancellation is logged.
/// </summary>
public static class TlsHandshakeVeto
{
    public const string Phase = "tls-handshake-veto";

    /// <summary>A first shutdown phase whose failure aborts the run ("recover = off: if the phase fails the shutdown is aborted").</summary>
    public const string Hocon = $$"""
        akka.coordinated-shutdown.phases {
          {{Phase}} { recover = off, timeout = 5s }
          before-service-unbind.depends-on = [{{Phase}}]
        }
        """;
    private const string TlsReason = "Akka.Remote.Transport.DotNetty.TlsHandshakeFailureReason";
    private const string ClientHandler = "Akka.Remote.Transport.DotNetty.TcpClientHandler";

    private static readonly FieldInfo? RunStarted =
        typeof(CoordinatedShutdown).GetField("_runStarted", BindingFlags.Instance | BindingFlags.NonPublic);
    private static readonly FieldInfo? RunPromise =
        typeof(CoordinatedShutdown).GetField("_runPromise", BindingFlags.Instance | BindingFlags.NonPublic);

    public static void Install(ActorSystem system)
    {
        var cs = CoordinatedShutdown.Get(system);
        var log = Logging.GetLogger(system, typeof(TlsHandshakeVeto));
        if (RunStarted?.FieldType != typeof(AtomicReference<CoordinatedShutdown.Reason>) ||
            RunPromise?.FieldType != typeof(TaskCompletionSource<Done>))
        {
            log.Warning("CoordinatedShutdown's internals changed: a TLS handshake cut by the network will stop this node (Akka's default)");
            return;
        }
        // Akka logs the handshake error before it runs the shutdown: its cause is here first.
        var errors = system.ActorOf(Props.Create(() => new LastHandshakeError()), "tls-handshake-errors");
        system.EventStream.Subscribe(errors, typeof(Error));

        cs.AddTask(Phase, "cancel-for-a-network-failure", async () =>
        {
            var reason = cs.ShutdownReason;
            if (reason?.GetType().FullName != TlsReason) return Done.Instance;
            Exception? cause = null;
            try { cause = (await errors.Ask<LastHandshakeError.Last>(LastHandshakeError.Get.Instance, TimeSpan.FromSeconds(1))).Cause; }
            catch (Exception) { /* unknown: a network failure */ }
            if (IsCertificateFailure(cause))
            {
                log.Error(cause, "TLS handshake failed on a certificate or crypto error: stopping this node ({0})", reason);
                return Done.Instance;
            }
            // Run is once-only; once this run has failed, let the next one (SIGTERM, downing) happen.
            var spent = cs.Run(reason);
            _ = spent.ContinueWith(_ =>
            {
                RunPromise!.SetValue(cs, new TaskCompletionSource<Done>());
                ((AtomicReference<CoordinatedShutdown.Reason>)RunStarted!.GetValue(cs)!).Value = null!;
                log.Warning("Not stopping: the TLS handshake failed for a network reason ({0}); the connection is retried as usual",
                    cause?.GetBaseException().Message ?? "cause unknown");
            }, TaskContinuationOptions.ExecuteSynchronously);
            throw new OperationCanceledException("a TLS handshake cut by the network does not stop the node");
        });
    }

    private static bool IsCertificateFailure(Exception? e)
    {
        for (; e != null; e = e.InnerException)
        {
            if (e is AuthenticationException or CryptographicException) return true;
            if (e is AggregateException a && a.InnerExceptions.Any(IsCertificateFailure)) return true;
        }
        return false;
    }

    /// <summary>The cause of the last "TLS handshake failed" error Akka's client handler logged.</summary>
    private sealed class LastHandshakeError : ReceiveActor
    {
        public sealed class Get
        {
            public static readonly Get Instance = new();
        }

        public sealed record Last(Exception? Cause);

        private Exception? _last;

        public LastHandshakeError()
        {
            Receive<Error>(e =>
            {
                if (e.LogClass?.FullName == ClientHandler && e.Message?.ToString()?.StartsWith("TLS handshake failed") == true)
                    _last = e.Cause;
            });
            Receive<Get>(_ =>
            {
                Sender.Tell(new Last(_last));
                _last = null;
            });
        }
    }
}
