using System.Diagnostics;
using System.Text;
using Xunit.Abstractions;

namespace PromHa.EndToEnd;

/// <summary>
/// A Docker engine of the test's own (Debian's dockerd with its own data root, exec root, pidfile
/// and unix socket), the images the compose demos run, and the docker / docker-compose clients
/// pointed at it. No registry is reachable here, so the images are made locally: a debootstrapped
/// Debian bookworm with Prometheus, Alertmanager and tini is imported as the base (its tarball is
/// cached in the temp dir, so a second run in the same CI job skips debootstrap), the base plus
/// this machine's .NET SDK stands in for the SDK image, and deploy/docker/Dockerfile builds
/// promha on them through its SDK_IMAGE and BASE_IMAGE arguments. Needs root. dockerd is stopped
/// by its PID at the end, after every container it ran.
/// </summary>
public sealed class DockerLab : IAsyncLifetime
{
    public const string Docker = "/usr/bin/docker";          // Debian's client: /usr/local/bin/docker may be another one
    public const string Compose = "/usr/bin/docker-compose";
    private const string Dockerd = "/usr/sbin/dockerd";
    private const string Debootstrap = "/usr/sbin/debootstrap";
    public const string BaseImage = "promha-base:bookworm";
    public const string SdkImage = "promha-sdk:local";
    public const string PromhaImage = "promha:e2e";

    public static string RepoRoot => Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "../../../../.."));
    /// <summary>Kept across runs in this temp dir: the base rootfs tarball and the engine's images.</summary>
    private static string CacheDir => Path.Combine(Path.GetTempPath(), "promha-docker");

    private string _runDir = "";
    private Process? _dockerd;
    private readonly StringBuilder _log = new();
    public string Socket => $"unix://{_runDir}/docker.sock";
    /// <summary>What the lab did and how long each step took (printed by the tests).</summary>
    public string Log { get { lock (_log) return _log.ToString(); } }

    public static IReadOnlyList<string> Missing() =>
        new[] { Docker, Compose, Dockerd, Debootstrap }.Where(p => !File.Exists(p)).ToList();

    public async Task InitializeAsync()
    {
        if (Missing() is { Count: > 0 } missing)
            throw new InvalidOperationException($"The Docker tests need {string.Join(", ", missing)}: bash deploy/install-deps.sh --tests");
        Directory.CreateDirectory(CacheDir);
        _runDir = Directory.CreateTempSubdirectory("promha-dockerd").FullName;
        try
        {
            await StartEngine();
            await Step("remove what an earlier run left", async () =>
            {
                // The engine is this test's own: anything in it was left by an interrupted run.
                var left = (await Run(Docker, ["ps", "-aq"])).Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
                if (left.Length > 0) await Run(Docker, ["rm", "-f", "-v", .. left]);
                await Run(Docker, ["volume", "prune", "-f"]);
                await Run(Docker, ["network", "prune", "-f"]);
            });
            await EnsureBaseImage();
            await EnsureSdkImage();
            await Step("docker build deploy/docker/Dockerfile", () => Run(Docker,
                ["build", "-q", "--network", "host", "-f", Path.Combine(RepoRoot, "deploy/docker/Dockerfile"), "--build-arg", $"SDK_IMAGE={SdkImage}",
                 "--build-arg", $"BASE_IMAGE={BaseImage}", "-t", PromhaImage, RepoRoot], TimeSpan.FromMinutes(15)));
        }
        catch
        {
            await DisposeAsync();
            throw;
        }
    }

    private async Task StartEngine()
    {
        var sw = Stopwatch.StartNew();
        var root = Path.Combine(CacheDir, "engine");
        var psi = new ProcessStartInfo(Dockerd) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        // --iptables=false: the engine leaves the host's firewall alone. With it on, dockerd sets the
        // FORWARD policy to DROP and loads br_netfilter, which would drop the bridged traffic of the
        // partition tests' network namespaces for the rest of the run. Containers still talk on
        // their compose network, and published ports go through docker-proxy on 127.0.0.1; builds
        // use the host's network (--network host) to reach the Debian mirror and the NuGet feed.
        foreach (var a in new[] { $"--host={Socket}", $"--data-root={root}", $"--exec-root={_runDir}/exec", $"--pidfile={_runDir}/dockerd.pid",
                     "--iptables=false", "--ip-masq=false", "--bridge=none" })
            psi.ArgumentList.Add(a);
        _dockerd = Process.Start(psi)!;
        var engineLog = Path.Combine(_runDir, "dockerd.log");
        _ = Pump(_dockerd.StandardOutput, engineLog);
        _ = Pump(_dockerd.StandardError, engineLog);
        while (true)
        {
            if (_dockerd.HasExited) throw new InvalidOperationException($"dockerd exited with {_dockerd.ExitCode}: {Tail(engineLog)}");
            if ((await Run(Docker, ["version", "--format", "{{.Server.Version}}"], check: false)).Code == 0) break;
            if (sw.Elapsed > TimeSpan.FromSeconds(60)) throw new TimeoutException($"dockerd did not answer in 60 s: {Tail(engineLog)}");
            await Task.Delay(250);
        }
        Note($"dockerd (pid {_dockerd.Id}) ready in {sw.Elapsed.TotalSeconds:F1} s, data root {root}");
    }

    private async Task EnsureBaseImage()
    {
        if ((await Run(Docker, ["image", "inspect", BaseImage], check: false)).Code == 0) return;
        var tarball = Path.Combine(CacheDir, "promha-base-bookworm.tar");
        if (!File.Exists(tarball))
            await Step("debootstrap bookworm with prometheus, alertmanager, tini", async () =>
            {
                var rootfs = Path.Combine(_runDir, "rootfs");
                await Run(Debootstrap, ["--variant=minbase", "--include=ca-certificates,tini,prometheus,prometheus-alertmanager",
                    "bookworm", rootfs, "http://deb.debian.org/debian"], TimeSpan.FromMinutes(10));
                foreach (var dir in new[] { "var/cache/apt/archives", "var/lib/apt/lists" })
                foreach (var f in Directory.EnumerateFiles(Path.Combine(rootfs, dir)).Where(f => !f.EndsWith("lock")))
                    File.Delete(f);
                await Run("/usr/bin/tar", ["-C", rootfs, "-cf", tarball + ".part", "."], TimeSpan.FromMinutes(5));
                File.Move(tarball + ".part", tarball, overwrite: true);
                await Run("/usr/bin/rm", ["-rf", rootfs]);
            });
        await Step("docker import the base", () => Run(Docker, ["import", tarball, BaseImage], TimeSpan.FromMinutes(5)));
    }

    /// <summary>The base with this machine's .NET SDK and CA bundle: what mcr.microsoft.com/dotnet/sdk is elsewhere.</summary>
    private async Task EnsureSdkImage()
    {
        if ((await Run(Docker, ["image", "inspect", SdkImage], check: false)).Code == 0) return;
        await Step("SDK image from this machine's dotnet", async () =>
        {
            var dotnet = Path.GetDirectoryName(new FileInfo("/usr/bin/dotnet").ResolveLinkTarget(true)?.FullName ?? "/usr/share/dotnet/dotnet")!;
            var ctx = Path.Combine(_runDir, "sdk");
            Directory.CreateDirectory(ctx);
            // hard links when the temp dir shares the SDK's file system, a copy otherwise
            if ((await Run("/usr/bin/cp", ["-al", dotnet, Path.Combine(ctx, "dotnet")], check: false)).Code != 0)
                await Run("/usr/bin/cp", ["-a", dotnet, Path.Combine(ctx, "dotnet")], TimeSpan.FromMinutes(5));
            File.Copy("/etc/ssl/certs/ca-certificates.crt", Path.Combine(ctx, "ca-certificates.crt"));
            await File.WriteAllTextAsync(Path.Combine(ctx, "Dockerfile"), $"""
                FROM {BaseImage}
                COPY dotnet /usr/share/dotnet
                # this machine's CA bundle: the NuGet feed is reached through its proxy
                COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
                RUN ln -s /usr/share/dotnet/dotnet /usr/bin/dotnet
                ENV DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1 DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 NUGET_CERT_REVOCATION_MODE=offline
                """);
            await Run(Docker, ["build", "-q", "--network", "host", "-t", SdkImage, ctx], TimeSpan.FromMinutes(10));
            await Run("/usr/bin/rm", ["-rf", ctx]);
        });
    }

    /// <summary>docker-compose with this engine and the given variables (image, ports).</summary>
    public Task<(int Code, string Stdout, string Stderr)> ComposeRun(string project, string file, IReadOnlyDictionary<string, string> env,
        IEnumerable<string> args, TimeSpan? timeout = null, bool check = true) =>
        Run(Compose, ["-p", project, "-f", file, .. args], timeout ?? TimeSpan.FromMinutes(3), check, env);

    /// <summary>A command against this engine; throws with its output when it fails and <paramref name="check"/> is set.</summary>
    public Task<(int Code, string Stdout, string Stderr)> Run(string file, IEnumerable<string> args, TimeSpan? timeout = null,
        bool check = true, IReadOnlyDictionary<string, string>? env = null) =>
        ProcessRun.Exec(file, args, timeout, check, new Dictionary<string, string>(env ?? new Dictionary<string, string>()) { ["DOCKER_HOST"] = Socket });

    private async Task Step(string what, Func<Task> step)
    {
        var sw = Stopwatch.StartNew();
        await step();
        Note($"{what}: {sw.Elapsed.TotalSeconds:F1} s");
    }

    public void Note(string line)
    {
        lock (_log) _log.AppendLine(line);
    }

    /// <summary>Every container, then the engine by its PID (SIGTERM: it stops its containerd), then its run dir.</summary>
    public async Task DisposeAsync()
    {
        if (_dockerd is { HasExited: false } engine)
        {
            var left = await Run(Docker, ["ps", "-aq"], check: false);
            var ids = left.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            if (ids.Length > 0) await Run(Docker, ["rm", "-f", "-v", .. ids], check: false);
            await Run("/usr/bin/kill", ["-TERM", engine.Id.ToString()], check: false);
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            try { await engine.WaitForExitAsync(cts.Token); }
            catch (OperationCanceledException) { engine.Kill(entireProcessTree: true); }
        }
        _dockerd?.Dispose();
        if (_runDir.Length > 0 && Environment.GetEnvironmentVariable("KEEP_E2E_DIRS") != "1")
            try { Directory.Delete(_runDir, true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    private static async Task Pump(StreamReader from, string file)
    {
        while (await from.ReadLineAsync() is { } line)
            lock (file) File.AppendAllText(file, line + "\n");
    }

    private static string Tail(string file) => File.Exists(file) ? ProcessRun.Last(File.ReadAllText(file), 2000) : "(no log)";
}
