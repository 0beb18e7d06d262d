using System.Buffers.Binary;
using System.Text;

namespace PromHa.Node.Config;

/// <summary>
/// How much a conf-tree archive may unpack to: all files together, and any one file. Applied to
/// what the archive declares and to what it really holds, before any content is kept in memory.
/// </summary>
public sealed record ArchiveLimits(long MaxBytes, long MaxFileBytes)
{
    /// <summary>PAX and GNU long-name records describe one entry: a few hundred bytes in practice.</summary>
    public const int MaxMetadataBytes = 1024 * 1024;

    public static readonly ArchiveLimits Default = new(256L * 1024 * 1024, 64L * 1024 * 1024);

    /// <summary>
    /// The tar stream itself may exceed the content by its headers and padding (about 1.5 KiB a
    /// file with PAX records): a tree of many small files is mostly headers. The content limits
    /// are what protect memory; this one bounds the time a first pass may read.
    /// </summary>
    public long MaxTarBytes => 2 * MaxBytes + 64L * 1024 * 1024;
}

/// <summary>An archive that unpacks to more than its limits allow (HTTP 413).</summary>
public sealed class ArchiveTooLargeException(string origin, string reason) : Exception($"{origin}: {reason}");

/// <summary>
/// A first pass over a tar stream that reads only its 512-byte headers and skips the data, so that
/// nothing a header declares is allocated before it is known to fit: .NET's TarReader reads a PAX
/// record into one array of the size the header claims (a 1.3 MB gzip with a 300 MB PAX record
/// took a process to 890 MB), and a bomb's files are refused by their declared sizes before any
/// of their bytes are inflated into memory.
/// </summary>
public static class TarPreScan
{
    private const int Block = 512;

    public static void Check(Stream tar, ArchiveLimits limits, string origin)
    {
        var header = new byte[Block];
        var scratch = new byte[64 * 1024];
        long raw = 0, content = 0;
        long? paxSize = null;
        while (true)
        {
            var got = tar.ReadAtLeast(header, Block, throwOnEndOfStream: false);
            if (got == 0) return; // a tar without its end marker: TarReader decides
            if (got < Block) throw new InvalidDataException($"{origin}: truncated tar header");
            raw += Block;
            if (header.AsSpan().IndexOfAnyExcept((byte)0) < 0) return; // end-of-archive marker
            var type = (char)header[156];
            var size = paxSize ?? ParseSize(header, origin);
            paxSize = null;
            if (size < 0) throw new InvalidDataException($"{origin}: negative entry size in a tar header");
            var name = Name(header);
            // Files and metadata have their own limits below; anything else claiming more than the
            // whole tar may hold is refused before any arithmetic on its size.
            if (type is not ('0' or '\0' or '7' or 'x' or 'g' or 'L' or 'K') && size > limits.MaxTarBytes)
                throw new ArchiveTooLargeException(origin, $"{name}: a {size:N0}-byte entry; the whole tar may have at most {Mib(limits.MaxTarBytes)} (config.maxBundleBytes)");
            switch (type)
            {
                case 'x' or 'g' or 'L' or 'K':
                    if (size > ArchiveLimits.MaxMetadataBytes)
                        throw new ArchiveTooLargeException(origin, $"{name}: a {size:N0}-byte tar metadata record (PAX or long name); at most {ArchiveLimits.MaxMetadataBytes:N0} bytes are accepted");
                    var meta = new byte[size];
                    if (tar.ReadAtLeast(meta, meta.Length, throwOnEndOfStream: false) != meta.Length) throw new InvalidDataException($"{origin}: truncated tar metadata record");
                    raw += Padded(size);
                    CheckRaw(raw, limits, origin);
                    Skip(tar, Padded(size) - size, scratch);
                    if (type == 'x')
                    {
                        var records = PaxRecords(meta);
                        // A PAX record may carry the next entry's real size (files over 8 GiB).
                        paxSize = records.TryGetValue("size", out var v) && long.TryParse(v, out var big) ? big : null;
                        // .NET's tar reader refuses a PAX path holding a newline as "invalid records",
                        // naming nothing: the name no node could carry is refused here, by its name.
                        if (records.TryGetValue("path", out var path) && path.Contains('\n') && ConfNames.Problem(path) is { } why)
                            throw new ConfTreeException(origin, $"{ConfNames.Printable(path)}: {why}", name: true);
                    }
                    continue;
                case '0' or '\0' or '7':
                    if (size > limits.MaxFileBytes)
                        throw new ArchiveTooLargeException(origin, $"{name} unpacks to {Mib(size)}, more than the {Mib(limits.MaxFileBytes)} a single file may have (config.maxFileBytes)");
                    content += size;
                    if (content > limits.MaxBytes)
                        throw new ArchiveTooLargeException(origin, $"the tree unpacks to more than {Mib(limits.MaxBytes)} (config.maxBundleBytes); refused at {name}");
                    break;
            }
            raw += Padded(size);
            CheckRaw(raw, limits, origin);
            Skip(tar, Padded(size), scratch);
        }
    }

    private static void CheckRaw(long raw, ArchiveLimits limits, string origin)
    {
        if (raw > limits.MaxTarBytes)
            throw new ArchiveTooLargeException(origin, $"the tar is larger than {Mib(limits.MaxTarBytes)} unpacked (config.maxBundleBytes plus headers)");
    }

    private static string Mib(long bytes) => bytes >= 1024 * 1024 ? $"{bytes / (1024.0 * 1024):0.#} MiB" : $"{bytes:N0} bytes";

    private static long Padded(long size) => (size + Block - 1) / Block * Block;

    private static void Skip(Stream s, long bytes, byte[] scratch)
    {
        while (bytes > 0)
        {
            var n = s.Read(scratch, 0, (int)Math.Min(scratch.Length, bytes));
            if (n == 0) throw new InvalidDataException("truncated tar entry data");
            bytes -= n;
        }
    }

    /// <summary>The size field: octal digits, or big-endian base-256 when its first byte has the high bit (GNU, star).</summary>
    private static long ParseSize(byte[] header, string origin)
    {
        var field = header.AsSpan(124, 12);
        if ((field[0] & 0x80) != 0)
        {
            if ((field[0] & 0x40) != 0) return -1; // negative in base-256
            for (var i = 1; i < 4; i++) if (field[i] != 0) return long.MaxValue;
            return BinaryPrimitives.ReadInt64BigEndian(field[4..]);
        }
        long value = 0;
        var seen = false;
        foreach (var b in field)
        {
            if (b is (byte)' ' && !seen) continue;
            if (b is 0 or (byte)' ') break;
            if (b is < (byte)'0' or > (byte)'7') throw new InvalidDataException($"{origin}: not a tar (bad size field in a header)");
            seen = true;
            value = value * 8 + (b - '0');
            if (value > 1L << 40) return long.MaxValue;
        }
        return value;
    }

    private static string Name(byte[] header)
    {
        var field = header.AsSpan(0, 100);
        var end = field.IndexOf((byte)0);
        return Encoding.UTF8.GetString(end < 0 ? field : field[..end]);
    }

    /// <summary>
    /// PAX records ("LEN key=value\n", LEN counting the whole record), read by their lengths: a value
    /// may hold a newline. Stops at the first malformed record (TarReader then says what is wrong).
    /// </summary>
    public static Dictionary<string, string> PaxRecords(byte[] records)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        var at = 0;
        while (at < records.Length)
        {
            var space = Array.IndexOf(records, (byte)' ', at);
            if (space < 0 || !int.TryParse(records.AsSpan(at, space - at), out var length) || length <= space - at + 1 ||
                at + length > records.Length || records[at + length - 1] != (byte)'\n')
                break;
            var kv = records.AsSpan(space + 1, at + length - 1 - (space + 1));
            var eq = kv.IndexOf((byte)'=');
            if (eq < 0) break;
            result[Encoding.UTF8.GetString(kv[..eq])] = Encoding.UTF8.GetString(kv[(eq + 1)..]);
            at += length;
        }
        return result;
    }
}
