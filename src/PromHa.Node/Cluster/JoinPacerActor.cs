using Akka.Actor;
using Akka.Event;
using Akka.Hosting;

namespace PromHa.Node.Cluster;

/// <summary>
/// Asks the seeds again every <see cref="Every"/> until this node is a member. Akka's joining process
/// (every seed but the first) sends its next InitJoin only after a whole seed-node-timeout without a
/// reply, and any refusal from a seed that is not in a cluster yet restarts that wait: after every
/// link was cut and the downed nodes restarted, the joiners found the re-formed cluster 4-5 s after
/// it existed. A shorter seed-node-timeout would make them quicker too, but the first seed starts a
/// cluster alone after that same timeout, and at 2 s it formed islands under a cut that 5 s rides out
/// (the partition tests, pair + witness). Asking again only restarts the joining process: a seed
/// that already took this node's Join welcomes it again.
/// </summary>
public sealed class JoinPacerActor : ReceiveActor, IWithTimers
{
    public const string Name = "join-pacer";
    /// <summary>
    /// Twice a second: after every link was cut the joiners' refusals came while the first seed had
    /// not yet formed the cluster, and at 2 s they found it 0.5-1.7 s after it existed, at 1 s
    /// 0.3-0.7 s. An ask to a seed whose connection just failed is dropped there
    /// (retry-gate-closed-for, 2 s), which costs nothing.
    /// </summary>
    public static readonly TimeSpan Every = TimeSpan.FromMilliseconds(500);

    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly Akka.Cluster.Cluster _cluster = Akka.Cluster.Cluster.Get(Context.System);
    private int _asked;

    public JoinPacerActor()
    {
        Receive<Tick>(_ => OnTick());
    }

    public ITimerScheduler Timers { get; set; } = null!;

    private sealed record Tick
    {
        public static readonly Tick Instance = new();
    }

    protected override void PreStart()
    {
        var seeds = _cluster.Settings.SeedNodes;
        // The first seed's own process already asks every second, and then starts the cluster.
        if (seeds.Count < 2 || seeds[0].Equals(_cluster.SelfAddress))
        {
            Context.Stop(Self);
            return;
        }
        Timers.StartPeriodicTimer("tick", Tick.Instance, Every);
    }

    private bool Joined() => _cluster.State.Members.Any(m => m.UniqueAddress.Equals(_cluster.SelfUniqueAddress));

    private void OnTick()
    {
        if (Joined())
        {
            if (_asked > 0) _log.Info("Joined the cluster after asking the seeds {0} more time(s)", _asked);
            Context.Stop(Self);
            return;
        }
        _asked++;
        if (_asked == 1) _log.Info("Not a member yet: asking the seeds again every {0:F1} s until one lets this node in", Every.TotalSeconds);
        _cluster.JoinSeedNodes(_cluster.Settings.SeedNodes);
    }
}

public static class JoinPacerActorHostingExtensions
{
    public static AkkaConfigurationBuilder AddJoinPacerActor(this AkkaConfigurationBuilder builder) =>
        builder.WithActors((system, _) => system.ActorOf(Props.Create(() => new JoinPacerActor()), JoinPacerActor.Name));
}
