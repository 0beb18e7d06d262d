namespace PromHa.Node.Config;

/// <summary>Writing trees to disk so that no reader ever sees a half-written file.</summary>
public static class ConfTree
{
    /// <summary>Writes a bundle into a new, empty directory.</summary>
    public static void WriteFresh(string dir, ConfBundle bundle)
    {
        if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        Directory.CreateDirectory(dir);
        foreach (var f in bundle.Files.Values)
        {
            var path = Path.Combine(dir, f.Path);
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            File.WriteAllBytes(path, f.Content);
        }
    }

    /// <summary>
    /// Makes <paramref name="dir"/> hold exactly the bundle's files: each changed file is written
    /// beside its target under a hidden name and renamed over it (atomic on one filesystem), files
    /// the bundle lacks are removed. Hidden files are left alone. Returns how many files changed.
    /// </summary>
    public static int Sync(string dir, ConfBundle bundle)
    {
        Directory.CreateDirectory(dir);
        var changed = 0;
        foreach (var f in bundle.Files.Values)
        {
            var path = Path.Combine(dir, f.Path);
            if (File.Exists(path) && SameContent(path, f.Content)) continue;
            var parent = Path.GetDirectoryName(path)!;
            Directory.CreateDirectory(parent);
            var tmp = Path.Combine(parent, $".promha-{Path.GetFileName(path)}.{Environment.ProcessId}.tmp");
            using (var fs = new FileStream(tmp, FileMode.Create, FileAccess.Write))
            {
                fs.Write(f.Content);
                fs.Flush(flushToDisk: true);
            }
            File.Move(tmp, path, overwrite: true);
            changed++;
        }
        var root = Path.GetFullPath(dir);
        foreach (var existing in Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories).ToList())
        {
            var rel = Path.GetRelativePath(root, existing).Replace('\\', '/');
            if (!ConfBundle.IsConfigPath(rel) || bundle.Files.ContainsKey(rel)) continue;
            File.Delete(existing);
            changed++;
        }
        RemoveEmptyDirs(root, root);
        return changed;
    }

    private static bool SameContent(string path, byte[] content)
    {
        var info = new FileInfo(path);
        return info.Length == content.Length && File.ReadAllBytes(path).AsSpan().SequenceEqual(content);
    }

    private static void RemoveEmptyDirs(string dir, string root)
    {
        foreach (var d in Directory.EnumerateDirectories(dir))
        {
            if (Path.GetFileName(d).StartsWith('.')) continue;
            RemoveEmptyDirs(d, root);
            if (!Directory.EnumerateFileSystemEntries(d).Any()) Directory.Delete(d);
        }
    }

    /// <summary>Copies the config files of a tree into a new backup directory; keeps the newest <paramref name="keep"/>.</summary>
    public static string? Backup(string dir, string backupsRoot, string label, int keep)
    {
        if (!Directory.Exists(dir)) return null;
        var bundle = ConfBundle.FromDirectory(dir);
        if (bundle.Files.Count == 0) return null;
        Directory.CreateDirectory(backupsRoot);
        var target = Path.Combine(backupsRoot, $"{DateTime.UtcNow:yyyyMMdd-HHmmss.fff}-{label}");
        WriteFresh(target, bundle);
        foreach (var old in Directory.GetDirectories(backupsRoot).Order(StringComparer.Ordinal).SkipLast(keep))
            Directory.Delete(old, recursive: true);
        return target;
    }
}
