using System.CommandLine;
using PromHa.LabTool;

// promha-lab: the demo and the benchmarks, beside (not inside) the promha daemon.
var root = new RootCommand("PromHa's lab: a local demo cluster on real Prometheus, and the benchmarks");
root.Subcommands.Add(DemoCommand.Create());
root.Subcommands.Add(BenchCommand.Create());
// After Ctrl-C, give the demo time to stop its processes instead of the default 2 s.
return await root.Parse(args).InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = TimeSpan.FromSeconds(90) });
