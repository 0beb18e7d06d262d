using System.Security.Cryptography;
using System.Text;
using PromHa.Node.Settings;

namespace PromHa.Node.Http;

/// <summary>
/// The admin token: what mutates configuration or roles, or reveals config file contents, needs it
/// as a bearer token. Read from a file (http.tokenFile, or the systemd credential "promha-token")
/// or from PROMHA_TOKEN; never from the command line, where every local user sees it in ps.
/// </summary>
public sealed class AdminToken
{
    public const string EnvVar = "PROMHA_TOKEN";
    public const string CredentialName = "promha-token";
    public const int MinLength = 16;

    private readonly byte[] _hash;

    /// <summary>Where the token came from, for the log (never the token itself).</summary>
    public string Source { get; }

    private AdminToken(string token, string source)
    {
        _hash = SHA256.HashData(Encoding.UTF8.GetBytes(token));
        Source = source;
    }

    /// <summary>The configured token, or null when none is (the API is then open, with a warning at start).</summary>
    public static AdminToken? Load(NodeSettings s, IDictionary<string, string?>? environment = null)
    {
        string Env(string name) => environment is null ? Environment.GetEnvironmentVariable(name) ?? "" :
            environment.TryGetValue(name, out var v) ? v ?? "" : "";

        if (s.Http.TokenFile.Length > 0) return FromFile(s.Http.TokenFile, "http.tokenFile");
        if (Env(EnvVar).Trim() is { Length: > 0 } fromEnv) return Checked(fromEnv, EnvVar);
        // systemd: LoadCredential=promha-token:/etc/promha/token
        if (Env("CREDENTIALS_DIRECTORY") is { Length: > 0 } credDir && File.Exists(Path.Combine(credDir, CredentialName)))
            return FromFile(Path.Combine(credDir, CredentialName), "systemd credential");
        return null;
    }

    private static AdminToken FromFile(string path, string setting)
    {
        string text;
        try
        {
            text = File.ReadAllText(path).Trim();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new SettingsException($"{setting}: cannot read the admin token from {path}: {e.Message}");
        }
        return Checked(text, $"{setting} {path}");
    }

    private static AdminToken Checked(string token, string source)
    {
        if (token.Length < MinLength)
            throw new SettingsException($"{source}: the admin token must have at least {MinLength} characters (`promha token new` makes one)");
        if (token.Any(char.IsWhiteSpace))
            throw new SettingsException($"{source}: the admin token may not contain whitespace");
        return new AdminToken(token, source);
    }

    /// <summary>The bearer token a request presents, or null.</summary>
    public static string? Presented(HttpRequest request)
    {
        var header = request.Headers.Authorization.ToString();
        return header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) ? header[7..].Trim() : null;
    }

    /// <summary>Constant time whatever the presented token's length: both sides are hashed first.</summary>
    public bool Matches(string? presented) =>
        presented is not null && CryptographicOperations.FixedTimeEquals(_hash, SHA256.HashData(Encoding.UTF8.GetBytes(presented)));

    /// <summary>
    /// What the local Alertmanager presents to the notification gate: derived from the token, so the
    /// rendered alertmanager.yml never holds the admin token itself.
    /// </summary>
    public string GateSecret() => Convert.ToHexString(HMACSHA256.HashData(_hash, "promha-gate"u8)).ToLowerInvariant();

    public bool MatchesGate(string? presented) =>
        presented is not null && CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(GateSecret()), Encoding.UTF8.GetBytes(presented));

    /// <summary>
    /// What a node presents to a peer for a config bundle (`/api/v1/config/bundles/{hash}`): derived
    /// from the token every node of the cluster holds, so that no node keeps the token itself in memory.
    /// </summary>
    public string PeerSecret() => Convert.ToHexString(HMACSHA256.HashData(_hash, "promha-peer-bundles"u8)).ToLowerInvariant();

    public bool MatchesPeer(string? presented) =>
        presented is not null && CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(PeerSecret()), Encoding.UTF8.GetBytes(presented));

    /// <summary>A new random token: 32 bytes, base64url (43 characters).</summary>
    public static string Generate() => Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    /// <summary>Writes a token file readable by its owner only.</summary>
    public static void WriteFile(string path, string token) => Security.SecretFile.Write(path, Encoding.UTF8.GetBytes(token + "\n"));
}

/// <summary>Marks an endpoint as needing the admin token (endpoint metadata, read by the filter).</summary>
public static class AdminEndpoints
{
    /// <summary>401 unless the request carries the admin token; a no-op when none is configured.</summary>
    public static TBuilder RequireAdmin<TBuilder>(this TBuilder builder) where TBuilder : IEndpointConventionBuilder =>
        builder.AddEndpointFilter(async (ctx, next) =>
        {
            var http = ctx.HttpContext;
            if (http.RequestServices.GetService<AdminToken>() is not { } token) return await next(ctx);
            var presented = AdminToken.Presented(http.Request);
            if (token.Matches(presented)) return await next(ctx);
            var logger = http.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger("PromHa.Node.Http.AdminToken");
            var why = presented is null ? "no admin token" : "a wrong admin token";
            logger.LogWarning("Refused {Method} {Path} from {Remote}: {Why}", http.Request.Method, http.Request.Path,
                http.Connection.RemoteIpAddress, why);
            http.Response.Headers.WWWAuthenticate = "Bearer realm=\"promha\"";
            return Results.Text($"401 unauthorized: {why}. This endpoint needs the admin token as 'Authorization: Bearer <token>'; " +
                                $"the console sends it from {AdminToken.EnvVar} or --token-file (PROMHA_TOKEN_FILE).\n", statusCode: 401);
        });
}
