using Akka.Actor;

namespace PromHa.Node.Cluster;

/// <summary>
/// What the promha process exits with, so that systemd, Docker and the demo can tell a stop from a
/// restart (docs/reference.md, "Exit codes"). The code is the one the node's log names in
/// "CoordinatedShutdown invoked due to [Reason:...]. Exiting with [ExitCode:N]".
/// </summary>
public static class ExitCodes
{
    /// <summary>Stopped on request (SIGTERM, Ctrl-C): nothing to restart for.</summary>
    public const int Stopped = 0;
    /// <summary>Downed by the cluster (the minority side of a partition, or declared dead): restart to rejoin as standby.</summary>
    public const int Downed = 3;
    /// <summary>Could not join any seed within the configured time.</summary>
    public const int JoinFailed = 4;
    /// <summary>Invalid settings or TLS/token files (EX_USAGE); a restart will not help.</summary>
    public const int BadSettings = 64;
    /// <summary>Left on purpose to start again (an island, a ledger that cannot recover, the loser of a split pair, a node removed while cut off; EX_TEMPFAIL).</summary>
    public const int Restart = 75;
    /// <summary>A TLS handshake failed on a certificate or crypto error (Akka.Remote's own reason); network failures do not stop the node.</summary>
    public const int TlsHandshakeFailed = 79;

    /// <summary>
    /// The exit code for how the actor system ended. Akka's own exit (exit-clr) would exit 0 after
    /// terminating whatever the reason, and Akka.Hosting sets -1 (255) for a downing, so PromHa
    /// exits itself with the reason's code once the host has stopped.
    /// </summary>
    public static int For(CoordinatedShutdown.Reason? reason) => reason?.ExitCode ?? Stopped;
}
