using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;

namespace PromHa.Lab;

/// <summary>
/// The lab's one way to run a command to its end (ip, docker, docker-compose, promtool, the promha
/// console) and to signal a process it started: whatever outlives its timeout is killed with its
/// children, and the output is kept for the error.
/// </summary>
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

    /// <summary>The same, for callers that cannot await (the netns lab's `ip` calls): -1 and "timed out" after the timeout.</summary>
    public static (int Code, string Stdout, string Stderr) ExecSync(string file, IEnumerable<string> args, TimeSpan timeout)
    {
        var psi = new ProcessStartInfo(file) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {file}");
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeout))
        {
            try { p.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            return (-1, "", $"timed out after {timeout.TotalSeconds:F0} s");
        }
        return (p.ExitCode, stdout.Result, stderr.Result);
    }

    /// <summary>Sends a signal (KILL, TERM, STOP, CONT) to a process by its PID.</summary>
    public static void Signal(int pid, string signal)
    {
        var number = signal.ToUpperInvariant() switch
        {
            "KILL" or "9" => 9,
            "TERM" or "15" => 15,
            "STOP" => 19,
            "CONT" => 18,
            "INT" or "2" => 2,
            _ => throw new ArgumentException($"unknown signal {signal}", nameof(signal)),
        };
        if (kill(pid, number) != 0 && Marshal.GetLastPInvokeError() is var errno and not 3) // 3: ESRCH, already gone
            throw new InvalidOperationException(string.Create(CultureInfo.InvariantCulture, $"kill -{signal} {pid} failed: errno {errno}"));
    }

    public static string Last(string s, int n) => s.Length <= n ? s : s[^n..];

    [DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int sig);
}
