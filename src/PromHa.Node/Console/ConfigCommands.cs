using System.CommandLine;
using PromHa.Node.Config;
using PromHa.Node.Http;

namespace PromHa.Node.Console;

/// <summary>`promha config apply|versions|show|diff|rollback|status`: configuration through any node's API.</summary>
public static class ConfigCommands
{
    public static Command Create()
    {
        var config = new Command("config", "Versioned configuration: apply a conf tree, list, show, diff and roll back versions");

        var dir = new Argument<DirectoryInfo>("dir") { Description = "The conf tree (prometheus.yml at its root)" };
        var author = new Option<string>("--author")
        {
            Description = "Who makes the change (default: $USER)",
            DefaultValueFactory = _ => Environment.UserName,
        };
        var dryRun = new Option<bool>("--dry-run") { Description = "Validate the tree and show its diff against the latest version; commit nothing" };
        var apply = new Command("apply", "Upload a conf tree; it is validated and becomes the next version") { dir, author, dryRun };
        apply.SetAction((p, ct) => ConsoleCommands.Run(p, async api =>
        {
            var path = p.GetValue(dir)!.FullName;
            ConfBundle bundle;
            try
            {
                bundle = ConfBundle.FromDirectory(path);
            }
            catch (ConfTreeException e)
            {
                await System.Console.Error.WriteLineAsync($"promha: {e.Message}");
                return 64;
            }
            var (code, r) = await api.ConfigApply(bundle.ToTarGz(), p.GetValue(author)!, $"{Environment.MachineName}:{path}", ct, p.GetValue(dryRun));
            if (p.GetValue(ConsoleCommands.OutputOption) == "json")
            {
                System.Console.WriteLine(System.Text.Json.JsonSerializer.Serialize(r, ApiJson.Default.ConfigSubmitResponse));
                return r.Outcome is "committed" or "unchanged" or "valid" ? 0 : r.Outcome == "rejected" ? 1 : 2;
            }
            return PrintSubmit(code, r, $"{bundle.Files.Count} files from {path}");
        }));

        var limit = new Option<int>("--limit") { Description = "How many versions", DefaultValueFactory = _ => 50 };
        var versions = new Command("versions", "Committed versions, newest first") { limit };
        versions.SetAction((p, ct) => ConsoleCommands.Run(p, async api =>
        {
            return ConsoleCommands.Print(p, (await api.ConfigVersions(p.GetValue(limit), ct))!, ApiJson.Default.ListConfigVersionInfo, list =>
            {
                ConsoleCommands.PrintTable(["VERSION", "HASH", "FILES", "BYTES", "SOURCE", "AUTHOR", "AT (UTC)"],
                    list.Select(v => new[]
                    {
                        v.Version.ToString(), v.BundleHash[..12], v.FileCount.ToString(), v.Bytes.ToString(), v.Source, v.Author,
                        v.At.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss"),
                    }));
                return 0;
            });
        }));

        var n = new Argument<long>("version") { Description = "A version number" };
        var file = new Option<string?>("--file") { Description = "Print this file of the version instead of the list" };
        var show = new Command("show", "A version's files (or one file's content)") { n, file };
        show.SetAction((p, ct) => ConsoleCommands.Run(p, async api =>
        {
            var version = p.GetValue(n);
            if (p.GetValue(file) is { } f)
            {
                System.Console.Write(await api.GetText($"api/v1/config/versions/{version}/files/{f}", ct));
                return 0;
            }
            return ConsoleCommands.Print(p, await api.ConfigVersion(version, ct), ApiJson.Default.ConfigVersionDetail, d =>
            {
                var v = d.Version;
                System.Console.WriteLine($"version   {v.Version}   hash {v.BundleHash}");
                System.Console.WriteLine($"source    {v.Source} by {v.Author}, {v.At.UtcDateTime:yyyy-MM-dd HH:mm:ss} UTC (bundle from {v.Origin})");
                System.Console.WriteLine();
                ConsoleCommands.PrintTable(["FILE", "SIZE", "SHA256"], d.Files.Select(x => new[] { x.Path, x.Size.ToString(), x.Sha256[..16] }));
                return 0;
            });
        }));

        var from = new Argument<long>("from") { Description = "Older version" };
        var to = new Argument<long>("to") { Description = "Newer version" };
        var diff = new Command("diff", "A unified diff per file between two versions") { from, to };
        diff.SetAction((p, ct) => ConsoleCommands.Run(p, async api =>
        {
            var text = await api.GetText($"api/v1/config/diff?from={p.GetValue(from)}&to={p.GetValue(to)}", ct);
            return ConsoleCommands.Print(p, new ConfigDiffResponse(p.GetValue(from), p.GetValue(to), text), ApiJson.Default.ConfigDiffResponse, d =>
            {
                System.Console.Write(d.Diff.Length == 0 ? "(no differences)\n" : d.Diff);
                return 0;
            });
        }));

        var rollbackTo = new Argument<long>("version") { Description = "The version whose content to restore" };
        var rollback = new Command("rollback", "Make a new version with an earlier version's content") { rollbackTo, author };
        rollback.SetAction((p, ct) => ConsoleCommands.Run(p, async api =>
        {
            var (code, r) = await api.ConfigRollback(p.GetValue(rollbackTo), p.GetValue(author)!, ct);
            return PrintSubmit(code, r, $"content of version {p.GetValue(rollbackTo)}");
        }));

        var status = new Command("status", "Latest version, what each node runs, and rejected candidates");
        status.SetAction((p, ct) => ConsoleCommands.Run(p, async api =>
        {
            return ConsoleCommands.Print(p, (await api.ConfigStatus(ct))!, ApiJson.Default.ConfigStatusResponse, s =>
            {
                System.Console.WriteLine($"latest    {(s.LatestVersion is { } l ? $"version {l.Version} ({l.BundleHash[..12]}) from {l.Source} by {l.Author}, {l.At.UtcDateTime:yyyy-MM-dd HH:mm:ss} UTC" : s.Latest > 0 ? $"version {s.Latest}" : "(none yet)")}");
                System.Console.WriteLine($"this node {s.Node} runs version {s.Applied}{(s.FailedVersion is { } fv ? $", version {fv} FAILED here" : "")}");
                if (s.Note is not null) System.Console.WriteLine($"note      {s.Note}");
                System.Console.WriteLine();
                ConsoleCommands.PrintTable(["NODE", "APPLIED", "STATE", "SINCE", "LAST ERROR"], s.Nodes.Select(x => new[]
                {
                    x.Node, x.Applied.ToString(), x.State ?? (x.FailedVersion is null ? "-" : "failed"),
                    (x.FailedSince ?? x.BehindSince) is { } since ? $"{since.UtcDateTime:yyyy-MM-dd HH:mm:ss} UTC" : "-",
                    x.FailedReason is null ? "" : $"{(x.FailedVersion is { } fv ? $"v{fv}: " : "")}{x.FailedReason}",
                }));
                if (s.Rejected.Count > 0)
                {
                    System.Console.WriteLine();
                    System.Console.WriteLine("rejected candidates (newest first):");
                    foreach (var r in s.Rejected)
                        System.Console.WriteLine($"  {r.At.UtcDateTime:yyyy-MM-dd HH:mm:ss} on {r.Node}, from {r.Source} by {r.Author}:\n    {r.Reason.Replace("\n", "\n    ")}");
                }
                return 0;
            });
        }));

        config.Add(apply);
        config.Add(versions);
        config.Add(show);
        config.Add(diff);
        config.Add(rollback);
        config.Add(status);
        return config;
    }

    private static int PrintSubmit(int code, ConfigSubmitResponse r, string what)
    {
        switch (r.Outcome)
        {
            case "committed":
                System.Console.WriteLine($"version {r.Version} committed ({what}, {r.BundleHash[..12]}); nodes apply it now (promha config status)");
                return 0;
            case "unchanged":
                System.Console.WriteLine($"unchanged: version {r.Version} already has this content");
                return 0;
            case "valid":
                System.Console.WriteLine($"valid ({what}); nothing committed (dry run). Against {(r.Version is { } latest ? $"version {latest}" : "an empty cluster")}:");
                System.Console.Write(string.IsNullOrEmpty(r.Diff) ? "(no differences)\n" : r.Diff);
                return 0;
            case "rejected":
                System.Console.Error.WriteLine($"rejected, nothing applied:\n{r.Reason}");
                if (!string.IsNullOrEmpty(r.Diff)) System.Console.Write($"\nthe change it would have made:\n{r.Diff}");
                return 1;
            default:
                System.Console.Error.WriteLine($"not committed (HTTP {code}): {r.Reason}");
                return 2;
        }
    }
}
