using System.Globalization;
using Prometheus;

namespace PromHa.Node.Health;

/// <summary>
/// The standard process_* metrics, read from /proc/self/stat and /proc/self/status on each scrape,
/// plus the private part of the resident memory (RssAnon + RssShmem), which is what grows with
/// work and what the memory target is about. prometheus-net's own process metrics enumerate
/// /proc/self/fd and /proc/self/task on every scrape: that was a tenth of an idle node's CPU.
/// </summary>
public static class ProcessMetrics
{
    private static readonly Gauge Cpu = Metrics.CreateGauge("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.");
    private static readonly Gauge Start = Metrics.CreateGauge("process_start_time_seconds", "Start time of the process since unix epoch in seconds.");
    private static readonly Gauge Virtual = Metrics.CreateGauge("process_virtual_memory_bytes", "Virtual memory size in bytes.");
    private static readonly Gauge Resident = Metrics.CreateGauge("process_resident_memory_bytes", "Resident memory size in bytes.");
    private static readonly Gauge Private = Metrics.CreateGauge("promha_process_private_memory_bytes",
        "Resident memory not backed by files (RssAnon + RssShmem in /proc/self/status): the part no other process shares.");
    private static readonly Gauge Threads = Metrics.CreateGauge("process_num_threads", "Number of OS threads in the process.");
    private static readonly Gauge ManagedHeap = Metrics.CreateGauge("dotnet_total_memory_bytes", "Total known allocated memory on the managed heap.");

    /// <summary>Suppresses prometheus-net's process metrics and registers these instead.</summary>
    public static void Register()
    {
        Metrics.SuppressDefaultMetrics(new SuppressDefaultMetricOptions
        {
            SuppressProcessMetrics = true,
            SuppressDebugMetrics = true,
            SuppressEventCounters = true,
            SuppressMeters = true,
        });
        Start.SetToTimeUtc(System.Diagnostics.Process.GetCurrentProcess().StartTime.ToUniversalTime());
        Metrics.DefaultRegistry.AddBeforeCollectCallback(Update);
    }

    private static void Update()
    {
        ManagedHeap.Set(GC.GetTotalMemory(false));
        if (!OperatingSystem.IsLinux()) return;
        try
        {
            var status = ReadStatus(File.ReadAllLines("/proc/self/status"));
            Resident.Set(status.GetValueOrDefault("VmRSS") * 1024d);
            Virtual.Set(status.GetValueOrDefault("VmSize") * 1024d);
            Private.Set((status.GetValueOrDefault("RssAnon") + status.GetValueOrDefault("RssShmem")) * 1024d);
            Threads.Set(status.GetValueOrDefault("Threads"));
            // utime and stime are fields 14 and 15, counted after the ")" that ends the command name.
            var stat = File.ReadAllText("/proc/self/stat");
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            var ticks = double.Parse(fields[11], CultureInfo.InvariantCulture) + double.Parse(fields[12], CultureInfo.InvariantCulture);
            Cpu.Set(ticks / 100); // USER_HZ is 100 on Linux
        }
        catch (IOException) { /* a scrape without process figures rather than a failed scrape */ }
    }

    /// <summary>"Key:   123 kB" lines of /proc/PID/status as numbers (kB where the line says so).</summary>
    public static Dictionary<string, long> ReadStatus(IEnumerable<string> lines)
    {
        var values = new Dictionary<string, long>();
        foreach (var line in lines)
        {
            var colon = line.IndexOf(':');
            if (colon <= 0) continue;
            var rest = line[(colon + 1)..].Trim().Split(' ', 2)[0];
            if (long.TryParse(rest, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v)) values[line[..colon]] = v;
        }
        return values;
    }
}
