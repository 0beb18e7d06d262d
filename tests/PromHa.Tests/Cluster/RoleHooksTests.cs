using Akka.Actor;
using Akka.TestKit.Xunit;
using PromHa.Node.Cluster;
using PromHa.Node.Settings;

namespace PromHa.Tests.Cluster;

/// <summary>The on-role-change hooks with real scripts: in order, one at a time, never killed by the next change, bounded by the timeout.</summary>
public sealed class RoleHooksTests : TestKit, IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("promha-hooks").FullName;

    private string Script(string name, string body)
    {
        var path = Path.Combine(_dir, name);
        File.WriteAllText(path, "#!/bin/sh\n" + body + "\n");
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return path;
    }

    private NodeSettings Settings(int timeoutSeconds, params string[] hooks) => new()
    {
        Node = { Name = "node-a" },
        DataDir = _dir,
        Hooks = { OnRoleChange = hooks.ToList(), TimeoutSeconds = timeoutSeconds },
    };

    [Fact]
    public async Task Role_changes_queue_behind_a_running_hook_run_every_script_in_order_and_are_recorded()
    {
        var log = Path.Combine(_dir, "runs.log");
        var slow = Script("slow.sh", $"echo \"start $1 $2 $PROMHA_PREVIOUS_ROLE\" >> {log}\nsleep 1\necho \"end $1\" >> {log}");
        var second = Script("second.sh", $"echo \"second $1\" >> {log}\nexit 3");
        var view = new NodeView("node-a", false);
        var hooks = Sys.ActorOf(Props.Create(() => new RoleHooksActor(Settings(10, slow, second), view)));
        view.SetRole(1, "node-a", true);
        AwaitCondition(() => File.Exists(log) && File.ReadAllText(log).Contains("start master"), TimeSpan.FromSeconds(5));
        view.SetRole(2, "node-b", false); // while the master hook still runs
        await AwaitAssertAsync(async () =>
        {
            var runs = await hooks.Ask<List<HookRun>>(GetHookRuns.Instance, TimeSpan.FromSeconds(3));
            Assert.Equal(4, runs.Count);
        }, TimeSpan.FromSeconds(15), TimeSpan.FromMilliseconds(200));
        Assert.Equal(["start master 1 ", "end master", "second master", "start standby 2 master", "end standby", "second standby"],
            File.ReadAllLines(log));
        var recorded = await hooks.Ask<List<HookRun>>(GetHookRuns.Instance, TimeSpan.FromSeconds(3));
        Assert.Equal([0, 3, 0, 3], recorded.Select(r => r.ExitCode ?? -1));
        Assert.Equal(["master", "master", "standby", "standby"], recorded.Select(r => r.Role));
        Assert.Equal(4, File.ReadAllLines(Path.Combine(_dir, "hooks.jsonl")).Length); // kept across restarts
    }

    [Fact]
    public async Task A_hook_that_outlives_its_timeout_is_killed_and_recorded_as_timed_out()
    {
        var hang = Script("hang.sh", "echo waiting\nsleep 30");
        var view = new NodeView("node-a", false);
        var hooks = Sys.ActorOf(Props.Create(() => new RoleHooksActor(Settings(1, hang), view)));
        view.SetRole(1, "node-b", false);
        await AwaitAssertAsync(async () =>
        {
            var run = Assert.Single(await hooks.Ask<List<HookRun>>(GetHookRuns.Instance, TimeSpan.FromSeconds(3)));
            Assert.True(run.TimedOut);
            Assert.Null(run.ExitCode);
            Assert.Equal("standby", run.Role);
            Assert.Contains("waiting", run.Output);
            Assert.True(run.Seconds < 10);
        }, TimeSpan.FromSeconds(10), TimeSpan.FromMilliseconds(200));
    }

    public new void Dispose()
    {
        base.Dispose();
        Directory.Delete(_dir, true);
    }
}
