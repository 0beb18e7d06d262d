using System.Net.Http.Json;
using PromHa.Node.Http;

namespace PromHa.Node.Console;

/// <summary>The console's view of a node's admin API (any node will do).</summary>
public sealed class ApiClient(string baseUrl, TimeSpan? timeout = null) : IDisposable
{
    private readonly HttpClient _http = new() { BaseAddress = new Uri(baseUrl.TrimEnd('/') + "/"), Timeout = timeout ?? TimeSpan.FromSeconds(10) };

    public string BaseUrl => _http.BaseAddress!.ToString();

    public Task<StatusResponse?> Status(CancellationToken ct = default) =>
        _http.GetFromJsonAsync("api/v1/status", ApiJson.Default.StatusResponse, ct);

    public Task<List<MemberInfo>?> Members(CancellationToken ct = default) =>
        _http.GetFromJsonAsync("api/v1/cluster", ApiJson.Default.ListMemberInfo, ct);

    public Task<List<HistoryEntry>?> History(int limit, CancellationToken ct = default) =>
        _http.GetFromJsonAsync($"api/v1/history?limit={limit}", ApiJson.Default.ListHistoryEntry, ct);

    public async Task<SwitchoverResponse> Switchover(string? to, CancellationToken ct = default)
    {
        using var resp = await _http.PostAsync(to is null ? "api/v1/switchover" : $"api/v1/switchover?to={Uri.EscapeDataString(to)}", null, ct);
        return await resp.Content.ReadFromJsonAsync(ApiJson.Default.SwitchoverResponse, ct)
               ?? new SwitchoverResponse(false, $"HTTP {(int)resp.StatusCode}");
    }

    /// <summary>Uploads a conf tree (a tar, or a .tar.gz); the node validates it and asks for a new version.</summary>
    public async Task<(int Code, ConfigSubmitResponse Response)> ConfigApply(byte[] tar, string author, string source, CancellationToken ct = default)
    {
        using var content = new ByteArrayContent(tar);
        content.Headers.ContentType = new("application/x-tar");
        using var resp = await _http.PostAsync($"api/v1/config/apply?author={Uri.EscapeDataString(author)}&source={Uri.EscapeDataString(source)}", content, ct);
        return ((int)resp.StatusCode, await ReadSubmit(resp, ct));
    }

    public async Task<(int Code, ConfigSubmitResponse Response)> ConfigRollback(long version, string author, CancellationToken ct = default)
    {
        using var resp = await _http.PostAsync($"api/v1/config/rollback/{version}?author={Uri.EscapeDataString(author)}", null, ct);
        return ((int)resp.StatusCode, await ReadSubmit(resp, ct));
    }

    private static async Task<ConfigSubmitResponse> ReadSubmit(HttpResponseMessage resp, CancellationToken ct)
    {
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
