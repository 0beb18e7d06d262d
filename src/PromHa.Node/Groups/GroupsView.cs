using System.Collections.Immutable;
using PromHa.Messages.Roles;

namespace PromHa.Node.Groups;

/// <summary>
/// Every group's master as this node last heard it from that group's singleton: what lets any node
/// answer for any group (/groups/&lt;name&gt;/..., the page, the console). Written by
/// <see cref="GroupsWatchActor"/>, read by the HTTP handlers.
/// </summary>
public sealed class GroupsView(IReadOnlyList<GroupScope> groups, TimeProvider? time = null)
{
    private readonly TimeProvider _time = time ?? TimeProvider.System;
    private ImmutableDictionary<string, Heard> _heard = ImmutableDictionary<string, Heard>.Empty;

    /// <summary>A status and when this node received it (the singleton's clock is not this node's).</summary>
    public sealed record Heard(MasterStatus Status, DateTimeOffset ReceivedAt);

    public IReadOnlyList<GroupScope> Groups { get; } = groups;

    /// <summary>A status heard more than this long ago names no master: the group's singleton publishes every second.</summary>
    public static readonly TimeSpan StaleAfter = TimeSpan.FromSeconds(5);

    public GroupScope? Find(string name) => Groups.FirstOrDefault(g => g.Name == name);

    public void Hear(string group, MasterStatus status)
    {
        // a status from an older epoch (a late copy) does not replace a newer one
        var now = _time.GetUtcNow();
        ImmutableInterlocked.AddOrUpdate(ref _heard, group, new Heard(status, now),
            (_, old) => status.Epoch >= old.Status.Epoch ? new Heard(status, now) : old);
    }

    public Heard? Of(string group) => Volatile.Read(ref _heard).GetValueOrDefault(group);

    /// <summary>The group's master and its Prometheus/Alertmanager/API URLs, when a fresh status names one.</summary>
    public NodeHealthView? Master(string group)
    {
        if (Of(group) is not { } h || h.Status.Master is not { } master || _time.GetUtcNow() - h.ReceivedAt > StaleAfter) return null;
        return h.Status.Nodes.FirstOrDefault(n => n.Node == master);
    }

    public TimeSpan? Age(string group) => Of(group) is { } h ? _time.GetUtcNow() - h.ReceivedAt : null;
}
