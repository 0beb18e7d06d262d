using System.CommandLine;
using PromHa.Node;
using PromHa.Node.Cluster;
using PromHa.Node.Console;
using PromHa.Node.Settings;

var root = new RootCommand("PromHa: high availability for Prometheus and Alertmanager");
root.Options.Add(ConsoleCommands.ApiOption);
root.Options.Add(ConsoleCommands.TokenFileOption);
root.Options.Add(ConsoleCommands.CaFileOption);
root.Options.Add(ConsoleCommands.OutputOption);

var configOption = new Option<string?>("--config", "-c") { Description = "Path to promha.yml" };
var setOption = new Option<string[]>("--set")
{
    Description = "Override a setting, e.g. --set cluster.port=4054 (repeatable)",
    AllowMultipleArgumentsPerToken = false,
};
var run = new Command("run", "Run a PromHa node") { configOption, setOption };
run.SetAction(async (p, ct) =>
{
    NodeSettings settings;
    try
    {
        var overrides = (p.GetValue(setOption) ?? []).Select(kv =>
        {
            var i = kv.IndexOf('=');
            if (i <= 0) throw new SettingsException($"--set {kv}: expected key=value");
            return KeyValuePair.Create(kv[..i], (string?)kv[(i + 1)..]);
        }).ToList();
        settings = SettingsLoader.Load(p.GetValue(configOption), overrides);
    }
    catch (SettingsException e)
    {
        await Console.Error.WriteLineAsync($"promha: invalid configuration: {e.Message}");
        return ExitCodes.BadSettings;
    }
    WebApplication app;
    try
    {
        app = NodeHost.Build(settings);
    }
    catch (SettingsException e)
    {
        await Console.Error.WriteLineAsync($"promha: invalid configuration: {e.Message}");
        return ExitCodes.BadSettings;
    }
    catch (PromHa.Node.Storage.JournalUnavailableException e)
    {
        await Console.Error.WriteLineAsync($"promha: {e.Message}; start it again");
        return ExitCodes.Restart;
    }
    if (await SeedLink.WaitAfterDowning(settings, ct) is { } waited)
        app.Logger.LogInformation("Downed before this start: waited {Seconds:F1} s for a seed's host to answer on the cluster link before joining", waited.TotalSeconds);
    // RunAsync, unrolled: the shutdown reason is read before the services are disposed.
    await app.StartAsync();
    var shutdown = Akka.Actor.CoordinatedShutdown.Get(app.Services.GetRequiredService<Akka.Actor.ActorSystem>());
    await app.WaitForShutdownAsync();
    var code = ExitCodes.For(shutdown.ShutdownReason);
    await app.DisposeAsync();
    if (code == ExitCodes.Downed) SeedLink.RememberDowned(settings);
    Environment.ExitCode = code; // Akka.Hosting set -1 for a downing
    return code;
});
root.Subcommands.Add(run);
foreach (var c in ConsoleCommands.All()) root.Subcommands.Add(c);
root.Subcommands.Add(ConfigCommands.Create());
root.Subcommands.Add(ServersCommand.Create());
// the webhook receiver the compose demos run from this image (and an operator can point a route at)
root.Subcommands.Add(PromHa.Node.Sink.SinkCommand.Create());
foreach (var c in SecurityCommands.Create()) root.Subcommands.Add(c);

// After Ctrl-C, give `run` time to stop their processes instead of the default 2 s.
return await root.Parse(args).InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = TimeSpan.FromSeconds(90) });
