using System.Collections.Immutable;
using PromHa.Messages.Health;
using PromHa.Messages.Ledger;
using PromHa.Messages.Roles;
using PromHa.Node.Replication;

namespace PromHa.Node.Master;

/// <summary>Lease and health timings the decision logic works with.</summary>
/// <param name="ConfiguredNodes">How many nodes the configuration names (the seed list): a quorum is
/// counted against it, so a node that formed a cluster of its own cannot outvote the real one.</param>
public sealed record MasterTimings(
    TimeSpan LeaseDuration,
    TimeSpan LeaseMargin,
    TimeSpan UnhealthyAfter,
    TimeSpan HealthStaleAfter,
    int ConfiguredNodes = 0)
{
    /// <summary>Default timings; the quorum counts the members present (no configured size).</summary>
    public static readonly MasterTimings Default = new(
        TimeSpan.FromSeconds(2), TimeSpan.FromMilliseconds(300), TimeSpan.FromSeconds(3), TimeSpan.FromSeconds(5));
}

/// <summary>A cluster member as the singleton sees it. Age orders members by when they came up.</summary>
/// <param name="Incarnation">Address and UID: a node restarted under the same name is a new incarnation.</param>
public sealed record MemberView(
    string Name,
    bool Witness,
    int Age,
    string Incarnation = "",
    bool Reachable = true,
    NodeHealth? Health = null,
    DateTimeOffset? HealthAt = null,
    DateTimeOffset? UnhealthySince = null);

/// <summary>Inputs the singleton observes: cluster membership, reachability and health.</summary>
public abstract record Observation;
public sealed record MemberUp(string Name, bool Witness, int Age, string Incarnation = "") : Observation;
/// <param name="Left">it left on purpose (promha cluster leave, a stopped service): forgotten; otherwise (downed) shown as gone</param>
public sealed record MemberGone(string Name, bool Left = false) : Observation;
public sealed record MemberReachability(string Name, bool Reachable) : Observation;
public sealed record HealthReported(NodeHealth Health) : Observation;
/// <summary>How many configured seeds that are not members answer on their cluster port.</summary>
public sealed record OutsidersAlive(int Count) : Observation;
/// <summary>This node proved that incarnation's process gone: its ports refused connections.</summary>
public sealed record MemberDied(string Name, string Incarnation) : Observation;

/// <summary>
/// Granted: the lease runs on. Denied: the role is moving or belongs to another reign; the master
/// steps down. Withheld: this singleton cannot vouch for anything now (no majority in sight, still
/// recovering); the master's own grant ends, but a majority's votes may still carry it.
/// </summary>
public enum LeaseVerdict { Granted, Denied, Withheld }

/// <summary>
/// The master singleton's state as a pure value: no actors, no clocks of its own. The actor feeds it
/// observations, asks it to decide, and persists the <see cref="MasterChanged"/> it returns before
/// applying it. Everything that makes the role safe (non-preemption, epochs, lease expiry before a
/// new master, quorum) is decided here, so it is tested here.
/// </summary>
public sealed record MasterState(
    string SelfNode,
    MasterTimings Timings,
    bool Recovered,
    long Epoch,
    string? Master,
    ImmutableDictionary<string, MemberView> Members,
    DateTimeOffset LeaseExpiresAt,
    bool Revoking,
    string? SwitchoverTarget,
    DateTimeOffset RecoveredAt = default,
    string? MasterIncarnation = null,
    bool EverSawOthers = false,
    int AliveOutsiders = 0,
    long NumberedUpTo = 0,
    bool ForceTarget = false,
    string? Requested = null,
    MaintenanceChanged? Maintenance = null,
    string? ForcedMaster = null,
    ImmutableHashSet<string>? Dead = null,
    DateTimeOffset MasterHeardAt = default,
    DateTimeOffset SilenceClockFrom = default,
    ImmutableDictionary<string, (MemberView View, DateTimeOffset At)>? Gone = null,
    bool MasterReleased = false)
{
    /// <summary>
    /// Members that were downed (crashed, cut off), with when: shown, never counted. A node at 3 a.m.
    /// that is dead is a row that says so, not a row that vanished. Kept for <see cref="GoneKeptFor"/>.
    /// </summary>
    public ImmutableDictionary<string, (MemberView View, DateTimeOffset At)> GoneMembers =>
        Gone ?? ImmutableDictionary<string, (MemberView, DateTimeOffset)>.Empty;

    public static readonly TimeSpan GoneKeptFor = TimeSpan.FromDays(1);

    /// <summary>Incarnations proven dead by their refused ports (<see cref="Cluster.PeerCrashActor"/>).</summary>
    public ImmutableHashSet<string> DeadIncarnations => Dead ?? ImmutableHashSet<string>.Empty;

    /// <summary>The reason of a failover an operator forced onto a node whose Prometheus was reported unhealthy.</summary>
    public const string ForcedFailover = "forced-failover";
    /// <summary>Fast path: the master's process was proven dead by its refused ports.</summary>
    public const string MasterProcessDied = "master-process-died";
    /// <summary>Fast path: the master's Prometheus refused connections or its supervised process exited.</summary>
    public const string PrometheusDown = "prometheus-down";

    /// <summary>Maintenance mode: the role moves only when an operator asks (switchover, failover).</summary>
    public bool Paused => Maintenance?.Paused == true;

    /// <summary>
    /// Right after the singleton starts, the other members may not have reported health yet. For
    /// this long it will not pick its own node when it is the only candidate: a master away from
    /// the singleton's node fails over without waiting for the singleton to move.
    /// </summary>
    public static readonly TimeSpan FormationGrace = TimeSpan.FromSeconds(6);

    public static MasterState Initial(string selfNode, MasterTimings timings) =>
        new(selfNode, timings, false, 0, null, ImmutableDictionary<string, MemberView>.Empty,
            DateTimeOffset.MinValue, false, null);

    /// <summary>
    /// The singleton starts knowing the highest epoch any member holds. Its predecessor may have
    /// granted the current master a lease a moment ago, so that lease is assumed to run a full term.
    /// </summary>
    public MasterState Recover(MasterChanged? last, DateTimeOffset now)
    {
        var master = last?.Epoch >= Epoch ? last.Node : Master;
        // The reign is the incarnation the role was granted to, as journaled: a master that
        // restarted while the singleton moved is a new incarnation, not the same reign.
        var incarnation = last?.Epoch >= Epoch && last.Incarnation is { } journaled ? journaled
            : master is not null && Members.TryGetValue(master, out var m) ? m.Incarnation : null;
        return this with
        {
            Recovered = true,
            RecoveredAt = now,
            Epoch = Math.Max(Epoch, last?.Epoch ?? 0),
            Master = master,
            // A master whose process this node saw die holds no lease, whatever the predecessor granted.
            LeaseExpiresAt = last is null || (incarnation is not null && DeadIncarnations.Contains(incarnation))
                ? DateTimeOffset.MinValue
                : now + Timings.LeaseDuration,
            MasterIncarnation = incarnation,
            MasterHeardAt = now,
            ForcedMaster = last?.Epoch >= Epoch && last.Reason == ForcedFailover ? last.Node : ForcedMaster,
        };
    }

    public MasterState Observe(Observation o, DateTimeOffset now) => o switch
    {
        OutsidersAlive a => this with { AliveOutsiders = a.Count },
        MemberDied d => this with
        {
            Dead = DeadIncarnations.Add(d.Incarnation),
            Members = Members.TryGetValue(d.Name, out var dm) && dm.Incarnation == d.Incarnation
                ? Members.SetItem(d.Name, dm with { Reachable = false })
                : Members,
        },
        MemberUp up => this with
        {
            Gone = GoneMembers.Remove(up.Name),
            EverSawOthers = EverSawOthers || up.Name != SelfNode,
            Members = Members.SetItem(up.Name,
                Members.TryGetValue(up.Name, out var existing)
                    ? existing with { Witness = up.Witness, Age = up.Age, Incarnation = up.Incarnation, Reachable = true }
                    : new MemberView(up.Name, up.Witness, up.Age, up.Incarnation)),
        },
        MemberGone gone => this with
        {
            Members = Members.Remove(gone.Name),
            Gone = !gone.Left && Members.TryGetValue(gone.Name, out var was)
                ? GoneMembers.SetItem(gone.Name, (was with { Reachable = false }, now))
                : GoneMembers.Remove(gone.Name),
        },
        MemberReachability r when Members.TryGetValue(r.Name, out var m) =>
            this with { Members = Members.SetItem(r.Name, m with { Reachable = r.Reachable }) },
        HealthReported h when Members.TryGetValue(h.Health.Node, out var m) =>
            this with
            {
                Members = Members.SetItem(m.Name, m with
                {
                    Health = h.Health,
                    HealthAt = now,
                    UnhealthySince = h.Health.PrometheusHealthy ? null : m.UnhealthySince ?? now,
                }),
            },
        _ => this,
    };

    /// <summary>A member is eligible for the master role when it runs a Prometheus that answers now.</summary>
    public bool IsEligible(MemberView m, DateTimeOffset now) =>
        !m.Witness && m.Reachable && IsHealthy(m, now);

    private bool IsHealthy(MemberView m, DateTimeOffset now) =>
        m.Health is { PrometheusHealthy: true } && m.HealthAt is { } at && now - at <= Timings.HealthStaleAfter;

    /// <summary>
    /// In a cluster of three or more, a singleton that cannot see a majority is on the wrong side of
    /// a partition and must not extend anybody's lease. Pairs rely on the downing tie-breaker.
    /// </summary>
    /// <summary>The cluster's size for majorities: the members present or the nodes configured, whichever is more.</summary>
    public int ClusterSize => Quorum.Size(Timings.ConfiguredNodes, Members.Count);

    public bool HasQuorum
    {
        get
        {
            var size = ClusterSize;
            // A pair's lone node whose cluster never held its peer, while the peer is up: this node
            // formed a cluster of its own after a restart (an island), and the peer may be master.
            if (size <= 2) return !(Members.Count == 1 && !EverSawOthers && AliveOutsiders > 0);
            return Members.Values.Count(m => m.Reachable) * 2 > size;
        }
    }

    /// <summary>
    /// Decisions need more than a majority of members not yet marked unreachable: failure detectors
    /// fire one peer at a time, so a node whose link was just cut still sees one of two peers as
    /// reachable for a moment. A majority must also have reported health recently (every node,
    /// witnesses included, reports every second): a cut-off singleton hears nobody.
    /// </summary>
    public bool HearsMajority(DateTimeOffset now)
    {
        if (!HasQuorum) return false;
        if (ClusterSize <= 2) return true;
        var heard = Members.Values.Count(m => m.Reachable && m.HealthAt is { } at && now - at <= Timings.HealthStaleAfter);
        return Quorum.IsMajority(heard, ClusterSize);
    }

    public bool LeaseRunning(DateTimeOffset now) => now < LeaseExpiresAt + Timings.LeaseMargin;

    /// <summary>That member's current incarnation was proven dead.</summary>
    public bool IsProvenDead(string name) => Members.TryGetValue(name, out var m) && DeadIncarnations.Contains(m.Incarnation);

    /// <summary>
    /// The process the role was granted to is proven gone: nobody can act on its lease or on the
    /// vouches it collected, so neither needs waiting out.
    /// </summary>
    public bool MasterProvenDead =>
        Master is not null && (MasterIncarnation is { } i ? DeadIncarnations.Contains(i) : IsProvenDead(Master));

    /// <summary>
    /// The master's name is a member again as a new incarnation on the same host and port: the
    /// process the role was granted to no longer holds that port, so it is gone, and the new one
    /// never inherits a lease (<see cref="Renew"/>). Nothing to wait out (after every link was cut,
    /// the re-formed cluster named a master 2.4 s later for this wait alone).
    /// </summary>
    public bool MasterRestartedInPlace =>
        Master is not null && MasterIncarnation is { } granted && Members.TryGetValue(Master, out var m) &&
        m.Incarnation != granted && LedgerMembers.SameAddress(m.Incarnation, granted);

    /// <summary>
    /// The master the ledgers name is not a member, and the lease it may hold has not run out: after
    /// every link was cut and the nodes restarted, the re-formed cluster waited a whole lease (2.4 s)
    /// for a process that had exited before the heal. Only proof from outside that it is gone (its
    /// address answering as another process) ends the wait sooner.
    /// </summary>
    public bool AwaitingAbsentMaster(DateTimeOffset now) =>
        Master is not null && MasterIncarnation is not null && !Members.ContainsKey(Master) && !MasterProvenDead && LeaseRunning(now);

    /// <summary>
    /// The master asked for no renewal for longer than a lease and its margin: by its own clock its
    /// lease has run out (it counts from when it asked), whatever the failure detector says yet. A
    /// frozen process or a lost host; also what lets the role move before the detector fires.
    /// </summary>
    public bool MasterSilent(DateTimeOffset now) =>
        Master is not null && Members.TryGetValue(Master, out var m) && m.Reachable &&
        now - (MasterHeardAt > SilenceClockFrom ? MasterHeardAt : SilenceClockFrom) > Timings.LeaseDuration + Timings.LeaseMargin;

    /// <summary>The master asked for its lease (granted or not): it is alive and counting.</summary>
    public MasterState Heard(string node, long epoch, DateTimeOffset now) =>
        node == Master && epoch == Epoch ? this with { MasterHeardAt = now } : this;

    /// <summary>Why the current master must go, or null while it may keep the role.</summary>
    public string? MasterProblem(DateTimeOffset now)
    {
        if (Master is null) return SwitchoverTarget is not null ? Requested ?? "failover" : "no-master";
        // what the operator asked for is the reason, whatever else is wrong with the master
        if (SwitchoverTarget is not null) return Requested ?? "switchover";
        if (MasterProvenDead) return MasterProcessDied;
        if (!Members.TryGetValue(Master, out var m)) return "master-left";
        // Restarted under its name before anyone noticed: the old incarnation's lease and duties died with it.
        if (MasterIncarnation is not null && m.Incarnation != MasterIncarnation) return "master-restarted";
        if (!m.Reachable) return "master-unreachable";
        // Its Prometheus refused connections (or its supervised process exited): not slow, gone.
        if (m.Health is { PrometheusDown: true } && m.HealthAt is { } downAt && now - downAt <= Timings.HealthStaleAfter &&
            Master != ForcedMaster) return PrometheusDown;
        // a master forced on by an operator is kept whatever its Prometheus's health says (the operator knows better)
        if (m.UnhealthySince is { } since && now - since >= Timings.UnhealthyAfter && Master != ForcedMaster) return "prometheus-unhealthy";
        // It gave its lease back unasked, with nothing else wrong: a graceful stop, which leaves the
        // cluster next. Waiting for it to be gone raced the silence clock ("master-silent", CI).
        if (MasterReleased) return "master-left";
        if (MasterSilent(now)) return "master-silent";
        if (m.HealthAt is { } at && now - at > Timings.HealthStaleAfter + Timings.UnhealthyAfter) return "health-reports-stopped";
        return null;
    }

    /// <summary>
    /// Decides whether the master role moves now. Non-preemptive: a master without a problem keeps
    /// the role whoever joins. A new master is named only once the old lease has run out (or was
    /// released), so two nodes never hold a lease at the same time.
    /// </summary>
    public (MasterState State, MasterChanged? Change) Decide(DateTimeOffset now)
    {
        if (!Recovered || !HearsMajority(now)) return (this, null);
        // Paused: no automatic move, whatever the master's state; a move already under way for a
        // problem stops, and the master may renew its lease again.
        if (Paused && SwitchoverTarget is null) return (Revoking ? this with { Revoking = false } : this, null);
        var problem = MasterProblem(now);
        // A master that came back (reachable, healthy again) before its lease ran out keeps the role.
        if (problem is null) return (Revoking ? this with { Revoking = false } : this, null);

        var candidate = PickCandidate(now);
        if (Master is null && candidate == SelfNode && now - RecoveredAt < FormationGrace) return (this, null);
        if (candidate is null)
        {
            // Nobody better: an unhealthy but reachable master stays; a switchover cannot happen.
            return (this with { SwitchoverTarget = null, Revoking = false, ForceTarget = false, Requested = null }, null);
        }

        // Stop extending the old master's lease from now on, then wait for it to run out.
        var state = Master is null ? this : this with { Revoking = true };
        if (Master is not null && state.LeaseRunning(now) && !MasterProvenDead && !MasterRestartedInPlace) return (state, null);

        var change = new MasterChanged(Math.Max(Epoch, NumberedUpTo) + 1, candidate, problem, now, Master, Members[candidate].Incarnation);
        return (state.Apply(change, now), change);
    }

    /// <summary>
    /// The healthiest standby: not the current master, preferably not the singleton's own node (so a
    /// crash of the master does not also take the singleton), then the oldest, then by name.
    /// </summary>
    public string? PickCandidate(DateTimeOffset now)
    {
        var eligible = Members.Values
            .Where(m => m.Name != Master && IsEligible(m, now))
            .ToList();
        // A master that restarted may take the role again, under a new epoch, when nobody else can.
        if (eligible.Count == 0 && Master is not null && Members.TryGetValue(Master, out var restarted) &&
            restarted.Incarnation != MasterIncarnation && MasterIncarnation is not null && IsEligible(restarted, now))
            eligible.Add(restarted);
        if (SwitchoverTarget is not null)
            return ForceTarget && Members.TryGetValue(SwitchoverTarget, out var forced) && Forceable(forced)
                ? forced.Name
                : eligible.FirstOrDefault(m => m.Name == SwitchoverTarget)?.Name;
        return eligible
            .OrderBy(m => eligible.Count > 1 && m.Name == SelfNode ? 1 : 0)
            .ThenBy(m => m.Age)
            .ThenBy(m => m.Name, StringComparer.Ordinal)
            .FirstOrDefault()?.Name;
    }

    /// <summary>
    /// Whether a record journaled on <paramref name="ledgers"/> ledgers is committed: a majority of
    /// the configured nodes (Raft's rule), so that any later majority holds it. A pair is the
    /// documented exception: its survivor alone commits (the tie-breaker decides who survives).
    /// </summary>
    public bool IsMajority(int ledgers) => Quorum.IsMajority(ledgers, ClusterSize);

    /// <summary>
    /// How long to hold back a committed role change: until the old master can no longer count a
    /// majority of vouches. <paramref name="remaining"/> holds, per ledger that journaled the change,
    /// how long its vouches for the old reign may still count; once those of any majority ran out,
    /// the old master is left with a minority. A pair does not use votes.
    /// </summary>
    public TimeSpan VouchesRunOutIn(IReadOnlyCollection<TimeSpan> remaining)
    {
        if (ClusterSize <= 2 || remaining.Count == 0) return TimeSpan.Zero;
        var majority = Math.Min(Quorum.Majority(ClusterSize), remaining.Count);
        return remaining.Order().ElementAt(majority - 1);
    }

    /// <summary>
    /// A decision that did not reach a majority of ledgers never happened: back to the role as it
    /// was before <paramref name="change"/> (observations made meanwhile are kept), and its epoch
    /// number is never handed out again.
    /// </summary>
    public MasterState Discard(MasterChanged change, MasterState before) =>
        Epoch != change.Epoch
            ? this with { NumberedUpTo = Math.Max(NumberedUpTo, change.Epoch) }
            : this with
            {
                Epoch = before.Epoch,
                Master = before.Master,
                MasterIncarnation = before.MasterIncarnation,
                LeaseExpiresAt = before.LeaseExpiresAt,
                Revoking = before.Revoking,
                SwitchoverTarget = before.SwitchoverTarget,
                ForceTarget = before.ForceTarget,
                Requested = before.Requested,
                ForcedMaster = before.ForcedMaster,
                NumberedUpTo = Math.Max(NumberedUpTo, change.Epoch),
            };

    /// <summary>Applies a role change; one from an older or the same epoch is stale and ignored.</summary>
    public MasterState Apply(MasterChanged change, DateTimeOffset now) =>
        change.Epoch <= Epoch
            ? this
            : this with
            {
                Epoch = change.Epoch,
                Master = change.Node,
                // The new master holds no lease until it asks; counting one from now keeps our view
                // of its lease at least as long as its own.
                LeaseExpiresAt = now + Timings.LeaseDuration,
                MasterHeardAt = now,
                Revoking = false,
                SwitchoverTarget = null,
                ForceTarget = false,
                Requested = null,
                ForcedMaster = change.Reason == ForcedFailover ? change.Node : null,
                MasterReleased = false,
                MasterIncarnation = change.Incarnation ?? (Members.TryGetValue(change.Node, out var m) ? m.Incarnation : null),
            };

    public (MasterState State, LeaseVerdict Verdict, string Reason) Renew(string node, long epoch, DateTimeOffset now)
    {
        if (!Recovered) return (this, LeaseVerdict.Withheld, "singleton still recovering");
        if (epoch != Epoch)
            return (this, LeaseVerdict.Denied, epoch < Epoch
                ? $"stale epoch {epoch}, current is {Epoch}"
                : $"epoch {epoch} is newer than this singleton's {Epoch}");
        if (node != Master) return (this, LeaseVerdict.Denied, $"{node} is not the master of epoch {Epoch}");
        if (Revoking) return (this, LeaseVerdict.Denied, "the master role is being moved");
        // One reign, one epoch: a restarted master does not inherit its predecessor's lease.
        if (MasterIncarnation is not null && Members.TryGetValue(node, out var m) && m.Incarnation != MasterIncarnation)
            return (this, LeaseVerdict.Denied, $"{node} restarted since epoch {Epoch} was granted; the role moves under a new epoch");
        if (!HasQuorum) return (this, LeaseVerdict.Withheld, "singleton lost quorum");
        return (this with { LeaseExpiresAt = now + Timings.LeaseDuration }, LeaseVerdict.Granted, "");
    }

    /// <summary>The master gave the lease back (switchover or graceful shutdown): no need to wait it out.</summary>
    public MasterState Released(string node, long epoch, DateTimeOffset now) =>
        node == Master && epoch == Epoch
            ? this with { LeaseExpiresAt = now - Timings.LeaseMargin, Revoking = true, MasterReleased = true }
            : this;

    public (MasterState State, string? Error) RequestSwitchover(string? target, DateTimeOffset now)
    {
        if (!Recovered) return (this, "the master singleton is still recovering");
        if (Master is null) return (this, "there is no master to switch over from");
        if (target == Master) return (this, $"{target} is already the master");
        if (target is not null)
        {
            if (!Members.TryGetValue(target, out var t)) return (this, $"unknown node '{target}'");
            if (!IsEligible(t, now)) return (this, $"{target} is not eligible (witness, unreachable or unhealthy)");
        }
        else if (PickCandidate(now) is null)
        {
            return (this, "no healthy standby to switch over to");
        }
        var chosen = target ?? PickCandidate(now)!;
        return (this with { SwitchoverTarget = chosen, Revoking = true, ForceTarget = false, Requested = "switchover" }, null);
    }

    /// <summary>A node the operator may force the role onto: a reachable member that runs a Prometheus, whatever its health says.</summary>
    private bool Forceable(MemberView m) => !m.Witness && m.Reachable && m.Name != Master;

    /// <summary>
    /// An operator's failover, for when a switchover cannot be made: there may be no master (or one
    /// that is unhealthy or gone), and with <paramref name="force"/> the target may be a node whose
    /// Prometheus is reported unhealthy. What keeps the role single is unchanged: a master that is
    /// still alive is revoked, and the new one is named only once the old lease has run out.
    /// </summary>
    public (MasterState State, string? Error) RequestFailover(string? target, bool force, DateTimeOffset now)
    {
        if (!Recovered) return (this, "the master singleton is still recovering");
        if (!HearsMajority(now)) return (this, "the master singleton does not hear a majority of the nodes: no decision can be made");
        string chosen;
        if (target is null)
        {
            if (PickCandidate(now) is not { } best)
                return (this, "no healthy standby to fail over to; name one with --to NODE (and --force if its Prometheus is unhealthy)");
            chosen = best;
        }
        else
        {
            if (!Members.TryGetValue(target, out var t)) return (this, $"unknown node '{target}'");
            if (target == Master) return (this, $"{target} is already the master");
            if (t.Witness) return (this, $"{target} is a witness: it runs no Prometheus and cannot be master");
            if (!t.Reachable) return (this, $"{target} is unreachable");
            if (!force && !IsEligible(t, now))
                return (this, $"{target}'s Prometheus is not healthy ({t.Health?.Detail ?? "no recent health report"}); add --force to make it master anyway");
            chosen = target;
        }
        return (this with { SwitchoverTarget = chosen, Revoking = Master is not null, ForceTarget = force, Requested = force ? ForcedFailover : "failover" }, null);
    }

    public IReadOnlyList<NodeHealthView> HealthViews(DateTimeOffset now) =>
        Members.Values.Select(m => View(m, !m.Witness && IsHealthy(m, now), m.Health?.AlertmanagerHealthy ?? false, m.Health?.Detail, now))
            .Concat(GoneMembers.Where(g => now - g.Value.At < GoneKeptFor && !Members.ContainsKey(g.Key))
                .Select(g => View(g.Value.View, false, false, $"not a member since {g.Value.At:yyyy-MM-dd HH:mm:ss}Z (downed: crashed or cut off)", now)))
            .OrderBy(v => v.Node, StringComparer.Ordinal).ToList();

    private static NodeHealthView View(MemberView m, bool healthy, bool alertmanagerHealthy, string? detail, DateTimeOffset now) => new(
        m.Name, m.Witness, m.Reachable, healthy, alertmanagerHealthy,
        m.HealthAt is { } at ? Math.Round((now - at).TotalSeconds, 1) : null,
        detail,
        PrometheusUrl: m.Health?.PrometheusUrl,
        ApiUrl: m.Health?.ApiUrl,
        AlertmanagerUrl: m.Health?.AlertmanagerUrl);
}
