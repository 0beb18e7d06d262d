using System.CommandLine;
using System.Diagnostics;
using PromHa.Messages.Alerts;
using PromHa.Node.Alerts;

using PromHa.Node.Console;

namespace PromHa.LabTool;

/// <summary>
/// `promha-lab bench gate`: the gate's decision over days. Fills an outbox (the real OutboxStore, on
/// disk) with two days of flapping alerts as three Alertmanagers would hand them over (each
/// notification and a copy of most), times what the master does per notification with all of it
/// stored (take the deliverable ones, decide with DeliveryDecision, settle), then prunes it to the
/// retention as the node's housekeeping does.
/// </summary>
public static class GateBenchCommand
{
    public static Command Create()
    {
        var notifications = new Option<int>("--notifications") { Description = "Notifications stored over the simulated day", DefaultValueFactory = _ => 100_000 };
        var groups = new Option<int>("--groups") { Description = "Alert groups (each one flapping alert)", DefaultValueFactory = _ => 200 };
        var hours = new Option<int>("--hours") { Description = "Simulated history (the outbox keeps --retention-hours of it)", DefaultValueFactory = _ => 48 };
        var retention = new Option<int>("--retention-hours") { Description = "alerts.retentionHours", DefaultValueFactory = _ => 24 };
        var cmd = new Command("gate", "Time the gate's per-notification decision on an outbox holding a day of flapping alerts")
            { notifications, groups, hours, retention };
        cmd.SetAction(p => Run(p.GetValue(notifications), p.GetValue(groups), TimeSpan.FromHours(p.GetValue(hours)),
            TimeSpan.FromHours(p.GetValue(retention))));
        return cmd;
    }

    private static int Run(int count, int groups, TimeSpan history, TimeSpan retention)
    {
        var dir = Directory.CreateTempSubdirectory("promha-bench-gate").FullName;
        try
        {
            var path = Path.Combine(dir, "outbox.db");
            using var store = new OutboxStore(path);
            var payload = NotificationGateActor.Gzip(new byte[1200]); // a typical webhook body's size, compressed
            var end = DateTimeOffset.UtcNow;
            var start = end - history;
            // each group flaps: fire, resolve, fire again...; a notification, and from 2 of 3 Alertmanagers a copy
            var perGroup = Math.Max(2, count / groups);
            var step = history / (perGroup * 2 / 3 + 1);
            var fill = Stopwatch.StartNew();
            var written = 0;
            for (var g = 0; g < groups && written < count; g++)
            {
                var at = start + TimeSpan.FromMilliseconds(g * 97);
                for (var i = 0; written < count && at < end - TimeSpan.FromMinutes(1); i++, at += step)
                {
                    var (firing, resolved) = Cycle(g, i, start, step);
                    var delivered = Record(g, firing, resolved, at, "node-a", payload);
                    store.Add(delivered);
                    store.Settle(new DeliveryOutcome(delivered.Id, DeliveryState.Delivered, "refired", "node-a", 1, at + TimeSpan.FromMilliseconds(20), 1, null));
                    written++;
                    if (i % 3 == 2 || written >= count) continue;
                    var copy = Record(g, firing, resolved, at + TimeSpan.FromSeconds(2), "node-b", payload);
                    store.Add(copy);
                    store.Settle(new DeliveryOutcome(copy.Id, DeliveryState.Duplicate, "copy", "node-a", 1, at + TimeSpan.FromSeconds(2), 0, null, delivered.Id));
                    written++;
                }
            }
            var filled = fill.Elapsed;
            var sizeBefore = new FileInfo(path).Length + (File.Exists(path + "-wal") ? new FileInfo(path + "-wal").Length : 0);
            System.Console.WriteLine($"bench gate: {written:N0} notifications in {groups} flapping groups over {history.TotalHours:F0} h, written in {filled.TotalSeconds:F1} s; " +
                                     $"outbox {sizeBefore / 1048576.0:F1} MiB");

            // the next day begins: every group's alert changes once more, twice (a notification and a copy)
            var decide = new List<double>();
            var window = TimeSpan.FromHours(1);
            for (var round = 0; round < 5; round++)
            {
                var at = end + TimeSpan.FromSeconds(round * 30);
                for (var g = 0; g < groups; g++)
                {
                    var (firing, resolved) = Cycle(g, 100_000 + round, start, step);
                    store.Add(Record(g, firing, resolved, at, "node-a", payload));
                    store.Add(Record(g, firing, resolved, at + TimeSpan.FromSeconds(1), "node-b", payload));
                }
                // as the master: one deliverable per group at a time, decided and settled
                while (true)
                {
                    var sw = Stopwatch.StartNew();
                    var list = store.Deliverable(new HashSet<string>(), new HashSet<string>());
                    if (list.Count == 0) break;
                    var took = sw.Elapsed.TotalMilliseconds;
                    foreach (var d in list)
                    {
                        var one = Stopwatch.StartNew();
                        var decision = DeliveryDecision.Decide(d.Record, d.LastOfGroup, d.SameContent, window, true, 1, d.Ended);
                        store.Settle(new DeliveryOutcome(d.Record.Id, decision.Deliver ? DeliveryState.Delivered : DeliveryState.Duplicate,
                            decision.Reason, "node-a", 1, DateTimeOffset.UtcNow, 1, null, decision.DuplicateOf));
                        decide.Add(took / list.Count + one.Elapsed.TotalMilliseconds);
                    }
                }
            }
            decide.Sort();
            var prune = Stopwatch.StartNew();
            store.Prune(end + TimeSpan.FromMinutes(5) - retention); // the node's housekeeping, every 10 s
            var pruned = prune.Elapsed;
            var left = store.Recent(int.MaxValue).Count;
            System.Console.WriteLine($"""
                per notification: take + decide + settle  p50 {AlertsBenchCommand.Pct(decide, 0.5):F3} ms  p99 {AlertsBenchCommand.Pct(decide, 0.99):F3} ms  max {decide[^1]:F3} ms  ({decide.Count} notifications)
                retention {retention.TotalHours:F0} h: pruned in {pruned.TotalMilliseconds:F0} ms, {left:N0} notifications left (each group's last delivered one is kept)
                """);
            return 0;
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    /// <summary>The i-th notification of a flapping group: firing (a new start each cycle) or resolved.</summary>
    private static (string[] Firing, string[] Resolved) Cycle(int group, int i, DateTimeOffset start, TimeSpan step)
    {
        var alert = DeliveryDecision.Alert($"fp{group}", start + step * (i / 2 * 2));
        return i % 2 == 0 ? ([alert], []) : ([], [alert]);
    }

    private static NotificationRecord Record(int group, string[] firing, string[] resolved, DateTimeOffset at, string by, byte[] payload) =>
        new(Guid.CreateVersion7(at).ToString("N"), "pager", 0, $"{{}}:{{alertname=\"Flap{group}\"}}",
            DeliveryDecision.DedupKey("pager", 0, $"{{}}:{{alertname=\"Flap{group}\"}}", firing, resolved), firing, resolved, payload, at, by, 1);

}
