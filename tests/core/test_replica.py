"""replica.apply: a worker's copy follows the commits of another, idempotency records included."""

from __future__ import annotations

import orjson

from layers_mock_server.core import replica
from layers_mock_server.core.clock import Clock
from layers_mock_server.core.fixtures import load_fixtures
from layers_mock_server.core.idempotency import IdempotencyRecords, StoredResponse
from layers_mock_server.core.snapshot import idempotency_row
from layers_mock_server.core.state import State
from layers_mock_server.core.store import Batch


def record(body: bytes) -> StoredResponse:
    return StoredResponse("key_1", "createInfluencer", b"fp", 202, b"", body, 0)


def row(key: bytes, body: bytes) -> tuple[str, str, bytes]:
    return ("idempotency", key.hex(), orjson.dumps(idempotency_row(key, record(body))))


def test_a_follower_drops_only_the_records_the_writer_dropped() -> None:
    """A catch-up reads a row as of its newest commit (redis_scripts.NAMED): a record stored
    again later, bigger, comes at that size in the earlier commit too. The writer made room
    for it by another record's delete, in the later commit; the follower must not evict the
    oldest record on its own on the way (the writer kept it, and a retry with its key on the
    follower would have run the request again)."""
    a, q, r = b"a" * 4, b"q" * 4, b"r" * 4
    small, big = record(b"x").cost(), record(b"x" * 300).cost()
    assert small + big <= 3 * small < 2 * small + big
    state = State.from_fixtures(load_fixtures(), 0)
    # room for a, q and a small r; a big r fits once q is gone
    state.idempotency = IdempotencyRecords(max_bytes=3 * small)
    state.idempotency.dirty = state.dirty
    state.idempotency.store(a, record(b"x"))
    state.idempotency.store(q, record(b"x"))
    clock = Clock()
    replica.apply(state, Batch([row(r, b"x" * 300)]), clock)  # r, read at its later size
    replica.apply(state, Batch([row(r, b"x" * 300)], [("idempotency", q.hex())]), clock)
    assert [key for key, _ in state.idempotency.items()] == [a, r]
