using Npgsql;

namespace PromHa.Node.Storage;

/// <summary>PostgreSQL connection strings as settings: checked at load, named in logs without their password.</summary>
public static class PostgresConnection
{
    /// <summary>Why a connection string cannot be used, or null.</summary>
    public static string? Check(string connectionString)
    {
        NpgsqlConnectionStringBuilder b;
        try { b = new NpgsqlConnectionStringBuilder(connectionString); }
        catch (Exception e) when (e is ArgumentException or FormatException or KeyNotFoundException)
        {
            return $"not an Npgsql connection string ({e.Message})";
        }
        if (string.IsNullOrWhiteSpace(b.Host)) return "needs Host=";
        if (string.IsNullOrWhiteSpace(b.Database)) return "needs Database= (PromHa does not write into the default database)";
        return null;
    }

    /// <summary>"user@host:port/database", for messages: never the password.</summary>
    public static string Describe(string connectionString)
    {
        var b = new NpgsqlConnectionStringBuilder(connectionString);
        return $"{b.Username}@{b.Host}:{b.Port}/{b.Database}";
    }

    /// <summary>
    /// Errors an operator must fix (wrong password, no such database, no right to create a schema)
    /// against those that pass (refused, timed out, the server starting up).
    /// </summary>
    public static bool IsSettingsError(Exception e) =>
        e is PostgresException { SqlState: var state } &&
        (state.StartsWith("28", StringComparison.Ordinal) /* invalid authorization */ || state == "3D000" /* no such database */ ||
         state == "42501" /* insufficient privilege */ || state == "3F000" /* no such schema */);
}
