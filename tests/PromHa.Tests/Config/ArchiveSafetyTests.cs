using System.Formats.Tar;
using System.IO.Compression;
using PromHa.Node.Config;

namespace PromHa.Tests.Config;

/// <summary>What an upload (or a fetched bundle) may contain, and what it may not do to a node.</summary>
public sealed class ArchiveSafetyTests : IDisposable
{
    private static readonly ArchiveLimits Small = new(MaxBytes: 1024 * 1024, MaxFileBytes: 256 * 1024);
    private readonly string _dir = Directory.CreateTempSubdirectory("promha-archive").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    private static MemoryStream Tar(Action<TarWriter> write, bool gzip = false)
    {
        var ms = new MemoryStream();
        using (Stream target = gzip ? new GZipStream(ms, CompressionLevel.Fastest, leaveOpen: true) : new NonDisposing(ms))
        using (var w = new TarWriter(target, TarEntryFormat.Pax, leaveOpen: true))
            write(w);
        ms.Position = 0;
        return ms;
    }

    private static void File(TarWriter w, string name, long size) =>
        w.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, name) { DataStream = new ZeroStream(size) });

    [Fact]
    public void A_file_larger_than_the_single_file_limit_is_refused_by_its_header_before_it_is_inflated()
    {
        // 64 MiB of zeros gzip to ~64 KiB: a bomb in miniature
        using var bomb = Tar(w => File(w, "business/big.yml", 64L * 1024 * 1024), gzip: true);
        var e = Assert.Throws<ArchiveTooLargeException>(() => ConfBundle.ReadArchive(bomb, "upload", Small));
        Assert.Contains("business/big.yml", e.Message);
        Assert.Contains("config.maxFileBytes", e.Message);
        Assert.True(bomb.Position < bomb.Length / 4, $"refused after reading {bomb.Position} of {bomb.Length} compressed bytes");
    }

    [Fact]
    public void Many_small_files_over_the_total_limit_are_refused_by_what_they_unpack_to()
    {
        using var bomb = Tar(w =>
        {
            for (var i = 0; i < 40; i++) File(w, $"business/job/f{i}.yml", 100 * 1024);
        }, gzip: true);
        var e = Assert.Throws<ArchiveTooLargeException>(() => ConfBundle.ReadArchive(bomb, "upload", Small));
        Assert.Contains("config.maxBundleBytes", e.Message);
        Assert.Contains("1 MiB", e.Message);
    }

    [Fact]
    public void A_huge_PAX_record_is_refused_before_the_tar_reader_would_allocate_it()
    {
        using var bomb = Tar(w => w.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, "a.yml",
            new Dictionary<string, string> { ["comment"] = new('A', 2 * 1024 * 1024) }) { DataStream = new MemoryStream("x"u8.ToArray()) }), gzip: true);
        var e = Assert.Throws<ArchiveTooLargeException>(() => ConfBundle.ReadArchive(bomb, "upload", Small));
        Assert.Contains("metadata record", e.Message);
    }

    [Theory]
    [InlineData(TarEntryType.SymbolicLink, "symlink")]
    [InlineData(TarEntryType.HardLink, "hard link")]
    [InlineData(TarEntryType.CharacterDevice, "device")]
    [InlineData(TarEntryType.BlockDevice, "device")]
    [InlineData(TarEntryType.Fifo, "FIFO")]
    public void Links_devices_and_fifos_are_refused_with_what_they_are(TarEntryType type, string expected)
    {
        using var tar = Tar(w =>
        {
            File(w, "prometheus.yml", 10);
            var entry = new PaxTarEntry(type, "business/x.yml");
            if (type is TarEntryType.SymbolicLink or TarEntryType.HardLink) entry.LinkName = "/etc/shadow";
            w.WriteEntry(entry);
        });
        var e = Assert.Throws<ConfTreeException>(() => ConfBundle.ReadArchive(tar, "upload", Small));
        Assert.Contains("business/x.yml", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Theory]
    [InlineData("/etc/cron.d/evil")]
    [InlineData("business/../../evil.yml")]
    public void Paths_that_leave_the_tree_are_refused(string name)
    {
        using var tar = Tar(w => File(w, name, 10), gzip: true);
        var e = Assert.Throws<ConfTreeException>(() => ConfBundle.ReadArchive(tar, "upload", Small));
        Assert.Contains("leaves the conf tree", e.Message);
    }

    /// <summary>
    /// .NET's tar reader refuses a PAX path that holds a newline as "invalid records", naming no
    /// file; the pre-scan reads PAX records by their lengths and refuses the name, escaped, as a name.
    /// </summary>
    [Fact]
    public void A_newline_in_a_PAX_path_is_refused_by_the_name_not_as_an_unreadable_tar()
    {
        using var tar = Tar(w =>
        {
            File(w, "prometheus.yml", 10);
            File(w, "rules/a\nb.yml", 10);
        }, gzip: true);
        var e = Assert.Throws<ConfTreeException>(() => ConfBundle.ReadArchive(tar, "upload", Small));
        Assert.True(e.IsName);
        Assert.Contains("rules/a\\u000ab.yml: the name holds a control character (U+000A)", e.Message);
    }

    [Fact]
    public void PAX_records_are_read_by_their_lengths_so_that_a_value_may_hold_a_newline()
    {
        static byte[] Record(string kv)
        {
            var body = System.Text.Encoding.UTF8.GetByteCount(kv) + 2; // space and newline
            var len = body + body.ToString().Length;
            if ((len).ToString().Length != body.ToString().Length) len++;
            return System.Text.Encoding.UTF8.GetBytes($"{len} {kv}\n");
        }
        var records = TarPreScan.PaxRecords([.. Record("path=a\nb"), .. Record("size=12"), .. Record("mtime=1.5")]);
        Assert.Equal("a\nb", records["path"]);
        Assert.Equal("12", records["size"]);
        Assert.Equal("1.5", records["mtime"]);
        // a malformed record ends the reading without throwing: TarReader says what is wrong
        Assert.Empty(TarPreScan.PaxRecords("99 path=x\n"u8.ToArray()));
    }

    [Fact]
    public void Bytes_that_are_not_a_tar_are_refused_as_such()
    {
        using var junk = new MemoryStream(System.Text.Encoding.ASCII.GetBytes(new string('z', 4096)));
        Assert.Throws<InvalidDataException>(() => ConfBundle.ReadArchive(junk, "upload", Small));
    }

    [Fact]
    public void A_tree_within_the_limits_reads_whole()
    {
        using var tar = Tar(w =>
        {
            File(w, "prometheus.yml", 100);
            File(w, "business/a/job/x.yml", 200 * 1024);
        }, gzip: true);
        var bundle = ConfBundle.ReadArchive(tar, "upload", Small);
        Assert.Equal(["business/a/job/x.yml", "prometheus.yml"], bundle.Files.Keys);
        Assert.Equal(200 * 1024 + 100, bundle.Bytes);
    }

    [Fact]
    public void A_symlink_in_the_conf_dir_is_followed_inside_the_tree_and_refused_when_it_points_outside()
    {
        var conf = Directory.CreateDirectory(Path.Combine(_dir, "conf")).FullName;
        var outside = Path.Combine(_dir, "secret.txt");
        System.IO.File.WriteAllText(outside, "password");
        System.IO.File.WriteAllText(Path.Combine(conf, "prometheus.yml"), "global: {}\n");
        Directory.CreateDirectory(Path.Combine(conf, "shared"));
        System.IO.File.WriteAllText(Path.Combine(conf, "shared", "targets.yml"), "[]\n");
        System.IO.File.CreateSymbolicLink(Path.Combine(conf, "targets.yml"), "shared/targets.yml");
        var bundle = ConfBundle.FromDirectory(conf);
        Assert.Equal("[]\n"u8.ToArray(), bundle.Get("targets.yml"));

        System.IO.File.CreateSymbolicLink(Path.Combine(conf, "leak.yml"), outside);
        var e = Assert.Throws<ConfTreeException>(() => ConfBundle.FromDirectory(conf));
        Assert.Contains("leak.yml", e.Message);
        Assert.Contains("outside the conf dir", e.Message);

        // ../ in a relative link is resolved too
        System.IO.File.Delete(Path.Combine(conf, "leak.yml"));
        System.IO.File.CreateSymbolicLink(Path.Combine(conf, "shared", "up.yml"), "../../secret.txt");
        Assert.Throws<ConfTreeException>(() => ConfBundle.FromDirectory(conf));
    }

    [Fact]
    public void A_tree_is_never_written_through_a_symlinked_directory()
    {
        var live = Directory.CreateDirectory(Path.Combine(_dir, "live")).FullName;
        var elsewhere = Directory.CreateDirectory(Path.Combine(_dir, "elsewhere")).FullName;
        Directory.CreateSymbolicLink(Path.Combine(live, "business"), elsewhere);
        var bundle = ConfBundle.Of(new Dictionary<string, byte[]>
        {
            ["prometheus.yml"] = "global: {}\n"u8.ToArray(),
            ["business/job.yml"] = "[]\n"u8.ToArray(),
        });
        var e = Assert.Throws<ConfTreeException>(() => ConfTree.Sync(live, bundle));
        Assert.Contains("symlink", e.Message);
        Assert.Empty(Directory.GetFiles(elsewhere));
    }

    /// <summary>Zeros of a given length without holding them (seekable, so TarWriter learns the length).</summary>
    private sealed class ZeroStream(long length) : Stream
    {
        private long _position;
        public override bool CanRead => true;
        public override bool CanSeek => true;
        public override bool CanWrite => false;
        public override long Length => length;
        public override long Position { get => _position; set => _position = value; }
        public override void Flush() { }

        public override int Read(byte[] buffer, int offset, int count)
        {
            var n = (int)Math.Min(count, length - _position);
            Array.Clear(buffer, offset, n);
            _position += n;
            return n;
        }

        public override long Seek(long offset, SeekOrigin origin) => _position = origin switch
        {
            SeekOrigin.Begin => offset,
            SeekOrigin.Current => _position + offset,
            _ => length + offset,
        };

        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    private sealed class NonDisposing(Stream inner) : Stream
    {
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => inner.Length;
        public override long Position { get => inner.Position; set => throw new NotSupportedException(); }
        public override void Flush() => inner.Flush();
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => inner.Write(buffer, offset, count);
    }
}
