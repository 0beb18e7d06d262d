using Akka.Actor;
using Akka.Cluster;
using Akka.Event;
using Akka.Hosting;
using PromHa.Node.Config;
using PromHa.Node.Groups;
using PromHa.Node.Master;

namespace PromHa.Node.Cluster;

/// <summary>
/// The singletons must run on the oldest member. A first seed restarted while its old cluster still
/// had a member forms a new cluster, and that member, becoming oldest in the old one, sends a
/// hand-over to the old incarnation's address, which the new incarnation takes: its singleton manager
/// hands over to a node outside its cluster and is done for good, so its cluster has no singleton and
/// no master (seen in the partition benchmark with a master's link flapping every 5 s: no master for
/// 155 s). This actor checks, on the oldest member only, that both singletons run here; missing for
/// <see cref="StuckAfter"/> while the cluster is stable, the node restarts (exit 75) so that the next
/// oldest member takes them up and this node rejoins as a new incarnation.
/// </summary>
public sealed class SingletonWatchActor : ReceiveActor, IWithTimers
{
    public const string Name = "singleton-watch";
    private static readonly TimeSpan Every = TimeSpan.FromSeconds(1);
    /// <summary>Longer than a normal hand-over (a crashed oldest member: ~4 s; waiting out a lease: ~3 s more).</summary>
    public static readonly TimeSpan StuckAfter = TimeSpan.FromSeconds(15);
    private readonly IReadOnlyList<GroupScope> _groups;

    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly Akka.Cluster.Cluster _cluster = Akka.Cluster.Cluster.Get(Context.System);
    private DateTimeOffset? _missingSince;
    private bool _restarting;

    /// <param name="groups">The groups this node serves: it checks the singletons of those whose oldest member it is.</param>
    public SingletonWatchActor(IReadOnlyList<GroupScope>? groups = null)
    {
        _groups = groups ?? [GroupScope.Whole];
        Receive<Check>(_ => OnCheck());
        Receive<ActorIdentity>(_ => { });
        Receive<Found>(OnFound);
    }

    public ITimerScheduler Timers { get; set; } = null!;

    private sealed record Check
    {
        public static readonly Check Instance = new();
    }

    private sealed record Found(string[] Missing);

    protected override void PreStart() => Timers.StartPeriodicTimer("check", Check.Instance, Every);

    /// <summary>
    /// Every member is Up and reachable, and this node is the oldest Up member of a group: that
    /// group's singletons belong here now. Their paths.
    /// </summary>
    private string[] SingletonsHere()
    {
        var state = _cluster.State;
        if (state.Unreachable.Count > 0 || state.Members.Any(m => m.Status != MemberStatus.Up)) return [];
        return _groups
            .Where(g => state.Members.Where(g.Includes).OrderBy(m => m, Member.AgeOrdering).FirstOrDefault() is { } oldest &&
                        oldest.UniqueAddress.Equals(_cluster.SelfUniqueAddress))
            .SelectMany(g => new[] { $"/user/{g.MasterSingleton}/{g.MasterSingleton}", $"/user/{g.ConfigVersionsSingleton}/{g.ConfigVersionsSingleton}" })
            .ToArray();
    }

    private void OnCheck()
    {
        if (_restarting) return;
        var here = SingletonsHere();
        if (here.Length == 0)
        {
            _missingSince = null;
            return;
        }
        var selections = here.Select(p => (Path: p, Selection: Context.ActorSelection(p))).ToList();
        Task.WhenAll(selections.Select(async s =>
            {
                try
                {
                    var id = await s.Selection.Ask<ActorIdentity>(new Identify(s.Path), TimeSpan.FromSeconds(1));
                    return id.Subject is null ? s.Path : null;
                }
                catch (AskTimeoutException) { return s.Path; }
            }))
            .PipeTo(Self, success: r => new Found(r.OfType<string>().ToArray()));
    }

    private void OnFound(Found f)
    {
        if (_restarting) return;
        if (f.Missing.Length == 0 || SingletonsHere().Length == 0)
        {
            _missingSince = null;
            return;
        }
        var now = DateTimeOffset.UtcNow;
        _missingSince ??= now;
        if (now - _missingSince.Value < StuckAfter) return;
        _restarting = true;
        _log.Error("This node is the oldest member of its group in a stable cluster but {0} has not run here for {1:F0} s " +
                   "(its singleton manager handed over to a node outside this cluster); restarting so that the next oldest member runs it",
            string.Join(" and ", f.Missing), (now - _missingSince.Value).TotalSeconds);
        CoordinatedShutdown.Get(Context.System).Run(RestartNode.Reason);
    }
}

public static class SingletonWatchActorHostingExtensions
{
    public static AkkaConfigurationBuilder AddSingletonWatchActor(this AkkaConfigurationBuilder builder, IReadOnlyList<GroupScope>? groups = null) =>
        builder.WithActors((system, _) => system.ActorOf(Props.Create(() => new SingletonWatchActor(groups)), SingletonWatchActor.Name));
}
