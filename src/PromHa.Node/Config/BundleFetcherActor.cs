using System.Net.Http.Headers;
using Akka.Actor;
using Akka.Event;
using Akka.Hosting;
using PromHa.Node.Cluster;
using PromHa.Node.Console;
using PromHa.Node.Settings;

namespace PromHa.Node.Config;

/// <summary>
/// Fetches the bundles this node lacks from its peers: one HTTP GET of the stored bytes
/// (`/api/v1/config/bundles/{hash}`, with the admin token and the cluster CA, as the console would),
/// streamed to a file, never whole in memory, from the version's origin first and then every other
/// reachable member. A download fails only when it stalls (no byte for <see cref="Stall"/>), not after
/// a fixed time, so a 40 MiB or 100,000-file bundle arrives however long it takes. The content is
/// verified against its hash before it is stored. Downloads run outside the mailbox; each waiter
/// gets one <see cref="BundleReady"/>.
/// </summary>
public sealed class BundleFetcherActor : ReceiveActor
{
    public const string Name = "config-fetcher";
    public static readonly TimeSpan Stall = TimeSpan.FromSeconds(15);

    private readonly NodeView _view;
    private readonly BundleStore _store;
    private readonly ArchiveLimits _limits;
    private readonly HttpClient _http;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly Akka.Cluster.Cluster _cluster = Akka.Cluster.Cluster.Get(Context.System);
    private readonly Dictionary<string, List<IActorRef>> _waiters = new();

    public BundleFetcherActor(NodeSettings s, NodeView view, ApiAccess access)
    {
        _view = view;
        _limits = s.Config.Limits;
        _store = new BundleStore(s.DataDir, _limits);
        _http = new HttpClient(access.Handler(), disposeHandler: true) { Timeout = Timeout.InfiniteTimeSpan };
        if (access.Token is { } token) _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);

        Receive<FetchBundle>(Start);
        Receive<Fetched>(f =>
        {
            if (!_waiters.Remove(f.Hash, out var waiters)) return;
            if (f.Ok) _log.Info("Fetched bundle {0} ({1:N0} bytes) from {2} in {3} ms", f.Hash[..12], f.Bytes, f.From, f.Ms);
            else _log.Warning("Bundle {0} not fetched: {1}", f.Hash[..12], f.Reason);
            foreach (var w in waiters) w.Tell(new BundleReady(f.Hash, f.Ok, f.Reason));
        });
    }

    private sealed record Fetched(string Hash, bool Ok, string? Reason, string? From, long Bytes, long Ms);

    protected override void PostStop() => _http.Dispose();

    private void Start(FetchBundle f)
    {
        if (_store.Has(f.Hash))
        {
            Sender.Tell(new BundleReady(f.Hash, true, null));
            return;
        }
        if (_waiters.TryGetValue(f.Hash, out var running))
        {
            running.Add(Sender);
            return;
        }
        // the origin first, then every other reachable member: any node that applied a version has its bundle
        var peers = _cluster.State.Members
            .Where(m => m.Address != _cluster.SelfAddress && !_cluster.State.Unreachable.Contains(m))
            .Select(m => MemberRoles.NodeName(m))
            .OfType<string>()
            .OrderBy(n => n == f.Origin ? 0 : 1)
            .Select(n => (Node: n, Api: _view.Current.Status?.Nodes.FirstOrDefault(x => x.Node == n)?.ApiUrl))
            .ToList();
        if (peers.Count == 0)
        {
            Sender.Tell(new BundleReady(f.Hash, false, "no other member to fetch it from"));
            return;
        }
        _waiters[f.Hash] = [Sender];
        var (http, store, limits, hash) = (_http, _store, _limits, f.Hash);
        Download(http, store, limits, hash, peers).PipeTo(Self);
    }

    private static async Task<Fetched> Download(HttpClient http, BundleStore store, ArchiveLimits limits, string hash,
        IReadOnlyList<(string Node, string? Api)> peers)
    {
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var failures = new List<string>();
        foreach (var (node, api) in peers)
        {
            if (api is null)
            {
                failures.Add($"{node}: its API URL is not known yet");
                continue;
            }
            try
            {
                var bytes = await FetchFrom(http, store, limits, hash, new Uri(new Uri(api), $"api/v1/config/bundles/{hash}"));
                return new Fetched(hash, true, null, node, bytes, sw.ElapsedMilliseconds);
            }
            catch (Exception e) when (e is HttpRequestException or IOException or OperationCanceledException or ConfTreeException
                                           or ArchiveTooLargeException or InvalidDataException or FormatException or UriFormatException)
            {
                failures.Add($"{node}: {(e is OperationCanceledException ? $"no data for {Stall.TotalSeconds:F0} s" : e.Message)}");
            }
        }
        return new Fetched(hash, false, $"no member could send bundle {hash[..12]} ({string.Join("; ", failures)})", null, 0, sw.ElapsedMilliseconds);
    }

    /// <summary>Streams one peer's copy to a file beside the store, then verifies and stores it; the bytes received.</summary>
    private static async Task<long> FetchFrom(HttpClient http, BundleStore store, ArchiveLimits limits, string hash, Uri url)
    {
        using var stall = new CancellationTokenSource(Stall);
        using var response = await http.GetAsync(url, HttpCompletionOption.ResponseHeadersRead, stall.Token);
        if (!response.IsSuccessStatusCode)
            throw new HttpRequestException($"{url.GetLeftPart(UriPartial.Authority)} answered {(int)response.StatusCode} {response.ReasonPhrase}");
        if (response.Content.Headers.ContentLength is { } announced && announced > limits.MaxTarBytes)
            throw new ArchiveTooLargeException($"bundle {hash}", $"{announced:N0} bytes, over the {limits.MaxTarBytes:N0}-byte limit");
        var tmp = store.TempPath(hash);
        try
        {
            long total = 0;
            await using (var body = await response.Content.ReadAsStreamAsync(stall.Token))
            await using (var file = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16, useAsync: true))
            {
                var buffer = new byte[1 << 16];
                while (true)
                {
                    stall.CancelAfter(Stall); // a stall, not a slow transfer, ends a download
                    var n = await body.ReadAsync(buffer, stall.Token);
                    if (n == 0) break;
                    total += n;
                    if (total > limits.MaxTarBytes)
                        throw new ArchiveTooLargeException($"bundle {hash}", $"over the {limits.MaxTarBytes:N0}-byte limit");
                    await file.WriteAsync(buffer.AsMemory(0, n), stall.Token);
                }
                await file.FlushAsync(CancellationToken.None);
            }
            store.ImportFile(tmp, hash);
            return total;
        }
        finally
        {
            File.Delete(tmp);
        }
    }
}

/// <summary>Make sure this node's store holds a bundle, fetching it from a peer if needed; answered with <see cref="BundleReady"/>.</summary>
public sealed record FetchBundle(string Hash, string? Origin);

/// <summary>Marker key for the node's bundle fetcher.</summary>
public sealed class BundleFetcherKey;

public static class BundleFetcherActorHostingExtensions
{
    public static AkkaConfigurationBuilder AddBundleFetcherActor(this AkkaConfigurationBuilder builder, NodeSettings s, NodeView view, ApiAccess access) =>
        builder.WithActors((system, registry) =>
            registry.Register<BundleFetcherKey>(system.ActorOf(Props.Create(() => new BundleFetcherActor(s, view, access)), BundleFetcherActor.Name)));
}
