using System.Reflection;
using Akka.Actor;
using Akka.Cluster;
using Akka.Event;
using Akka.Hosting;

namespace PromHa.Node.Cluster;

/// <summary>
/// A node that just (re)joined and cannot talk to one member that every other member reaches has a
/// broken link of its own (seen in the partition tests: a restarted node whose association with one
/// peer never came up). Left alone, the split-brain resolver downs both ends as indirectly
/// connected, and when the other end is the master the cluster loses its master for a failover it
/// did not need. So, within <see cref="Window"/> of becoming Up and while not master, such a node
/// downs itself after <see cref="Hold"/> (well inside the resolver's 3 s stable-after): it restarts
/// (exit 3, like any downed node) and joins again as a new incarnation, and the other end is left alone.
/// </summary>
public sealed class NewcomerWatchActor : ReceiveActor, IWithTimers
{
    public const string Name = "newcomer-watch";
    public static readonly TimeSpan Window = TimeSpan.FromSeconds(60);
    public static readonly TimeSpan Hold = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan Every = TimeSpan.FromMilliseconds(250);

    private readonly NodeView _view;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly Akka.Cluster.Cluster _cluster = Akka.Cluster.Cluster.Get(Context.System);
    private DateTimeOffset? _upAt;
    private DateTimeOffset? _brokenSince;
    private bool _leaving;

    public NewcomerWatchActor(NodeView view)
    {
        _view = view;
        Receive<ClusterEvent.MemberUp>(e =>
        {
            if (e.Member.UniqueAddress.Equals(_cluster.SelfUniqueAddress)) _upAt = DateTimeOffset.UtcNow;
        });
        Receive<ClusterEvent.CurrentClusterState>(_ => { });
        Receive<Check>(_ => OnCheck());
    }

    public ITimerScheduler Timers { get; set; } = null!;

    private sealed record Check
    {
        public static readonly Check Instance = new();
    }

    protected override void PreStart()
    {
        _cluster.Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsSnapshot, typeof(ClusterEvent.MemberUp));
        Timers.StartPeriodicTimer("check", Check.Instance, Every);
    }

    protected override void PostStop() => _cluster.Unsubscribe(Self);

    private void OnCheck()
    {
        var now = DateTimeOffset.UtcNow;
        if (_leaving || _upAt is not { } up || now - up > Window || _view.Current.HoldsLease)
        {
            _brokenSince = null;
            return;
        }
        if (GossipReachability.Records(_cluster) is not { } records)
        {
            _leaving = true; // cannot tell: Akka's internals changed, and the resolver alone decides (Akka's default)
            _log.Warning("Cannot read the gossip's reachability records (Akka's internals changed): a newcomer's broken link is left to the split-brain resolver");
            return;
        }
        var lonely = NewcomerLinks.BrokenOnlyWithSelf(_cluster.SelfUniqueAddress, records);
        if (lonely.Count == 0)
        {
            _brokenSince = null;
            return;
        }
        _brokenSince ??= now;
        if (now - _brokenSince.Value < Hold) return;
        _leaving = true;
        _log.Warning("Up for {0:F1} s and the link to {1} is broken while every other member reaches it: the fault is this node's; " +
                     "downing this node (it restarts and joins again) so that the split-brain resolver does not down {1} with it as indirectly connected",
            (now - up).TotalSeconds, string.Join(", ", lonely.Select(a => a.Address)));
        _cluster.Down(_cluster.SelfAddress);
    }
}

/// <summary>One observer's opinion of one subject, as the gossip carries it.</summary>
public sealed record ReachabilityRecord(UniqueAddress Observer, UniqueAddress Subject, bool Unreachable);

/// <summary>
/// The gossip's reachability records (who finds whom unreachable): Akka keeps them internal and
/// publishes only the aggregate (unreachable by anyone), so they are read by reflection, as the
/// split-brain resolver reads them; null when Akka's internals changed.
/// </summary>
public static class GossipReachability
{
    private const BindingFlags Any = BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic;
    private static readonly PropertyInfo? ReadView = typeof(Akka.Cluster.Cluster).GetProperty("ReadView", Any);

    public static List<ReachabilityRecord>? Records(Akka.Cluster.Cluster cluster)
    {
        try
        {
            var view = ReadView?.GetValue(cluster);
            var reachability = view?.GetType().GetProperty("Reachability", Any)?.GetValue(view);
            if (reachability?.GetType().GetProperty("Records", Any)?.GetValue(reachability) is not System.Collections.IEnumerable records) return null;
            var result = new List<ReachabilityRecord>();
            foreach (var r in records)
            {
                var t = r.GetType();
                if (t.GetProperty("Observer", Any)?.GetValue(r) is not UniqueAddress observer ||
                    t.GetProperty("Subject", Any)?.GetValue(r) is not UniqueAddress subject ||
                    t.GetProperty("Status", Any)?.GetValue(r) is not { } status)
                    return null;
                result.Add(new ReachabilityRecord(observer, subject, status.ToString() != "Reachable"));
            }
            return result;
        }
        catch (Exception e) when (e is TargetInvocationException or InvalidCastException or AmbiguousMatchException)
        {
            return null;
        }
    }
}

public static class NewcomerLinks
{
    /// <summary>
    /// The members whose link with <paramref name="self"/> is broken (either side observes the other
    /// unreachable) while no other observer finds either end unreachable: a fault of that one pair,
    /// not of either node. A member that others find unreachable too is cut off itself: not listed.
    /// </summary>
    public static IReadOnlyList<UniqueAddress> BrokenOnlyWithSelf(UniqueAddress self, IEnumerable<ReachabilityRecord> records)
    {
        var unreachable = records.Where(r => r.Unreachable).ToList();
        bool OthersFind(UniqueAddress subject, UniqueAddress except) =>
            unreachable.Any(r => r.Subject.Equals(subject) && !r.Observer.Equals(except) && !r.Observer.Equals(self) && !r.Observer.Equals(subject));
        var peers = unreachable.Where(r => r.Observer.Equals(self)).Select(r => r.Subject)
            .Concat(unreachable.Where(r => r.Subject.Equals(self)).Select(r => r.Observer))
            .Where(p => !p.Equals(self))
            .Distinct()
            .ToList();
        return peers.Where(p => !OthersFind(p, except: self) && !OthersFind(self, except: p)).ToList();
    }
}

public static class NewcomerWatchActorHostingExtensions
{
    public static AkkaConfigurationBuilder AddNewcomerWatchActor(this AkkaConfigurationBuilder builder, NodeView view) =>
        builder.WithActors((system, _) => system.ActorOf(Props.Create(() => new NewcomerWatchActor(view)), NewcomerWatchActor.Name));
}
