using System.Collections.Concurrent;
using System.Diagnostics;

namespace PromHa.Node.Config;

/// <summary>Which checks a tree must pass on this node.</summary>
public sealed record ValidationTools(string Promtool, string Amtool, bool NeedAlertmanagerConfig)
{
    public static ValidationTools For(Settings.NodeSettings s) =>
        new(s.Config.Promtool, s.Config.Amtool, s.Alertmanager.Mode != Settings.ServerMode.None);
}

/// <summary>
/// Checks a rendered tree where it will not be used: written to a staging dir, then
/// `promtool check config` (which also checks the rule files and file_sd files it names) and
/// `amtool check-config`. A failure carries the tool's own words, file and reason.
/// </summary>
public static class ConfigValidator
{
    private static readonly TimeSpan ToolTimeout = TimeSpan.FromSeconds(60);
    // What each staging dir holds, so that the next check rewrites only the files that changed
    // (a 10,000-file tree is not copied for every edit).
    private static readonly ConcurrentDictionary<string, ConfBundle> Staged = new();

    /// <summary>The authored alertmanager.yml while amtool reads it: hidden, so that staging leaves it alone, beside the templates it names.</summary>
    private const string AuthoredAlertmanager = ".promha-authored-alertmanager.yml";

    /// <summary>
    /// Null when the tree is valid; otherwise what the tools said. One caller at a time per
    /// <paramref name="stagingDir"/>. <paramref name="authored"/>: the tree as the user wrote it.
    /// Rendering replaces every webhook the gate carries with the gate's own URL, so amtool never
    /// sees the user's receiver URLs and credentials in the rendered file; the gate delivers to
    /// them, so the authored alertmanager.yml is checked by amtool too, first, in its own words.
    /// </summary>
    public static async Task<string?> Validate(ConfBundle rendered, string stagingDir, ValidationTools tools, ConfBundle? authored = null,
        CancellationToken ct = default)
    {
        var dir = Path.GetFullPath(stagingDir);
        try
        {
            Staged.TryRemove(dir, out var current);
            if (!Directory.Exists(dir)) current = null;
            ConfTree.Sync(dir, rendered, current, durable: false); // a staging dir need not survive a crash
            Staged[dir] = rendered.Manifest(); // what to rewrite next time: hashes, not a second copy of the tree
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return $"{dir}: cannot write the staging tree: {e.Message}";
        }
        if (rendered.Get(ConfigRenderer.PrometheusFile) is null) return "prometheus.yml: missing at the root of the conf tree";
        // The tools read different files: they run side by side (promtool on 10,000 file_sd files
        // takes ~0.5 s; amtool does not wait for it), and the verdict is the first in this order.
        var prom = Run(tools.Promtool, ["check", "config", ConfigRenderer.PrometheusFile], dir, ct);
        if (rendered.Get(ConfigRenderer.AlertmanagerFile) is { } am)
        {
            var asWritten = authored?.Get(ConfigRenderer.AlertmanagerFile) is { } written && !written.AsSpan().SequenceEqual(am)
                ? CheckAuthored(written, dir, tools, ct)
                : Task.FromResult<string?>(null);
            var asRendered = Run(tools.Amtool, ["check-config", ConfigRenderer.AlertmanagerFile], dir, ct);
            await Task.WhenAll(prom, asWritten, asRendered); // all done before the staging dir is used again
            return prom.Result ?? asWritten.Result ?? asRendered.Result;
        }
        return await prom ?? (tools.NeedAlertmanagerConfig ? "alertmanager.yml: missing, and this node runs an Alertmanager" : null);
    }

    /// <summary>amtool on the alertmanager.yml the user wrote, in the staged tree (its templates resolve the same way).</summary>
    private static async Task<string?> CheckAuthored(byte[] written, string dir, ValidationTools tools, CancellationToken ct)
    {
        var path = Path.Combine(dir, AuthoredAlertmanager);
        try
        {
            File.Delete(path); // a link planted at this name is removed, not followed
            await File.WriteAllBytesAsync(path, written, ct);
            var said = await Run(tools.Amtool, ["check-config", AuthoredAlertmanager], dir, ct);
            return said?.Replace(AuthoredAlertmanager, $"{ConfigRenderer.AlertmanagerFile} (as written: the receivers the notification gate delivers to)");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return $"{dir}: cannot write the staging tree: {e.Message}";
        }
        finally
        {
            try { File.Delete(path); } catch (IOException) { }
        }
    }

    private static async Task<string?> Run(string tool, string[] args, string workDir, CancellationToken ct)
    {
        if (!File.Exists(tool))
            return $"{tool} not found, so the tree cannot be validated (apt-get install -y prometheus prometheus-alertmanager)";
        var psi = new ProcessStartInfo(tool)
        {
            WorkingDirectory = workDir,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync(ct);
        var stderr = p.StandardError.ReadToEndAsync(ct);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(ToolTimeout);
        try
        {
            await p.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            try { p.Kill(); } catch (InvalidOperationException) { }
            return $"{Path.GetFileName(tool)} {string.Join(' ', args)} did not finish within {ToolTimeout.TotalSeconds:F0}s";
        }
        if (p.ExitCode == 0) return null;
        // Both tools print their verdict across stdout and stderr; keep the lines that carry it.
        var text = ((await stdout) + "\n" + (await stderr)).Split('\n')
            .Select(l => l.TrimEnd())
            // amtool prints "Checking 'alertmanager.yml'  FAILED: <reason>" on one line
            .Select(l => l.StartsWith("Checking ") && l.Contains("FAILED") ? l[l.IndexOf("FAILED", StringComparison.Ordinal)..] : l)
            .Where(l => l.Trim().Length > 0 && !l.StartsWith("Checking ") && !l.Contains("SUCCESS"))
            .ToList();
        return $"{Path.GetFileName(tool)} {string.Join(' ', args)}: {string.Join("\n", text).Trim()}";
    }
}
