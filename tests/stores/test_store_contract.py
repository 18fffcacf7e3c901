"""What "a store" means (core/store.py), as one suite that every store passes.

A new store joins by adding a `Backend` to BACKENDS (and to DURABLE if it keeps anything):
the memory store, the SQLite store and the Redis store all answer to the same clauses. A store
that many servers share (Redis) answers to the SHARED clauses instead of "one server at a
time".
"""

from __future__ import annotations

import asyncio
import itertools
import random
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from clusterd import RedisClusterServers, slot_of
from redisd import RedisServer

from layers_mock_server.core.store import (
    Batch,
    Bucket,
    SharedStore,
    Store,
    StoreConflict,
    StoreFull,
    StoreInUse,
    StoreUnavailable,
)
from layers_mock_server.stores import MemoryStore
from layers_mock_server.stores.redis import RedisStore
from layers_mock_server.stores.sqlite import SqliteStore


@dataclass
class Backend:
    """Opens stores on one place (a file, a server); `fill_up`/`free` exhaust and restore its
    space, for durable stores."""

    make: Callable[[], Store]
    fill_up: Callable[[Store], None] | None = None
    free: Callable[[Store], None] | None = None


def _sqlite(tmp_path: Path) -> Backend:
    path = tmp_path / "state.sqlite"

    def pages(store: Store, count: int | None) -> None:
        db: sqlite3.Connection = store._db  # type: ignore[attr-defined]
        current = db.execute("PRAGMA page_count").fetchone()[0]
        db.execute(f"PRAGMA max_page_count = {current if count is None else count}")

    return Backend(
        lambda: SqliteStore(path),
        fill_up=lambda store: pages(store, None),
        free=lambda store: pages(store, 1_000_000),
    )


def _redis(server: RedisServer) -> Backend:
    url = server.sandbox()

    def memory(store: Store, limit: str) -> None:
        client = store._client  # type: ignore[attr-defined]
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", "1" if limit == "full" else limit)  # 1: over at once

    return Backend(
        lambda: RedisStore(url),
        fill_up=lambda store: memory(store, "full"),
        free=lambda store: memory(store, "0"),
    )


SHARDS = itertools.cycle(range(3))  # the cluster's sandboxes take turns on its shards


def _redis_cluster(cluster: RedisClusterServers) -> Backend:
    url, name = cluster.sandbox(on=next(SHARDS))

    def memory(store: Store, limit: str) -> None:
        with cluster.client(cluster.owner(slot_of(name))) as client:  # the sandbox's shard
            client.config_set("maxmemory-policy", "noeviction")
            client.config_set("maxmemory", "1" if limit == "full" else limit)

    return Backend(
        lambda: RedisStore(url),
        fill_up=lambda store: memory(store, "full"),
        free=lambda store: memory(store, "0"),
    )


BACKENDS: dict[str, Callable[[pytest.FixtureRequest, Path], Backend]] = {
    "memory": lambda request, tmp_path: Backend(MemoryStore),
    "sqlite": lambda request, tmp_path: _sqlite(tmp_path),
    "redis": lambda request, tmp_path: _redis(request.getfixturevalue("redis_server")),
    "redis-cluster": lambda request, tmp_path: _redis_cluster(
        request.getfixturevalue("redis_cluster")
    ),
}
DURABLE = ["sqlite", "redis", "redis-cluster"]
EXCLUSIVE = ["sqlite"]  # one server at a time
SHARED = ["redis", "redis-cluster"]  # many servers at once


@pytest.fixture(params=list(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return BACKENDS[request.param](request, tmp_path)


@pytest.fixture(params=DURABLE)
def durable(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return BACKENDS[request.param](request, tmp_path)


@pytest.fixture(params=EXCLUSIVE)
def exclusive(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return BACKENDS[request.param](request, tmp_path)


@pytest.fixture(params=SHARED)
def shared(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return BACKENDS[request.param](request, tmp_path)


ROWS = [("influencers", f"inf_{n}", f'{{"n":{n}}}'.encode()) for n in range(5)]


def reopened(backend: Backend) -> tuple[bytes, list[tuple[str, str, bytes]]] | None:
    store = backend.make()
    found = store.open()
    result = None if found is None else (found.meta, list(found.rows))
    store.close()
    return result


def test_a_new_store_holds_nothing(backend: Backend) -> None:
    store = backend.make()
    assert store.open() is None
    store.write(Batch(ROWS, (), b'{"m":1}', wipe=True))
    store.close()


def test_a_store_that_keeps_nothing_says_so(backend: Backend) -> None:
    store = backend.make()
    store.open()
    store.write(Batch(ROWS, (), b'{"m":1}', wipe=True))
    store.close()
    assert (reopened(backend) is not None) == store.durable


def test_what_was_written_is_read_back_in_write_order(durable: Backend) -> None:
    store = durable.make()
    store.open()
    store.write(Batch(ROWS, (), b'{"m":1}', wipe=True))
    store.write(Batch([("influencers", "inf_1", b'{"n":"one"}')], [("influencers", "inf_3")], b"2"))
    store.close()
    found = reopened(durable)
    assert found is not None
    meta, rows = found
    assert meta == b"2"
    assert [r[1] for r in rows] == ["inf_0", "inf_1", "inf_2", "inf_4"]  # an update keeps its place
    assert rows[1][2] == b'{"n":"one"}'


def test_a_wipe_replaces_everything(durable: Backend) -> None:
    store = durable.make()
    store.open()
    store.write(Batch(ROWS, (), b"1", wipe=True))
    store.write(Batch([("jobs", "job_1", b"{}")], (), b"2", wipe=True))
    store.close()
    assert reopened(durable) == (b"2", [("jobs", "job_1", b"{}")])


def test_a_batch_that_fails_half_way_leaves_nothing_of_itself(durable: Backend) -> None:
    store = durable.make()
    store.open()
    store.write(Batch(ROWS[:2], (), b"1", wipe=True))

    def rows_then_crash() -> Iterator[tuple[str, str, bytes]]:
        yield ("jobs", "job_1", b"{}")
        raise RuntimeError("the producer of the batch failed")

    with pytest.raises(RuntimeError):
        store.write(Batch(rows_then_crash(), (), b"2", wipe=True))
    store.write(Batch([("jobs", "job_2", b"{}")], (), b"3"))  # the store is still usable
    store.close()
    assert reopened(durable) == (b"3", [*ROWS[:2], ("jobs", "job_2", b"{}")])


def test_a_full_store_refuses_the_whole_batch_and_takes_the_next_once_freed(
    durable: Backend,
) -> None:
    assert durable.fill_up is not None and durable.free is not None
    store = durable.make()
    store.open()
    store.write(Batch(ROWS, (), b"1", wipe=True))
    durable.fill_up(store)
    big = [("jobs", f"job_{n}", b"x" * 2000) for n in range(50)]
    with pytest.raises(StoreUnavailable, match="full"):
        store.write(Batch(big, [("influencers", "inf_0")], b"2"))
    durable.free(store)
    store.write(Batch(big[:1], (), b"3"))
    store.close()
    assert reopened(durable) == (b"3", [*ROWS, big[0]])


def test_one_store_serves_one_server_at_a_time(exclusive: Backend) -> None:
    first = exclusive.make()
    first.open()
    second = exclusive.make()
    with pytest.raises(StoreInUse, match="in use by another layers-mock server"):
        second.open()
    first.close()
    assert second.open() is None
    second.close()


def _two(shared: Backend) -> tuple[SharedStore, SharedStore]:
    first, second = shared.make(), shared.make()
    assert first.shared and second.shared
    assert first.open() is None
    first.write(Batch(ROWS[:2], (), b"1", wipe=True))  # the first to open writes the fresh state
    found = second.open()  # found at once: nothing to wait for, nothing written
    assert found is not None and (found.meta, list(found.rows)) == (b"1", ROWS[:2])
    return first, second  # type: ignore[return-value]


def test_a_shared_store_shows_each_server_what_the_others_committed_in_order(
    shared: Backend,
) -> None:
    first, second = _two(shared)
    assert first.changes().batches == [] and second.changes().batches == []
    assert first.lock() is not None
    first.write(Batch([ROWS[2]], [("influencers", "inf_0")], b"2"))
    assert first.lock() is not None
    first.write(Batch([("influencers", "inf_1", b"{}")], (), b"3"))
    found = second.changes()
    assert found.everything is None
    assert [(list(b.upserts), list(b.deletes)) for b in found.batches] == [
        ([ROWS[2]], [("influencers", "inf_0")]),
        ([("influencers", "inf_1", b"{}")], []),
    ]
    # each batch that wrote the meta row brings one: its own, or a later one's (Changes)
    assert [b.meta for b in found.batches] in ([b"2", b"3"], [b"3", b"3"])
    assert second.changes().batches == []  # seen once
    assert first.changes().batches == []  # its own writes are not news to it
    first.close()
    second.close()


def test_a_shared_store_lets_one_server_write_at_a_time(shared: Backend) -> None:
    first, second = _two(shared)
    assert first.lock() is not None
    assert second.lock() is None  # held: the second waits
    first.write(Batch([ROWS[3]], (), b"2"))  # the write gives the lease back
    taken = second.lock()
    assert taken is not None and [list(b.upserts) for b in taken.batches] == [[ROWS[3]]]
    second.unlock()
    first.close()
    second.close()


def test_a_server_that_missed_a_commit_cannot_write_over_it(shared: Backend) -> None:
    first, second = _two(shared)
    assert first.lock() is not None
    first.write(Batch([ROWS[3]], (), b"2"))
    with pytest.raises(StoreConflict):  # the second has not seen commit 2
        second.write(Batch([ROWS[4]], (), b"3"))
    store = shared.make()
    found = store.open()
    assert found is not None and found.meta == b"2" and ROWS[4] not in list(found.rows)
    for s in (first, second, store):
        s.close()


def test_a_reset_or_a_long_absence_sends_everything_instead_of_the_log(shared: Backend) -> None:
    first, second = _two(shared)
    assert first.lock() is not None
    first.write(Batch([("jobs", "job_1", b"{}")], (), b"2", wipe=True))
    found = second.changes()
    assert found.everything is not None
    assert (found.everything.meta, list(found.everything.rows)) == (
        b"2",
        [("jobs", "job_1", b"{}")],
    )
    assert second.changes().batches == []
    first.close()
    second.close()


def _counted(store: SharedStore, key: str, window: int, reads: int = 1) -> list[int]:
    return store.changes([Bucket(key, "read-light", window)] * reads).counted


def test_a_counted_window_is_one_minute_of_its_keys_clock(shared: Backend) -> None:
    """One window a key and class, as RateLimiter keeps (core/ratelimit.py): counted in
    another minute it starts again, so it is kept exactly as long as its minute, whatever the
    time in between (no expiry). A read whose worker took its minute just before the clock
    moved on (it had not caught up) counts in that minute, and the current one stays."""
    first, second = _two(shared)
    assert _counted(first, "key_a", 5, 3) == [1, 2, 3]
    assert _counted(second, "key_a", 5) == [4]  # across servers
    assert _counted(second, "key_b", 5) == [1]  # per key
    assert second.changes([Bucket("key_a", "long-running", 5)]).counted == [1]  # per class
    assert _counted(first, "key_a", 6, 2) == [1, 2]  # the clock moved on: a new window
    assert _counted(second, "key_a", 5) == [5]  # late: the minute before, as counted
    assert _counted(first, "key_a", 6) == [3]  # ... and the current one kept
    assert _counted(first, "key_a", 9) == [1]
    assert _counted(first, "key_a", 5) == [1]  # long gone (the clock came back: a reset)
    assert _counted(first, "key_a", 2) == [1]  # ... or a worker far behind: counted anew
    first.close()
    second.close()


def test_a_reset_drops_the_counted_windows_of_the_keys_it_resets(shared: Backend) -> None:
    """A global reset (a wipe) drops every counted window and holds those it brings (an
    import's); an organization's reset (`unread`) drops its keys' and no others': a reset
    returns the clock to its start, so the same minutes come again."""
    first, second = _two(shared)
    assert _counted(first, "key_a", 0, 120)[-1] == 120
    assert _counted(first, "key_b", 0, 120)[-1] == 120
    assert first.lock() is not None
    first.write(Batch([], (), b"2", unread=["key_a"]))
    assert _counted(second, "key_a", 0) == [1]
    assert _counted(second, "key_b", 0) == [121]
    assert second.lock() is not None
    second.write(Batch([], (), b"3", wipe=True, reads=[("key_c", "read-light", 4, 7)]))
    assert _counted(first, "key_a", 0) == [1] and _counted(first, "key_b", 0) == [1]
    assert _counted(first, "key_c", 4) == [8]  # as imported
    first.close()
    second.close()


def test_request_numbers_are_handed_out_in_blocks_no_two_servers_share(shared: Backend) -> None:
    first, second = _two(shared)
    blocks = [first.reserve("req", 1024), second.reserve("req", 1024), first.reserve("req", 10)]
    assert blocks == sorted(blocks) and len(set(blocks)) == 3
    assert blocks[1] - blocks[0] == 1024 and blocks[2] - blocks[1] == 10
    first.close()
    second.close()


def test_request_numbers_reserved_ahead_are_blocks_no_other_server_gets(shared: Backend) -> None:
    """`reserve_ahead`: on a serving worker's loop without waiting (the answer lands later),
    outside one at once; either way a block of its own."""
    first, second = _two(shared)

    async def ahead() -> int | None:
        landed: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        first.reserve_ahead("req", 1024, landed.set_result)
        return await landed

    now: list[int | None] = []
    first.reserve_ahead("req", 1024, now.append)  # no loop: before it returns
    found = [*now, asyncio.run(ahead()), second.reserve("req", 1024), asyncio.run(ahead())]
    blocks = [b for b in found if b is not None]
    assert len(blocks) == 4 and blocks == sorted(blocks)
    assert {b - a for a, b in itertools.pairwise(blocks)} == {1024}
    assert first.reach().reachable and second.reach().reachable
    first.close()
    second.close()


def test_a_full_shared_store_still_shows_the_changes_and_counts_reads_but_takes_no_write(
    shared: Backend,
) -> None:
    """Full (Redis at its maxmemory): a catch-up still brings what was committed and counts its
    reads in their windows, request numbers are still handed out (at once and ahead), a lease
    taken before goes back; the lease and writes are refused, whole, until there is room
    again."""
    assert shared.fill_up is not None and shared.free is not None
    first, second = _two(shared)
    assert first.lock() is not None
    first.write(Batch([ROWS[2]], (), b"2"))
    assert first.lock() is not None  # held when Redis fills up
    shared.fill_up(first)
    with pytest.raises(StoreFull):
        first.write(Batch([("jobs", "job_9", b"{}")], (), b"9"))
    assert not first.holds()
    window = Bucket("key_1", "read-light", 1)
    found = second.changes([window, window])
    assert [b.meta for b in found.batches] == [b"2"] and found.counted == [1, 2]
    with pytest.raises(StoreFull):
        second.lock()

    async def ahead() -> int | None:  # a serving worker's next block, through the pipe
        landed: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        first.reserve_ahead("req", 8, landed.set_result)
        return await landed

    blocks = [first.reserve("req", 8), second.reserve("req", 8), asyncio.run(ahead())]
    assert blocks[1] - blocks[0] == 8 and blocks[2] == blocks[1] + 8
    shared.free(first)
    assert second.changes([window]).counted == [3]
    assert second.lock() is not None  # at once: the lease went back while Redis was full
    second.write(Batch([ROWS[3]], (), b"3"))
    assert [b.meta for b in first.changes().batches] == [b"3"]  # "9" was not kept
    first.close()
    second.close()


def test_a_closed_store_refuses_writes_instead_of_losing_them(durable: Backend) -> None:
    store = durable.make()
    store.open()
    store.close()
    with pytest.raises(StoreUnavailable):
        store.write(Batch(ROWS, (), b"1"))


def test_a_catch_up_that_fails_after_taking_the_lease_gives_it_back(
    shared: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reading everything can fail after the lease was taken (Redis restarted in between):
    the request is answered 503, and the lease must not stay held for its whole term, or
    every write of every worker would wait for it (LEASE_MS)."""
    first, second = _two(shared)

    def unreachable() -> None:
        raise StoreUnavailable("the read of everything failed")

    first.forget()  # the next catch-up reads everything
    monkeypatch.setattr(first, "_everything", unreachable)
    with pytest.raises(StoreUnavailable):
        first.lock()
    assert not first.holds()
    assert second.lock() is not None  # free at once
    second.unlock()
    first.close()
    second.close()


def _group(rng: random.Random) -> list[Batch]:
    """One to six batches over a few rows: deletes, writes, a row deleted and written again in
    one batch or in two, meta rows or none."""
    keys = [(t, i) for t in ("jobs", "influencers") for i in "abcd"]
    batches = []
    for _ in range(rng.randint(1, 6)):
        deletes = rng.sample(keys, rng.randint(0, 2))
        upserts = [(t, i, b'{"v":%d}' % rng.randrange(1000)) for t, i in rng.sample(keys, 3)]
        meta = rng.choice([None, b"m%d" % rng.randrange(1000)])
        batches.append(Batch(upserts[: rng.randint(0, 3)], deletes, meta))
    return batches


def _rows(store: SqliteStore, path: Path) -> tuple[bytes, list[tuple[str, str, bytes]]] | None:
    store.close()
    return reopened(Backend(lambda: SqliteStore(path)))


def test_a_group_commit_leaves_what_its_batches_leave_one_after_another(
    shared: Backend, tmp_path: Path
) -> None:
    """A shared store writes a group's batches as one commit (persist.merged): what it holds
    and what another server applies from its log are what SQLite holds after writing them one
    by one: a row deleted then written again comes last, one written then deleted is gone,
    one written twice keeps its place and its last data, the last meta row wins."""
    first, second = _two(shared)
    rng = random.Random(7)
    for case in range(25):
        start = [(t, i, b"{}") for t in ("jobs", "influencers") for i in "ab"]
        batches = _group(rng)
        paths = [tmp_path / f"{case}-{n}.db" for n in (1, 2)]
        one_by_one, replica = (SqliteStore(path) for path in paths)
        for store in (one_by_one, replica):
            store.open()
            store.write(Batch(start, (), b"0", wipe=True))
        for batch in batches:
            one_by_one.write(batch)
        expected = _rows(one_by_one, paths[0])
        assert first.lock() is not None
        first.write(Batch(start, (), b"0", wipe=True))
        assert second.changes().everything is not None  # a wipe: everything
        assert first.lock() is not None
        first.write_all(batches)
        found = second.changes()
        assert found.everything is None and len(found.batches) <= 1  # one commit, from the log
        for batch in found.batches:
            replica.write(batch)
        assert _rows(replica, paths[1]) == expected, batches
        assert reopened(shared) == expected, batches
    first.close()
    second.close()


def test_a_commit_of_thousands_of_rows_is_kept_and_logged_whole(shared: Backend) -> None:
    """Past what one Redis command takes from a script (Lua's stack holds ~8,000 values), the
    rows go in slices and the log keeps the commit as one document: nothing is cut off."""
    first, second = _two(shared)
    many = [("jobs", f"job_{n}", b'{"n":%d}' % n) for n in range(5000)]
    for upserts, deletes in [
        (many[:3000], []),  # as fields of the log entry, in two slices
        (many, []),  # as a document
        ([], [(t, i) for t, i, _ in many[:4500]]),
    ]:
        assert first.lock() is not None
        first.write(Batch(upserts, deletes, b"m"))
        found = second.changes()
        assert found.everything is None
        assert [(list(b.upserts), list(b.deletes)) for b in found.batches] == [(upserts, deletes)]
    first.close()
    second.close()
    assert reopened(shared) == (b"m", [*ROWS[:2], *many[4500:]])
