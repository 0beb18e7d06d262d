using Npgsql;
using PromHa.Node.Settings;

namespace PromHa.Node.Storage;

/// <summary>The journal could not be reached at start: the node leaves to start again (exit 75).</summary>
public sealed class JournalUnavailableException(string message, Exception inner) : Exception(message, inner);

/// <summary>
/// The node's Akka.Persistence.Sql journal and snapshot store, by journal.provider: SQLite in the data
/// dir, or PostgreSQL in a schema of the node's own. Each node keeps its own replica of the ledger
/// (DESIGN.md, Storage): sharing one schema would make every node write the same persistence id.
/// </summary>
public static class Journal
{
    /// <summary>linq2db's provider names (PLATFORM.md); the same plugin serves both.</summary>
    public const string SqliteProvider = "SQLite.MS";
    public const string PostgresProvider = "PostgreSQL.15";

    public static string Schema(NodeSettings s) => s.Journal.Schema.Length > 0 ? s.Journal.Schema : SchemaFor(s.Node.Name);

    /// <summary>A node's schema unless journal.schema names one: promha_&lt;node name&gt;, lower case, other characters as '_'.</summary>
    public static string SchemaFor(string node) =>
        "promha_" + new string(node.ToLowerInvariant().Select(c => char.IsAsciiLetterOrDigit(c) ? c : '_').ToArray());

    /// <summary>HOCON over hocon/persistence.hocon for this node's journal.</summary>
    public static string Hocon(NodeSettings s)
    {
        if (s.Journal.Provider == JournalProvider.Sqlite)
        {
            var db = Quote($"Data Source={Path.Combine(s.DataDir, "promha.db")}");
            return $"""
                akka.persistence.journal.sql.connection-string = {db}
                akka.persistence.snapshot-store.sql.connection-string = {db}
                """;
        }
        var cs = Quote(s.Journal.ConnectionString);
        var schema = Quote(Schema(s));
        return $"""
            akka.persistence.journal.sql.connection-string = {cs}
            akka.persistence.journal.sql.provider-name = "{PostgresProvider}"
            akka.persistence.journal.sql.parallelism = 2
            akka.persistence.journal.sql.default.schema-name = {schema}
            akka.persistence.snapshot-store.sql.connection-string = {cs}
            akka.persistence.snapshot-store.sql.provider-name = "{PostgresProvider}"
            akka.persistence.snapshot-store.sql.default.schema-name = {schema}
            """;
    }

    /// <summary>
    /// PostgreSQL: creates the node's schema (the plugin creates its tables, not schemas). A database
    /// that refuses the settings stops the start with its reason (exit 64); one that is not reachable
    /// yet is retried for <paramref name="patience"/>, then the node leaves to start again.
    /// </summary>
    public static void Prepare(NodeSettings s, ILogger log, TimeSpan patience)
    {
        if (s.Journal.Provider != JournalProvider.Postgresql) return;
        var where = PostgresConnection.Describe(s.Journal.ConnectionString);
        var schema = Schema(s);
        var deadline = DateTime.UtcNow + patience;
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                using var conn = new NpgsqlConnection(s.Journal.ConnectionString);
                conn.Open();
                using var cmd = conn.CreateCommand();
                cmd.CommandText = $"CREATE SCHEMA IF NOT EXISTS \"{schema}\"";
                cmd.ExecuteNonQuery();
                log.LogInformation("Journal on PostgreSQL {Where}, schema {Schema}", where, schema);
                return;
            }
            catch (Exception e) when (PostgresConnection.IsSettingsError(e))
            {
                throw new SettingsException($"journal.connectionString: {where}: {e.Message}");
            }
            catch (Exception e) when (e is NpgsqlException or TimeoutException or System.Net.Sockets.SocketException)
            {
                if (DateTime.UtcNow >= deadline)
                    throw new JournalUnavailableException($"journal: PostgreSQL {where} not reachable for {patience.TotalSeconds:F0} s: {e.Message}", e);
                log.LogWarning("Journal: PostgreSQL {Where} not reachable (attempt {Attempt}): {Reason}; trying again", where, attempt, e.Message);
                Thread.Sleep(TimeSpan.FromSeconds(Math.Min(attempt, 5)));
            }
        }
    }

    /// <summary>A HOCON quoted string.</summary>
    public static string Quote(string value) => "\"" + value.Replace("\\", "\\\\").Replace("\"", "\\\"") + "\"";
}
