using System.Net.Http.Json;
using PromHa.Node.Http;

namespace PromHa.Node.Console;

/// <summary>The console's view of a node's admin API (any node will do).</summary>
public sealed class ApiClient(string baseUrl) : IDisposable
{
    private readonly HttpClient _http = new() { BaseAddress = new Uri(baseUrl.TrimEnd('/') + "/"), Timeout = TimeSpan.FromSeconds(10) };

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

    public void Dispose() => _http.Dispose();
}
