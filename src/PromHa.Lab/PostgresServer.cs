using System.Diagnostics;
using System.Globalization;

namespace PromHa.Lab;

/// <summary>
/// A PostgreSQL server of a test's own (Debian's postgresql 15): initdb in a temp dir, listening on
/// 127.0.0.1 at a claimed port, trust authentication for the one role `promha`. Started with pg_ctl
/// and stopped by the postmaster's PID, also when the test fails. Run as root it runs as the
/// `postgres` user, which initdb insists on.
/// </summary>
public sealed class PostgresServer : IAsyncDisposable
{
    public const string Role = "promha";
    private readonly string _bin;
    private readonly bool _asPostgres;

    public string Dir { get; }
    public int Port { get; }
    public int Pid { get; private set; }
    public string DataDir => Path.Combine(Dir, "data");
    public string LogPath => Path.Combine(Dir, "postgres.log");

    private PostgresServer(string dir, int port, string bin, bool asPostgres)
    {
        Dir = dir;
        Port = port;
        _bin = bin;
        _asPostgres = asPostgres;
    }

    /// <summary>Debian's server binaries (/usr/lib/postgresql/&lt;major&gt;/bin), the newest, or null.</summary>
    public static string? FindBin() =>
        Directory.Exists("/usr/lib/postgresql")
            ? Directory.EnumerateDirectories("/usr/lib/postgresql")
                .Select(d => Path.Combine(d, "bin"))
                .Where(b => File.Exists(Path.Combine(b, "initdb")))
                .OrderByDescending(b => int.TryParse(Path.GetFileName(Path.GetDirectoryName(b)), out var v) ? v : 0)
                .FirstOrDefault()
            : null;

    /// <summary>The test's database, created at start.</summary>
    public string Database { get; private set; } = "";
    /// <summary>An Npgsql connection string for <see cref="Database"/>.</summary>
    public string ConnectionString => $"Host=127.0.0.1;Port={Port};Username={Role};Database={Database};Timeout=3;Command Timeout=5";

    /// <summary>Starts a server in &lt;parentDir&gt;/postgres with one database for the test (stopped again if any of it fails).</summary>
    public static async Task<PostgresServer> Start(string parentDir, string database = "promha")
    {
        var bin = FindBin() ?? throw new InvalidOperationException("PostgreSQL is not installed: apt-get install -y postgresql");
        var dir = Path.Combine(parentDir, "postgres");
        Directory.CreateDirectory(dir);
        var asPostgres = Environment.UserName == "root";
        if (asPostgres && !OperatingSystem.IsWindows())
        {
            await ProcessRun.Exec("chown", ["-R", "postgres", dir], check: true);
            // The server must reach its dir through the parents (a test's temp dirs are 0700): let
            // others pass through those below the temp path, never anything above it.
            var temp = Path.GetFullPath(Path.GetTempPath()).TrimEnd('/');
            for (var d = Path.GetDirectoryName(Path.GetFullPath(dir)); d is not null && d.StartsWith(temp + "/", StringComparison.Ordinal); d = Path.GetDirectoryName(d))
                File.SetUnixFileMode(d, File.GetUnixFileMode(d) | UnixFileMode.OtherExecute);
        }
        var pg = new PostgresServer(dir, LoopbackPorts.Claim(1)[0], bin, asPostgres);
        try
        {
            await pg.Run("initdb", ["-D", pg.DataDir, "-A", "trust", "-U", Role, "--no-sync", "-E", "UTF8", "--locale=C"]);
            await pg.Run("pg_ctl", ["-D", pg.DataDir, "-l", pg.LogPath, "-w", "-t", "30", "start", "-o",
                $"-p {pg.Port} -k {dir} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c max_connections=200"]);
            pg.Pid = int.Parse(File.ReadLines(Path.Combine(pg.DataDir, "postmaster.pid")).First(), CultureInfo.InvariantCulture);
            await pg.Run("psql", ["-h", "127.0.0.1", "-p", pg.Port.ToString(CultureInfo.InvariantCulture), "-U", Role, "-d", "postgres", "-v", "ON_ERROR_STOP=1",
                "-c", $"CREATE DATABASE \"{database}\""], client: true);
            pg.Database = database;
        }
        catch
        {
            await pg.DisposeAsync();
            throw;
        }
        return pg;
    }

    /// <summary>Runs SQL in the test's database with psql and returns its unaligned output.</summary>
    public async Task<string> Query(string sql) =>
        (await Run("psql", ["-h", "127.0.0.1", "-p", Port.ToString(CultureInfo.InvariantCulture), "-U", Role, "-d", Database, "-At", "-v", "ON_ERROR_STOP=1", "-c", sql], client: true)).Trim();

    /// <summary>
    /// Pauses (STOP) the server, its backends too (a client's pooled connection talks to a backend,
    /// not to the postmaster): every query and connect hangs, as with a database that stopped answering.
    /// </summary>
    public void Freeze()
    {
        ProcessRun.Signal(Pid, "STOP");
        foreach (var child in Children(Pid)) ProcessRun.Signal(child, "STOP");
    }

    public void Thaw()
    {
        foreach (var child in Children(Pid)) ProcessRun.Signal(child, "CONT");
        ProcessRun.Signal(Pid, "CONT");
    }

    /// <summary>The PIDs whose parent is <paramref name="pid"/> (/proc/&lt;pid&gt;/stat, field 4).</summary>
    private static List<int> Children(int pid)
    {
        var children = new List<int>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var p)) continue;
            try
            {
                var stat = File.ReadAllText(Path.Combine(dir, "stat"));
                var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                if (int.Parse(fields[1], CultureInfo.InvariantCulture) == pid) children.Add(p);
            }
            catch (IOException) { }
        }
        return children;
    }

    private async Task<string> Run(string tool, IReadOnlyList<string> args, bool client = false)
    {
        var path = Path.Combine(_bin, tool);
        var (file, argv) = _asPostgres && !client ? ("runuser", (IEnumerable<string>)["-u", "postgres", "--", path, .. args]) : (path, args);
        var (_, stdout, _) = await ProcessRun.Exec(file, argv, TimeSpan.FromSeconds(60), check: true);
        return stdout;
    }

    /// <summary>Fast shutdown by the postmaster's PID (SIGINT), KILL after 10 s.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Pid == 0) return;
        try { Thaw(); } catch (InvalidOperationException) { }
        try { ProcessRun.Signal(Pid, "INT"); } catch (InvalidOperationException) { }
        var until = Stopwatch.StartNew();
        while (Alive(Pid) && until.Elapsed < TimeSpan.FromSeconds(10)) await Task.Delay(100);
        if (Alive(Pid)) ProcessRun.Signal(Pid, "KILL");
        Pid = 0;
    }

    private static bool Alive(int pid)
    {
        try { return !File.ReadAllText($"/proc/{pid}/stat").Split(' ')[2].Equals("Z", StringComparison.Ordinal); }
        catch (IOException) { return false; }
    }
}
