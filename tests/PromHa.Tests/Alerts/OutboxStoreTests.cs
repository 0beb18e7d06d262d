using PromHa.Messages.Alerts;
using PromHa.Node.Alerts;

namespace PromHa.Tests.Alerts;

public sealed class OutboxStoreTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("promha-outbox").FullName;
    private static readonly DateTimeOffset T0 = DateTimeOffset.FromUnixTimeMilliseconds(DateTimeOffset.UtcNow.AddMinutes(-5).ToUnixTimeMilliseconds());

    public void Dispose() => Directory.Delete(_dir, true);

    private static NotificationRecord Rec(string id, string key, DateTimeOffset at, string receiver = "chat") =>
        new(id, receiver, 0, "g", key, ["a"], [], NotificationGateActor.Gzip("{}"u8.ToArray()), at, "node-a", 1);

    private static DeliveryOutcome Done(string id, DeliveryState state, DateTimeOffset at) => new(id, state, "first", "node-a", 1, at, 1, null);

    [Fact]
    public void Notifications_survive_a_reopen_and_stay_pending_until_an_outcome_settles_them()
    {
        var path = Path.Combine(_dir, "outbox.db");
        using (var store = new OutboxStore(path))
        {
            Assert.True(store.Add(Rec("1", "k1", T0)));
            Assert.False(store.Add(Rec("1", "k1", T0))); // a replay
            Assert.True(store.Add(Rec("2", "k2", T0.AddSeconds(1))));
        }
        using var reopened = new OutboxStore(path);
        Assert.Equal(["1", "2"], reopened.Pending().Select(r => r.Id));
        Assert.Equal("{}"u8.ToArray(), NotificationGateActor.Gunzip(reopened.Get("1")!.Payload));
        reopened.Settle(Done("1", DeliveryState.Delivered, T0.AddSeconds(2)));
        Assert.Equal(["2"], reopened.Pending().Select(r => r.Id));
        Assert.Equal("1", reopened.DeliveredWithContent(Rec("3", "k1", T0.AddSeconds(9)))!.Id);
        Assert.Null(reopened.DeliveredWithContent(Rec("4", "k2", T0.AddSeconds(9))));
        Assert.Equal("1", reopened.LastDeliveredOfGroup("chat", 0, "g")!.Id);
        Assert.Null(reopened.LastDeliveredOfGroup("chat", 1, "g")); // another webhook of the receiver
    }

    [Fact]
    public void A_delivery_outranks_a_failure_but_not_the_other_way_round_and_an_early_outcome_waits_for_its_notification()
    {
        using var store = new OutboxStore(Path.Combine(_dir, "outbox.db"));
        Assert.True(store.Settle(Done("1", DeliveryState.Failed, T0)));
        store.Add(Rec("1", "k1", T0));
        Assert.Empty(store.Pending());
        Assert.True(store.Settle(Done("1", DeliveryState.Delivered, T0.AddSeconds(1))));
        Assert.False(store.Settle(Done("1", DeliveryState.Failed, T0.AddSeconds(2))));
        Assert.Equal(DeliveryState.Delivered, store.Outcome("1")!.State);
    }

    [Fact]
    public void The_backlog_counts_pending_per_receiver_and_retention_forgets_old_entries()
    {
        using var store = new OutboxStore(Path.Combine(_dir, "outbox.db"));
        store.Add(Rec("old", "k0", T0.AddHours(-30)));
        store.Add(Rec("1", "k1", T0, "chat"));
        store.Add(Rec("2", "k2", T0.AddSeconds(1), "pager"));
        store.Add(Rec("3", "k3", T0.AddSeconds(2), "pager"));
        var backlog = store.Backlog();
        Assert.Equal(2, backlog["chat"].Count);
        Assert.Equal((2, T0.AddSeconds(1)), (backlog["pager"].Count, backlog["pager"].Oldest));
        Assert.Equal(1, store.Prune(T0.AddHours(-24)));
        Assert.Null(store.Get("old"));
        Assert.Equal(3, store.Pending().Count);
    }

    [Fact]
    public void Retention_keeps_each_groups_last_delivered_notification_which_a_resolution_days_later_compares_with()
    {
        using var store = new OutboxStore(Path.Combine(_dir, "outbox.db"));
        store.Add(Rec("fired", "k1", T0.AddHours(-50)));
        store.Settle(Done("fired", DeliveryState.Delivered, T0.AddHours(-50)));
        store.Add(Rec("copy", "k1", T0.AddHours(-50)));
        store.Settle(Done("copy", DeliveryState.Duplicate, T0.AddHours(-50)));
        store.Prune(T0.AddHours(-24));
        Assert.Null(store.Get("copy"));
        Assert.Equal("fired", store.LastDeliveredOfGroup("chat", 0, "g")!.Id);
        Assert.Equal(DeliveryState.Delivered, store.Outcome("fired")!.State);
    }

    [Fact]
    public void A_delivered_resolution_ends_its_alerts_firing_for_the_group_whatever_arrives_first()
    {
        using var store = new OutboxStore(Path.Combine(_dir, "outbox.db"));
        NotificationRecord With(string id, string[] firing, string[] resolved) =>
            new(id, "chat", 0, "g", id, firing, resolved, [], T0, "node-a", 1);
        store.Add(With("r1", [], ["x@1000", "old"]));
        store.Settle(Done("r1", DeliveryState.Delivered, T0));
        // the outcome before the notification (anti-entropy)
        store.Settle(Done("r2", DeliveryState.Delivered, T0));
        store.Add(With("r2", [], ["y@2000"]));
        store.Add(With("n", ["x@1000", "y@2000", "x@3000", "old"], []));
        Assert.Equal(["x@1000", "y@2000"], store.Ended(store.Get("n")!).Order());
        // a duplicate's resolution told the receiver nothing
        store.Add(With("d", [], ["z@1"]));
        store.Settle(Done("d", DeliveryState.Duplicate, T0));
        Assert.Empty(store.Ended(With("m", ["z@1"], [])));
    }

    /// <summary>
    /// Seen end to end: a node restarted while x fired, its fresh Prometheus fired x with a later start;
    /// after the resolution its "still firing" reached an Alertmanager, which sent x firing with that start.
    /// It began before the end the receiver was told: the old firing. One that begins after is new.
    /// </summary>
    [Fact]
    public void A_firing_that_began_before_the_reported_end_is_over_one_that_began_after_is_new()
    {
        using var store = new OutboxStore(Path.Combine(_dir, "outbox.db"));
        store.Add(new NotificationRecord("r", "chat", 0, "g", "r", [], ["x@1000"], [], T0, "node-a", 1, ["x@5000"]));
        store.Settle(Done("r", DeliveryState.Delivered, T0));
        NotificationRecord Firing(string alert) => new("f", "chat", 0, "g", "f", [alert], [], [], T0, "node-b", 1);
        Assert.Equal(["x@3000"], store.Ended(Firing("x@3000")));
        Assert.Empty(store.Ended(Firing("x@6000")));
        // a later resolution of a later firing moves the end on; an earlier one does not move it back
        store.Add(new NotificationRecord("r2", "chat", 0, "g", "r2", [], ["x@6000"], [], T0, "node-a", 1, ["x@9000"]));
        store.Settle(Done("r2", DeliveryState.Delivered, T0));
        store.Add(new NotificationRecord("r3", "chat", 0, "g", "r3", [], ["x@1000"], [], T0, "node-c", 1, ["x@5000"]));
        store.Settle(Done("r3", DeliveryState.Delivered, T0));
        Assert.Equal(["x@8000"], store.Ended(Firing("x@8000")));
        Assert.Empty(store.Ended(Firing("x@9500")));
        // that resolution again (Prometheus resends it) began before the end too: the receiver had it
        Assert.Equal(["x@6000"], store.Ended(new NotificationRecord("z", "chat", 0, "g", "z", [], ["x@6000"], [], T0, "node-b", 1, ["x@9000"])));
        // the ends travel with the record and survive a reopen
        Assert.Equal(["x@9000"], store.Get("r2")!.Ends!);
    }

    /// <summary>An outbox written before the pending flag and the groups' last deliveries were kept opens with both filled in.</summary>
    [Fact]
    public void An_outbox_from_before_the_pending_index_and_last_deliveries_opens_with_them()
    {
        var path = Path.Combine(_dir, "old.db");
        using (var db = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={path};Pooling=False"))
        {
            db.Open();
            using var cmd = db.CreateCommand();
            cmd.CommandText = $"""
                CREATE TABLE notifications (
                    id TEXT PRIMARY KEY, receiver TEXT NOT NULL, target INTEGER NOT NULL, group_key TEXT NOT NULL,
                    dedup_key TEXT NOT NULL, firing TEXT NOT NULL, resolved TEXT NOT NULL, payload BLOB NOT NULL,
                    accepted_at INTEGER NOT NULL, accepted_by TEXT NOT NULL, epoch INTEGER NOT NULL);
                CREATE TABLE outcomes (
                    id TEXT PRIMARY KEY, state INTEGER NOT NULL, reason TEXT NOT NULL, by TEXT NOT NULL, epoch INTEGER NOT NULL,
                    at INTEGER NOT NULL, attempts INTEGER NOT NULL, error TEXT);
                INSERT INTO notifications VALUES ('a', 'chat', 0, 'g', 'k1', 'x', '', x'', {T0.ToUnixTimeMilliseconds()}, 'node-a', 1);
                INSERT INTO notifications VALUES ('b', 'chat', 0, 'g', 'k2', 'x', '', x'', {T0.AddSeconds(1).ToUnixTimeMilliseconds()}, 'node-a', 1);
                INSERT INTO notifications VALUES ('c', 'chat', 0, 'g', 'k3', '', 'x', x'', {T0.AddSeconds(2).ToUnixTimeMilliseconds()}, 'node-a', 1);
                INSERT INTO outcomes VALUES ('a', 1, 'first', 'node-a', 1, {T0.AddSeconds(5).ToUnixTimeMilliseconds()}, 1, NULL);
                INSERT INTO outcomes VALUES ('b', 2, 'duplicate', 'node-a', 1, {T0.AddSeconds(6).ToUnixTimeMilliseconds()}, 0, NULL);
                """;
            cmd.ExecuteNonQuery();
        }
        using var store = new OutboxStore(path);
        Assert.Equal(["c"], store.Pending().Select(r => r.Id));
        Assert.Equal("a", store.LastDeliveredOfGroup("chat", 0, "g")!.Id);
        Assert.Equal(1, store.Backlog()["chat"].Count);
        store.Settle(Done("c", DeliveryState.Delivered, T0.AddSeconds(7)));
        Assert.Empty(store.Pending());
        Assert.Equal("c", store.LastDeliveredOfGroup("chat", 0, "g")!.Id);
        // an older delivery learnt later (anti-entropy) does not move the group's entry back
        store.Add(Rec("d", "k4", T0.AddSeconds(-10)));
        store.Settle(Done("d", DeliveryState.Delivered, T0.AddSeconds(1)));
        Assert.Equal("c", store.LastDeliveredOfGroup("chat", 0, "g")!.Id);
    }

    [Fact]
    public void Anti_entropy_pages_carry_every_pending_and_recently_settled_notification_in_order()
    {
        using var store = new OutboxStore(Path.Combine(_dir, "outbox.db"));
        for (var i = 0; i < 30; i++) store.Add(Rec($"n{i:D2}", $"k{i}", T0.AddMilliseconds(i)));
        for (var i = 0; i < 30; i += 2) store.Settle(Done($"n{i:D2}", DeliveryState.Delivered, T0.AddSeconds(1)));
        store.Add(Rec("old-settled", "k-old", T0.AddHours(-1)));
        store.Settle(Done("old-settled", DeliveryState.Delivered, T0.AddHours(-1)));
        var seen = new List<NotificationRecord>();
        var outcomes = 0;
        DateTimeOffset? afterAt = null;
        string? afterId = null;
        for (var pages = 0; ; pages++)
        {
            Assert.True(pages < 20, "paging does not end");
            var (records, got, more) = store.Page(T0.AddMinutes(-15), afterAt, afterId, budget: 2000);
            seen.AddRange(records);
            outcomes += got.Count;
            if (!more) break;
            (afterAt, afterId) = (records[^1].AcceptedAt, records[^1].Id);
        }
        Assert.Equal(Enumerable.Range(0, 30).Select(i => $"n{i:D2}"), seen.Select(r => r.Id)); // in order, once each, the old one not
        Assert.Equal(15, outcomes);
        Assert.All(seen, r => Assert.Equal(r.Id.EndsWith('0') || r.Id.EndsWith('2') || r.Id.EndsWith('4') || r.Id.EndsWith('6') || r.Id.EndsWith('8'),
            r.Payload.Length == 0)); // settled ones travel without their payload
    }

    /// <summary>
    /// A file written by the promha of 2026-12-06 (before the layout had a version): it opens, gets
    /// the current version, and reads back what it held: notifications with their ends, outcomes
    /// with the delivery they duplicate, the pending one, each group's last delivery, ended alerts.
    /// </summary>
    [Fact]
    public void An_outbox_written_before_versions_is_upgraded_and_reads_back_what_it_held()
    {
        var path = Path.Combine(_dir, "outbox.db");
        File.Copy(Path.Combine(AppContext.BaseDirectory, "Alerts", "Fixtures", "outbox-2026-12-06.db"), path);
        Assert.Equal(0L, UserVersion(path));
        using (var store = new OutboxStore(path))
        {
            Assert.Equal(["n4"], store.Pending().Select(r => r.Id));
            var n3 = store.Get("n3")!;
            Assert.Equal(["x@1796558430000"], n3.Ends!);
            Assert.Equal(("node1", 4L), (n3.AcceptedBy, n3.Epoch));
            Assert.Equal("{\"id\":\"n3\"}", System.Text.Encoding.UTF8.GetString(NotificationGateActor.Gunzip(n3.Payload)));
            Assert.Equal(("copy", "n1"), (store.Outcome("n2")!.Reason, store.Outcome("n2")!.DuplicateOf));
            Assert.Equal("timeout once", store.Outcome("n3")!.Error);
            Assert.Equal("n3", store.LastDeliveredOfGroup("pager", 0, "{}:{alertname=\"X\"}")!.Id);
            Assert.Equal(["x@1796558400000"], store.Ended(store.Get("n1")!));
            // and it keeps working: a new notification is stored and found
            Assert.True(store.Add(Rec("n5", "k5", T0)));
            Assert.Equal(["n4", "n5"], store.Pending().Select(r => r.Id).Order());
        }
        Assert.Equal((long)OutboxStore.SchemaVersion, UserVersion(path));
        using var again = new OutboxStore(path); // opening a current file changes nothing
        Assert.Equal(5, again.Recent(10).Count);
    }

    /// <summary>The oldest layout (no ends, no duplicate_of, no settled flag, no last_delivered): upgraded with its history kept.</summary>
    [Fact]
    public void The_first_outbox_layout_is_upgraded_with_its_last_deliveries_rebuilt()
    {
        var path = Path.Combine(_dir, "outbox.db");
        using (var db = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={path};Pooling=False"))
        {
            db.Open();
            using var cmd = db.CreateCommand();
            cmd.CommandText = """
                CREATE TABLE notifications (id TEXT PRIMARY KEY, receiver TEXT NOT NULL, target INTEGER NOT NULL, group_key TEXT NOT NULL,
                    dedup_key TEXT NOT NULL, firing TEXT NOT NULL, resolved TEXT NOT NULL, payload BLOB NOT NULL,
                    accepted_at INTEGER NOT NULL, accepted_by TEXT NOT NULL, epoch INTEGER NOT NULL);
                CREATE TABLE outcomes (id TEXT PRIMARY KEY, state INTEGER NOT NULL, reason TEXT NOT NULL, by TEXT NOT NULL, epoch INTEGER NOT NULL,
                    at INTEGER NOT NULL, attempts INTEGER NOT NULL, error TEXT);
                INSERT INTO notifications VALUES ('a', 'chat', 0, 'g', 'k1', 'x', '', x'00', 1000, 'node-a', 1);
                INSERT INTO notifications VALUES ('b', 'chat', 0, 'g', 'k2', '', 'x', x'00', 2000, 'node-b', 1);
                INSERT INTO notifications VALUES ('c', 'chat', 0, 'g', 'k3', 'y', '', x'00', 3000, 'node-a', 1);
                INSERT INTO outcomes VALUES ('a', 1, 'first', 'node-a', 1, 1500, 1, NULL);
                INSERT INTO outcomes VALUES ('b', 1, 'resolved', 'node-a', 1, 2500, 1, NULL);
                """;
            cmd.ExecuteNonQuery();
        }
        using var store = new OutboxStore(path);
        Assert.Equal(["c"], store.Pending().Select(r => r.Id));
        Assert.Equal("b", store.LastDeliveredOfGroup("chat", 0, "g")!.Id);
        Assert.Empty(store.Get("a")!.Ends!);
        Assert.Null(store.Outcome("a")!.DuplicateOf);
        Assert.Equal((long)OutboxStore.SchemaVersion, UserVersion(path));
    }

    /// <summary>A file from a newer promha is refused, naming the file, and left as it was.</summary>
    [Fact]
    public void An_outbox_from_a_newer_promha_is_refused_naming_the_file()
    {
        var path = Path.Combine(_dir, "outbox.db");
        using (var db = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={path};Pooling=False"))
        {
            db.Open();
            using var cmd = db.CreateCommand();
            cmd.CommandText = $"CREATE TABLE future (x); PRAGMA user_version = {OutboxStore.SchemaVersion + 1};";
            cmd.ExecuteNonQuery();
        }
        var e = Assert.Throws<OutboxVersionException>(() => new OutboxStore(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("newer promha", e.Message);
        Assert.Equal((long)OutboxStore.SchemaVersion + 1, UserVersion(path));
        Assert.False(File.Exists(path + "-wal"), "the refused file was switched to WAL");
    }

    private static long UserVersion(string path)
    {
        using var db = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={path};Pooling=False");
        db.Open();
        using var cmd = db.CreateCommand();
        cmd.CommandText = "PRAGMA user_version";
        return (long)cmd.ExecuteScalar()!;
    }
}
