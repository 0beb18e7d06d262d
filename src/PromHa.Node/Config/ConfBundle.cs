using System.Collections.Immutable;
using System.Formats.Tar;
using System.IO.Compression;
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

    /// <summary>The paths added, removed or changed between this tree and <paramref name="other"/>, in ordinal order.</summary>
    public IEnumerable<string> ChangedPaths(ConfBundle other) =>
        Files.Keys.Union(other.Files.Keys).Order(StringComparer.Ordinal)
            .Where(p => Files.GetValueOrDefault(p)?.Sha256 != other.Files.GetValueOrDefault(p)?.Sha256);

    /// <summary>
    /// The same paths and hashes (so the same <see cref="Hash"/>) without the contents: enough to
    /// tell whether a tree changed and which files to rewrite, at a fraction of the memory.
    /// </summary>
    public ConfBundle Manifest() => Of(Files.Values.Select(f => f with { Content = [] }));

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

    /// <summary>
    /// Reads a conf tree. A symlinked file is read through only when it points to a file inside the
    /// tree; one that points outside is refused (a tree must not publish /etc/shadow to every node
    /// because of a link). Symlinked directories are not followed. With a <paramref name="cache"/>,
    /// a file whose size and modification time are unchanged since the last read is not read again
    /// (a 10,000-file tree is scanned on every change). The cache keeps every hash and contents up to
    /// its budget: with <paramref name="contents"/> false the result is a <see cref="Manifest"/>, read
    /// without touching an unchanged file; with true an unchanged file whose content is not cached is
    /// read again.
    /// </summary>
    public static ConfBundle FromDirectory(string dir, ArchiveLimits? limits = null, ScanCache? cache = null, bool contents = true)
    {
        limits ??= new ArchiveLimits(long.MaxValue, long.MaxValue);
        var root = Path.GetFullPath(dir);
        if (!Directory.Exists(root)) throw new ConfTreeException(root, "conf dir does not exist");
        var realRoot = RealPath.Of(root);
        var files = new List<BundleFile>();
        long total = 0;
        foreach (var path in Enumerate(root))
        {
            var rel = Path.GetRelativePath(root, path);
            if (!IsConfigPath(rel)) continue;
            // before reading: a name that is not UTF-8 reads back as another name, which is not there
            if (ConfNames.Problem(rel) is { } badName) throw new ConfTreeException(ConfNames.Printable(path), badName);
            BundleFile file;
            long size;
            try
            {
                var info = new FileInfo(path);
                if (info.LinkTarget is not null) info = InsideTarget(info, realRoot);
                if (info.Length > limits.MaxFileBytes)
                    throw new ConfTreeException(path, $"{info.Length:N0} bytes, more than a single file may have (config.maxFileBytes, {limits.MaxFileBytes:N0})");
                var stamp = (info.LastWriteTimeUtc, info.Length);
                if (cache is not null && cache.TryGetValue(rel, out var known) && known.Stamp == stamp && (!contents || known.HasContent))
                    file = contents ? known.File : known.File with { Content = [] };
                else
                {
                    file = BundleFile.Of(rel, File.ReadAllBytes(info.FullName));
                    cache?.Set(rel, stamp, file);
                    if (!contents) file = file with { Content = [] };
                }
                size = info.Length;
            }
            catch (FileNotFoundException) { continue; } // removed while we read the tree; the next scan sees it gone
            catch (IOException e) { throw new ConfTreeException(path, e.Message); }
            catch (UnauthorizedAccessException e) { throw new ConfTreeException(path, e.Message); }
            total += size;
            if (total > limits.MaxBytes) throw new ConfTreeException(root, $"tree is larger than the {limits.MaxBytes / (1024 * 1024)} MiB limit (config.maxBundleBytes)");
            files.Add(file);
        }
        cache?.Retain(files.Select(f => f.Path));
        return Of(files);
    }

    /// <summary>The file a symlink finally points to, if that is a regular file inside the tree.</summary>
    private static FileInfo InsideTarget(FileInfo link, string realRoot)
    {
        var target = link.ResolveLinkTarget(returnFinalTarget: true) as FileInfo;
        if (target is null || !target.Exists) throw new FileNotFoundException(link.FullName); // dangling: not part of the tree
        var real = RealPath.Of(target.FullName);
        if (!real.StartsWith(realRoot + "/", StringComparison.Ordinal))
            throw new ConfTreeException(link.FullName, $"symlink to {real}, outside the conf dir {realRoot}; not followed (copy the file into the tree instead)");
        return new FileInfo(real);
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

    /// <summary>The tar, gzip-compressed: how bundles are stored and sent (file_sd trees shrink ~50x).</summary>
    public byte[] ToTarGz()
    {
        using var ms = new MemoryStream();
        using (var gz = new GZipStream(ms, CompressionLevel.Fastest, leaveOpen: true)) WriteTar(gz);
        return ms.ToArray();
    }

    /// <summary>
    /// The bytes every node will read for this bundle, read back here first: a tree whose names or
    /// content do not come back exactly as they went in (the tar reader refusing a header, a name
    /// changed on the way) is refused before it is committed, not found unreadable on every other
    /// node afterwards.
    /// </summary>
    public byte[] ToVerifiedTarGz(ArchiveLimits limits)
    {
        if (ConfNames.FirstProblem(Files.Keys) is { } badName) throw new ConfTreeException("tree", badName);
        var archive = ToTarGz();
        ConfBundle back;
        try
        {
            using var ms = new MemoryStream(archive, writable: false);
            back = ReadArchive(ms, "bundle", limits);
        }
        catch (Exception e) when (e is ConfTreeException or ArchiveTooLargeException or InvalidDataException or FormatException
                                       or EndOfStreamException or ArgumentException or InvalidOperationException)
        {
            throw new ConfTreeException("tree", $"its bundle cannot be read back ({e.Message}), so no other node could read it");
        }
        if (back.Hash != Hash)
        {
            var lost = Files.Keys.FirstOrDefault(p => !back.Files.ContainsKey(p)) is { } p ? $"{ConfNames.Printable(p)} does not come back" : "content differs";
            throw new ConfTreeException("tree", $"its bundle reads back as other content ({lost}), so no other node would run what was sent");
        }
        return archive;
    }

    /// <summary>
    /// Reads a tar or a gzip-compressed tar (told apart by the gzip magic bytes) from a seekable
    /// stream (a spooled upload, a stored bundle). Two passes: the first reads only headers and
    /// refuses what would not fit <paramref name="limits"/>, so a bomb is refused before its content
    /// is inflated into memory; the second keeps the files.
    /// </summary>
    public static ConfBundle ReadArchive(Stream input, string origin, ArchiveLimits? limits = null)
    {
        limits ??= ArchiveLimits.Default;
        if (!input.CanSeek) throw new ArgumentException("ReadArchive needs a seekable stream (spool uploads to a file first)", nameof(input));
        var start = input.Position;
        var b1 = input.ReadByte();
        var b2 = input.ReadByte();
        var gzip = b1 == 0x1f && b2 == 0x8b;
        input.Position = start;
        using (var scan = Open(input, gzip)) TarPreScan.Check(scan, limits, origin);
        input.Position = start;
        using var tar = Open(input, gzip);
        return ReadEntries(tar, origin, limits);
    }

    private static Stream Open(Stream input, bool gzip) =>
        gzip ? new GZipStream(input, CompressionMode.Decompress, leaveOpen: true) : new NonClosing(input);

    /// <summary>
    /// Reads a tar whose sizes <see cref="TarPreScan"/> has accepted. Paths that would leave the
    /// tree, links, devices and FIFOs are refused; directories are implied by their files.
    /// </summary>
    private static ConfBundle ReadEntries(Stream input, string origin, ArchiveLimits limits)
    {
        var files = new List<BundleFile>();
        long total = 0;
        using var tar = new TarReader(input, leaveOpen: true);
        while (tar.GetNextEntry(copyData: false) is { } entry)
        {
            if (entry.EntryType is TarEntryType.Directory or TarEntryType.GlobalExtendedAttributes) continue;
            if (entry.EntryType is not (TarEntryType.RegularFile or TarEntryType.V7RegularFile or TarEntryType.ContiguousFile))
                throw new ConfTreeException(origin, $"{ConfNames.Printable(entry.Name)}: {Refused(entry)}");
            var rel = entry.Name.Replace('\\', '/');
            while (rel.StartsWith("./")) rel = rel[2..];
            if (rel.StartsWith('/') || rel.Split('/').Any(p => p == ".."))
                throw new ConfTreeException(origin, $"{ConfNames.Printable(entry.Name)}: path leaves the conf tree (absolute or with '..')");
            if (entry.Length > limits.MaxFileBytes || (total += entry.Length) > limits.MaxBytes)
                throw new ArchiveTooLargeException(origin, $"{ConfNames.Printable(entry.Name)}: over the size limits (config.maxFileBytes, config.maxBundleBytes)");
            if (!IsConfigPath(rel)) continue;
            var content = new byte[entry.Length];
            entry.DataStream?.ReadExactly(content);
            files.Add(BundleFile.Of(rel, content));
        }
        return Of(files);
    }

    private static string Refused(TarEntry entry) => entry.EntryType switch
    {
        TarEntryType.SymbolicLink => $"a symlink (to {entry.LinkName}); links are refused, put the file itself in the tree",
        TarEntryType.HardLink => $"a hard link (to {entry.LinkName}); links are refused, put the file itself in the tree",
        TarEntryType.CharacterDevice or TarEntryType.BlockDevice => "a device node; only regular files belong in a conf tree",
        TarEntryType.Fifo => "a FIFO; only regular files belong in a conf tree",
        _ => $"a {entry.EntryType} entry; only regular files belong in a conf tree",
    };

    /// <summary>Lets a reader be disposed without closing the caller's stream.</summary>
    private sealed class NonClosing(Stream inner) : Stream
    {
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => inner.Read(buffer, offset, count);
        public override int Read(Span<byte> buffer) => inner.Read(buffer);
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}

/// <summary>
/// What <see cref="ConfBundle.FromDirectory"/> last read of each file, keyed by relative path: its
/// hash always, its content while the contents held stay under <see cref="MaxContentBytes"/> (an
/// edit in a 10,000-file tree then reads one file, while a 40 MiB file or 100,000 files are not kept
/// twice in memory: over the budget a changed tree is read again whole).
/// </summary>
public sealed class ScanCache(long maxContentBytes = ScanCache.DefaultMaxContentBytes)
{
    public const long DefaultMaxContentBytes = 4L * 1024 * 1024;
    private readonly Dictionary<string, ((DateTime, long) Stamp, BundleFile File, bool HasContent)> _files = new(StringComparer.Ordinal);
    private long _contentBytes;

    public long MaxContentBytes { get; } = maxContentBytes;

    /// <summary>The bytes of file content held now.</summary>
    public long ContentBytes => _contentBytes;

    public bool TryGetValue(string path, out ((DateTime, long) Stamp, BundleFile File, bool HasContent) entry) => _files.TryGetValue(path, out entry);

    public void Set(string path, (DateTime, long) stamp, BundleFile file)
    {
        if (_files.TryGetValue(path, out var old) && old.HasContent) _contentBytes -= old.File.Content.Length;
        var keep = _contentBytes + file.Content.Length <= MaxContentBytes;
        if (keep) _contentBytes += file.Content.Length;
        _files[path] = (stamp, keep ? file : file with { Content = [] }, keep);
    }

    public void Retain(IEnumerable<string> paths)
    {
        var keep = paths.ToHashSet(StringComparer.Ordinal);
        foreach (var gone in _files.Keys.Where(k => !keep.Contains(k)).ToList())
        {
            if (_files[gone].HasContent) _contentBytes -= _files[gone].File.Content.Length;
            _files.Remove(gone);
        }
    }
}

/// <summary>A conf tree that cannot be read or taken: names the file (or dir) and the reason.</summary>
public sealed class ConfTreeException(string path, string reason, bool name = false) : Exception($"{path}: {reason}")
{
    public string PathName { get; } = path;
    public string Reason { get; } = reason;
    /// <summary>Refused for a file's name (422, like every name no node can carry), not for an unreadable or unsafe archive (400).</summary>
    public bool IsName { get; } = name;
}
