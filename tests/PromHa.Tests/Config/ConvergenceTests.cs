using CsCheck;
using PromHa.Node.Config;

namespace PromHa.Tests.Config;

/// <summary>A node's own account of how far it is from the latest version (what `promha config status` shows per node).</summary>
public sealed class ConvergenceTests
{
    private static readonly DateTimeOffset T0 = new(2026, 12, 6, 3, 0, 0, TimeSpan.Zero);

    [Fact]
    public void A_version_that_cannot_be_fetched_is_a_failure_with_its_reason_and_the_time_of_the_first_try()
    {
        var c = Convergence.Start(3);
        Assert.Equal("current", c.State);
        c = c.LatestIs(4, T0).FetchStarted();
        Assert.Equal("fetching", c.State);
        Assert.Equal(T0, c.BehindSince);
        c = c.Failed(4, "fetching version 4: bad bundle", T0.AddSeconds(5));
        Assert.Equal("failed", c.State);
        // tried again a second later, and failed again: the error is as old as the first failure
        c = c.FetchStarted().Failed(4, "fetching version 4: no data for 5s", T0.AddSeconds(65));
        var report = c.Report("b", T0.AddSeconds(70));
        Assert.Equal(("b", 3L, 4L, "failed", 4L), (report.Node, report.Applied, report.Latest, report.State, report.ErrorVersion!.Value));
        Assert.Equal("fetching version 4: no data for 5s", report.Error);
        Assert.Equal(T0.AddSeconds(5), report.ErrorSince);
        Assert.Equal(T0, report.BehindSince);
        Assert.Equal(TimeSpan.FromSeconds(70), c.BehindFor(T0.AddSeconds(70)));
    }

    [Fact]
    public void Applying_the_latest_clears_the_error_and_the_time_behind()
    {
        var c = Convergence.Start(3).LatestIs(4, T0).FetchStarted().Failed(4, "x", T0).FetchStarted().FetchEnded().ApplyStarted();
        Assert.Equal("applying", c.State);
        c = c.AppliedVersion(4);
        Assert.Equal("current", c.State);
        Assert.Null(c.Error);
        Assert.Null(c.BehindSince);
        Assert.Equal(TimeSpan.Zero, c.BehindFor(T0.AddHours(1)));
        Assert.Null(c.Report("b", T0).BehindSince);
    }

    [Fact]
    public void A_newer_version_while_behind_keeps_the_time_it_fell_behind()
    {
        var c = Convergence.Start(3).LatestIs(4, T0).LatestIs(5, T0.AddMinutes(1));
        Assert.Equal(T0, c.BehindSince);
        c = c.AppliedVersion(4);
        Assert.Equal("behind", c.State);
        Assert.Equal(T0, c.BehindSince); // still not the latest
    }

    [Fact]
    public void A_failed_re_render_of_the_running_version_shows_as_failed_though_not_behind()
    {
        var c = Convergence.Start(4).ApplyStarted().Failed(4, "applying version 4: reload failed", T0);
        Assert.Equal("failed", c.State);
        Assert.False(c.Behind);
        Assert.Equal("current", c.ApplyStarted().AppliedVersion(4).State);
    }

    private enum Step { Latest, FetchStart, FetchEnd, FetchFail, ApplyStart, ApplyOk, ApplyFail }

    /// <summary>
    /// Any order of events: the state is "current" exactly when the node runs the latest version with
    /// no error standing; it is behind since a time exactly when it is behind, and that time never
    /// moves forward while it stays behind; an error's time never moves forward for the same version.
    /// </summary>
    [Fact]
    public void Whatever_happens_the_account_stays_consistent()
    {
        var steps = Gen.Select(Gen.Enum<Step>(), Gen.Int[1, 3]).Array[0, 40];
        steps.Sample(events =>
        {
            var c = Convergence.Start(1);
            var now = T0;
            foreach (var (step, n) in events)
            {
                now = now.AddSeconds(n);
                var before = c;
                c = step switch
                {
                    Step.Latest => c.LatestIs(c.Latest + n, now),
                    Step.FetchStart => c.FetchStarted(),
                    Step.FetchEnd => c.FetchEnded(),
                    Step.FetchFail => c.Failed(c.Latest, "fetch", now),
                    Step.ApplyStart => c.ApplyStarted(),
                    Step.ApplyOk => c.AppliedVersion(Math.Min(c.Latest, c.Applied + n)),
                    _ => c.Failed(c.Latest, "apply", now),
                };
                if ((c.State == "current") != (c.Applied >= c.Latest && c.Error is null)) return false;
                if ((c.BehindSince is not null) != c.Behind) return false;
                if (before.Behind && c.Behind && before.BehindSince != c.BehindSince) return false;
                if (before.ErrorVersion == c.ErrorVersion && before.ErrorSince is { } s && c.ErrorSince is { } s2 && s2 != s) return false;
                if (c.Applied < before.Applied) return false;
            }
            return true;
        });
    }
}
