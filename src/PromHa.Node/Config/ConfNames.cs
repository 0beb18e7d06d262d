using System.Text;

namespace PromHa.Node.Config;

/// <summary>
/// Which file names a conf tree may hold: every node must be able to carry the name in a bundle,
/// write it under its own directories and read it back, whatever the author's system allowed. A
/// name with a newline was once committed and then never fetched by any node (the tar reader
/// refused the header it sat in), with nothing said about why.
/// </summary>
public static class ConfNames
{
    /// <summary>Linux's NAME_MAX: the longest single file or directory name, in bytes.</summary>
    public const int MaxNameBytes = 255;

    /// <summary>
    /// The longest relative path, in bytes. Linux's PATH_MAX is 4,096 bytes for the whole path; a
    /// quarter of it is left for the node's own directory in front (data/live, staging, ...).
    /// </summary>
    public const int MaxPathBytes = 3072;

    /// <summary>Why <paramref name="relativePath"/> ('/'-separated) cannot be part of a tree, or null when it can.</summary>
    public static string? Problem(string relativePath)
    {
        if (relativePath.Length == 0) return "an empty file name";
        for (var i = 0; i < relativePath.Length; i++)
        {
            var c = relativePath[i];
            if (char.IsHighSurrogate(c) && i + 1 < relativePath.Length && char.IsLowSurrogate(relativePath[i + 1]))
            {
                i++; // a pair: one character beyond the Basic Multilingual Plane
                continue;
            }
            // bytes that are not UTF-8 are read as U+FFFD: the name written back would be another name
            if (c == '\uFFFD') return "the name is not valid UTF-8 (it holds bytes that decode to U+FFFD); rename the file";
            if (char.IsSurrogate(c)) return "the name is not valid Unicode (a lone surrogate); rename the file";
            if (char.IsControl(c)) return $"the name holds a control character (U+{(int)c:X4}); rename the file";
            if (c == '\\') return "the name holds a backslash, which archives and other systems read as a directory separator; rename the file";
        }
        if (Encoding.UTF8.GetByteCount(relativePath) is var bytes && bytes > MaxPathBytes)
            return $"the path is {bytes:N0} bytes long, more than {MaxPathBytes:N0} (Linux allows 4,096 for the whole path, the node's own directory included)";
        foreach (var part in relativePath.Split('/'))
        {
            if (part.Length == 0) return "the path has an empty component ('//' or a trailing '/')";
            if (Encoding.UTF8.GetByteCount(part) is var n && n > MaxNameBytes)
                return $"'{Shorten(part)}' is {n:N0} bytes long, more than the {MaxNameBytes} a file name may have on Linux";
        }
        return null;
    }

    /// <summary>The first file of the tree whose name cannot be carried, as "path: reason"; null when every name can.</summary>
    public static string? FirstProblem(IEnumerable<string> paths)
    {
        var all = paths.ToHashSet(StringComparer.Ordinal);
        foreach (var p in all.Order(StringComparer.Ordinal))
        {
            if (Problem(p) is { } why) return $"{Printable(p)}: {why}";
            // an archive can hold both "a" and "a/b"; no directory can
            for (var slash = p.IndexOf('/'); slash > 0; slash = p.IndexOf('/', slash + 1))
                if (all.Contains(p[..slash]))
                    return $"{Printable(p[..slash])}: is a file, and {Printable(p)} needs it to be a directory";
        }
        return null;
    }

    /// <summary>A name as it can be shown in a log line or a JSON reason: control characters escaped.</summary>
    public static string Printable(string name)
    {
        var sb = new StringBuilder(name.Length);
        for (var i = 0; i < name.Length; i++)
        {
            var c = name[i];
            if (char.IsHighSurrogate(c) && i + 1 < name.Length && char.IsLowSurrogate(name[i + 1])) sb.Append(c).Append(name[++i]);
            else if (char.IsControl(c) || char.IsSurrogate(c)) sb.Append($"\\u{(int)c:x4}");
            else sb.Append(c);
        }
        return sb.ToString();
    }

    private static string Shorten(string part) => part.Length <= 40 ? part : part[..20] + "..." + part[^12..];
}
