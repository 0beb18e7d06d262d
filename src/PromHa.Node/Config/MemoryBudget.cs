using System.Runtime;

namespace PromHa.Node.Config;

/// <summary>
/// What a node keeps of a conf tree between applies, and giving memory back after a large one. A
/// tree is small in the common case and kept whole (no re-reading for the next apply); a large one
/// (a 40 MiB file_sd file, 100,000 files) is dropped once applied and read again when needed, and
/// the GC is asked to compact and return the freed pages to the OS, so that a node's RSS comes back
/// to its idle figure instead of staying at its peak (measured with `promha-lab bench config --upload-mib`).
/// </summary>
public static class MemoryBudget
{
    /// <summary>Trees up to this size stay in memory between applies.</summary>
    public const long KeepBytes = 4L * 1024 * 1024;
    public const int KeepFiles = 5_000;

    public static bool Keep(ConfBundle bundle) => bundle.Bytes <= KeepBytes && bundle.Files.Count <= KeepFiles;

    /// <summary>A blocking, compacting collection that decommits what it frees (large object heap included).</summary>
    public static void GiveBack()
    {
        GCSettings.LargeObjectHeapCompactionMode = GCLargeObjectHeapCompactionMode.CompactOnce;
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        TrimNativeHeap();
    }

    /// <summary>
    /// zlib's buffers (every bundle is gzip), SQLite's and TLS's live in glibc's malloc arenas, which
    /// keep freed pages until asked: malloc_trim(0) hands them back. Not glibc (musl): nothing to do.
    /// </summary>
    private static void TrimNativeHeap()
    {
        if (!OperatingSystem.IsLinux()) return;
        try
        {
            MallocTrim(0);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
        }
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "malloc_trim")]
    private static extern int MallocTrim(nuint pad);
}
