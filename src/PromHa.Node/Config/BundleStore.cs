namespace PromHa.Node.Config;

/// <summary>
/// This node's content-addressed store of bundles: &lt;dataDir&gt;/config/bundles/&lt;hash&gt;.tar.gz. Every
/// bundle a node has seen stays, so a rollback, a diff or another node's fetch never depends on the
/// node that authored it.
/// </summary>
public sealed class BundleStore
{
    private readonly string _dir;
    private readonly ArchiveLimits _limits;

    public BundleStore(string dataDir, ArchiveLimits? limits = null)
    {
        _limits = limits ?? ArchiveLimits.Default;
        _dir = Path.Combine(dataDir, "config", "bundles");
        Directory.CreateDirectory(_dir);
    }

    public string PathOf(string hash) => Path.Combine(_dir, $"{Check(hash)}.tar.gz");

    public bool Has(string hash) => File.Exists(PathOf(hash));

    public void Save(ConfBundle bundle) => Save(bundle.Hash, bundle.ToTarGz());

    /// <summary>Stores <paramref name="archive"/> as the bundle <paramref name="hash"/>: the exact bytes other nodes will fetch.</summary>
    public void Save(string hash, byte[] archive)
    {
        if (Has(hash)) return;
        var tmp = Path.Combine(_dir, $".{hash}.{Environment.ProcessId}.tmp");
        using (var fs = File.Create(tmp))
        {
            fs.Write(archive);
            fs.Flush(flushToDisk: true);
        }
        File.Move(tmp, PathOf(hash), overwrite: true);
    }

    public ConfBundle? Load(string hash)
    {
        if (!Has(hash)) return null;
        using var fs = File.OpenRead(PathOf(hash));
        return ConfBundle.ReadArchive(fs, PathOf(hash), _limits);
    }

    /// <summary>Where a download of <paramref name="hash"/> is written before it is verified: hidden, beside the store (one rename away).</summary>
    public string TempPath(string hash) => Path.Combine(_dir, $".{Check(hash)}.{Environment.ProcessId}.{Guid.NewGuid():N}.fetch");

    /// <summary>Adds a downloaded bundle file (moved into the store), only if its content has the expected hash.</summary>
    public ConfBundle ImportFile(string path, string expectedHash)
    {
        ConfBundle bundle;
        using (var fs = File.OpenRead(path))
            bundle = ConfBundle.ReadArchive(fs, $"bundle {expectedHash}", _limits);
        if (bundle.Hash != expectedHash)
            throw new ConfTreeException($"bundle {expectedHash}", $"fetched content hashes to {bundle.Hash}");
        if (!Has(expectedHash)) File.Move(path, PathOf(expectedHash), overwrite: true);
        return bundle;
    }

    /// <summary>A slice of a stored bundle's bytes, for a node that fetches it.</summary>
    public (long Total, byte[] Data)? ReadChunk(string hash, long offset, int maxBytes)
    {
        if (!Has(hash)) return null;
        using var fs = File.OpenRead(PathOf(hash));
        if (offset > fs.Length) return (fs.Length, []);
        fs.Position = offset;
        var buffer = new byte[(int)Math.Min(maxBytes, fs.Length - offset)];
        fs.ReadExactly(buffer);
        return (fs.Length, buffer);
    }

    private static string Check(string hash) =>
        hash.Length == 64 && hash.All(char.IsAsciiHexDigitLower) ? hash : throw new ArgumentException($"not a bundle hash: {hash}");
}
