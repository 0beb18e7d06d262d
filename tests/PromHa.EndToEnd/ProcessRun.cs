using System.Diagnostics;

namespace PromHa.EndToEnd;

/// <summary>A command a test runs to its end: docker, docker-compose, promtool, the promha console.</summary>
public static class ProcessRun
{
    /// <summary>Runs a command to its end (killed, with its children, after the timeout) and returns its exit code and output.</summary>
    public static async Task<(int Code, string Stdout, string Stderr)> Exec(string file, IEnumerable<string> args, TimeSpan? timeout = null,
        bool check = false, IReadOnlyDictionary<string, string>? env = null, IEnumerable<string>? unset = null)
    {
        var psi = new ProcessStartInfo(file) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        foreach (var k in unset ?? []) psi.Environment.Remove(k);
        foreach (var (k, v) in env ?? new Dictionary<string, string>()) psi.Environment[k] = v;
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromMinutes(2));
        try
        {
            await p.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} {string.Join(' ', psi.ArgumentList)} still running after {timeout}; killed");
        }
        var result = (p.ExitCode, await stdout, await stderr);
        if (check && p.ExitCode != 0)
            throw new InvalidOperationException($"{file} {string.Join(' ', psi.ArgumentList)} exited with {p.ExitCode}:\n{Last(result.Item3, 3000)}\n{Last(result.Item2, 2000)}");
        return result;
    }

    public static string Last(string s, int n) => s.Length <= n ? s : s[^n..];
}
