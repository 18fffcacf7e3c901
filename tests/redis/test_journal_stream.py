"""The journal's stream on Redis (stores/redis_journal.py): the entries of one round trip are
one stream entry, and still exactly the newest `capacity` entries are kept and read, numbered
one by one; entries an older version kept (one a stream entry) are read with them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from redisd import RedisServer

from layers_mock_server.stores.redis import RedisStore
from layers_mock_server.stores.redis_journal import CHUNK


@pytest.fixture
def store(redis_server: RedisServer) -> Iterator[RedisStore]:
    opened = RedisStore(redis_server.sandbox())
    opened.open()
    yield opened
    opened.close()


def send(store: RedisStore, *entries: bytes) -> None:
    """What a round trip takes along (journal_flush is the one that goes alone)."""
    store.outbox.add(*entries)
    store.journal_flush()


def numbered(first: int, last: int) -> list[tuple[int, bytes]]:
    return [(n, b"e%d" % n) for n in range(first, last + 1)]


def test_the_newest_entries_are_kept_and_read_exactly_however_they_were_sent(
    store: RedisStore,
) -> None:
    store.journal_capacity = 5
    send(store, b"e1", b"e2", b"e3", b"e4")
    send(store, b"e5")
    send(store, b"e6", b"e7", b"e8", b"e9")
    assert store.journal_read(5) == numbered(5, 9)
    assert store.journal_read(3) == numbered(7, 9)
    held = store._client.xrange(store.keys["journal"])
    # what Redis holds: the stream entries with one of the newest five, no more
    assert [fields[b"n"] for _, fields in held] == [b"5", b"6"]


def test_a_round_trip_with_more_entries_than_a_stream_entry_holds_keeps_them_all(
    store: RedisStore,
) -> None:
    many = CHUNK * 2 + 10
    send(store, *(b"e%d" % n for n in range(1, many + 1)))
    assert store.journal_read(1000) == numbered(1, many)
    assert store._client.xlen(store.keys["journal"]) == 3


def test_entries_an_older_version_kept_are_read_with_the_new_ones_until_cleared(
    store: RedisStore,
) -> None:
    """Versions before kept one entry a stream entry, under `journal`, capped by MAXLEN."""
    client = store._client
    for n in (1, 2):
        client.xadd(store.keys["journal-v1"], {"n": n, "e": b"e%d" % n}, maxlen=1000)
    client.set(store.keys["journal-seq"], 2)
    send(store, b"e3", b"e4")
    assert store.journal_read(1000) == numbered(1, 4)
    assert store.journal_read(3) == numbered(2, 4)
    store.journal_clear()
    assert store.journal_read(1000) == []
    assert not client.exists(store.keys["journal-v1"])


def test_a_stream_ahead_of_its_counter_does_not_stop_the_journal(store: RedisStore) -> None:
    """Only an edited Redis gets there (the counter and the stream change in the same
    scripts): the journal starts again rather than refuse every round trip after."""
    send(store, b"e1", b"e2")
    store._client.delete(store.keys["journal-seq"])
    send(store, b"e1")
    assert store.journal_read(1000) == numbered(1, 1)
