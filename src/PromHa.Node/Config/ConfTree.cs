namespace PromHa.Node.Config;

/// <summary>Writing trees to disk so that no reader ever sees a half-written file.</summary>
public static class ConfTree
{
    /// <summary>
    /// Makes <paramref name="dir"/> hold exactly the bundle's files: each changed file is written
    /// beside its target under a hidden name, and once all are written (and, when
    /// <paramref name="durable"/>, on disk: one syncfs for the whole tree, not an fsync per file, which
    /// made 100,000 files take 30 s) each is renamed over its target (atomic on one filesystem); files
    /// the bundle lacks are removed. No reader ever sees a half-written file. Hidden files are left
    /// alone. When the caller knows what the dir holds (<paramref name="current"/>, read from it),
    /// only differing files are touched. Returns the paths written or removed.
    /// </summary>
    public static IReadOnlyList<string> Sync(string dir, ConfBundle bundle, ConfBundle? current = null, bool durable = true)
    {
        Directory.CreateDirectory(dir);
        var root = Path.GetFullPath(dir);
        current ??= ConfBundle.FromDirectory(root);
        var changed = new List<string>();
        var checkedDirs = new HashSet<string>(StringComparer.Ordinal);
        var written = new List<(string Tmp, string Path)>();
        try
        {
            foreach (var f in bundle.Files.Values)
            {
                if (current.Files.TryGetValue(f.Path, out var existing) && existing.Sha256 == f.Sha256) continue;
                var path = Path.Combine(root, f.Path);
                var parent = Path.GetDirectoryName(path)!;
                PrepareDirs(root, parent, checkedDirs);
                // a directory where the new tree has this file: everything in it is gone from the new tree
                if (Directory.Exists(path))
                {
                    if (new DirectoryInfo(path).LinkTarget is not null) File.Delete(path);
                    else Directory.Delete(path, recursive: true);
                }
                Directory.CreateDirectory(parent);
                // not named after the file (a 255-byte name plus a prefix would pass NAME_MAX) nor its
                // content (two equal files in one dir are both pending until the renames)
                var tmp = Path.Combine(parent, $".promha-{written.Count}.{Environment.ProcessId}.tmp");
                File.Delete(tmp); // a link planted at this name is removed, not followed
                using (var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write))
                    fs.Write(f.Content);
                written.Add((tmp, path));
                changed.Add(f.Path);
            }
            if (durable && written.Count > 0) FlushToDisk(root, written);
            foreach (var (tmp, path) in written) File.Move(tmp, path, overwrite: true);
            written.Clear();
        }
        finally
        {
            foreach (var (tmp, _) in written) File.Delete(tmp); // a write failed: nothing of it is left behind
        }
        foreach (var rel in current.Files.Keys)
        {
            if (bundle.Files.ContainsKey(rel)) continue;
            // gone already when the new tree put a file in place of its directory, or a directory in its place
            if (File.Exists(Path.Combine(root, rel))) File.Delete(Path.Combine(root, rel));
            changed.Add(rel);
        }
        if (changed.Count > 0) RemoveEmptyDirs(root, root);
        return changed;
    }

    /// <summary>The written files' data on disk before any is renamed: one syncfs(2) of their filesystem, or an fsync each where that fails.</summary>
    private static void FlushToDisk(string root, List<(string Tmp, string Path)> written)
    {
        if (written.Count > 1 && SyncFs(root)) return;
        foreach (var (tmp, _) in written)
        {
            using var handle = File.OpenHandle(tmp, FileMode.Open, FileAccess.Write);
            RandomAccess.FlushToDisk(handle);
        }
    }

    private static bool SyncFs(string path)
    {
        var fd = NativeOpen(path, 0 /* O_RDONLY */);
        if (fd < 0) return false;
        try
        {
            return NativeSyncFs(fd) == 0;
        }
        finally
        {
            NativeClose(fd);
        }
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "open", SetLastError = true)]
    private static extern int NativeOpen([System.Runtime.InteropServices.MarshalAs(System.Runtime.InteropServices.UnmanagedType.LPUTF8Str)] string path, int flags);

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "syncfs", SetLastError = true)]
    private static extern int NativeSyncFs(int fd);

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "close")]
    private static extern int NativeClose(int fd);

    /// <summary>
    /// Makes the way clear for a file in <paramref name="dir"/>: a file where the new tree needs a
    /// directory (rules/x was a file, now rules/x/y.yml is one) is not in the new tree, and is removed;
    /// a directory inside the tree that is a symlink would take a write somewhere else entirely
    /// (business/ -> /etc): refused instead of written through. The file itself is replaced by a
    /// rename, which replaces a symlink rather than following it.
    /// </summary>
    private static void PrepareDirs(string root, string dir, HashSet<string> checkedDirs)
    {
        for (var d = dir; d.Length > root.Length && checkedDirs.Add(d); d = Path.GetDirectoryName(d)!)
        {
            if (new FileInfo(d) is { Exists: true } file) // not a directory (nor a link to one)
            {
                file.Delete();
                continue;
            }
            if (new DirectoryInfo(d) is { LinkTarget: { } target })
                throw new ConfTreeException(d, $"is a symlink (to {target}); PromHa does not write a conf tree through it");
        }
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
