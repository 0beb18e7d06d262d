using Akka.Event;
using Akka.Remote;

namespace PromHa.Node.Cluster;

/// <summary>
/// Akka's phi-accrual failure detector, except for a member this node proved dead
/// (<see cref="PeerCrashActor"/>): that one reports unavailable at once. Akka removes a downed
/// member only once it is also unreachable, and the singletons move only after the removal; without
/// this a proven-dead oldest member held them for the detector's ~3.5 s. Akka drops a member's
/// detector when the member is removed, so a new incarnation on that address starts afresh.
/// </summary>
public sealed class DeadAwareFailureDetector(Akka.Configuration.Config config, EventStream eventStream) : FailureDetector
{
    [ThreadStatic] private static bool _creatingDead;
    private readonly PhiAccrualFailureDetector _inner = new(config, eventStream);
    private readonly bool _dead = _creatingDead;

    public override bool IsAvailable => !_dead && _inner.IsAvailable;

    public override bool IsMonitoring => _dead || _inner.IsMonitoring;

    public override void HeartBeat()
    {
        if (!_dead) _inner.HeartBeat();
    }

    /// <summary>
    /// Replaces the address's detector in the cluster's registry by one that says unavailable: the
    /// registry creates a detector on the first heartbeat of an address it does not monitor, on the
    /// calling thread.
    /// </summary>
    public static void MarkDead(IFailureDetectorRegistry<Akka.Actor.Address> registry, Akka.Actor.Address address)
    {
        registry.Remove(address);
        _creatingDead = true;
        try { registry.Heartbeat(address); }
        finally { _creatingDead = false; }
    }
}
