using System.IO.Compression;
using System.Text;

namespace PromHa.EndToEnd;

/// <summary>
/// Compression bombs as an attacker would post them: small gzip bodies that unpack to gigabytes.
/// Built from concatenated gzip members (one compressed MiB of zeros, repeated), so a 2 GiB bomb
/// takes milliseconds to make and still really inflates to 2 GiB.
/// </summary>
public static class Bombs
{
    private const int MiB = 1024 * 1024;
    private static readonly byte[] ZeroMiB = Gzip(new byte[MiB]);

    /// <summary>One file of <paramref name="gib"/> GiB.</summary>
    public static byte[] OneHugeFile(int gib = 2)
    {
        using var ms = new MemoryStream();
        ms.Write(Gzip(Header("business/huge.yml", (long)gib * 1024 * MiB)));
        for (var i = 0; i < gib * 1024; i++) ms.Write(ZeroMiB);
        ms.Write(Gzip(new byte[1024])); // end-of-archive marker
        return ms.ToArray();
    }

    /// <summary><paramref name="files"/> files of 1 MiB each: every one under the single-file limit.</summary>
    public static byte[] ManyFiles(int files = 2048)
    {
        using var ms = new MemoryStream();
        for (var i = 0; i < files; i++)
        {
            ms.Write(Gzip(Header($"business/job/f{i:D5}.yml", MiB)));
            ms.Write(ZeroMiB);
        }
        ms.Write(Gzip(new byte[1024]));
        return ms.ToArray();
    }

    private static byte[] Gzip(byte[] data)
    {
        using var ms = new MemoryStream();
        using (var gz = new GZipStream(ms, CompressionLevel.SmallestSize, leaveOpen: true)) gz.Write(data);
        return ms.ToArray();
    }

    /// <summary>A ustar header for a regular file (octal size, checksum filled in).</summary>
    private static byte[] Header(string name, long size)
    {
        var h = new byte[512];
        Encoding.ASCII.GetBytes(name).CopyTo(h, 0);
        Encoding.ASCII.GetBytes("0000644\0").CopyTo(h, 100);
        Encoding.ASCII.GetBytes("0000000\0").CopyTo(h, 108);
        Encoding.ASCII.GetBytes("0000000\0").CopyTo(h, 116);
        Encoding.ASCII.GetBytes(Convert.ToString(size, 8).PadLeft(11, '0') + "\0").CopyTo(h, 124);
        Encoding.ASCII.GetBytes("00000000000\0").CopyTo(h, 136);
        h[156] = (byte)'0';
        Encoding.ASCII.GetBytes("ustar\0" + "00").CopyTo(h, 257);
        for (var i = 148; i < 156; i++) h[i] = (byte)' ';
        var sum = h.Sum(b => b);
        Encoding.ASCII.GetBytes(Convert.ToString(sum, 8).PadLeft(6, '0') + "\0 ").CopyTo(h, 148);
        return h;
    }
}
