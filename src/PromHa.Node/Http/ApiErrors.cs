using Akka.Actor;

namespace PromHa.Node.Http;

/// <summary>
/// Every error the HTTP surface gives is a status code with a one-line message for a person:
/// a malformed request is a 4xx naming what was wrong, never a 500 with a stack trace.
/// </summary>
public static class ApiErrors
{
    public static void AddApiErrors(this IServiceCollection services) =>
        // Binding failures ("abc" for a number) throw BadHttpRequestException with the parameter's
        // name instead of answering an empty 400.
        services.Configure<RouteHandlerOptions>(o => o.ThrowOnBadRequest = true);

    public static void UseApiErrors(this WebApplication app)
    {
        var log = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("PromHa.Node.Http");
        app.Use(async (http, next) =>
        {
            try
            {
                await next(http);
            }
            catch (BadHttpRequestException e)
            {
                await Answer(http, e.StatusCode, e.StatusCode == 413
                    ? "request body too large"
                    : e.InnerException is FormatException or null ? e.Message : $"{e.Message} ({e.InnerException.Message})");
                return;
            }
            catch (PromHa.Node.Config.ArchiveTooLargeException e)
            {
                await Answer(http, 413, e.Message);
                return;
            }
            catch (AskTimeoutException)
            {
                await Answer(http, 503, "the node's actors did not answer in time (starting, or busy); try again");
                return;
            }
            catch (OperationCanceledException) when (http.RequestAborted.IsCancellationRequested)
            {
                return; // the client went away
            }
            catch (Exception e)
            {
                log.LogError(e, "{Method} {Path} failed", http.Request.Method, http.Request.Path);
                await Answer(http, 500, $"internal error: {e.GetType().Name}: {e.Message} (details in the node's log)");
                return;
            }
            // Status codes without a body (no such route, wrong method) get a sentence too.
            if (http.Response is { StatusCode: >= 400, HasStarted: false, ContentLength: null, ContentType: null })
                await Answer(http, http.Response.StatusCode, http.Response.StatusCode switch
                {
                    404 => $"no such endpoint: {http.Request.Method} {http.Request.Path} (see docs/reference.md, HTTP endpoints)",
                    405 => $"{http.Request.Method} is not allowed on {http.Request.Path}",
                    _ => $"HTTP {http.Response.StatusCode}",
                });
        });
    }

    private static async Task Answer(HttpContext http, int status, string message)
    {
        if (http.Response.HasStarted) return;
        http.Response.Clear();
        http.Response.StatusCode = status;
        http.Response.ContentType = "text/plain; charset=utf-8";
        await http.Response.WriteAsync($"{status} {message}\n");
    }
}
