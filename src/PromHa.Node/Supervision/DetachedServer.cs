using System.Diagnostics;

namespace PromHa.Node.Supervision;

/// <summary>
/// Starting a server so that it outlives promha, and finding it again. The server runs in a session
/// of its own with its output appended to its log file (not a pipe to promha, which would break,
/// and kill it with SIGPIPE at its next log line, once promha is gone), and its pid file records
/// what it runs, so that the next promha (after a crash, a downing, a restart or an upgrade)
/// adopts it instead of starting another: a restarted Prometheus loses its scrapes and replays
/// its WAL.
/// </summary>
public static class DetachedServer
{
    private const string Setsid = "/usr/bin/setsid";

    public static Process Start(ServerLaunch launch)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(launch.LogFile)!);
        var psi = new ProcessStartInfo(File.Exists(Setsid) ? Setsid : "/bin/sh") { UseShellExecute = false };
        if (File.Exists(Setsid)) psi.ArgumentList.Add("/bin/sh");
        psi.ArgumentList.Add("-c");
        // exec: the pid promha records is the server's own
        psi.ArgumentList.Add("exec \"$0\" \"$@\" </dev/null >>\"$PROMHA_SERVER_LOG\" 2>&1");
        psi.ArgumentList.Add(launch.Binary);
        foreach (var a in launch.Args) psi.ArgumentList.Add(a);
        psi.Environment["PROMHA_SERVER_LOG"] = launch.LogFile;
        var p = new Process { StartInfo = psi, EnableRaisingEvents = true };
        p.Start();
        File.WriteAllText(launch.PidFile, $"{p.Id}\n{launch.Binary}\n");
        return p;
    }

    /// <summary>
    /// The pid of a server a previous promha started with exactly this binary and these flags, if
    /// it still runs; null otherwise (with the reason, for the log).
    /// </summary>
    public static int? FindAdoptable(ServerLaunch launch, out string why)
    {
        why = "no pid file";
        if (!File.Exists(launch.PidFile)) return null;
        var lines = File.ReadAllLines(launch.PidFile);
        if (lines.Length < 1 || !int.TryParse(lines[0], out var pid))
        {
            why = "unreadable pid file";
            return null;
        }
        if (!IsRunning(pid))
        {
            why = $"pid {pid} is not running";
            return null;
        }
        if (!Runs(pid, launch.Binary))
        {
            why = $"pid {pid} runs something other than {launch.Binary}";
            return null; // a reused pid: not ours to adopt or stop
        }
        if (!RunsSameFile(pid, launch.Binary))
        {
            why = $"pid {pid} was started as {launch.Binary} but runs another file now";
            return -pid;
        }
        var cmdline = CommandLine(pid);
        var expected = new[] { launch.Binary }.Concat(launch.Args).ToList();
        if (cmdline is null || !cmdline.SequenceEqual(expected))
        {
            why = $"pid {pid} runs with other flags ({string.Join(' ', cmdline?.Skip(1) ?? [])})";
            return -pid; // running, but not as this node would start it
        }
        why = "";
        return pid;
    }

    /// <summary>Whether a pid runs this binary (the same file, or one started as it and since replaced): a reused pid is left alone.</summary>
    public static bool Runs(int pid, string binary) =>
        RunsSameFile(pid, binary) || CommandLine(pid) is { Count: > 0 } cmd && cmd[0] == binary;

    /// <summary>The process's executable is the binary (a symlinked binary names its target; an upgraded one reads "... (deleted)").</summary>
    private static bool RunsSameFile(int pid, string binary)
    {
        if (new FileInfo($"/proc/{pid}/exe").LinkTarget is not { } exe) return false;
        try
        {
            return RealPath.Of(exe.Replace(" (deleted)", "")) == RealPath.Of(binary);
        }
        catch (IOException)
        {
            return false;
        }
    }

    /// <summary>Alive and not a zombie.</summary>
    public static bool IsRunning(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var state = stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[0];
            return state is not ("Z" or "X");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    private static List<string>? CommandLine(int pid)
    {
        try
        {
            var raw = File.ReadAllText($"/proc/{pid}/cmdline");
            return raw.TrimEnd('\0').Split('\0').ToList();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}
