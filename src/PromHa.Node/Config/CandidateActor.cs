using Akka.Actor;
using Akka.Event;
using Akka.Hosting;
using PromHa.Messages.Config;
using PromHa.Node.Settings;

namespace PromHa.Node.Config;

/// <summary>
/// The candidate pipeline: a tree (an upload, a rollback, the master's conf dir) becomes a version
/// only once its names, its bundle read back, and promtool and amtool on it as the master would run
/// it (and amtool on the alertmanager.yml as written) pass; then it is stored and the
/// config-versions singleton numbers it. One candidate at a time (one staging dir); the tools run
/// outside any mailbox and their verdict comes back as a message, so a promtool run of a minute
/// delays neither a peer's bundle fetch nor a status read. Each outcome goes to the asker and, as
/// <see cref="CandidateDone"/>, to ConfigSyncActor, which keeps what the node runs and watches.
/// </summary>
public sealed class CandidateActor : ReceiveActor, IWithUnboundedStash
{
    public const string Name = "config-candidates";
    private static readonly TimeSpan CommitTimeout = TimeSpan.FromSeconds(20);

    private readonly NodeSettings _s;
    private readonly BundleStore _store;
    private readonly IActorRef _sync;
    private readonly ILoggingAdapter _log = Context.GetLogger();

    public CandidateActor(NodeSettings settings, BundleStore store, IActorRef sync)
    {
        _s = settings;
        _store = store;
        _sync = sync;
        Idle();
    }

    public IStash Stash { get; set; } = null!;

    /// <summary>The tools' verdict on a candidate: why it cannot be a version, or the bytes stored for it.</summary>
    private sealed record Checked(ValidateCandidate Candidate, string? Invalid, long ValidatedMs, long StoredMs);

    private sealed record Answered(ValidateCandidate Candidate, object Reply, long ValidatedMs, long StoredMs, long TotalMs);

    private void Idle()
    {
        Receive<ValidateCandidate>(c =>
        {
            var bundle = c.Tree.Bundle;
            if (c.LatestHash == bundle.Hash)
            {
                Done(c, new SubmitResult(SubmitOutcome.Unchanged, c.LatestVersion, bundle.Hash, "same content as the latest version"));
                return;
            }
            Become(Busy);
            var staging = Path.Combine(_s.DataDir, "config", "staging", "candidate");
            var tools = ValidationTools.For(_s);
            var limits = _s.Config.Limits;
            var store = _store;
            Task.Run(async () =>
            {
                var sw = System.Diagnostics.Stopwatch.StartNew();
                var (invalid, archive) = await Validate(bundle, c.Context, staging, tools, limits);
                var validated = sw.ElapsedMilliseconds;
                // a dry run stores nothing; a valid candidate's bytes, read back already, are what peers fetch
                if (invalid is null && !c.Tree.DryRun) store.Save(bundle.Hash, archive!);
                return new Checked(c, invalid, validated, sw.ElapsedMilliseconds - validated);
            }).PipeTo(Self, failure: e => new Checked(c, $"validation failed: {e.GetBaseException().Message}", 0, 0));
        });
    }

    private void Busy()
    {
        Receive<ValidateCandidate>(_ => Stash.Stash());
        Receive<Checked>(OnChecked);
        Receive<Answered>(OnAnswered);
    }

    private void OnChecked(Checked r)
    {
        var c = r.Candidate;
        var bundle = c.Tree.Bundle;
        if (c.Tree.DryRun)
        {
            Done(c, r.Invalid is { } why
                ? new SubmitResult(SubmitOutcome.Rejected, null, bundle.Hash, why)
                : new SubmitResult(SubmitOutcome.Valid, null, bundle.Hash, null));
            return;
        }
        if (r.Invalid is { } invalid)
        {
            Done(c, new SubmitResult(SubmitOutcome.Rejected, null, bundle.Hash, invalid),
                Rejection(_log, _s.Node.Name, bundle.Hash, c.Tree.Source, c.Tree.Author, invalid));
            return;
        }
        var started = System.Diagnostics.Stopwatch.StartNew();
        ActorRegistry.For(Context.System).Get<ConfigVersionsProxyKey>()
            .Ask<object>(new SubmitCandidate(bundle.Hash, bundle.Files.Count, bundle.Bytes, c.Tree.Source, c.Tree.Author, _s.Node.Name), CommitTimeout)
            .PipeTo(Self, success: reply => new Answered(c, reply, r.ValidatedMs, r.StoredMs, started.ElapsedMilliseconds),
                failure: e => new Answered(c, e, r.ValidatedMs, r.StoredMs, started.ElapsedMilliseconds));
    }

    private void OnAnswered(Answered a)
    {
        var c = a.Candidate;
        var hash = c.Tree.Bundle.Hash;
        switch (a.Reply)
        {
            case CandidateCommitted committed:
                if (committed.Created)
                    _log.Info("Candidate {0} from {1} is version {2} (validated in {3} ms, stored in {4} ms, committed in {5} ms)",
                        hash[..12], c.Tree.Source, committed.Version, a.ValidatedMs, a.StoredMs, a.TotalMs);
                Done(c, new SubmitResult(committed.Created ? SubmitOutcome.Committed : SubmitOutcome.Unchanged, committed.Version, hash,
                    committed.Created ? null : "same content as the latest version"));
                break;
            case CandidateNotCommitted n:
                _log.Warning("Candidate {0} from {1} not committed: {2}", hash[..12], c.Tree.Source, n.Reason);
                Done(c, new SubmitResult(SubmitOutcome.NotCommitted, null, hash, n.Reason));
                break;
            case AskTimeoutException:
                Done(c, new SubmitResult(SubmitOutcome.NotCommitted, null, hash,
                    $"the config-versions singleton did not answer within {CommitTimeout.TotalSeconds:F0} s"));
                break;
            default:
                Done(c, new SubmitResult(SubmitOutcome.NotCommitted, null, hash, $"unexpected answer {a.Reply.GetType().Name}"));
                break;
        }
    }

    private void Done(ValidateCandidate c, SubmitResult result, CandidateRejected? rejected = null)
    {
        if (!c.ReplyTo.IsNobody()) c.ReplyTo.Tell(result);
        _sync.Tell(new CandidateDone(c.Tree, result, rejected));
        Become(Idle);
        Stash.UnstashAll();
    }

    /// <summary>
    /// Why the tree cannot be a version (a name no node can carry, a bundle that does not read back,
    /// what promtool or amtool say against it as the master would run it), or null and the bundle's
    /// bytes, read back already, when it can.
    /// </summary>
    public static async Task<(string? Invalid, byte[]? Archive)> Validate(ConfBundle bundle, RenderContext context, string staging,
        ValidationTools tools, ArchiveLimits limits)
    {
        if (bundle.Files.Count == 0) return ("the tree is empty", null);
        byte[] archive;
        try
        {
            archive = bundle.ToVerifiedTarGz(limits);
        }
        catch (ConfTreeException e)
        {
            return (e.Reason, null);
        }
        try
        {
            var rendered = ConfigRenderer.Render(bundle, context);
            return (await ConfigValidator.Validate(rendered, staging, tools, authored: bundle), archive);
        }
        catch (ConfTreeException e)
        {
            return (e.Message, archive);
        }
    }

    /// <summary>A refused candidate: logged, counted, told to the config-versions singleton (`promha config status` lists it).</summary>
    public static CandidateRejected Rejection(ILoggingAdapter log, string node, string hash, string source, string author, string reason)
    {
        log.Error("Rejected the candidate from {0} ({1}): {2}", source, hash.Length >= 12 ? hash[..12] : "unreadable", reason);
        ConfigMetrics.Rejected.WithLabels(source.Split(':')[0]).Inc();
        ConfigMetrics.LastRejected.Set(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0);
        return new CandidateRejected(node, hash, source, author, reason, DateTimeOffset.UtcNow);
    }
}

/// <summary>
/// A tree to validate (and, unless a dry run, to commit) as the master would render it
/// (<paramref name="Context"/>); <paramref name="ReplyTo"/> gets the <see cref="SubmitResult"/>.
/// </summary>
public sealed record ValidateCandidate(SubmitTree Tree, RenderContext Context, string? LatestHash, long? LatestVersion, IActorRef ReplyTo);

/// <summary>A candidate's outcome, for ConfigSyncActor: a committed version is the next to apply; a rejection is shown.</summary>
public sealed record CandidateDone(SubmitTree Tree, SubmitResult Result, CandidateRejected? Rejected);

/// <summary>Marker key for the node's candidate pipeline.</summary>
public sealed class CandidateKey;

public static class CandidateActorHostingExtensions
{
    /// <summary>The candidate pipeline, reporting to the node's ConfigSyncActor (registered before it).</summary>
    public static AkkaConfigurationBuilder AddCandidateActor(this AkkaConfigurationBuilder builder, NodeSettings s) =>
        builder.WithActors((system, registry) =>
        {
            var sync = registry.Get<ConfigSyncKey>();
            registry.Register<CandidateKey>(system.ActorOf(
                Props.Create(() => new CandidateActor(s, new BundleStore(s.DataDir, s.Config.Limits), sync)), CandidateActor.Name));
        });
}
