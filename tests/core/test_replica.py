"""replica.apply: a worker's copy follows the commits of another, idempotency records included."""

from __future__ import annotations

import orjson

from layers_mock_server.core import persist, replica
from layers_mock_server.core.clock import Clock
from layers_mock_server.core.fixtures import load_fixtures
from layers_mock_server.core.idempotency import IdempotencyRecords, StoredResponse
from layers_mock_server.core.persist import meta_bytes
from layers_mock_server.core.requestids import RequestIds
from layers_mock_server.core.snapshot import idempotency_row, meta
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


def test_a_follower_takes_rules_windows_and_clocks_from_rows_or_an_earlier_versions_meta() -> None:
    """A writer of this version sends a rule, a rate window and an organization's clock as
    rows of their own (persist.py) and a meta row without them: the follower keeps the others
    it holds. A writer of an earlier version (a rolling upgrade) still sends them all in its
    meta row: the follower takes them from there, whole."""
    writer = State.from_fixtures(load_fixtures(), 0)
    clock, ids = Clock(), RequestIds()
    for n in range(3):
        writer.rules.add({"match": {"path": f"/v1/never/{n}/*"}, "fault": "503", "count": 2})
    writer.rates.take("key_1", "standard", "write-light", 0)
    writer.clocks.set("org_1", 60_000, 0)
    follower = State.from_fixtures(load_fixtures(), 0)
    rows = [
        ("rules", rule_id, orjson.dumps(writer.rules.rules[rule_id].public()))
        for rule_id in writer.rules.changed
    ]
    rows += [("rates", "write-light:key_1", b'["key_1","write-light",0,1]')]
    rows += [("clocks", "org_1", b"60000")]
    replica.apply(follower, Batch(rows, (), meta_bytes(writer, ids, clock)), clock)
    assert follower.rules.snapshot() == writer.rules.snapshot()
    assert follower.rates.snapshot() == writer.rates.snapshot()
    assert follower.clocks.detached == {"org_1": 60_000}
    assert not (follower.rules.changed or follower.rates.changed or follower.clocks.changed)
    # a rule used once, another deleted, and a lean meta row: the rest stays
    used = writer.rules.rules["rule_1"]
    used.remaining = 1
    replica.apply(
        follower,
        Batch([("rules", "rule_1", orjson.dumps(used.public()))], [("rules", "rule_2")]),
        clock,
    )
    assert [(r["ruleId"], r["remaining"]) for r in follower.rules.snapshot()["rules"]] == [
        ("rule_1", 1),
        ("rule_3", 2),
    ]
    # an earlier version's meta row: everything in it
    writer.rules.delete("rule_2")
    writer.clocks.follow("org_1", 120_000)
    legacy = orjson.dumps(meta(writer, ids, clock))
    replica.apply(follower, Batch([], (), legacy), clock)
    assert follower.rules.snapshot() == writer.rules.snapshot()
    assert follower.clocks.detached == {}
    assert not follower.dirty


def test_an_earlier_versions_meta_row_marks_every_rule_window_and_clock_for_the_next_commit() -> (
    None
):
    """After an earlier version's meta row (a worker not yet upgraded committed), this
    worker's next commit leaves rules, windows and clocks to rows (snapshot.PART_ROWS): it
    writes each one the meta row held and deletes the row of each it no longer holds."""
    writer = State.from_fixtures(load_fixtures(), 0)
    clock, ids = Clock(), RequestIds()
    for n in range(3):
        writer.rules.add({"match": {"path": f"/v1/never/{n}/*"}, "fault": "503"})
    writer.rates.take("key_1", "standard", "write-light", 0)
    writer.clocks.set("org_1", 60_000, 0)
    follower = State.from_fixtures(load_fixtures(), 0)
    rows = [
        ("rules", r, orjson.dumps(writer.rules.rules[r].public())) for r in ("rule_1", "rule_2")
    ]
    replica.apply(follower, Batch(rows, (), meta_bytes(writer, ids, clock)), clock)
    writer.rules.delete("rule_1")
    replica.apply(follower, Batch([], (), orjson.dumps(meta(writer, ids, clock))), clock)
    batch = persist.dirty_batch(follower, ids, clock)
    assert sorted(t for t in batch.upserts if t[0] != "rates") == [
        ("clocks", "org_1", b"60000"),
        ("rules", "rule_2", orjson.dumps(writer.rules.rules["rule_2"].public())),
        ("rules", "rule_3", orjson.dumps(writer.rules.rules["rule_3"].public())),
    ]
    assert [t for t in batch.upserts if t[0] == "rates"] == [
        ("rates", "write-light:key_1", b'["key_1","write-light",0,1]')
    ]
    assert list(batch.deletes) == [("rules", "rule_1")]
