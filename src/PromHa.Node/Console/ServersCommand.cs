using System.CommandLine;
using PromHa.Node.Settings;
using PromHa.Node.Supervision;

namespace PromHa.Node.Console;

/// <summary>
/// `promha servers stop`: the operator's explicit stop of the Prometheus and Alertmanager a node
/// supervises. Nothing else stops them: they outlive promha's restarts, crashes and upgrades.
/// </summary>
public static class ServersCommand
{
    public static Command Create()
    {
        var config = new Option<string>("--config", "-c") { Description = "The node's promha.yml", Required = true };
        var stop = new Command("stop", "Stop the supervised Prometheus and Alertmanager of the node (stop promha first, or it starts them again)") { config };
        stop.SetAction(p =>
        {
            NodeSettings s;
            try
            {
                s = SettingsLoader.Load(p.GetValue(config), []);
            }
            catch (SettingsException e)
            {
                System.Console.Error.WriteLine($"promha: invalid configuration: {e.Message}");
                return 64;
            }
            var launches = new List<ServerLaunch>();
            if (s.Prometheus.Mode == ServerMode.Supervised) launches.Add(ServerLaunch.Prometheus(s));
            if (s.Alertmanager.Mode == ServerMode.Supervised) launches.Add(ServerLaunch.Alertmanager(s));
            foreach (var launch in launches)
            {
                var pid = ServerSupervisorActor.StopRecorded(launch.PidFile);
                System.Console.WriteLine(pid is { } stopped ? $"stopped {launch.Name} (pid {stopped})" : $"{launch.Name} is not running");
                if (pid is not null) File.Delete(launch.PidFile);
            }
            return 0;
        });
        return new Command("servers", "The Prometheus and Alertmanager a node supervises") { stop };
    }
}
