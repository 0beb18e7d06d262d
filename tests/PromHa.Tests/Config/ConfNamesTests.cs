using System.Text;
using CsCheck;
using PromHa.Node.Config;

namespace PromHa.Tests.Config;

/// <summary>
/// Which names a conf tree may hold, and the promise behind them: a tree is refused with a reason
/// that names the file, or every node reads back exactly the tree that was committed.
/// </summary>
public class ConfNamesTests : IDisposable
{
    // tmpfs where there is one: the generated trees are written with an fsync per file
    private readonly string _dir = Directory.CreateDirectory(Path.Combine(Directory.Exists("/dev/shm") ? "/dev/shm" : Path.GetTempPath(),
        $"promha-names-{Guid.NewGuid():N}")).FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    [Theory]
    [InlineData("prometheus.yml")]
    [InlineData("rules/ünïcödé-規則.yml")]
    [InlineData("targets/😀 with spaces.json")]
    [InlineData("a/b/c/d/e/f/g/h/i/j/k.yml")]
    public void Ordinary_names_are_taken(string name) => Assert.Null(ConfNames.Problem(name));

    [Theory]
    [InlineData("rules/bad\nname.yml", "control character (U+000A)")]
    [InlineData("rules/tab\there.yml", "control character (U+0009)")]
    [InlineData("del\u007f.yml", "control character (U+007F)")]
    [InlineData("c1\u0085.yml", "control character (U+0085)")]
    [InlineData("latin1-\uFFFD.yml", "not valid UTF-8")]
    [InlineData("windows\\path.yml", "backslash")]
    [InlineData("rules//x.yml", "empty component")]
    public void Names_no_node_can_carry_are_refused_with_the_reason(string name, string reason) =>
        Assert.Contains(reason, ConfNames.Problem(name));

    [Fact]
    public void Lone_surrogates_are_refused_and_pairs_are_taken()
    {
        // not as theory data: xUnit's serialisation turns a lone surrogate into U+FFFD
        Assert.Contains("lone surrogate", ConfNames.Problem("lone-\uD800.yml"));
        Assert.Contains("lone surrogate", ConfNames.Problem("lone-\uDC00.yml"));
        Assert.Contains("lone surrogate", ConfNames.Problem("end-\uD83D"));
        Assert.Null(ConfNames.Problem("pair-\uD83D\uDE00.yml"));
        Assert.Equal("lone-\\ud800.yml", ConfNames.Printable("lone-\uD800.yml"));
    }

    [Fact]
    public void Names_and_paths_over_the_platform_limits_are_refused()
    {
        Assert.Null(ConfNames.Problem(new string('n', 255)));
        Assert.Contains("more than the 255", ConfNames.Problem(new string('n', 256)));
        Assert.Contains("more than the 255", ConfNames.Problem(string.Concat(Enumerable.Repeat("é", 128)))); // 256 bytes in UTF-8
        var deep = string.Join('/', Enumerable.Repeat(new string('d', 200), 16));
        Assert.Contains("3,072", ConfNames.Problem(deep));
    }

    [Fact]
    public void A_file_that_another_file_needs_as_its_directory_is_refused_naming_both()
    {
        var why = ConfNames.FirstProblem(["rules", "rules/a.yml", "prometheus.yml"]);
        Assert.Equal("rules: is a file, and rules/a.yml needs it to be a directory", why);
    }

    [Fact]
    public void A_tree_with_a_newline_in_a_name_is_refused_before_anything_is_written_and_the_reason_shows_it_escaped()
    {
        var bundle = ConfBundle.Of([KeyValuePair.Create("prometheus.yml", "global: {}\n"u8.ToArray()), KeyValuePair.Create("rules/a\nb.yml", Array.Empty<byte>())]);
        var e = Assert.Throws<ConfTreeException>(() => bundle.ToVerifiedTarGz(ArchiveLimits.Default));
        Assert.Contains("rules/a\\u000ab.yml: the name holds a control character (U+000A)", e.Reason);
    }

    [Fact]
    public void A_conf_dir_with_a_name_that_is_not_utf8_is_refused_naming_the_file_not_skipped()
    {
        File.WriteAllText(Path.Combine(_dir, "prometheus.yml"), "global: {}\n");
        // a Latin-1 name (0xE9), as a tool on another system writes it: no .NET string can name it
        var raw = Encoding.UTF8.GetBytes(_dir + "/caf").Concat(new byte[] { 0xE9, (byte)'.', (byte)'y', (byte)'m', (byte)'l', 0 }).ToArray();
        var fd = Native.Creat(raw, Convert.ToInt32("644", 8));
        Assert.True(fd >= 0, "creat failed");
        Native.Close(fd);

        try
        {
            var e = Assert.Throws<ConfTreeException>(() => ConfBundle.FromDirectory(_dir));
            Assert.Contains("caf\uFFFD.yml", e.PathName);
            Assert.Contains("not valid UTF-8", e.Reason);
        }
        finally
        {
            Native.Unlink(raw); // by its bytes: .NET cannot name it to delete it
        }
    }

    private static class Native
    {
        [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "unlink", SetLastError = true)]
        public static extern int Unlink(byte[] path);

        [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "creat", SetLastError = true)]
        public static extern int Creat(byte[] path, int mode);

        [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "close")]
        public static extern int Close(int fd);
    }

    // ---- generated trees ------------------------------------------------------------------

    /// <summary>Name parts as users and their tools make them: mostly plain, some from the whole UTF-16 range, raw bytes, long ones.</summary>
    private static readonly Gen<string> Part = Gen.Frequency(
        (10, Gen.String[Gen.Char.AlphaNumeric, 1, 12]),
        (6, Gen.Char['a', 'c'].Select(c => c.ToString())),                      // few names: a file in one tree is a directory in the next
        (3, Gen.String[Gen.Char, 1, 6]),                                        // any UTF-16 unit: controls, lone surrogates, U+FFFD
        (2, Gen.Byte.Array[1, 8].Select(b => Encoding.UTF8.GetString(b))),      // raw bytes as a file system hands them over
        (1, Gen.Int[240, 270].Select(n => new string('x', n))),                 // around NAME_MAX
        (1, Gen.Int[0, 8].Select(i => new[] { "😀", "規則", "é", "e\u0301", "\u2028", "a b", "#x", "x~", "x.bak" }[i])));

    private static readonly Gen<string> RelPath = Gen.Frequency(
            (6, Part.Array[1, 4]),
            (1, Part.Array[5, 30]))                                             // deep paths
        .Select(parts => string.Join('/', parts));

    private static readonly Gen<byte[]> Content = Gen.Frequency((2, Gen.Const(Array.Empty<byte>())), (5, Gen.Byte.Array[0, 64]));

    private static readonly Gen<Dictionary<string, byte[]>> Tree = Gen.Frequency(
            (8, Gen.Select(RelPath, Content).Array[1, 12]),
            (1, Gen.Select(RelPath, Content).Array[100, 250]))                  // many files
        .Select(files => files
            .Where(f => ConfBundle.IsConfigPath(f.Item1)) // hidden files and editor leftovers are never part of a read tree
            .GroupBy(f => f.Item1, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => g.First().Item2, StringComparer.Ordinal));

    /// <summary>What a Linux node can write and read back under a name, worked out apart from <see cref="ConfNames"/>.</summary>
    private static bool Carriable(IReadOnlyCollection<string> paths)
    {
        var strict = new UTF8Encoding(false, throwOnInvalidBytes: true);
        foreach (var p in paths)
        {
            byte[] bytes;
            try
            {
                bytes = strict.GetBytes(p);
            }
            catch (EncoderFallbackException)
            {
                return false; // a lone surrogate has no UTF-8 form
            }
            if (p.Contains('\uFFFD') || p.Contains('\\') || p.Any(char.IsControl)) return false;
            if (bytes.Length > ConfNames.MaxPathBytes || p.Split('/').Any(part => part.Length == 0 || Encoding.UTF8.GetByteCount(part) > 255)) return false;
            var parts = p.Split('/');
            for (var i = 1; i < parts.Length; i++)
                if (paths.Contains(string.Join('/', parts[..i]))) return false;
        }
        return true;
    }

    [Fact]
    public void Generated_trees_are_refused_naming_a_file_or_read_back_and_written_identically()
    {
        var live = Path.Combine(_dir, "live");
        Tree.Where(t => t.Count > 0).Sample(files =>
        {
            var bundle = ConfBundle.Of(files);
            var carriable = Carriable(files.Keys);
            byte[] archive;
            try
            {
                archive = bundle.ToVerifiedTarGz(ArchiveLimits.Default);
            }
            catch (ConfTreeException e)
            {
                Assert.False(carriable, $"refused a tree a node can carry: {e.Message}");
                Assert.Contains(files.Keys, p => e.Reason.StartsWith(ConfNames.Printable(p) + ":", StringComparison.Ordinal) ||
                                                 e.Reason.Contains(ConfNames.Printable(p) + " needs it", StringComparison.Ordinal));
                return;
            }
            Assert.True(carriable, $"took a tree no node can carry: {string.Join(", ", files.Keys.Select(ConfNames.Printable))}");

            // what another node does with the bytes: read them, write the tree over the version
            // before (one dir for the whole run, as a node's live tree), scan it later
            using var ms = new MemoryStream(archive);
            var fetched = ConfBundle.ReadArchive(ms, "fetched", ArchiveLimits.Default);
            Assert.Equal(bundle.Hash, fetched.Hash);
            lock (_dir)
            {
                ConfTree.Sync(live, fetched);
                Assert.Equal(bundle.Hash, ConfBundle.FromDirectory(live).Hash);
            }
        }, iter: 200, print: t => string.Join(", ", t.Keys.Select(ConfNames.Printable)));
    }
}
