using System.Text;
using PromHa.Node.Config;
using PromHa.Node.Http;

namespace PromHa.Tests.Config;

public sealed class ConfBundleTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("promha-bundle").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    private string Write(string rel, string content, string? root = null)
    {
        var path = Path.Combine(root ?? _dir, rel);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, content);
        return path;
    }

    [Fact]
    public void Changed_paths_are_the_added_removed_and_changed_files_in_order()
    {
        var a = ConfBundle.Of(new Dictionary<string, byte[]> { ["b.yml"] = "1"u8.ToArray(), ["same.yml"] = "s"u8.ToArray(), ["gone.yml"] = "g"u8.ToArray() });
        var b = ConfBundle.Of(new Dictionary<string, byte[]> { ["b.yml"] = "2"u8.ToArray(), ["same.yml"] = "s"u8.ToArray(), ["a/new.yml"] = "n"u8.ToArray() });
        Assert.Equal(["a/new.yml", "b.yml", "gone.yml"], a.ChangedPaths(b));
        Assert.Empty(a.ChangedPaths(a));
    }

    [Fact]
    public void The_hash_follows_content_not_timestamps_or_editor_leftovers()
    {
        Write("prometheus.yml", "global: {}\n");
        Write("business/a/job/x.yml", "- targets: ['h:1']\n");
        var first = ConfBundle.FromDirectory(_dir);

        File.SetLastWriteTimeUtc(Path.Combine(_dir, "prometheus.yml"), DateTime.UtcNow.AddDays(-3));
        Write("business/a/job/.x.yml.swp", "vim");
        Write("business/a/job/x.yml~", "backup");
        Write(".git/config", "[core]");
        Write("business/a/job/.promha-x.yml.1.tmp", "half");
        var same = ConfBundle.FromDirectory(_dir);
        Assert.Equal(first.Hash, same.Hash);
        Assert.Equal(["business/a/job/x.yml", "prometheus.yml"], same.Files.Keys);

        Write("business/a/job/x.yml", "- targets: ['h:2']\n");
        Assert.NotEqual(first.Hash, ConfBundle.FromDirectory(_dir).Hash);
    }

    [Fact]
    public void A_bundle_survives_a_tar_round_trip_with_the_same_hash_and_bytes()
    {
        var bundle = ConfBundle.Of(new Dictionary<string, byte[]>
        {
            ["prometheus.yml"] = "global: {}\n"u8.ToArray(),
            ["business/b/rule/r.rules"] = "groups: []\n"u8.ToArray(),
        });
        var tar = bundle.ToTar();
        var back = ConfBundle.ReadArchive(new MemoryStream(tar), "test");
        Assert.Equal(bundle.Hash, back.Hash);
        Assert.Equal(tar, back.ToTar()); // deterministic: equal bundles give equal bytes
    }

    [Fact]
    public void A_tar_that_leaves_the_tree_is_refused()
    {
        var ms = new MemoryStream();
        using (var w = new System.Formats.Tar.TarWriter(ms, leaveOpen: true))
            w.WriteEntry(new System.Formats.Tar.PaxTarEntry(System.Formats.Tar.TarEntryType.RegularFile, "../etc/passwd")
                { DataStream = new MemoryStream("x"u8.ToArray()) });
        ms.Position = 0;
        var e = Assert.Throws<ConfTreeException>(() => ConfBundle.ReadArchive(ms, "upload"));
        Assert.Contains("../etc/passwd", e.Message);
    }

    [Fact]
    public void Sync_makes_a_dir_hold_exactly_the_bundle_and_leaves_hidden_files_alone()
    {
        Write("prometheus.yml", "old\n");
        Write("business/gone/job/old.yml", "[]\n");
        Write(".keep", "mine");
        var bundle = ConfBundle.Of(new Dictionary<string, byte[]>
        {
            ["prometheus.yml"] = "new\n"u8.ToArray(),
            ["business/a/job/x.yml"] = "[]\n"u8.ToArray(),
        });
        var changed = ConfTree.Sync(_dir, bundle);
        Assert.Equal(3, changed.Count); // one written, one created, one removed
        Assert.Equal(bundle.Hash, ConfBundle.FromDirectory(_dir).Hash);
        Assert.True(File.Exists(Path.Combine(_dir, ".keep")));
        Assert.False(Directory.Exists(Path.Combine(_dir, "business", "gone")));
        Assert.Empty(ConfTree.Sync(_dir, bundle));
    }

    /// <summary>
    /// A version may turn a file into a directory and back (found by the generated trees of the end
    /// to end test: the staging dir of the next candidate could not be written, and a live tree
    /// would have been stuck on every node the same way).
    /// </summary>
    [Fact]
    public void A_file_that_becomes_a_directory_and_a_directory_that_becomes_a_file_are_both_written()
    {
        ConfBundle Tree(params string[] paths) => ConfBundle.Of(paths.ToDictionary(p => p, p => Encoding.UTF8.GetBytes(p + "\n")));
        foreach (var tree in new[]
                 {
                     Tree("prometheus.yml", "extra/a b/x"),
                     Tree("prometheus.yml", "extra/a b/x/y/z"),       // x: a file, then a directory
                     Tree("prometheus.yml", "extra/a b/x", "extra/q"), // and back: the directory x and all in it go
                     Tree("prometheus.yml", "extra/q/r"),
                     Tree("prometheus.yml", "extra"),
                 })
        {
            ConfTree.Sync(_dir, tree, durable: false);
            Assert.Equal(tree.Hash, ConfBundle.FromDirectory(_dir).Hash);
        }
        Assert.Empty(Directory.EnumerateFiles(_dir, ".promha-*", SearchOption.AllDirectories));
    }

    /// <summary>All files are written before any is renamed (one flush for the tree): equal files in one dir must not share a pending name.</summary>
    [Fact]
    public void Equal_files_in_one_dir_and_many_files_are_all_written()
    {
        var files = Enumerable.Range(0, 2000).ToDictionary(i => $"job/t{i:D4}.yml", i => i % 2 == 0 ? "- targets: []\n"u8.ToArray() : Encoding.UTF8.GetBytes($"# {i}\n"));
        files["prometheus.yml"] = "scrape_configs: []\n"u8.ToArray();
        var bundle = ConfBundle.Of(files);
        Assert.Equal(files.Count, ConfTree.Sync(_dir, bundle).Count);
        Assert.Equal(bundle.Hash, ConfBundle.FromDirectory(_dir).Hash);
        Assert.Empty(Directory.EnumerateFiles(_dir, ".promha-*", SearchOption.AllDirectories)); // no pending file left
        // the manifest of a directory read without contents has the same hash
        var cache = new ScanCache();
        Assert.Equal(bundle.Hash, ConfBundle.FromDirectory(_dir, cache: cache, contents: false).Hash);
        Assert.Equal(0, ConfBundle.FromDirectory(_dir, cache: cache, contents: false).Bytes);
        File.WriteAllText(Path.Combine(_dir, "job", "t0001.yml"), "# changed\n");
        Assert.NotEqual(bundle.Hash, ConfBundle.FromDirectory(_dir, cache: cache, contents: false).Hash);
        // read with contents through the cache: the same tree as a plain read
        Assert.Equal(ConfBundle.FromDirectory(_dir).Hash, ConfBundle.FromDirectory(_dir, cache: cache).Hash);
        Assert.Equal("# changed\n", Encoding.UTF8.GetString(ConfBundle.FromDirectory(_dir, cache: cache).Get("job/t0001.yml")!));
    }

    /// <summary>Over its budget the cache keeps hashes only; a read with contents then reads those files again, and gets them right.</summary>
    [Fact]
    public void The_scan_cache_keeps_contents_only_within_its_budget()
    {
        for (var i = 0; i < 10; i++) Write($"f{i}.yml", new string('x', 1000) + i);
        var cache = new ScanCache(maxContentBytes: 4000);
        var first = ConfBundle.FromDirectory(_dir, cache: cache);
        Assert.True(cache.ContentBytes <= 4000);
        Assert.True(cache.ContentBytes > 0);
        var again = ConfBundle.FromDirectory(_dir, cache: cache);
        Assert.Equal(first.Hash, again.Hash);
        Assert.All(again.Files.Values, f => Assert.Equal(1001, f.Content.Length));
        File.Delete(Path.Combine(_dir, "f0.yml"));
        var fewer = ConfBundle.FromDirectory(_dir, cache: cache);
        Assert.Equal(9, fewer.Files.Count);
        Assert.True(cache.ContentBytes <= 4000);
    }

    [Fact]
    public void Backups_keep_only_the_newest()
    {
        Write("prometheus.yml", "v\n");
        var backups = Path.Combine(_dir, ".backups");
        for (var i = 0; i < 4; i++)
        {
            ConfTree.Backup(ConfBundle.FromDirectory(_dir), backups, $"b{i}", keep: 2);
            Thread.Sleep(5);
        }
        var left = Directory.GetFiles(backups).Select(Path.GetFileName).Order().ToList();
        Assert.Equal(2, left.Count);
        Assert.EndsWith("b3.tar", left[^1]);
        // a backup is a plain tar of the tree
        using var tar = File.OpenRead(Path.Combine(backups, left[^1]!));
        Assert.Equal(ConfBundle.FromDirectory(_dir).Hash, ConfBundle.ReadArchive(tar, "backup").Hash);
    }

    [Fact]
    public void Diff_shows_each_changed_file_as_a_unified_diff()
    {
        var a = ConfBundle.Of(new Dictionary<string, byte[]>
        {
            ["prometheus.yml"] = Encoding.UTF8.GetBytes("global:\n  scrape_interval: 15s\n"),
            ["same.yml"] = "x\n"u8.ToArray(),
        });
        var b = ConfBundle.Of(new Dictionary<string, byte[]>
        {
            ["prometheus.yml"] = Encoding.UTF8.GetBytes("global:\n  scrape_interval: 5s\n"),
            ["same.yml"] = "x\n"u8.ToArray(),
            ["business/a/job/new.yml"] = "[]\n"u8.ToArray(),
        });
        var diff = ConfigEndpoints.Diff(a, b, "v1", "v2");
        Assert.Contains("--- v1/prometheus.yml", diff);
        Assert.Contains("-  scrape_interval: 15s", diff);
        Assert.Contains("+  scrape_interval: 5s", diff);
        Assert.Contains("+++ v2/business/a/job/new.yml", diff);
        Assert.DoesNotContain("same.yml", diff);
    }
}
