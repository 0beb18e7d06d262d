using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography.X509Certificates;
using PromHa.Node.Http;

namespace PromHa.Node.Console;

/// <summary>
/// What a client needs besides the URL: the admin token (for the endpoints that need it) and the
/// cluster CA that signs the nodes' HTTPS certificates.
/// </summary>
public sealed record ApiAccess(string? Token = null, string? CaFile = null)
{
    public static readonly ApiAccess None = new();

    /// <summary>A node's own calls to its peers' APIs: over HTTPS they are trusted by the cluster CA.</summary>
    public static ApiAccess ForPeers(Settings.NodeSettings s, string? token = null) =>
        new(token, s.Tls.Http && s.Tls.CaFile.Length > 0 ? s.Tls.CaFile : null);

    /// <summary>The console's: the token from PROMHA_TOKEN or a token file, the CA from a file.</summary>
    public static ApiAccess ForConsole(string? tokenFile, string? caFile)
    {
        var token = Environment.GetEnvironmentVariable(AdminToken.EnvVar)?.Trim();
        if (string.IsNullOrEmpty(token) && !string.IsNullOrEmpty(tokenFile))
        {
            try
            {
                token = File.ReadAllText(tokenFile).Trim();
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new ApiException(0, $"cannot read the admin token from {tokenFile}: {e.Message}");
            }
        }
        return new ApiAccess(string.IsNullOrEmpty(token) ? null : token, string.IsNullOrEmpty(caFile) ? null : caFile);
    }

    /// <summary>A handler that trusts exactly the cluster CA for HTTPS (no system roots, no hostname bypass).</summary>
    public HttpMessageHandler Handler()
    {
        var handler = new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(5) };
        if (CaFile is { } caFile)
        {
            X509Certificate2 ca;
            try
            {
                ca = X509CertificateLoader.LoadCertificateFromFile(caFile);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.Security.Cryptography.CryptographicException)
            {
                throw new ApiException(0, $"cannot read the CA certificate {caFile}: {e.Message}");
            }
            // Only the cluster CA, not the system's roots; the host name is still checked.
            handler.SslOptions.CertificateChainPolicy = new X509ChainPolicy
            {
                TrustMode = X509ChainTrustMode.CustomRootTrust,
                CustomTrustStore = { ca },
                RevocationMode = X509RevocationMode.NoCheck,
            };
        }
        return handler;
    }
}

/// <summary>The console's view of a node's admin API (any node will do).</summary>
public sealed class ApiClient : IDisposable
{
    private readonly HttpClient _http;

    public ApiClient(string baseUrl, TimeSpan? timeout = null, ApiAccess? access = null)
    {
        access ??= ApiAccess.None;
        _http = new HttpClient(access.Handler(), disposeHandler: true)
        {
            BaseAddress = new Uri(baseUrl.TrimEnd('/') + "/"),
            Timeout = timeout ?? TimeSpan.FromSeconds(10),
        };
        if (access.Token is { } token) _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
    }

    public string BaseUrl => _http.BaseAddress!.ToString();

    public Task<StatusResponse?> Status(CancellationToken ct = default) =>
        _http.GetFromJsonAsync("api/v1/status", ApiJson.Default.StatusResponse, ct);

    public Task<List<MemberInfo>?> Members(CancellationToken ct = default) =>
        _http.GetFromJsonAsync("api/v1/cluster", ApiJson.Default.ListMemberInfo, ct);

    public Task<List<GroupInfo>?> Groups(CancellationToken ct = default) =>
        _http.GetFromJsonAsync("api/v1/groups", ApiJson.Default.ListGroupInfo, ct);

    public Task<List<HistoryEntry>?> History(int limit, CancellationToken ct = default) =>
        _http.GetFromJsonAsync($"api/v1/history?limit={limit}", ApiJson.Default.ListHistoryEntry, ct);

    public Task<ActionResponse> Switchover(string? to, CancellationToken ct = default) =>
        Act(to is null ? "api/v1/switchover" : $"api/v1/switchover?to={Uri.EscapeDataString(to)}", ct);

    public Task<ActionResponse> Failover(string? to, bool force, CancellationToken ct = default) =>
        Act($"api/v1/failover?force={(force ? "true" : "false")}" + (to is null ? "" : $"&to={Uri.EscapeDataString(to)}"), ct);

    /// <summary>`pause` / `resume`.</summary>
    public Task<ActionResponse> Maintenance(bool pause, string by, CancellationToken ct = default) =>
        Act($"api/v1/{(pause ? "pause" : "resume")}?by={Uri.EscapeDataString(by)}", ct);

    /// <summary>`cluster leave NODE` / `cluster down NODE`.</summary>
    public Task<ActionResponse> Membership(string verb, string node, CancellationToken ct = default) =>
        Act($"api/v1/cluster/{verb}?node={Uri.EscapeDataString(node)}", ct);

    /// <summary>POSTs an operator action; the node's answer, or its error text.</summary>
    public async Task<ActionResponse> Act(string path, CancellationToken ct = default)
    {
        using var resp = await _http.PostAsync(path, null, ct);
        await ThrowIfUnauthorized(resp, ct);
        if (resp.Content.Headers.ContentType?.MediaType != "application/json")
            return new ActionResponse(false, (await resp.Content.ReadAsStringAsync(ct)).Trim());
        return await resp.Content.ReadFromJsonAsync(ApiJson.Default.ActionResponse, ct)
               ?? new ActionResponse(false, $"HTTP {(int)resp.StatusCode}");
    }

    /// <summary>Uploads a conf tree (a tar, or a .tar.gz); the node validates it and asks for a new version.</summary>
    public async Task<(int Code, ConfigSubmitResponse Response)> ConfigApply(byte[] tar, string author, string source, CancellationToken ct = default,
        bool dryRun = false)
    {
        using var content = new ByteArrayContent(tar);
        content.Headers.ContentType = new("application/x-tar");
        using var resp = await _http.PostAsync($"api/v1/config/apply?author={Uri.EscapeDataString(author)}&source={Uri.EscapeDataString(source)}" +
                                               (dryRun ? "&dryRun=true" : ""), content, ct);
        return ((int)resp.StatusCode, await ReadSubmit(resp, ct));
    }

    public async Task<(int Code, ConfigSubmitResponse Response)> ConfigRollback(long version, string author, CancellationToken ct = default)
    {
        using var resp = await _http.PostAsync($"api/v1/config/rollback/{version}?author={Uri.EscapeDataString(author)}", null, ct);
        return ((int)resp.StatusCode, await ReadSubmit(resp, ct));
    }

    /// <summary>401 is the console's exit code 3, whatever the verb.</summary>
    private static async Task ThrowIfUnauthorized(HttpResponseMessage resp, CancellationToken ct)
    {
        if (resp.StatusCode == System.Net.HttpStatusCode.Unauthorized)
            throw new ApiException(401, (await resp.Content.ReadAsStringAsync(ct)).Trim());
    }

    private static async Task<ConfigSubmitResponse> ReadSubmit(HttpResponseMessage resp, CancellationToken ct)
    {
        await ThrowIfUnauthorized(resp, ct);
        if (resp.Content.Headers.ContentType?.MediaType == "application/json")
            return (await resp.Content.ReadFromJsonAsync(ApiJson.Default.ConfigSubmitResponse, ct))!;
        return new ConfigSubmitResponse("error", null, "", $"HTTP {(int)resp.StatusCode}: {(await resp.Content.ReadAsStringAsync(ct)).Trim()}");
    }

    public Task<List<ConfigVersionInfo>?> ConfigVersions(int limit, CancellationToken ct = default) =>
        _http.GetFromJsonAsync($"api/v1/config/versions?limit={limit}", ApiJson.Default.ListConfigVersionInfo, ct);

    public Task<ConfigStatusResponse?> ConfigStatus(CancellationToken ct = default) =>
        _http.GetFromJsonAsync("api/v1/config/status", ApiJson.Default.ConfigStatusResponse, ct);

    /// <summary>GET that returns the body as text, or throws with the server's own message.</summary>
    public async Task<string> GetText(string path, CancellationToken ct = default)
    {
        using var resp = await _http.GetAsync(path, ct);
        var text = await resp.Content.ReadAsStringAsync(ct);
        if (!resp.IsSuccessStatusCode) throw new ApiException((int)resp.StatusCode, text.Trim());
        return text;
    }

    public async Task<ConfigVersionDetail> ConfigVersion(long version, CancellationToken ct = default) =>
        System.Text.Json.JsonSerializer.Deserialize(await GetText($"api/v1/config/versions/{version}", ct), ApiJson.Default.ConfigVersionDetail)!;

    public void Dispose() => _http.Dispose();
}

/// <summary>The node answered with an error status; the message is its own.</summary>
public sealed class ApiException(int status, string message) : Exception(message)
{
    public int Status { get; } = status;
}
