using Akka.Actor;
using Akka.Coordination;
using Akka.Event;
using Npgsql;
using PromHa.Node.Storage;

namespace PromHa.Node.Cluster;

/// <summary>
/// The shared-database tie-breaker for a pure two-node pair, plugged into Akka's lease-majority
/// split-brain strategy: one row per lease name in PostgreSQL, taken by an atomic upsert that only
/// succeeds when the row is free, expired (by the database's clock) or already ours. When a node
/// loses its peer both sides ask; the database lets exactly one win, and the other downs itself.
/// A crash and a cut link alike leave one side up while the database answers. A holder renews the
/// row every heartbeat-interval; one that crashed holding it blocks the other side for at most the
/// heartbeat-timeout (cluster.tieBreaker.databaseLeaseTtlMs). When the database does not answer
/// nobody wins: both sides down themselves, and the pair has no master until it answers again.
/// </summary>
public sealed class DatabaseLease : Lease
{
    public const string Table = "promha_lease";
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, bool> Created = new();
    private readonly ILoggingAdapter _log;
    private readonly string _connectionString;
    private readonly string _where;
    private readonly TimeSpan _ttl;
    private readonly TimeSpan _heartbeat;
    private readonly TimeSpan _timeout;
    private readonly object _gate = new();
    private CancellationTokenSource? _renewing;
    private volatile bool _held;

    public DatabaseLease(LeaseSettings settings, ExtendedActorSystem system) : base(settings)
    {
        _log = Logging.GetLogger(system, typeof(DatabaseLease));
        _connectionString = settings.LeaseConfig.GetString("connection-string");
        _where = PostgresConnection.Describe(_connectionString);
        _ttl = settings.TimeoutSettings.HeartbeatTimeout;
        _heartbeat = settings.TimeoutSettings.HeartbeatInterval;
        _timeout = settings.TimeoutSettings.OperationTimeout;
    }

    public override async Task<bool> Acquire()
    {
        bool won;
        string holder;
        try
        {
            (won, holder) = await TryTake(Settings.LeaseName, Settings.OwnerName, _ttl, _connectionString, _timeout);
        }
        catch (Exception e)
        {
            _log.Warning("Database lease {0} on {1}: not reachable ({2}); this side steps down", Settings.LeaseName, _where, e.Message);
            _held = false;
            return false;
        }
        _held = won;
        _log.Warning("Database lease {0} on {1}: {2}", Settings.LeaseName, _where,
            won ? "taken; this side stays up" : $"held by {holder}; this side steps down");
        if (won) StartRenewing();
        return won;
    }

    public override Task<bool> Acquire(Action<Exception?> leaseLostCallback) => Acquire();

    public override async Task<bool> Release()
    {
        StopRenewing();
        _held = false;
        try
        {
            await Give(Settings.LeaseName, Settings.OwnerName, _connectionString, _timeout);
        }
        catch (Exception e)
        {
            // it runs out by itself
            _log.Info("Database lease {0}: release failed ({1}); it expires by itself", Settings.LeaseName, e.Message);
        }
        return true;
    }

    public override bool CheckLease() => _held;

    private void StartRenewing()
    {
        CancellationTokenSource cts;
        lock (_gate)
        {
            _renewing?.Cancel();
            cts = _renewing = new CancellationTokenSource();
        }
        _ = Task.Run(async () =>
        {
            while (!cts.IsCancellationRequested)
            {
                try { await Task.Delay(_heartbeat, cts.Token); }
                catch (OperationCanceledException) { return; }
                try
                {
                    var (still, _) = await TryTake(Settings.LeaseName, Settings.OwnerName, _ttl, _connectionString, _timeout);
                    if (!still) { _held = false; return; }
                }
                catch (Exception e)
                {
                    _log.Info("Database lease {0}: renewal failed ({1})", Settings.LeaseName, e.Message);
                }
            }
        });
    }

    private void StopRenewing()
    {
        lock (_gate)
        {
            _renewing?.Cancel();
            _renewing = null;
        }
    }

    /// <summary>
    /// Takes or renews the row: free, expired or already the owner's. Returns whether the owner holds
    /// it now, and who does. Expiry is the database's clock, so the nodes' clocks do not matter.
    /// </summary>
    public static async Task<(bool Held, string Holder)> TryTake(string name, string owner, TimeSpan ttl, string connectionString, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        await using var conn = new NpgsqlConnection(connectionString);
        await conn.OpenAsync(cts.Token);
        // the table once per database and process, not on every renewal
        if (!Created.ContainsKey(connectionString))
        {
            // CREATE ... IF NOT EXISTS is not safe against itself (two nodes at once: a unique
            // violation on the catalog, or "type already exists"): one creator at a time instead
            await using var tx = await conn.BeginTransactionAsync(cts.Token);
            await using var create = conn.CreateCommand();
            create.Transaction = tx;
            create.CommandText = $"""
                SELECT pg_advisory_xact_lock(hashtext('{Table}'));
                CREATE TABLE IF NOT EXISTS {Table} (name text PRIMARY KEY, owner text NOT NULL, expires_at timestamptz NOT NULL);
                """;
            await create.ExecuteNonQueryAsync(cts.Token);
            await tx.CommitAsync(cts.Token);
            Created[connectionString] = true;
        }
        await using var cmd = conn.CreateCommand();
        cmd.CommandText = $"""
            INSERT INTO {Table} AS l (name, owner, expires_at) VALUES (@name, @owner, now() + @ttl)
            ON CONFLICT (name) DO UPDATE SET owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at
              WHERE l.owner = EXCLUDED.owner OR l.expires_at < now()
            RETURNING owner
            """;
        cmd.Parameters.AddWithValue("name", name);
        cmd.Parameters.AddWithValue("owner", owner);
        cmd.Parameters.AddWithValue("ttl", ttl);
        if (await cmd.ExecuteScalarAsync(cts.Token) is string) return (true, owner);
        await using var who = conn.CreateCommand();
        who.CommandText = $"SELECT owner FROM {Table} WHERE name = @name";
        who.Parameters.AddWithValue("name", name);
        return (false, await who.ExecuteScalarAsync(cts.Token) as string ?? "?");
    }

    /// <summary>Gives the row up at once (if still the owner's), so a later decision need not wait for it to expire.</summary>
    public static async Task Give(string name, string owner, string connectionString, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        await using var conn = new NpgsqlConnection(connectionString);
        await conn.OpenAsync(cts.Token);
        await using var cmd = conn.CreateCommand();
        cmd.CommandText = $"UPDATE {Table} SET expires_at = now() - interval '1 second' WHERE name = @name AND owner = @owner";
        cmd.Parameters.AddWithValue("name", name);
        cmd.Parameters.AddWithValue("owner", owner);
        await cmd.ExecuteNonQueryAsync(cts.Token);
    }
}
