namespace PromHa.Node;

/// <summary>realpath(3): a path with every symlink on it resolved, directories included.</summary>
public static class RealPath
{
    public static string Of(string path, int depth = 0)
    {
        if (depth > 40) throw new IOException($"{path}: too many levels of symbolic links");
        var full = Path.GetFullPath(path);
        var parent = Path.GetDirectoryName(full);
        if (parent is null) return full; // the root
        var here = Path.Combine(Of(parent, depth + 1), Path.GetFileName(full));
        if (new FileInfo(here).LinkTarget is not { } target) return here;
        return Of(Path.IsPathRooted(target) ? target : Path.Combine(Path.GetDirectoryName(here)!, target), depth + 1);
    }
}
