using System.Diagnostics;
using PromHa.Node.Demo;

namespace PromHa.EndToEnd;

/// <summary>The promha console as an operator runs it, without the test runner's PROMHA_TOKEN; stopped by its PID if it hangs.</summary>
public static class PromhaConsole
{
    public static async Task<(int Code, string Stdout, string Stderr)> Run(string[] args, IReadOnlyDictionary<string, string>? env = null)
    {
        var cmd = LocalClusterOptions.DefaultPromhaCommand();
        var psi = new ProcessStartInfo(cmd[0]) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in cmd.Skip(1).Concat(args)) psi.ArgumentList.Add(a);
        psi.Environment.Remove("PROMHA_TOKEN");
        foreach (var (k, v) in env ?? new Dictionary<string, string>()) psi.Environment[k] = v;
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        try
        {
            await p.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            p.Kill();
            throw;
        }
        return (p.ExitCode, await stdout, await stderr);
    }
}
