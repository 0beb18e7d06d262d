using System.Data;
using Microsoft.Data.Sqlite;
using PromHa.Messages.Alerts;

namespace PromHa.Node.Alerts;

/// <summary>The outbox file was written by a newer promha: the node refuses to start (exit 64) rather than misread it.</summary>
public sealed class OutboxVersionException(string message) : Exception(message);

/// <summary>A row of the outbox as the API shows it.</summary>
public sealed record OutboxEntry(NotificationRecord Record, DeliveryOutcome? Outcome);

/// <summary>
/// The node's durable outbox (SQLite, &lt;dataDir&gt;/outbox.db): every notification this node's
/// ledger took, and the outcome of each once the master settled it. WAL with synchronous=NORMAL:
/// a write survives the process crashing (not the host losing power); what survives a lost host is
/// the copy on the majority. An outcome may arrive before its
/// notification (anti-entropy); it is kept apart and joined. Owned by one actor: not thread-safe.
/// </summary>
public sealed class OutboxStore : IDisposable
{
    private readonly SqliteConnection _db;

    public OutboxStore(string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        _db = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Pooling = false }.ToString());
        _db.Open();
        // The layout is versioned (PRAGMA user_version): a file from an older promha is upgraded in
        // one transaction, one from a newer promha is refused, untouched, rather than misread.
        var version = Convert.ToInt32(Scalar("PRAGMA user_version"));
        if (version > SchemaVersion)
        {
            _db.Dispose();
            throw new OutboxVersionException(
                $"{path}: the outbox was written by a newer promha (schema {version}; this one reads up to {SchemaVersion}). Run the newer promha, or move the file away (its notifications are also on the other nodes).");
        }
        Exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;");
        if (version == SchemaVersion) return;
        Exec("BEGIN IMMEDIATE");
        try
        {
            if (version < 1) UpgradeTo1();
            Exec($"PRAGMA user_version = {SchemaVersion}");
            Exec("COMMIT");
        }
        catch
        {
            // SQLite may have rolled back already (disk full, I/O error): keep the first error
            try { Exec("ROLLBACK"); } catch (SqliteException) { }
            throw;
        }
    }

    /// <summary>The layout this promha writes; every older one is upgraded on open.</summary>
    public const int SchemaVersion = 1;

    /// <summary>
    /// Version 1 (2026-12): every layout before versions were kept (they differ by the columns and
    /// tables added below, each added only where missing), and a new file.
    /// </summary>
    private void UpgradeTo1()
    {
        Exec("""
            CREATE TABLE IF NOT EXISTS notifications (
                id TEXT PRIMARY KEY, receiver TEXT NOT NULL, target INTEGER NOT NULL, group_key TEXT NOT NULL,
                dedup_key TEXT NOT NULL, firing TEXT NOT NULL, resolved TEXT NOT NULL, payload BLOB NOT NULL,
                accepted_at INTEGER NOT NULL, accepted_by TEXT NOT NULL, epoch INTEGER NOT NULL);
            CREATE INDEX IF NOT EXISTS notifications_accepted ON notifications (accepted_at);
            CREATE INDEX IF NOT EXISTS notifications_dedup ON notifications (dedup_key);
            CREATE INDEX IF NOT EXISTS notifications_group ON notifications (receiver, group_key);
            CREATE TABLE IF NOT EXISTS outcomes (
                id TEXT PRIMARY KEY, state INTEGER NOT NULL, reason TEXT NOT NULL, by TEXT NOT NULL, epoch INTEGER NOT NULL,
                at INTEGER NOT NULL, attempts INTEGER NOT NULL, error TEXT);
            CREATE INDEX IF NOT EXISTS outcomes_at ON outcomes (at);
            -- per group, the alerts a delivered notification told the receiver were resolved: when the
            -- latest such firing ended (ends), and when that was delivered (at, for the retention)
            DROP TABLE IF EXISTS ended;
            CREATE TABLE IF NOT EXISTS ended_alerts (
                receiver TEXT NOT NULL, target INTEGER NOT NULL, group_key TEXT NOT NULL, fingerprint TEXT NOT NULL,
                ends INTEGER NOT NULL, at INTEGER NOT NULL,
                PRIMARY KEY (receiver, target, group_key, fingerprint)) WITHOUT ROWID;
            CREATE INDEX IF NOT EXISTS ended_alerts_at ON ended_alerts (at);
            """);
        // outboxes from before notifications said when their resolved alerts ended
        if (!HasColumn("notifications", "ends")) Exec("ALTER TABLE notifications ADD COLUMN ends TEXT NOT NULL DEFAULT ''");
        // outboxes from before outcomes named the delivery a duplicate duplicates
        if (!HasColumn("outcomes", "duplicate_of")) Exec("ALTER TABLE outcomes ADD COLUMN duplicate_of TEXT");
        // What the gate reads for every notification is kept where it is found at once, not by
        // scanning a day of history: whether a notification is settled (an index on the pending ones)
        // and each group's last delivered notification (its log entry).
        if (!HasColumn("notifications", "settled"))
            Exec("""
                 ALTER TABLE notifications ADD COLUMN settled INTEGER NOT NULL DEFAULT 0;
                 UPDATE notifications SET settled = 1 WHERE id IN (SELECT id FROM outcomes);
                 """);
        Exec("CREATE INDEX IF NOT EXISTS notifications_pending ON notifications (settled, accepted_at, id)");
        if (Scalar("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'last_delivered'") is null)
            Exec("""
                 CREATE TABLE last_delivered (
                     receiver TEXT NOT NULL, target INTEGER NOT NULL, group_key TEXT NOT NULL, id TEXT NOT NULL,
                     at INTEGER NOT NULL, accepted_at INTEGER NOT NULL, PRIMARY KEY (receiver, target, group_key)) WITHOUT ROWID;
                 INSERT INTO last_delivered (receiver, target, group_key, id, at, accepted_at)
                     SELECT receiver, target, group_key, id, at, accepted_at FROM (
                         SELECT n.receiver, n.target, n.group_key, n.id, o.at, n.accepted_at,
                                ROW_NUMBER() OVER (PARTITION BY n.receiver, n.target, n.group_key ORDER BY o.at DESC, n.accepted_at DESC) AS k
                         FROM notifications n JOIN outcomes o ON o.id = n.id WHERE o.state = 1)
                     WHERE k = 1;
                 """);
    }

    /// <summary>What a notification is read from, by name (n: the notifications table).</summary>
    private const string Columns =
        "n.id, n.receiver, n.target, n.group_key, n.dedup_key, n.firing, n.resolved, n.payload, n.accepted_at, n.accepted_by, n.epoch, n.ends";

    private const string OutcomeColumns = "id, state, reason, by, epoch, at, attempts, error, duplicate_of";

    private bool HasColumn(string table, string column) =>
        Convert.ToInt64(Scalar($"SELECT COUNT(*) FROM pragma_table_info('{table}') WHERE name = $name", ("$name", column))) > 0;

    /// <summary>Keeps a notification; false when it was already here (a replay, or anti-entropy).</summary>
    public bool Add(NotificationRecord r)
    {
        var added = Exec("""
                         INSERT OR IGNORE INTO notifications
                             (id, receiver, target, group_key, dedup_key, firing, resolved, payload, accepted_at, accepted_by, epoch, settled, ends)
                         VALUES ($id, $receiver, $target, $group, $dedup, $firing, $resolved, $payload, $at, $by, $epoch,
                                 EXISTS (SELECT 1 FROM outcomes WHERE id = $id), $ends)
                         """,
            ("$ends", string.Join('\n', r.Ends ?? [])), ("$id", r.Id), ("$receiver", r.Receiver), ("$target", r.Target), ("$group", r.GroupKey), ("$dedup", r.DedupKey),
            ("$firing", string.Join('\n', r.Firing)), ("$resolved", string.Join('\n', r.Resolved)), ("$payload", r.Payload),
            ("$at", r.AcceptedAt.ToUnixTimeMilliseconds()), ("$by", r.AcceptedBy), ("$epoch", r.Epoch)) > 0;
        // its outcome came first (anti-entropy)
        if (added && Outcome(r.Id) is { State: DeliveryState.Delivered } o) Delivered(r, o.At);
        return added;
    }

    /// <summary>
    /// A delivered notification: it may be its group's last (the one delivered last, the one accepted
    /// last among equals), and its resolved alerts are over for the receiver.
    /// </summary>
    private void Delivered(NotificationRecord r, DateTimeOffset at)
    {
        Exec("""
             INSERT INTO last_delivered (receiver, target, group_key, id, at, accepted_at) VALUES ($receiver, $target, $group, $id, $at, $accepted)
             ON CONFLICT (receiver, target, group_key) DO UPDATE SET id = excluded.id, at = excluded.at, accepted_at = excluded.accepted_at
             WHERE excluded.at > last_delivered.at OR (excluded.at = last_delivered.at AND excluded.accepted_at >= last_delivered.accepted_at)
             """, ("$receiver", r.Receiver), ("$target", r.Target), ("$group", r.GroupKey), ("$id", r.Id), ("$at", at.ToUnixTimeMilliseconds()),
            ("$accepted", r.AcceptedAt.ToUnixTimeMilliseconds()));
        var ends = DeliveryDecision.TimesByFingerprint(r.Ends ?? []);
        foreach (var alert in r.Resolved.Where(DeliveryDecision.HasTime))
        {
            var fp = DeliveryDecision.Fingerprint(alert);
            // without its end (an older record) the firing is known to have begun at its start
            var end = ends.TryGetValue(fp, out var e) ? e : DeliveryDecision.Time(alert) + 1;
            Exec("""
                 INSERT INTO ended_alerts (receiver, target, group_key, fingerprint, ends, at) VALUES ($receiver, $target, $group, $fp, $ends, $at)
                 ON CONFLICT (receiver, target, group_key, fingerprint) DO UPDATE SET ends = MAX(ends, excluded.ends), at = MAX(at, excluded.at)
                 """, ("$receiver", r.Receiver), ("$target", r.Target), ("$group", r.GroupKey), ("$fp", fp), ("$ends", end),
                ("$at", at.ToUnixTimeMilliseconds()));
        }
    }

    /// <summary>
    /// Which of a notification's alerts (firing or resolved) began before the group's receiver was
    /// told they ended: a replica's view of the firing that is over, or its resolution again (a new
    /// firing begins after the end; Prometheus gives it a new start).
    /// </summary>
    public IReadOnlySet<string> Ended(NotificationRecord r)
    {
        var ended = new HashSet<string>(StringComparer.Ordinal);
        foreach (var alert in r.Firing.Concat(r.Resolved).Where(DeliveryDecision.HasTime))
            if (Scalar("SELECT ends FROM ended_alerts WHERE receiver = $receiver AND target = $target AND group_key = $group AND fingerprint = $fp",
                    ("$receiver", r.Receiver), ("$target", r.Target), ("$group", r.GroupKey), ("$fp", DeliveryDecision.Fingerprint(alert))) is long end &&
                DeliveryDecision.Time(alert) < end)
                ended.Add(alert);
        return ended;
    }

    /// <summary>Records an outcome; a settled one is not overwritten by a later failure, only a failure by a delivery.</summary>
    public bool Settle(DeliveryOutcome o)
    {
        var known = Outcome(o.Id);
        if (known is not null && (known.State != DeliveryState.Failed || o.State == DeliveryState.Failed)) return false;
        Exec("INSERT OR REPLACE INTO outcomes (id, state, reason, by, epoch, at, attempts, error, duplicate_of) VALUES ($id, $state, $reason, $by, $epoch, $at, $attempts, $error, $of)",
            ("$id", o.Id), ("$state", (int)o.State), ("$reason", o.Reason), ("$by", o.By), ("$epoch", o.Epoch),
            ("$at", o.At.ToUnixTimeMilliseconds()), ("$attempts", o.Attempts), ("$error", o.Error), ("$of", o.DuplicateOf));
        Exec("UPDATE notifications SET settled = 1 WHERE id = $id", ("$id", o.Id));
        if (o.State == DeliveryState.Delivered && Get(o.Id) is { } r) Delivered(r, o.At);
        return true;
    }

    /// <summary>Drops a notification that never reached a majority (its outcome too, if any).</summary>
    public void Remove(string id)
    {
        Exec("DELETE FROM notifications WHERE id = $id", ("$id", id));
        Exec("DELETE FROM outcomes WHERE id = $id", ("$id", id));
    }

    public NotificationRecord? Get(string id) => Records($"SELECT {Columns} FROM notifications n WHERE n.id = $id", ("$id", id)).FirstOrDefault();

    public DeliveryOutcome? Outcome(string id) => Outcomes($"SELECT {OutcomeColumns} FROM outcomes WHERE id = $id", ("$id", id)).FirstOrDefault();

    /// <summary>Notifications without an outcome, oldest first.</summary>
    public List<NotificationRecord> Pending(int limit = 1000) =>
        Records($"""
                SELECT {Columns} FROM notifications n WHERE n.settled = 0 ORDER BY n.accepted_at, n.id LIMIT $limit
                """, ("$limit", limit));

    /// <summary>
    /// The oldest pending notification of every group not busy, with what deciding on it needs: its
    /// group's last delivered notification (Alertmanager's log entry) and the delivered one with the
    /// same content accepted closest to it (a copy of it, if near enough).
    /// </summary>
    public List<Deliverable> Deliverable(IReadOnlySet<string> busy, IReadOnlySet<string> busyGroups) =>
        Pending()
            .Where(r => !busy.Contains(r.Id) && !busyGroups.Contains(OutboxActor.GroupOf(r)))
            // one at a time per group, in order: what deduplication compares is within a group
            .DistinctBy(OutboxActor.GroupOf)
            .Select(r => new Deliverable(r, LastDeliveredOfGroup(r.Receiver, r.Target, r.GroupKey), DeliveredWithContent(r), Ended(r)))
            .ToList();

    /// <summary>The delivered notification with this one's dedup key that was accepted closest in time to it.</summary>
    public NotificationRecord? DeliveredWithContent(NotificationRecord r) =>
        Records($"""
                SELECT {Columns} FROM notifications n JOIN outcomes o ON o.id = n.id
                WHERE n.dedup_key = $key AND o.state = $delivered AND n.id <> $id
                ORDER BY ABS(n.accepted_at - $at) LIMIT 1
                """, ("$key", r.DedupKey), ("$delivered", (int)DeliveryState.Delivered), ("$id", r.Id),
            ("$at", r.AcceptedAt.ToUnixTimeMilliseconds())).FirstOrDefault();

    /// <summary>The last notification delivered for this receiver's webhook and group: what the next one is compared with.</summary>
    public NotificationRecord? LastDeliveredOfGroup(string receiver, int target, string groupKey) =>
        Records($"""
                SELECT {Columns} FROM last_delivered l JOIN notifications n ON n.id = l.id
                WHERE l.receiver = $receiver AND l.target = $target AND l.group_key = $group
                """, ("$receiver", receiver), ("$target", target), ("$group", groupKey)).FirstOrDefault();

    /// <summary>
    /// One page of what anti-entropy carries, in acceptance order after a cursor: every pending
    /// notification (with its payload) and every settled one accepted since a time (without it), with
    /// the outcomes; as many as fit <paramref name="budget"/> bytes. Returns whether more follow.
    /// </summary>
    public (List<NotificationRecord> Records, List<DeliveryOutcome> Outcomes, bool More) Page(DateTimeOffset since,
        DateTimeOffset? afterAt, string? afterId, int budget)
    {
        const int rows = 400;
        var after = afterAt?.ToUnixTimeMilliseconds() ?? long.MinValue;
        var page = Records($"""
                           SELECT {Columns} FROM notifications n
                           WHERE (n.settled = 0 OR n.accepted_at >= $since)
                             AND (n.accepted_at > $after OR (n.accepted_at = $after AND n.id > $afterId))
                           ORDER BY n.accepted_at, n.id LIMIT $rows
                           """, ("$since", since.ToUnixTimeMilliseconds()), ("$after", after), ("$afterId", afterId ?? ""), ("$rows", rows));
        var records = new List<NotificationRecord>();
        var outcomes = new List<DeliveryOutcome>();
        foreach (var r in page)
        {
            var outcome = Outcome(r.Id);
            var record = outcome is null ? r : r with { Payload = [] };
            var size = record.Payload.Length + 600;
            if (budget - size < 0 && records.Count > 0) return (records, outcomes, true);
            budget -= size;
            records.Add(record);
            if (outcome is not null) outcomes.Add(outcome);
        }
        return (records, outcomes, page.Count == rows);
    }

    /// <summary>The newest entries, with their outcomes, for the API.</summary>
    public List<OutboxEntry> Recent(int limit) =>
        Records($"SELECT {Columns} FROM notifications n ORDER BY n.accepted_at DESC LIMIT $limit", ("$limit", limit))
            .Select(r => new OutboxEntry(r, Outcome(r.Id))).ToList();

    /// <summary>Pending notifications per receiver: how many, and when the oldest was accepted.</summary>
    public Dictionary<string, (int Count, DateTimeOffset Oldest)> Backlog()
    {
        var result = new Dictionary<string, (int, DateTimeOffset)>();
        using var cmd = Command("""
                                SELECT receiver, COUNT(*), MIN(accepted_at) FROM notifications WHERE settled = 0 GROUP BY receiver
                                """);
        using var r = cmd.ExecuteReader();
        while (r.Read()) result[r.GetString(0)] = (r.GetInt32(1), DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(2)));
        return result;
    }

    /// <summary>
    /// Forgets what is older than the retention: notifications accepted before it, outcomes settled
    /// before it; but never a group's last delivered notification, which is that group's log entry
    /// (an alert that fires for days resolves against it). Returns how many pending ones expired.
    /// </summary>
    public int Prune(DateTimeOffset before)
    {
        var at = before.ToUnixTimeMilliseconds();
        var expired = Convert.ToInt32(Scalar("""
                                             SELECT COUNT(*) FROM notifications WHERE settled = 0 AND accepted_at < $at
                                             """, ("$at", at)));
        Exec("DELETE FROM notifications WHERE accepted_at < $at AND id NOT IN (SELECT id FROM last_delivered)", ("$at", at));
        Exec("DELETE FROM outcomes WHERE at < $at AND id NOT IN (SELECT id FROM notifications)", ("$at", at));
        Exec("DELETE FROM ended_alerts WHERE at < $at", ("$at", at));
        return expired;
    }

    public void Dispose() => _db.Dispose();

    private SqliteCommand Command(string sql, params (string Name, object? Value)[] args)
    {
        var cmd = _db.CreateCommand();
        cmd.CommandText = sql;
        foreach (var (name, value) in args) cmd.Parameters.AddWithValue(name, value ?? DBNull.Value);
        return cmd;
    }

    private int Exec(string sql, params (string, object?)[] args)
    {
        using var cmd = Command(sql, args);
        return cmd.ExecuteNonQuery();
    }

    private object? Scalar(string sql, params (string, object?)[] args)
    {
        using var cmd = Command(sql, args);
        var v = cmd.ExecuteScalar();
        return v is DBNull ? null : v;
    }

    private List<NotificationRecord> Records(string sql, params (string, object?)[] args)
    {
        using var cmd = Command(sql, args);
        using var r = cmd.ExecuteReader();
        var list = new List<NotificationRecord>();
        static IReadOnlyList<string> Split(string s) => s.Length == 0 ? [] : s.Split('\n');
        while (r.Read())
            list.Add(new NotificationRecord(r.GetString("id"), r.GetString("receiver"), r.GetInt32("target"), r.GetString("group_key"),
                r.GetString("dedup_key"), Split(r.GetString("firing")), Split(r.GetString("resolved")), (byte[])r["payload"],
                DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64("accepted_at")), r.GetString("accepted_by"), r.GetInt64("epoch"),
                Split(r.GetString("ends"))));
        return list;
    }

    private List<DeliveryOutcome> Outcomes(string sql, params (string, object?)[] args)
    {
        using var cmd = Command(sql, args);
        using var r = cmd.ExecuteReader();
        var list = new List<DeliveryOutcome>();
        while (r.Read())
            list.Add(new DeliveryOutcome(r.GetString("id"), (DeliveryState)r.GetInt32("state"), r.GetString("reason"), r.GetString("by"),
                r.GetInt64("epoch"), DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64("at")), r.GetInt32("attempts"),
                r.IsDBNull("error") ? null : r.GetString("error"), r.IsDBNull("duplicate_of") ? null : r.GetString("duplicate_of")));
        return list;
    }
}
