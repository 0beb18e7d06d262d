using PromHa.Messages.Health;
using PromHa.Messages.Roles;
using PromHa.Node.Master;

namespace PromHa.Tests.Master;

public class MasterStateTests
{
    private static readonly DateTimeOffset T0 = new(2026, 11, 23, 12, 0, 0, TimeSpan.Zero);
    private static readonly MasterTimings Timings = MasterTimings.Default; // lease 2 s, margin 0.3 s, unhealthy 3 s

    private static DateTimeOffset At(double seconds) => T0 + TimeSpan.FromSeconds(seconds);

    private static NodeHealth Healthy(string node, bool healthy = true) =>
        new(node, false, healthy, healthy, true, healthy ? null : "down", T0);

    /// <summary>A recovered singleton on <paramref name="self"/> with the given members up and healthy.</summary>
    private static MasterState Cluster(string self, params string[] nodes)
    {
        var s = MasterState.Initial(self, Timings).Recover(null, At(0));
        var age = 0;
        foreach (var n in nodes)
            s = s.Observe(new MemberUp(n, false, age++), At(0)).Observe(new HealthReported(Healthy(n)), At(0));
        return s;
    }

    private static MasterState WithMaster(MasterState s, string master, double at = 0) =>
        s.Apply(new MasterChanged(s.Epoch + 1, master, "test", At(at), s.Master), At(at));

    [Fact]
    public void Decides_nothing_before_recovery()
    {
        var s = MasterState.Initial("a", Timings)
            .Observe(new MemberUp("a", false, 0), At(0))
            .Observe(new HealthReported(Healthy("a")), At(0));
        var (_, change) = s.Decide(At(10));
        Assert.Null(change);
    }

    [Fact]
    public void First_master_is_a_healthy_node_other_than_the_singletons_own()
    {
        var (state, change) = Cluster("a", "a", "b", "c").Decide(At(0.1));
        Assert.NotNull(change);
        Assert.Equal("b", change.Node); // oldest node that is not the singleton's host
        Assert.Equal(1, change.Epoch);
        Assert.Equal("b", state.Master);
    }

    [Fact]
    public void Alone_the_singletons_node_waits_out_the_formation_grace_then_takes_the_role()
    {
        var s = Cluster("a", "a");
        Assert.Null(s.Decide(At(1)).Change);
        s = s.Observe(new HealthReported(Healthy("a")), At(5.5)); // reports keep coming every second
        Assert.Null(s.Decide(At(5.9)).Change);
        Assert.Equal("a", s.Decide(At(6.1)).Change?.Node);
    }

    [Fact]
    public void Witness_and_unhealthy_nodes_are_never_chosen()
    {
        var s = MasterState.Initial("w", Timings).Recover(null, At(0))
            .Observe(new MemberUp("w", true, 0), At(0))
            .Observe(new HealthReported(new NodeHealth("w", true, false, false, false, "witness", T0)), At(0))
            .Observe(new MemberUp("a", false, 1), At(0))
            .Observe(new HealthReported(Healthy("a", healthy: false)), At(0))
            .Observe(new MemberUp("b", false, 2), At(0))
            .Observe(new HealthReported(Healthy("b")), At(0));
        Assert.Equal("b", s.Decide(At(0.5)).Change?.Node);

        var onlyWitness = MasterState.Initial("w", Timings).Recover(null, At(0))
            .Observe(new MemberUp("w", true, 0), At(0))
            .Observe(new HealthReported(new NodeHealth("w", true, false, false, false, "witness", T0)), At(0));
        Assert.Null(onlyWitness.Decide(At(60)).Change);
    }

    [Fact]
    public void A_healthy_master_keeps_the_role_when_an_older_node_comes_back()
    {
        var s = WithMaster(Cluster("c", "b", "c"), "b");
        // "a" was master before it crashed; it returns, older by name and fully healthy
        s = s.Observe(new MemberUp("a", false, -1), At(1)).Observe(new HealthReported(Healthy("a")), At(1));
        for (var t = 1.0; t < 30; t += 0.5)
        {
            s = s.Observe(new HealthReported(Healthy("b")), At(t)).Heard("b", s.Epoch, At(t)); // it renews
            (s, var change) = s.Decide(At(t));
            Assert.Null(change);
        }
        Assert.Equal("b", s.Master);
    }

    [Fact]
    public void An_unreachable_master_is_replaced_only_after_its_lease_runs_out()
    {
        var s = WithMaster(Cluster("a", "a", "b", "c"), "b");
        (s, var verdict, _) = s.Renew("b", 1, At(1)); // lease until 3 s (+0.3 s margin)
        Assert.Equal(LeaseVerdict.Granted, verdict);
        s = s.Observe(new MemberReachability("b", false), At(1.5));

        (s, var early) = s.Decide(At(3.2));
        Assert.Null(early);
        Assert.Equal(LeaseVerdict.Denied, s.Renew("b", 1, At(3.2)).Verdict); // no extension once it is being replaced

        (s, var change) = s.Decide(At(3.31));
        Assert.NotNull(change);
        Assert.Equal(2, change.Epoch);
        Assert.Equal("c", change.Node);
        Assert.Equal("master-unreachable", change.Reason);
        Assert.Equal("b", change.Previous);
    }

    [Fact]
    public void A_master_that_becomes_reachable_again_before_its_lease_ends_keeps_the_role()
    {
        var s = WithMaster(Cluster("a", "a", "b", "c"), "b");
        s = s.Observe(new MemberReachability("b", false), At(1));
        (s, _) = s.Decide(At(1.1));
        s = s.Observe(new MemberReachability("b", true), At(1.5)).Observe(new HealthReported(Healthy("b")), At(1.5));
        (s, var change) = s.Decide(At(1.6));
        Assert.Null(change);
        Assert.Equal(LeaseVerdict.Granted, s.Renew("b", 1, At(1.7)).Verdict);
    }

    [Fact]
    public void A_master_whose_prometheus_stays_unhealthy_hands_over_to_a_healthy_standby()
    {
        var s = WithMaster(Cluster("a", "a", "b", "c"), "b");
        s = s.Observe(new HealthReported(Healthy("b", healthy: false)), At(1));
        foreach (var n in new[] { "a", "c" }) s = s.Observe(new HealthReported(Healthy(n)), At(3.9));
        (s, _, _) = s.Renew("b", 1, At(3.5)); // the master still renews: lease until 5.5 s
        (s, var tooEarly) = s.Decide(At(3.9)); // unhealthy for 2.9 s < 3 s
        Assert.Null(tooEarly);
        (s, var waitLease) = s.Decide(At(4.0)); // threshold reached: stop renewing, wait for the lease
        Assert.Null(waitLease);
        Assert.True(s.Revoking);
        Assert.Null(s.Decide(At(5.7)).Change);
        (s, var change) = s.Decide(At(5.81));
        Assert.Equal("c", change?.Node);
        Assert.Equal("prometheus-unhealthy", change?.Reason);
    }

    [Fact]
    public void An_unhealthy_master_stays_when_no_standby_is_healthy()
    {
        var s = WithMaster(Cluster("a", "a", "b"), "b");
        s = s.Observe(new HealthReported(Healthy("a", healthy: false)), At(0.5))
             .Observe(new HealthReported(Healthy("b", healthy: false)), At(0.5));
        (s, var change) = s.Decide(At(10));
        Assert.Null(change);
        Assert.Equal("b", s.Master);
        Assert.False(s.Revoking);
    }

    [Fact]
    public void Stale_role_changes_and_lease_requests_are_ignored()
    {
        var s = WithMaster(WithMaster(Cluster("a", "a", "b", "c"), "b"), "c"); // epoch 2, master c
        var stale = s.Apply(new MasterChanged(1, "b", "old", At(5), null), At(5));
        Assert.Equal(2, stale.Epoch);
        Assert.Equal("c", stale.Master);
        Assert.Equal(LeaseVerdict.Denied, s.Renew("b", 1, At(5)).Verdict);  // old master, old epoch
        Assert.Equal(LeaseVerdict.Denied, s.Renew("c", 1, At(5)).Verdict);  // right node, stale epoch
        Assert.Equal("stale epoch 1, current is 2", s.Renew("c", 1, At(5)).Reason);
        // an epoch this singleton does not know yet is not called stale
        Assert.Equal((LeaseVerdict.Denied, "epoch 3 is newer than this singleton's 2"), (s.Renew("c", 3, At(5)).Verdict, s.Renew("c", 3, At(5)).Reason));
        Assert.Equal(LeaseVerdict.Denied, s.Renew("a", 2, At(5)).Verdict);  // not the master
        Assert.Equal(LeaseVerdict.Granted, s.Renew("c", 2, At(5)).Verdict);
    }

    [Fact]
    public void Recovery_continues_from_the_highest_epoch_and_assumes_the_old_lease_is_running()
    {
        var last = new MasterChanged(7, "b", "x", At(-60), "a");
        var s = MasterState.Initial("a", Timings).Recover(last, At(0));
        s = s.Observe(new MemberUp("a", false, 0), At(0)).Observe(new HealthReported(Healthy("a")), At(0))
             .Observe(new MemberUp("c", false, 1), At(0)).Observe(new HealthReported(Healthy("c")), At(0));
        // "b" is gone, but the previous singleton may have just renewed its lease
        Assert.Null(s.Decide(At(1)).Change);
        var (_, change) = s.Decide(At(2.31));
        Assert.Equal(8, change?.Epoch);
        Assert.Equal("c", change?.Node);
    }

    [Fact]
    public void Epochs_only_go_up_across_successive_failovers()
    {
        var s = Cluster("a", "a", "b", "c", "d");
        var t = 0.0;
        (s, var first) = s.Decide(At(t));
        var seen = new List<long> { first!.Epoch };
        for (var round = 0; round < 6; round++)
        {
            var old = s.Master!;
            s = s.Observe(new MemberGone(old), At(t));              // the master crashes
            t += 2.5;                                               // its lease runs out
            foreach (var n in s.Members.Keys) s = s.Observe(new HealthReported(Healthy(n)), At(t));
            (s, var change) = s.Decide(At(t));
            Assert.NotNull(change);
            Assert.NotEqual(old, change.Node);
            seen.Add(change.Epoch);
            s = s.Observe(new MemberUp(old, false, 10 + round), At(t)) // and comes back as a standby
                 .Observe(new HealthReported(Healthy(old)), At(t));
        }
        Assert.Equal(seen.Order(), seen);
        Assert.Equal(seen.Count, seen.Distinct().Count());
        Assert.Equal(7, s.Epoch);
    }

    [Fact]
    public void A_singleton_without_a_majority_neither_decides_nor_renews()
    {
        var s = WithMaster(Cluster("a", "a", "b", "c"), "a");
        s = s.Observe(new MemberReachability("b", false), At(1)).Observe(new MemberReachability("c", false), At(1));
        Assert.False(s.HasQuorum);
        Assert.Equal(LeaseVerdict.Withheld, s.Renew("a", 1, At(1)).Verdict);
        Assert.Null(s.Decide(At(30)).Change);
    }

    [Fact]
    public void A_node_that_formed_a_cluster_of_its_own_never_names_a_master()
    {
        // three nodes configured, but this singleton's cluster is only itself (a restarted first seed)
        var island = MasterState.Initial("a", Timings with { ConfiguredNodes = 3 })
            .Recover(new MasterChanged(3, "a", "x", At(-10), null), At(0))
            .Observe(new MemberUp("a", false, 0), At(0))
            .Observe(new HealthReported(Healthy("a")), At(0));
        Assert.False(island.HasQuorum);
        Assert.Null(island.Decide(At(60)).Change);
        Assert.Equal(LeaseVerdict.Withheld, island.Renew("a", 3, At(1)).Verdict);

        var joined = island.Observe(new MemberUp("b", false, 1), At(1)).Observe(new HealthReported(Healthy("b")), At(1));
        Assert.True(joined.HasQuorum); // 2 of 3
    }

    [Fact]
    public void A_pair_node_alone_in_its_own_cluster_while_its_peer_is_up_is_an_island()
    {
        var lone = MasterState.Initial("a", Timings with { ConfiguredNodes = 2 })
            .Recover(new MasterChanged(2, "a", "x", At(-10), null), At(0))
            .Observe(new MemberUp("a", false, 0), At(0))
            .Observe(new HealthReported(Healthy("a")), At(0));
        Assert.True(lone.HasQuorum); // the peer crashed: the survivor carries on
        var island = lone.Observe(new OutsidersAlive(1), At(1));
        Assert.False(island.HasQuorum); // the peer is up elsewhere: do not become a second master
        Assert.Equal(LeaseVerdict.Withheld, island.Renew("a", 2, At(1)).Verdict);

        // a survivor whose peer was a member before keeps deciding when the peer restarts
        var survivor = lone.Observe(new MemberUp("b", false, 1), At(2)).Observe(new MemberGone("b"), At(3))
            .Observe(new OutsidersAlive(1), At(4));
        Assert.True(survivor.HasQuorum);
    }

    /// <summary>Seen in CI: the page lost the killed master's row once the cluster removed it. A downed node stays a row that says so.</summary>
    [Fact]
    public void A_downed_member_is_shown_gone_and_never_counted_one_that_left_is_forgotten()
    {
        var s = Cluster("a", "a", "b", "c");
        var quorum = s.ClusterSize;
        var downed = s.Observe(new MemberGone("b"), At(1)).Observe(new MemberGone("c", Left: true), At(1));
        var views = downed.HealthViews(At(2));
        Assert.Equal(["a", "b"], views.Select(v => v.Node));
        var b = views[1];
        Assert.False(b.Reachable || b.PrometheusHealthy || b.AlertmanagerHealthy);
        Assert.Contains("not a member since", b.Detail);
        Assert.False(downed.Members.ContainsKey("b"));
        Assert.True(downed.ClusterSize <= quorum);
        // back under its name: a member again, once
        var back = downed.Observe(new MemberUp("b", false, 5, "b#2"), At(3)).Observe(new HealthReported(Healthy("b")), At(3));
        Assert.Equal(["a", "b"], back.HealthViews(At(3)).Select(v => v.Node));
        Assert.True(back.HealthViews(At(3))[1].Reachable);
        // a day later a node that never came back is no longer shown
        Assert.Equal(["a"], downed.HealthViews(At(1) + MasterState.GoneKeptFor).Select(v => v.Node));
    }

    [Fact]
    public void A_master_restarted_under_its_name_loses_the_role_to_a_standby()
    {
        var s = MasterState.Initial("a", Timings).Recover(null, At(0))
            .Observe(new MemberUp("a", false, 0, "a#1"), At(0)).Observe(new HealthReported(Healthy("a")), At(0))
            .Observe(new MemberUp("b", false, 1, "b#1"), At(0)).Observe(new HealthReported(Healthy("b")), At(0))
            .Observe(new MemberUp("c", false, 2, "c#1"), At(0)).Observe(new HealthReported(Healthy("c")), At(0));
        (s, var first) = s.Decide(At(0.1));
        Assert.Equal("b", first?.Node);
        // b crashes and is back (new UID) before the singleton noticed it leave
        s = s.Observe(new MemberUp("b", false, 3, "b#2"), At(5)).Observe(new HealthReported(Healthy("b")), At(5));
        foreach (var n in new[] { "a", "c" }) s = s.Observe(new HealthReported(Healthy(n)), At(5));
        (s, var change) = s.Decide(At(5));
        Assert.Equal("master-restarted", change?.Reason);
        Assert.Equal("c", change?.Node);
        Assert.Equal(2, change?.Epoch);
    }

    [Fact]
    public void A_master_restarted_on_its_own_address_is_replaced_without_waiting_out_its_lease()
    {
        var s = MasterState.Initial("a", Timings).Recover(null, At(0))
            .Observe(new MemberUp("a", false, 0, "tcp://a:1#1"), At(0)).Observe(new HealthReported(Healthy("a")), At(0))
            .Observe(new MemberUp("b", false, 1, "tcp://b:1#1"), At(0)).Observe(new HealthReported(Healthy("b")), At(0))
            .Observe(new MemberUp("c", false, 2, "tcp://c:1#1"), At(0)).Observe(new HealthReported(Healthy("c")), At(0));
        (s, var first) = s.Decide(At(0.1));
        Assert.Equal("b", first?.Node);
        s = s.Renew("b", 1, At(1)).State;
        Assert.True(s.LeaseRunning(At(1.5)));
        // b's port is held by a new process: the one granted the lease is gone
        s = s.Observe(new MemberUp("b", false, 3, "tcp://b:1#2"), At(1.5)).Observe(new HealthReported(Healthy("b")), At(1.5));
        Assert.True(s.MasterRestartedInPlace);
        var (_, change) = s.Decide(At(1.5));
        Assert.Equal("master-restarted", change?.Reason);
        Assert.Equal("c", change?.Node);

        // on another address it could be a second process under the same name: the lease is waited out
        var moved = s.Observe(new MemberUp("b", false, 4, "tcp://b:2#3"), At(1.5));
        Assert.False(moved.MasterRestartedInPlace);
        Assert.Null(moved.Decide(At(1.6)).Change);
    }

    [Fact]
    public void A_recovered_master_that_is_absent_is_waited_for_until_its_address_proves_its_process_gone()
    {
        // every link was cut; the nodes restarted; the new singleton reads epoch 1 (b) from the ledgers
        var last = new MasterChanged(1, "b", "test", At(-30), null, "tcp://b:1#1");
        var s = MasterState.Initial("a", Timings)
            .Observe(new MemberUp("a", false, 0, "tcp://a:1#2"), At(0)).Observe(new HealthReported(Healthy("a")), At(0))
            .Observe(new MemberUp("c", false, 1, "tcp://c:1#2"), At(0)).Observe(new HealthReported(Healthy("c")), At(0))
            .Recover(last, At(0));
        Assert.True(s.AwaitingAbsentMaster(At(0.5)));
        Assert.Null(s.Decide(At(0.5)).Change); // its lease may run: the predecessor may have renewed it a moment ago

        // b's address answered as another process: the one granted the role is gone
        s = s.Observe(new MemberDied("b", "tcp://b:1#1"), At(0.6));
        Assert.False(s.AwaitingAbsentMaster(At(0.6)));
        var (_, change) = s.Decide(At(0.6));
        Assert.Equal("c", change?.Node);
        Assert.Equal(2, change?.Epoch);

        // without that proof, the lease is waited out
        var waited = MasterState.Initial("a", Timings)
            .Observe(new MemberUp("a", false, 0, "tcp://a:1#2"), At(0)).Observe(new HealthReported(Healthy("a")), At(0))
            .Observe(new MemberUp("c", false, 1, "tcp://c:1#2"), At(0)).Observe(new HealthReported(Healthy("c")), At(0))
            .Recover(last, At(0));
        Assert.Null(waited.Decide(At(2.2)).Change);
        foreach (var n in new[] { "a", "c" }) waited = waited.Observe(new HealthReported(Healthy(n)), At(2.4));
        Assert.False(waited.AwaitingAbsentMaster(At(2.4)));
        Assert.Equal("c", waited.Decide(At(2.4)).Change?.Node);
    }

    [Fact]
    public void A_pair_keeps_deciding_with_one_side_unreachable()
    {
        var pair = MasterState.Initial("a", Timings with { ConfiguredNodes = 2 }).Recover(null, At(0));
        foreach (var n in new[] { "a", "b" })
            pair = pair.Observe(new MemberUp(n, false, n == "a" ? 0 : 1), At(0)).Observe(new HealthReported(Healthy(n)), At(0));
        var s = WithMaster(pair, "b");
        s = s.Observe(new MemberReachability("b", false), At(1));
        Assert.True(s.HasQuorum); // the tie-breaker lease decides which side of a pair survives
        Assert.Equal("a", s.Decide(At(5)).Change?.Node);
    }

    [Fact]
    public void Switchover_moves_the_role_as_soon_as_the_master_releases_its_lease()
    {
        var s = WithMaster(Cluster("a", "a", "b", "c"), "b");
        (s, var error) = s.RequestSwitchover("c", At(1));
        Assert.Null(error);
        Assert.Equal(LeaseVerdict.Denied, s.Renew("b", 1, At(1.1)).Verdict);
        Assert.Null(s.Decide(At(1.2)).Change); // lease still running, not released yet
        s = s.Released("b", 1, At(1.3));
        var (after, change) = s.Decide(At(1.3));
        Assert.Equal("c", change?.Node);
        Assert.Equal("switchover", change?.Reason);
        Assert.Null(after.SwitchoverTarget);
    }

    [Fact]
    public void A_master_that_gives_its_lease_back_unasked_is_replaced_at_once_as_one_that_left()
    {
        // a graceful stop: the master steps down first, then leaves the cluster
        var s = Renewed(WithMaster(Cluster("a", "a", "b", "c"), "b", at: 0), 0.9);
        Assert.Null(s.Decide(At(1)).Change);
        var (after, change) = s.Released("b", 1, At(1)).Decide(At(1));
        Assert.Equal("master-left", change?.Reason);
        Assert.NotEqual("b", change?.Node);
        Assert.False(after.MasterReleased); // the new reign has given nothing back
        // a release of another epoch or node changes nothing
        Assert.Null(s.Released("b", 0, At(1)).Decide(At(1)).Change);
        Assert.Null(s.Released("c", 1, At(1)).Decide(At(1)).Change);
    }

    [Fact]
    public void Switchover_to_an_ineligible_node_is_refused_with_a_reason()
    {
        var s = WithMaster(Cluster("a", "a", "b"), "b");
        Assert.Contains("already the master", s.RequestSwitchover("b", At(1)).Error);
        Assert.Contains("unknown node", s.RequestSwitchover("zz", At(1)).Error);
        s = s.Observe(new HealthReported(Healthy("a", healthy: false)), At(1));
        Assert.Contains("not eligible", s.RequestSwitchover("a", At(1)).Error);
        Assert.Contains("no healthy standby", s.RequestSwitchover(null, At(1)).Error);
    }

    [Fact]
    public void Failover_needs_no_master_and_with_force_takes_a_node_whose_prometheus_is_unhealthy()
    {
        // every Prometheus unhealthy: nobody is eligible, so the singleton names no master by itself
        var s = Cluster("a", "a", "b", "c");
        foreach (var n in new[] { "a", "b", "c" }) s = s.Observe(new HealthReported(Healthy(n, healthy: false)), At(1));
        Assert.Null(s.Decide(At(2)).Change);
        Assert.Contains("no healthy standby", s.RequestFailover(null, false, At(2)).Error);
        Assert.Contains("add --force", s.RequestFailover("c", false, At(2)).Error);
        Assert.Contains("unknown node", s.RequestFailover("zz", true, At(2)).Error);
        (s, var error) = s.RequestFailover("c", true, At(2));
        Assert.Null(error);
        var (after, change) = s.Decide(At(2));
        Assert.Equal(("c", MasterState.ForcedFailover), (change?.Node, change?.Reason));
        Assert.Null(after.SwitchoverTarget);
        Assert.False(after.ForceTarget);
        // kept although its Prometheus stays unhealthy; a later singleton reads that from the record
        after = after.Observe(new HealthReported(Healthy("c", healthy: false)), At(4)).Heard("c", after.Epoch, At(4));
        Assert.Null(after.MasterProblem(At(5)));
        var recovered = Cluster("b", "a", "b", "c").Observe(new HealthReported(Healthy("c", healthy: false)), At(1)).Recover(change, At(1))
            .Heard("c", change!.Epoch, At(4));
        Assert.Null(recovered.MasterProblem(At(4.5)));
        Assert.Equal("prometheus-unhealthy", WithMaster(Cluster("b", "a", "b", "c"), "c")
            .Observe(new HealthReported(Healthy("c", healthy: false)), At(1)).MasterProblem(At(4.5)));
    }

    [Fact]
    public void Paused_nothing_moves_by_itself_but_an_operator_failover_does_and_resume_brings_failover_back()
    {
        var s = WithMaster(Cluster("a", "a", "b", "c"), "b") with
        {
            Maintenance = new PromHa.Messages.Ledger.MaintenanceChanged(1, true, "ops", At(0)),
        };
        s = s.Observe(new MemberReachability("b", false), At(1));
        Assert.Equal("master-unreachable", s.MasterProblem(At(1)));
        var (paused, change) = s.Decide(At(5));
        Assert.Null(change);              // paused: the master is not replaced, however long it is gone
        Assert.False(paused.Revoking);
        Assert.Null(paused.Decide(At(9)).Change);
        // the operator can still move the role
        var (failing, error) = paused.RequestFailover("c", false, At(4));
        Assert.Null(error);
        Assert.Equal(("c", "failover"), (failing.Decide(At(4.5)).Change?.Node, failing.Decide(At(4.5)).Change?.Reason));
        // resumed: the unreachable master is replaced again
        var resumed = paused with { Maintenance = new PromHa.Messages.Ledger.MaintenanceChanged(2, false, "ops", At(4)) };
        Assert.False(resumed.Paused);
        Assert.Equal("c", resumed.Decide(At(4.5)).Change?.Node);
    }

    [Fact]
    public void Failover_from_a_live_master_revokes_it_and_waits_for_its_lease()
    {
        var s = WithMaster(Cluster("a", "a", "b", "c"), "b");
        Assert.Contains("already the master", s.RequestFailover("b", true, At(1)).Error);
        (s, var error) = s.RequestFailover("c", false, At(1));
        Assert.Null(error);
        Assert.Equal(LeaseVerdict.Denied, s.Renew("b", 1, At(1.1)).Verdict);
        Assert.Null(s.Decide(At(1.2)).Change); // the old lease still runs: never two masters
        var (_, change) = s.Decide(At(1) + Timings.LeaseDuration + Timings.LeaseMargin + TimeSpan.FromSeconds(0.1));
        Assert.Equal(("c", "failover"), (change?.Node, change?.Reason));
    }

    [Fact]
    public void A_master_that_restarted_while_the_singleton_moved_gets_no_lease_and_the_role_moves_under_a_new_epoch()
    {
        // The new singleton (on witness w) reads epoch 2, granted to node1's old incarnation; node1 is back already.
        var s = MasterState.Initial("w", Timings with { ConfiguredNodes = 3 })
            .Observe(new MemberUp("w", true, 0, "w#1"), At(0))
            .Observe(new MemberUp("node2", false, 1, "n2#1"), At(0))
            .Observe(new MemberUp("node1", false, 2, "n1#2"), At(0))
            .Observe(new HealthReported(Healthy("node1")), At(0))
            .Observe(new HealthReported(Healthy("node2")), At(0))
            .Recover(new MasterChanged(2, "node1", "master-unreachable", At(-10), "node2", "n1#1"), At(0));
        Assert.Equal("master-restarted", s.MasterProblem(At(0)));
        var (renewed, verdict, reason) = s.Renew("node1", 2, At(0.5));
        Assert.Equal(LeaseVerdict.Denied, verdict);
        Assert.Contains("restarted", reason);

        // after the old incarnation's lease ran out, the healthy standby takes over at a new epoch
        var (after, change) = renewed.Decide(At(3));
        Assert.NotNull(change);
        Assert.Equal(3, change!.Epoch);
        Assert.Equal("node2", change.Node);
        Assert.Equal("master-restarted", change.Reason);
        Assert.Equal("n2#1", change.Incarnation);
        Assert.Equal(LeaseVerdict.Granted, after.Renew("node2", 3, At(3.1)).Verdict);
    }

    [Fact]
    public void A_restarted_master_with_nobody_else_eligible_takes_the_role_again_under_a_new_epoch()
    {
        var s = MasterState.Initial("w", Timings with { ConfiguredNodes = 3 })
            .Observe(new MemberUp("w", true, 0, "w#1"), At(0))
            .Observe(new MemberUp("node2", false, 1, "n2#1"), At(0))
            .Observe(new MemberUp("node1", false, 2, "n1#2"), At(0))
            .Observe(new HealthReported(Healthy("node1")), At(0))
            .Observe(new HealthReported(Healthy("node2", healthy: false)), At(0))
            .Recover(new MasterChanged(2, "node1", "x", At(-10), null, "n1#1"), At(0));
        var (_, change) = s.Decide(At(3));
        Assert.Equal(3, change!.Epoch);
        Assert.Equal("node1", change.Node);
        Assert.Equal("n1#2", change.Incarnation);
    }

    [Fact]
    public void A_journal_entry_without_an_incarnation_counts_the_member_seen_at_recovery()
    {
        var s = MasterState.Initial("w", Timings with { ConfiguredNodes = 3 })
            .Observe(new MemberUp("node1", false, 0, "n1#1"), At(0))
            .Observe(new MemberUp("node2", false, 1, "n2#1"), At(0))
            .Observe(new HealthReported(Healthy("node1")), At(0))
            .Observe(new HealthReported(Healthy("node2")), At(0))
            .Recover(new MasterChanged(2, "node1", "x", At(-10), null), At(0));
        Assert.Null(s.MasterProblem(At(0)));
        Assert.Equal(LeaseVerdict.Granted, s.Renew("node1", 2, At(0.5)).Verdict);
    }

    [Fact]
    public void A_record_is_committed_only_on_a_majority_of_the_configured_nodes_and_a_pair_is_the_exception()
    {
        var three = Cluster("a", "a") with { Timings = Timings with { ConfiguredNodes = 3 } };
        Assert.False(three.IsMajority(1)); // a minority that believes itself alone
        Assert.True(three.IsMajority(2));
        var five = Cluster("a", "a", "b", "c", "d", "e");
        Assert.False(five.IsMajority(2));
        Assert.True(five.IsMajority(3));
        var pair = Cluster("a", "a", "b") with { Timings = Timings with { ConfiguredNodes = 2 } };
        Assert.True(pair.IsMajority(1)); // docs/architecture.md, Topologies: the pure pair's documented exception
    }

    [Fact]
    public void A_decision_that_reached_a_minority_is_undone_and_its_epoch_number_is_never_reused()
    {
        var before = WithMaster(Cluster("a", "a", "b", "c") with { Timings = Timings with { ConfiguredNodes = 3 } }, "b");
        var cut = before.Observe(new MemberReachability("b", false), At(1));
        var (decided, change) = cut.Decide(At(5));
        Assert.Equal(2, change!.Epoch);
        Assert.Equal(change.Node, decided.Master);
        Assert.NotEqual("b", change.Node);

        // journaled on 1 of 3 ledgers: back to epoch 1 with b as master, observations kept
        var undone = decided.Observe(new HealthReported(Healthy("c", healthy: false)), At(5.1)).Discard(change, cut);
        Assert.Equal(1, undone.Epoch);
        Assert.Equal("b", undone.Master);
        Assert.False(undone.Members["c"].Health!.PrometheusHealthy);

        // the next decision skips the discarded number
        var healed = undone.Observe(new HealthReported(Healthy("c")), At(6)).Observe(new HealthReported(Healthy("a")), At(6));
        var (_, again) = healed.Decide(At(10));
        Assert.Equal(3, again!.Epoch);
    }

    [Fact]
    public void A_singleton_that_hears_no_majority_decides_nothing_even_before_its_peers_are_marked_unreachable()
    {
        // a's link was just cut: its failure detector marked c (the master) unreachable, not yet b,
        // whose health reports stopped arriving at the same moment
        var s = WithMaster(Cluster("a", "a", "b", "c") with { Timings = Timings with { ConfiguredNodes = 3 } }, "c");
        s = s.Observe(new MemberReachability("c", false), At(4)).Observe(new HealthReported(Healthy("a")), At(6));
        Assert.True(s.HasQuorum);            // 2 of 3 not marked unreachable
        Assert.False(s.HearsMajority(At(6)));  // but only a was heard from lately
        Assert.Null(s.Decide(At(6)).Change);
        // b's reports arrive again: a real majority, and the role moves
        s = s.Observe(new HealthReported(Healthy("b")), At(6.5));
        Assert.Equal("b", s.Decide(At(7)).Change!.Node);
    }

    private static MasterState Renewed(MasterState s, double at) => s.Heard(s.Master!, s.Epoch, At(at));

    [Fact]
    public void A_master_proven_dead_is_replaced_at_once_without_waiting_out_its_lease()
    {
        var s = WithMaster(Cluster("a", "a", "b", "c").Observe(new MemberUp("b", false, 1, "b#1"), At(0)), "b", at: 0);
        Assert.Equal("b#1", s.MasterIncarnation);
        s = s.Observe(new HealthReported(Healthy("a")), At(0.9)).Observe(new HealthReported(Healthy("c")), At(0.9));
        s = s.Observe(new MemberDied("b", "b#1"), At(1)); // its lease, granted at 0, runs to 2.3 s
        Assert.True(s.MasterProvenDead);
        var (state, change) = s.Decide(At(1.01));
        Assert.NotNull(change);
        Assert.Equal(MasterState.MasterProcessDied, change.Reason);
        Assert.Equal("c", change.Node); // not the singleton's own node
        Assert.False(state.MasterProvenDead);
    }

    [Fact]
    public void A_death_of_another_incarnation_proves_nothing_about_the_master()
    {
        var s = WithMaster(Cluster("a", "a", "b", "c").Observe(new MemberUp("b", false, 1, "b#2"), At(0)), "b");
        s = s.Observe(new MemberDied("b", "b#1"), At(1)); // the previous process under that name
        Assert.False(s.MasterProvenDead);
        Assert.True(s.Members["b"].Reachable);
        Assert.Null(s.MasterProblem(At(1)));
    }

    [Fact]
    public void A_singleton_that_knows_the_master_died_does_not_assume_a_running_lease_on_recovery()
    {
        var dead = MasterState.Initial("a", Timings) with { Dead = ["b#1"] };
        var last = new MasterChanged(4, "b", "test", At(0), null, "b#1");
        Assert.False(dead.Recover(last, At(5)).LeaseRunning(At(5)));
        Assert.True(MasterState.Initial("a", Timings).Recover(last, At(5)).LeaseRunning(At(5)));
    }

    [Fact]
    public void A_master_silent_past_its_lease_loses_the_role_before_the_failure_detector_fires()
    {
        var s = WithMaster(Cluster("a", "a", "b", "c"), "b", at: 0);
        s = Renewed(s, 0.5).Renew("b", s.Epoch, At(0.5)).State; // the last renewal, then it freezes
        foreach (var n in new[] { "a", "c" }) s = s.Observe(new HealthReported(Healthy(n)), At(2.7));
        Assert.Null(s.MasterProblem(At(2.7))); // 2.2 s since it asked: within lease + margin
        Assert.Equal("master-silent", s.MasterProblem(At(2.9)));
        var (_, change) = s.Decide(At(2.9));
        Assert.Equal("c", change?.Node);
        Assert.Equal("master-silent", change?.Reason);
    }

    [Fact]
    public void Silence_is_counted_afresh_after_the_singleton_itself_stalled()
    {
        var s = WithMaster(Cluster("a", "a", "b", "c"), "b", at: 0);
        s = s with { SilenceClockFrom = At(5) }; // the singleton did not run from 0 to 5 s
        Assert.Null(s.MasterProblem(At(6)));
        Assert.Equal("master-silent", s.MasterProblem(At(7.4)));
        Assert.Null(Renewed(s, 7).MasterProblem(At(7.4)));
    }

    [Fact]
    public void A_master_whose_prometheus_is_down_loses_the_role_without_waiting_unhealthy_after()
    {
        var s = Renewed(WithMaster(Cluster("a", "a", "b", "c"), "b", at: 0), 0.9);
        var down = Healthy("b", healthy: false) with { PrometheusDown = true };
        s = s.Observe(new HealthReported(down), At(1));
        Assert.Equal(MasterState.PrometheusDown, s.MasterProblem(At(1)));
        // only unhealthy (slow, starting): the threshold still applies
        var slow = Renewed(WithMaster(Cluster("a", "a", "b", "c"), "b", at: 0), 0.9).Observe(new HealthReported(Healthy("b", healthy: false)), At(1));
        Assert.Null(slow.MasterProblem(At(1)));
        // the role moves once the lease is given back (the actor asks the master for it) or runs out
        var (revoking, none) = s.Decide(At(1));
        Assert.Null(none);
        Assert.True(revoking.Revoking);
        var (_, change) = revoking.Released("b", revoking.Epoch, At(1.05)).Decide(At(1.05));
        Assert.Equal(MasterState.PrometheusDown, change?.Reason);
        Assert.Equal("c", change?.Node);
    }
}
