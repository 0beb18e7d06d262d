using System.Text;
using Akka.Actor;
using Akka.TestKit.Xunit;
using PromHa.Node.Cluster;
using PromHa.Node.Config;
using PromHa.Node.Settings;

namespace PromHa.Tests.Config;

/// <summary>
/// The conf dir's keeper with a probe in ConfigSync's place: a standby's conf dir follows the
/// version the node runs (saving local edits first); the master's is watched once it runs the
/// latest version, and an edit there is submitted through ConfigSync.
/// </summary>
public sealed class ConfDirActorTests : TestKit, IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("promha-confdir").FullName;
    private string Conf => Path.Combine(_dir, "conf");
    private string Data => Path.Combine(_dir, "data");

    public new void Dispose()
    {
        base.Dispose();
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    private NodeSettings Settings() => new()
    {
        Node = { Name = "node-a" },
        DataDir = Data,
        ConfDir = Conf,
        Config = { DebounceMs = 50, RescanSeconds = 60 },
    };

    private static ConfBundle Tree(string rules) => ConfBundle.Of(new Dictionary<string, byte[]>
    {
        ["prometheus.yml"] = "scrape_configs: []\n"u8.ToArray(),
        ["rules/r.yml"] = Encoding.UTF8.GetBytes(rules),
    });

    private (IActorRef Actor, Akka.TestKit.TestProbe Sync, BundleStore Store) Start(NodeView view)
    {
        Directory.CreateDirectory(Conf);
        var store = new BundleStore(Data);
        var sync = CreateTestProbe();
        var actor = Sys.ActorOf(Props.Create(() => new ConfDirActor(Settings(), view, store, sync.Ref)));
        return (actor, sync, store);
    }

    private string Read(string rel) => File.ReadAllText(Path.Combine(Conf, rel));

    [Fact]
    public void An_edit_counts_as_the_masters_from_just_before_the_promotion_the_kernel_clock_lags_by_a_tick()
    {
        var promoted = new DateTime(2026, 12, 6, 22, 47, 51, 664, DateTimeKind.Utc);
        Assert.False(ConfDirActor.MadeAsMaster(promoted, null)); // never master: a standby's edit
        Assert.True(ConfDirActor.MadeAsMaster(promoted.AddMilliseconds(-4), promoted)); // one coarse tick before (CI)
        Assert.True(ConfDirActor.MadeAsMaster(promoted.AddMinutes(5), promoted));
        Assert.False(ConfDirActor.MadeAsMaster(promoted - ConfDirActor.PromotionGrace - TimeSpan.FromMilliseconds(1), promoted));
        Assert.False(ConfDirActor.MadeAsMaster(promoted.AddHours(-1), promoted)); // an old standby edit
    }

    [Fact]
    public void A_standbys_conf_dir_follows_the_version_it_runs_and_local_edits_are_saved_first()
    {
        var (actor, sync, store) = Start(new NodeView("node-a", witness: false));
        var v1 = Tree("groups: [] # v1\n");
        store.Save(v1);
        actor.Tell(new VersionApplied(1, v1));
        AwaitAssert(() => Assert.Equal("groups: [] # v1\n", Read("rules/r.yml")), TimeSpan.FromSeconds(5));

        // an edit on the standby is not authoritative: version 2 replaces it, after a backup
        File.WriteAllText(Path.Combine(Conf, "rules", "r.yml"), "groups: [] # edited on the standby\n");
        var v2 = Tree("groups: [] # v2\n");
        store.Save(v2);
        actor.Tell(new VersionApplied(2, v2));
        AwaitAssert(() => Assert.Equal("groups: [] # v2\n", Read("rules/r.yml")), TimeSpan.FromSeconds(5));
        var backup = Assert.Single(Directory.GetFiles(Path.Combine(Data, "config", "conf-backups"), "*.tar"));
        Assert.Contains("local-edits-before-v2", backup);
        using (var tar = new System.Formats.Tar.TarReader(File.OpenRead(backup)))
        {
            System.Formats.Tar.TarEntry? e;
            var found = false;
            while ((e = tar.GetNextEntry()) is not null)
                if (e.Name.EndsWith("r.yml") && new StreamReader(e.DataStream!).ReadToEnd().Contains("edited on the standby")) found = true;
            Assert.True(found, "the standby's edit is in the backup");
        }

        // a standby submits nothing, whatever its dir holds
        actor.Tell(new ConfigRunning(2, v2.Hash, CaughtUp: true));
        sync.ExpectNoMsg(TimeSpan.FromMilliseconds(300));
    }

    [Fact]
    public void The_masters_conf_dir_is_watched_once_it_runs_the_latest_version_and_an_edit_is_submitted_through_config_sync()
    {
        var view = new NodeView("node-a", witness: false);
        var (actor, sync, store) = Start(view);
        var v1 = Tree("groups: [] # v1\n");
        store.Save(v1);
        ConfTree.Sync(Conf, v1, null);
        view.SetRole(1, "node-a", holdsLease: true);
        Thread.Sleep(200); // file times come from the kernel's coarse clock (a few ms behind): the edit below is after the promotion

        // behind the latest version: not watched yet, so an edit now is not a candidate
        actor.Tell(new ConfigRunning(1, v1.Hash, CaughtUp: false));
        File.WriteAllText(Path.Combine(Conf, "rules", "r.yml"), "groups: [] # early\n");
        sync.ExpectNoMsg(TimeSpan.FromMilliseconds(500));

        // caught up: the edit made while this node was master is the operator's next version
        actor.Tell(new ConfigRunning(1, v1.Hash, CaughtUp: true));
        var submitted = sync.ExpectMsg<SubmitTree>(TimeSpan.FromSeconds(5));
        Assert.Equal("watch:node-a", submitted.Source);
        Assert.Equal("groups: [] # early\n", Encoding.UTF8.GetString(submitted.Bundle.Get("rules/r.yml")!));

        // a later edit is seen by the watcher; one only in size and time, not content, would be skipped
        sync.Send(actor, new SubmitResult(SubmitOutcome.Committed, 2, submitted.Bundle.Hash, null));
        File.WriteAllText(Path.Combine(Conf, "rules", "r.yml"), "groups: [] # next\n");
        var next = sync.FishForMessage<SubmitTree>(t => Encoding.UTF8.GetString(t.Bundle.Get("rules/r.yml")!).Contains("next"), TimeSpan.FromSeconds(5));
        Assert.Equal("watch:node-a", next.Source);

        // its own committed version, applied, is not written back over newer edits
        actor.Tell(new VersionApplied(2, submitted.Bundle));
        actor.Tell(new ConfigRunning(2, submitted.Bundle.Hash, CaughtUp: true));
        Thread.Sleep(300);
        Assert.Equal("groups: [] # next\n", Read("rules/r.yml"));
    }

    [Fact]
    public void An_unreadable_conf_dir_on_the_master_is_reported_as_a_rejection_naming_the_file()
    {
        var view = new NodeView("node-a", witness: false);
        var (actor, sync, store) = Start(view);
        var v1 = Tree("groups: []\n");
        store.Save(v1);
        ConfTree.Sync(Conf, v1, null);
        view.SetRole(1, "node-a", holdsLease: true);
        actor.Tell(new ConfigRunning(1, v1.Hash, CaughtUp: true));
        sync.ExpectNoMsg(TimeSpan.FromMilliseconds(300)); // unchanged: nothing to submit

        File.WriteAllText(Path.Combine(Conf, "bad\u0001name.yml"), "x: 1\n");
        var rejected = sync.FishForMessage<PromHa.Messages.Config.CandidateRejected>(_ => true, TimeSpan.FromSeconds(5));
        Assert.Contains("bad", rejected.Reason);
        Assert.Equal("watch:node-a", rejected.Source);
    }
}
