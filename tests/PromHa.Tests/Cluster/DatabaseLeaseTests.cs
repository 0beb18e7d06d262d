using PromHa.Lab;
using PromHa.Node.Cluster;

namespace PromHa.Tests.Cluster;

/// <summary>The pure pair's database tie-breaker against a real PostgreSQL of the test's own.</summary>
public sealed class DatabaseLeaseTests : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("promha-lease").FullName;
    private PostgresServer _pg = null!;
    private string _db = "";
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(5);

    public async ValueTask InitializeAsync()
    {
        _pg = await PostgresServer.Start(_dir, "lease");
        _db = _pg.ConnectionString;
    }

    public async ValueTask DisposeAsync()
    {
        await _pg.DisposeAsync();
        Directory.Delete(_dir, true);
    }

    [Fact]
    public async Task Of_many_sides_asking_at_once_exactly_one_takes_the_lease_and_the_others_learn_who()
    {
        for (var round = 0; round < 20; round++)
        {
            var name = $"race-{round}";
            var owners = Enumerable.Range(0, 6).Select(i => $"promha@10.0.0.{i}:4053").ToList();
            var results = await Task.WhenAll(owners.Select(o => DatabaseLease.TryTake(name, o, TimeSpan.FromSeconds(30), _db, Timeout)));
            var winners = results.Where(r => r.Held).ToList();
            Assert.Single(winners);
            Assert.All(results, r => Assert.Equal(winners[0].Holder, r.Holder));
        }
    }

    [Fact]
    public async Task A_held_lease_is_renewed_by_its_owner_refused_to_others_and_free_once_expired_or_given_up()
    {
        var ttl = TimeSpan.FromSeconds(2);
        Assert.True((await DatabaseLease.TryTake("pair", "a", ttl, _db, Timeout)).Held);
        Assert.Equal((false, "a"), await DatabaseLease.TryTake("pair", "b", ttl, _db, Timeout));
        Assert.True((await DatabaseLease.TryTake("pair", "a", ttl, _db, Timeout)).Held); // renewal
        // a crashed owner stops renewing: the row runs out by the database's clock
        await Task.Delay(ttl + TimeSpan.FromMilliseconds(500));
        Assert.Equal((true, "b"), await DatabaseLease.TryTake("pair", "b", ttl, _db, Timeout));
        // given up: free at once
        await DatabaseLease.Give("pair", "a", _db, Timeout); // not a's any more: changes nothing
        Assert.Equal((false, "b"), await DatabaseLease.TryTake("pair", "a", ttl, _db, Timeout));
        await DatabaseLease.Give("pair", "b", _db, Timeout);
        Assert.Equal((true, "a"), await DatabaseLease.TryTake("pair", "a", ttl, _db, Timeout));
    }

    [Fact]
    public async Task A_database_that_does_not_answer_grants_nothing_within_the_operation_timeout()
    {
        _pg.Freeze();
        try
        {
            var started = System.Diagnostics.Stopwatch.StartNew();
            await Assert.ThrowsAnyAsync<Exception>(() => DatabaseLease.TryTake("pair", "a", TimeSpan.FromSeconds(5), _db, TimeSpan.FromSeconds(2)));
            Assert.True(started.Elapsed < TimeSpan.FromSeconds(15), $"took {started.Elapsed}");
        }
        finally
        {
            _pg.Thaw();
        }
        Assert.True((await DatabaseLease.TryTake("pair", "a", TimeSpan.FromSeconds(5), _db, Timeout)).Held);
    }
}
