namespace PromHa.Node.Security;

/// <summary>Secrets on disk (the admin token, private keys): readable by their owner only, from the moment they exist.</summary>
public static class SecretFile
{
    public static void Write(string path, byte[] content)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        // A file that exists keeps its mode on open: start from none so the new one is created 0600.
        File.Delete(path);
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        using var fs = new FileStream(path, options);
        fs.Write(content);
    }
}
