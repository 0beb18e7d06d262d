using System.Collections.Immutable;
using System.Formats.Tar;
using System.Security.Cryptography;
using System.Text;

namespace PromHa.Node.Config;

public sealed record BundleFile(string Path, string Sha256, byte[] Content)
{
    public static BundleFile Of(string path, byte[] content) => new(path, Hex(SHA256.HashData(content)), content);

    internal static string Hex(byte[] hash) => Convert.ToHexStringLower(hash);
}

/// <summary>
/// A conf tree as content: every file by its relative path ('/'-separated) with its SHA-256, and one
/// hash for the whole, so an unchanged tree is recognised whatever its timestamps say. The bundle
/// hash is the SHA-256 of the sorted "sha256  path" lines, as `sha256sum` prints them.
/// </summary>
public sealed class ConfBundle
{
    public ImmutableSortedDictionary<string, BundleFile> Files { get; }
    public string Hash { get; }
    public long Bytes { get; }

    private ConfBundle(ImmutableSortedDictionary<string, BundleFile> files)
    {
        Files = files;
        var manifest = new StringBuilder();
        foreach (var f in files.Values) manifest.Append(f.Sha256).Append("  ").Append(f.Path).Append('\n');
        Hash = BundleFile.Hex(SHA256.HashData(Encoding.UTF8.GetBytes(manifest.ToString())));
        Bytes = files.Values.Sum(f => (long)f.Content.Length);
    }

    public static ConfBundle Of(IEnumerable<BundleFile> files) =>
        new(files.ToImmutableSortedDictionary(f => f.Path, f => f, StringComparer.Ordinal));

    public static ConfBundle Of(IEnumerable<KeyValuePair<string, byte[]>> files) =>
        Of(files.Select(kv => BundleFile.Of(kv.Key, kv.Value)));

    public byte[]? Get(string path) => Files.TryGetValue(path, out var f) ? f.Content : null;

    /// <summary>
    /// Files that belong to a conf tree. Hidden files and directories (PromHa's own temporary files
    /// among them) and editor leftovers are not configuration.
    /// </summary>
    public static bool IsConfigPath(string relativePath)
    {
        foreach (var part in relativePath.Split('/'))
            if (part.Length == 0 || part.StartsWith('.')) return false;
        var name = relativePath[(relativePath.LastIndexOf('/') + 1)..];
        return !(name.EndsWith('~') || name.EndsWith(".swp") || name.EndsWith(".swx") || name.EndsWith(".tmp") ||
                 name.StartsWith('#') || name.EndsWith(".bak") || name.EndsWith(".orig") || name.EndsWith(".rej"));
    }

    /// <summary>Reads a conf tree. Symlinked files are read through; symlinked directories are not followed.</summary>
    public static ConfBundle FromDirectory(string dir, long maxBytes = long.MaxValue)
    {
        var root = Path.GetFullPath(dir);
        if (!Directory.Exists(root)) throw new ConfTreeException(root, "conf dir does not exist");
        var files = new List<BundleFile>();
        long total = 0;
        foreach (var path in Enumerate(root))
        {
            var rel = Path.GetRelativePath(root, path).Replace('\\', '/');
            if (!IsConfigPath(rel)) continue;
            byte[] content;
            try { content = File.ReadAllBytes(path); }
            catch (FileNotFoundException) { continue; } // removed while we read the tree; the next scan sees it gone
            catch (IOException e) { throw new ConfTreeException(path, e.Message); }
            catch (UnauthorizedAccessException e) { throw new ConfTreeException(path, e.Message); }
            total += content.Length;
            if (total > maxBytes) throw new ConfTreeException(root, $"tree is larger than the {maxBytes / (1024 * 1024)} MiB limit (config.maxBundleBytes)");
            files.Add(BundleFile.Of(rel, content));
        }
        return Of(files);
    }

    private static IEnumerable<string> Enumerate(string dir)
    {
        foreach (var f in Directory.EnumerateFiles(dir)) yield return f;
        foreach (var d in Directory.EnumerateDirectories(dir))
        {
            var name = Path.GetFileName(d);
            if (name.StartsWith('.') || new DirectoryInfo(d).LinkTarget is not null) continue;
            foreach (var f in Enumerate(d)) yield return f;
        }
    }

    /// <summary>A plain tar of the files in path order with fixed metadata: equal bundles give equal bytes.</summary>
    public void WriteTar(Stream output)
    {
        using var tar = new TarWriter(output, TarEntryFormat.Pax, leaveOpen: true);
        foreach (var f in Files.Values)
        {
            var entry = new PaxTarEntry(TarEntryType.RegularFile, f.Path)
            {
                DataStream = new MemoryStream(f.Content, writable: false),
                ModificationTime = DateTimeOffset.UnixEpoch,
                Mode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead,
            };
            tar.WriteEntry(entry);
        }
    }

    public byte[] ToTar()
    {
        using var ms = new MemoryStream();
        WriteTar(ms);
        return ms.ToArray();
    }

    /// <summary>
    /// Reads a tar (an upload, or a bundle fetched from another node). Paths that would leave the
    /// tree are refused; directories are implied by their files.
    /// </summary>
    public static ConfBundle ReadTar(Stream input, string origin)
    {
        var files = new List<BundleFile>();
        using var tar = new TarReader(input, leaveOpen: true);
        while (tar.GetNextEntry(copyData: false) is { } entry)
        {
            if (entry.EntryType is TarEntryType.Directory or TarEntryType.GlobalExtendedAttributes) continue;
            if (entry.EntryType is not (TarEntryType.RegularFile or TarEntryType.V7RegularFile))
                throw new ConfTreeException(origin, $"{entry.Name}: only regular files belong in a conf tree ({entry.EntryType})");
            var rel = entry.Name.Replace('\\', '/');
            while (rel.StartsWith("./")) rel = rel[2..];
            if (rel.StartsWith('/') || rel.Split('/').Any(p => p == ".."))
                throw new ConfTreeException(origin, $"{entry.Name}: path leaves the conf tree");
            if (!IsConfigPath(rel)) continue;
            using var ms = new MemoryStream();
            entry.DataStream?.CopyTo(ms);
            files.Add(BundleFile.Of(rel, ms.ToArray()));
        }
        return Of(files);
    }
}

/// <summary>A conf tree that cannot be read or taken: names the file (or dir) and the reason.</summary>
public sealed class ConfTreeException(string path, string reason) : Exception($"{path}: {reason}")
{
    public string PathName { get; } = path;
    public string Reason { get; } = reason;
}
