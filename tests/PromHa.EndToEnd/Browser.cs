using Microsoft.Playwright;
using Xunit.Abstractions;

namespace PromHa.EndToEnd;

/// <summary>
/// A real browser for the operator's page: Debian's chromium driven by Playwright (its own browser
/// download cannot reach the internet here). Screenshots are kept as test artifacts; browser
/// errors are collected so that a test can fail on them.
/// </summary>
public sealed class Browser : IAsyncDisposable
{
    private readonly IPlaywright _pw;
    private readonly IBrowser _browser;
    private readonly ITestOutputHelper _output;
    public IPage Page { get; }
    public List<string> Errors { get; } = [];

    /// <summary>Where the screenshots go: PROMHA_E2E_ARTIFACTS, or artifacts/page beside the test binaries.</summary>
    public static string Artifacts => Environment.GetEnvironmentVariable("PROMHA_E2E_ARTIFACTS") is { Length: > 0 } dir
        ? Path.Combine(dir, "page")
        : Path.Combine(AppContext.BaseDirectory, "artifacts", "page");

    private Browser(IPlaywright pw, IBrowser browser, IPage page, ITestOutputHelper output)
    {
        _pw = pw;
        _browser = browser;
        Page = page;
        _output = output;
        page.Console += (_, m) => { if (m.Type == "error") Errors.Add(m.Text); };
        page.PageError += (_, e) => Errors.Add(e);
        // every action on the page asks "are you sure?" first: the operator says yes
        page.Dialog += async (_, d) => await d.AcceptAsync();
    }

    public static async Task<Browser> Open(ITestOutputHelper output)
    {
        Directory.CreateDirectory(Artifacts);
        // what the page shows follows the cluster, which takes seconds; the suite's generous wait
        Assertions.SetDefaultExpectTimeout((float)RealCluster.Generous.TotalMilliseconds);
        var pw = await Playwright.CreateAsync();
        try
        {
            // as root on a closed network chromium needs these (shared/PLATFORM.md); Playwright
            // gives it a fresh profile directory of its own
            var browser = await pw.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
            {
                ExecutablePath = Environment.GetEnvironmentVariable("PROMHA_CHROMIUM") ?? "/usr/bin/chromium",
                Headless = true,
                Args = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync"],
            });
            var page = await browser.NewPageAsync(new BrowserNewPageOptions { ViewportSize = new ViewportSize { Width = 1400, Height = 1000 } });
            return new Browser(pw, browser, page, output);
        }
        catch
        {
            pw.Dispose();
            throw;
        }
    }

    public async Task Shot(string name)
    {
        var path = Path.Combine(Artifacts, name + ".png");
        await Page.ScreenshotAsync(new PageScreenshotOptions { Path = path, FullPage = true });
        _output.WriteLine($"screenshot {path}");
    }

    public async ValueTask DisposeAsync()
    {
        if (Errors.Count > 0) _output.WriteLine($"browser errors:\n{string.Join("\n", Errors)}");
        await _browser.DisposeAsync(); // closes chromium, the process Playwright started
        _pw.Dispose();
    }
}
