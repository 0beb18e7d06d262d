using PromHa.Lab;
using PromHa.Node.Sink;

namespace PromHa.EndToEnd;

/// <summary>The promha console as an operator runs it, without the test runner's PROMHA_TOKEN; stopped by its PID if it hangs.</summary>
public static class PromhaConsole
{
    public static async Task<(int Code, string Stdout, string Stderr)> Run(string[] args, IReadOnlyDictionary<string, string>? env = null)
    {
        var cmd = LocalClusterOptions.DefaultPromhaCommand();
        return await ProcessRun.Exec(cmd[0], cmd.Skip(1).Concat(args), TimeSpan.FromSeconds(60), env: env, unset: ["PROMHA_TOKEN"]);
    }
}
