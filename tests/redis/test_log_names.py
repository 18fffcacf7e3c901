"""A commit's log entry names the rows it wrote instead of holding them (redis_scripts.py
LOG_ENTRY), and a catch-up reads them from `rows` (NAMED): a worker following another still
ends with the sandbox's state, across rows rewritten, deleted and made again; the entries the
version before wrote are still read; and that version, rolled back to, reads everything
instead of applying an entry without its rows (tests/log_v1.py keeps its log)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import pytest
from log_v1 import CHANGES_V1, WRITE_V1

from layers_mock_server.core.store import Batch, Changes
from layers_mock_server.stores.redis import RedisStore
from layers_mock_server.stores.redis_log import LOGGED_FIELDS

Copy = dict[tuple[str, str], bytes]


@pytest.fixture
def leader(sandbox: str) -> Iterator[RedisStore]:
    """A worker that made the sandbox (commit 1: rows a and b, meta m1) and writes on."""
    store = RedisStore(sandbox)
    assert store.open() is None
    store.write(Batch([("jobs", "a", b'"a1"'), ("jobs", "b", b'"b1"')], (), b'"m1"', wipe=True))
    yield store
    store.close()


def follower(url: str, changes: str | None = None) -> tuple[RedisStore, Copy]:
    """Another worker, opened on the sandbox, with its copy of the rows (in their order);
    `changes`: the catch-up script it runs instead of this version's."""
    store = RedisStore(url)
    stored = store.open()
    assert stored is not None
    if changes is not None:
        store._scripts["changes"] = store._client.register_script(changes)
    return store, {(t, i): d for t, i, d in stored.rows}


def commit(
    store: RedisStore,
    upserts: Iterable[tuple[str, str, bytes]] = (),
    *deletes: str,
    meta: bytes | None = None,
) -> None:
    assert store.lock() is not None
    store.write(Batch(list(upserts), [("jobs", d) for d in deletes], meta))


def caught_up(store: RedisStore, copy: Copy) -> Changes:
    """The follower's catch-up, applied to its copy as replica.py does: deletes, then upserts
    (a row the copy has keeps its place, one it lacks goes last)."""
    found = store.changes()
    assert found.everything is None, "read everything instead of following the log"
    for batch in found.batches:
        for table, ident in batch.deletes:
            copy.pop((table, ident), None)
        for table, ident, data in batch.upserts:
            assert data, "an upsert without its row"
            copy[table, ident] = data
    return found


def sandbox_rows(url: str) -> list[tuple[str, str, bytes]]:
    """The sandbox's rows in their order, as a worker starting now reads them."""
    store = RedisStore(url)
    try:
        stored = store.open()
        assert stored is not None
        return list(stored.rows)
    finally:
        store.close()


def as_rows(copy: Copy) -> list[tuple[str, str, bytes]]:
    return [(t, i, d) for (t, i), d in copy.items()]


def rewrites_and_deletes(store: RedisStore) -> None:
    """Commits 2-6: rows rewritten, deleted and made again, the meta row rewritten."""
    commit(store, [("jobs", "c", b'"c1"'), ("jobs", "a", b'"a2"')], meta=b'"m2"')
    commit(store, [("jobs", "d", b'"d1"')], "b")
    commit(store, [("jobs", "c", b'"c2"'), ("jobs", "b", b'"b2"')], "d", meta=b'"m3"')
    commit(store, [("jobs", "f", b'"f1"')])
    commit(store, [("jobs", "a", b'"a3"')], "f")


def test_a_commits_log_entry_names_its_rows_without_their_bytes(leader: RedisStore) -> None:
    commit(leader, [("jobs", "c", b'"a row of some length"')], "a", meta=b'"m2"')
    ((ident, fields),) = leader._client.xrevrange(leader.keys["log"], count=1)
    assert ident == b"2-0"
    assert fields == {b"n": b"0", b"k": b"1", b"m": b"", b"d": b"jobs\x00a", b"u": b"jobs\x00c"}


def test_a_follower_catching_up_across_rewrites_and_deletes_ends_with_the_leaders_state(
    sandbox: str, leader: RedisStore
) -> None:
    mid, mid_copy = follower(sandbox)  # catches up half-way, then again
    late, late_copy = follower(sandbox)  # catches up once, at the end
    commit(leader, [("jobs", "c", b'"c1"'), ("jobs", "a", b'"a2"')], meta=b'"m2"')
    commit(leader, [("jobs", "d", b'"d1"')], "b")
    found = caught_up(mid, mid_copy)
    assert [b.meta for b in found.batches] == [b'"m2"', None]
    assert as_rows(mid_copy) == sandbox_rows(sandbox)
    commit(leader, [("jobs", "c", b'"c2"'), ("jobs", "b", b'"b2"')], "d", meta=b'"m3"')
    commit(leader, [("jobs", "f", b'"f1"')])
    commit(leader, [("jobs", "a", b'"a3"')], "f")
    found = caught_up(mid, mid_copy)
    assert [b.meta for b in found.batches] == [b'"m3"', None, None]
    caught_up(late, late_copy)
    expected = [("jobs", "a", b'"a3"'), ("jobs", "c", b'"c2"'), ("jobs", "b", b'"b2"')]
    assert sandbox_rows(sandbox) == expected
    assert as_rows(mid_copy) == expected
    assert as_rows(late_copy) == expected
    mid.close()
    late.close()


def test_entries_the_version_before_logged_are_still_read(sandbox: str, leader: RedisStore) -> None:
    """A sandbox that version wrote on (rows inline), then this one: a follower reads both."""
    second, copy = follower(sandbox)
    this = leader._scripts["write"]
    leader._scripts["write"] = leader._client.register_script(WRITE_V1)
    commit(leader, [("jobs", "c", b'"c1"'), ("jobs", "a", b'"a2"')], meta=b'"m2"')
    commit(leader, [("jobs", "d", b'"d1"')], "b")
    ((_, fields),) = leader._client.xrevrange(leader.keys["log"], count=1)
    assert fields[b"jobs\x00d"] == b'"d1"'  # that version's entry, its row in it
    leader._scripts["write"] = this  # upgraded again
    commit(leader, [("jobs", "c", b'"c2"'), ("jobs", "b", b'"b2"')], "d", meta=b'"m3"')
    found = caught_up(second, copy)
    assert [b.meta for b in found.batches] == [b'"m2"', None, b'"m3"']
    assert as_rows(copy) == sandbox_rows(sandbox)
    second.close()


def test_the_version_before_rolled_back_to_reads_everything_instead_of_named_entries(
    sandbox: str, leader: RedisStore
) -> None:
    """Its catch-up never applies an entry of this version (an empty row for each it names):
    it reads everything; and once its own entries follow, it follows them."""
    old, copy = follower(sandbox, changes=CHANGES_V1)
    rewrites_and_deletes(leader)
    found = old.changes()
    assert found.batches == [] and found.everything is not None
    assert list(found.everything.rows) == sandbox_rows(sandbox)
    assert found.everything.meta == b'"m3"'
    copy = {(t, i): d for t, i, d in sandbox_rows(sandbox)}
    leader._scripts["write"] = leader._client.register_script(WRITE_V1)  # rolled back
    commit(leader, [("jobs", "g", b'"g1"')], "c")
    found = caught_up(old, copy)
    assert len(found.batches) == 1
    assert as_rows(copy) == sandbox_rows(sandbox)
    old.close()


def test_a_follower_behind_both_versions_entries_reads_everything_on_the_version_before(
    sandbox: str, leader: RedisStore
) -> None:
    """That version's entries after this version's: its catch-up stops at the first of this
    version's (newest first), and reads everything."""
    old, _ = follower(sandbox, changes=CHANGES_V1)
    commit(leader, [("jobs", "c", b'"c1"')])
    leader._scripts["write"] = leader._client.register_script(WRITE_V1)
    commit(leader, [("jobs", "d", b'"d1"')], "a")
    found = old.changes()
    assert found.batches == [] and found.everything is not None
    assert list(found.everything.rows) == sandbox_rows(sandbox)
    old.close()


def test_catch_ups_past_luas_stack_read_every_row(sandbox: str, leader: RedisStore) -> None:
    """Two commits of 3,000 rows each (6,000 names: HMGET in slices), and one too big for one
    XADD (a document, its rows in it)."""
    second, copy = follower(sandbox)
    commit(leader, [("jobs", f"x{n}", b'"%d"' % n) for n in range(3000)])
    commit(leader, [("jobs", f"y{n}", b'"%d"' % n) for n in range(3000)], "a")
    big = LOGGED_FIELDS // 2 + 1
    commit(leader, [("jobs", f"x{n}", b'"z%d"' % n) for n in range(big)], "b")
    found = caught_up(second, copy)
    assert [len(list(b.upserts)) for b in found.batches] == [3000, 3000, big]
    assert as_rows(copy) == sandbox_rows(sandbox)
    second.close()
