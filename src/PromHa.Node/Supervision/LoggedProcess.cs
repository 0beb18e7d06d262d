using System.Diagnostics;

namespace PromHa.Node.Supervision;

/// <summary>
/// Starts a child process whose stdout and stderr are appended to a log file (not a pipe that
/// can fill up and block it), and reports its exit.
/// </summary>
public static class LoggedProcess
{
    public static Process Start(string file, IEnumerable<string> args, string logPath, Action<Process>? onExit = null,
        IReadOnlyDictionary<string, string>? environment = null)
    {
        var psi = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        foreach (var (k, v) in environment ?? new Dictionary<string, string>()) psi.Environment[k] = v;
        var log = new StreamWriter(new FileStream(logPath, FileMode.Append, FileAccess.Write, FileShare.ReadWrite)) { AutoFlush = true };
        var p = new Process { StartInfo = psi, EnableRaisingEvents = true };
        p.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (log) log.WriteLine(e.Data); };
        p.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (log) log.WriteLine(e.Data); };
        p.Exited += (_, _) =>
        {
            p.WaitForExit(); // drains the output readers before the log is closed
            lock (log) log.Dispose();
            onExit?.Invoke(p);
        };
        try
        {
            p.Start();
        }
        catch
        {
            log.Dispose();
            throw;
        }
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        return p;
    }
}
