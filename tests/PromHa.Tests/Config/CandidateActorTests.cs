using Akka.Actor;
using Akka.TestKit.Xunit;
using PromHa.Node.Config;
using PromHa.Node.Settings;

namespace PromHa.Tests.Config;

/// <summary>
/// The candidate pipeline with stand-in tools (scripts that take their time, or refuse): the tools
/// run outside the mailbox, candidates queue one behind the other, every asker gets its own answer,
/// and ConfigSyncActor hears each outcome.
/// </summary>
public sealed class CandidateActorTests : TestKit, IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("promha-candidates").FullName;

    public new void Dispose()
    {
        base.Dispose();
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    private string Script(string name, string body)
    {
        var path = Path.Combine(_dir, name);
        File.WriteAllText(path, "#!/bin/sh\n" + body + "\n");
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return path;
    }

    private NodeSettings Settings(string promtool, string amtool) => new()
    {
        Node = { Name = "node-a" },
        DataDir = Path.Combine(_dir, "data"),
        Config = { Promtool = promtool, Amtool = amtool },
    };

    private static ConfBundle Tree(string marker) => ConfBundle.Of(new Dictionary<string, byte[]>
    {
        ["prometheus.yml"] = "scrape_configs: []\n"u8.ToArray(),
        ["business/marker.txt"] = System.Text.Encoding.UTF8.GetBytes(marker + "\n"), // copied as it is into the staged tree
        ["alertmanager.yml"] = "route:\n  receiver: d\nreceivers:\n  - name: d\n"u8.ToArray(),
    });

    private static RenderContext Context() => new("node-a", ConfigMode.Mirror, "promha_replica", true, null, []);

    [Fact]
    public void A_slow_tool_run_queues_the_next_candidate_and_each_asker_gets_its_own_verdict()
    {
        // promtool takes a second; it refuses a tree that says "refuse"
        var promtool = Script("promtool", "sleep 1\nif grep -q refuse business/marker.txt; then echo 'FAILED: prometheus.yml: refused by the stand-in'; exit 1; fi\nexit 0");
        var amtool = Script("amtool", "exit 0");
        var sync = CreateTestProbe();
        var candidates = Sys.ActorOf(Props.Create(() => new CandidateActor(Settings(promtool, amtool), new BundleStore(Path.Combine(_dir, "data"), null), sync.Ref)));
        var first = CreateTestProbe();
        var second = CreateTestProbe();

        var good = Tree("fine");
        var bad = Tree("refuse");
        candidates.Tell(new ValidateCandidate(new SubmitTree(good, "api:test", "ops", DryRun: true), Context(), null, null, first.Ref));
        candidates.Tell(new ValidateCandidate(new SubmitTree(bad, "api:test", "ops", DryRun: true), Context(), null, null, second.Ref));

        // the mailbox is free while the tool runs: the second waits its turn instead of being lost or refused
        second.ExpectNoMsg(TimeSpan.FromMilliseconds(500));
        var r1 = first.ExpectMsg<SubmitResult>(TimeSpan.FromSeconds(10));
        Assert.Equal(SubmitOutcome.Valid, r1.Outcome);
        var r2 = second.ExpectMsg<SubmitResult>(TimeSpan.FromSeconds(10));
        Assert.Equal(SubmitOutcome.Rejected, r2.Outcome);
        Assert.Contains("refused by the stand-in", r2.Reason);

        // the sync actor hears both outcomes, in order; a dry run is not a rejection to record
        var d1 = sync.ExpectMsg<CandidateDone>();
        var d2 = sync.ExpectMsg<CandidateDone>();
        Assert.Equal(good.Hash, d1.Result.BundleHash);
        Assert.Equal(bad.Hash, d2.Result.BundleHash);
        Assert.Null(d2.Rejected);
        // a dry run stores nothing
        Assert.False(new BundleStore(Path.Combine(_dir, "data"), null).Has(good.Hash));
    }

    [Fact]
    public void The_latest_versions_content_is_unchanged_without_running_a_tool_and_a_refused_tree_is_recorded()
    {
        var promtool = Script("promtool", "echo 'FAILED: prometheus.yml: nothing passes'\nexit 1");
        var amtool = Script("amtool", "exit 0");
        var sync = CreateTestProbe();
        var candidates = Sys.ActorOf(Props.Create(() => new CandidateActor(Settings(promtool, amtool), new BundleStore(Path.Combine(_dir, "data"), null), sync.Ref)));
        var tree = Tree("same");

        candidates.Tell(new ValidateCandidate(new SubmitTree(tree, "api:test", "ops"), Context(), tree.Hash, 7, TestActor));
        var same = ExpectMsg<SubmitResult>();
        Assert.Equal((SubmitOutcome.Unchanged, 7L), (same.Outcome, same.Version!.Value));

        candidates.Tell(new ValidateCandidate(new SubmitTree(tree, "watch:node-a", "ops"), Context(), "another", 7, TestActor));
        var refused = ExpectMsg<SubmitResult>(TimeSpan.FromSeconds(10));
        Assert.Equal(SubmitOutcome.Rejected, refused.Outcome);
        Assert.Contains("nothing passes", refused.Reason);
        sync.ExpectMsg<CandidateDone>(); // the unchanged one
        var done = sync.ExpectMsg<CandidateDone>();
        Assert.NotNull(done.Rejected);
        Assert.Equal(("watch:node-a", "node-a"), (done.Rejected!.Source, done.Rejected.Node));
    }
}
