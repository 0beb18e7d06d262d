namespace PromHa.Node.Config;

/// <summary>Writing trees to disk so that no reader ever sees a half-written file.</summary>
public static class ConfTree
{
    /// <summary>
    /// Makes <paramref name="dir"/> hold exactly the bundle's files: each changed file is written
    /// beside its target under a hidden name and renamed over it (atomic on one filesystem), files
    /// the bundle lacks are removed. Hidden files are left alone. When the caller knows what the
    /// dir holds (<paramref name="current"/>, read from it), only differing files are touched.
    /// Returns the paths written or removed.
    /// </summary>
    public static IReadOnlyList<string> Sync(string dir, ConfBundle bundle, ConfBundle? current = null)
    {
        Directory.CreateDirectory(dir);
        var root = Path.GetFullPath(dir);
        current ??= ConfBundle.FromDirectory(root);
        var changed = new List<string>();
        var checkedDirs = new HashSet<string>(StringComparer.Ordinal);
        foreach (var f in bundle.Files.Values)
        {
            if (current.Files.TryGetValue(f.Path, out var existing) && existing.Sha256 == f.Sha256) continue;
            var path = Path.Combine(root, f.Path);
            var parent = Path.GetDirectoryName(path)!;
            RefuseLinkedDirs(root, parent, checkedDirs);
            Directory.CreateDirectory(parent);
            // not named after the file: a 255-byte name plus a prefix would pass NAME_MAX
            var tmp = Path.Combine(parent, $".promha-{f.Sha256[..16]}.{Environment.ProcessId}.tmp");
            File.Delete(tmp); // a link planted at this name is removed, not followed
            using (var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write))
            {
                fs.Write(f.Content);
                fs.Flush(flushToDisk: true);
            }
            File.Move(tmp, path, overwrite: true);
            changed.Add(f.Path);
        }
        foreach (var rel in current.Files.Keys)
        {
            if (bundle.Files.ContainsKey(rel)) continue;
            File.Delete(Path.Combine(root, rel));
            changed.Add(rel);
        }
        if (changed.Count > 0) RemoveEmptyDirs(root, root);
        return changed;
    }

    /// <summary>
    /// A directory inside the tree that is a symlink would take a write somewhere else entirely
    /// (business/ -> /etc): refuse instead of writing through it. The file itself is replaced by a
    /// rename, which replaces a symlink rather than following it.
    /// </summary>
    private static void RefuseLinkedDirs(string root, string dir, HashSet<string> checkedDirs)
    {
        for (var d = dir; d.Length > root.Length && checkedDirs.Add(d); d = Path.GetDirectoryName(d)!)
            if (new DirectoryInfo(d) is { LinkTarget: { } target })
                throw new ConfTreeException(d, $"is a symlink (to {target}); PromHa does not write a conf tree through it");
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

    /// <summary>
    /// Saves a tree as one tar in <paramref name="backupsRoot"/> (one file, whatever the tree's size;
    /// `tar -xf` restores it by hand) and keeps the newest <paramref name="keep"/>.
    /// </summary>
    public static string? Backup(ConfBundle tree, string backupsRoot, string label, int keep)
    {
        if (tree.Files.Count == 0) return null;
        Directory.CreateDirectory(backupsRoot);
        var target = Path.Combine(backupsRoot, $"{DateTime.UtcNow:yyyyMMdd-HHmmss.fff}-{label}.tar");
        using (var fs = File.Create(target)) tree.WriteTar(fs);
        foreach (var old in Directory.GetFiles(backupsRoot, "*.tar").Order(StringComparer.Ordinal).SkipLast(keep))
            File.Delete(old);
        return target;
    }

}
