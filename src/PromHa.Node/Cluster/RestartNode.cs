using Akka.Actor;

namespace PromHa.Node.Cluster;

/// <summary>
/// Stopping so that the node's supervisor (systemd, the demo launcher) starts it again: the exit
/// code is 75 (EX_TEMPFAIL). Used by a singleton on an island and by a ledger that cannot recover.
/// </summary>
public static class RestartNode
{
    public static readonly CoordinatedShutdown.Reason Reason = new RestartReason();

    private sealed class RestartReason : CoordinatedShutdown.Reason
    {
        public override int ExitCode => ExitCodes.Restart;
    }
}
