"""persist.merged: a group's batches as one commit (what a shared store writes and logs), and
persist.Marks, which makes that commit of a group's changes directly; tests/stores checks the
merged commit against writing the batches one by one."""

from __future__ import annotations

import random

from layers_mock_server.core.fixtures import load_fixtures
from layers_mock_server.core.idempotency import StoredResponse
from layers_mock_server.core.persist import Marks, dirty_batch, merged
from layers_mock_server.core.state import State
from layers_mock_server.core.store import Batch


def shown(out: list[tuple[Batch, int]]) -> list[tuple[object, ...]]:
    return [(list(b.upserts), list(b.deletes), b.meta, b.wipe, k) for b, k in out]


def test_a_request_number_ceiling_only_rises_and_the_last_meta_row_wins() -> None:
    first = Batch([("counters", "req", b"12"), ("jobs", "j", b"1")], (), b"m1")
    second = Batch([("counters", "req", b"9"), ("jobs", "j", b"2")], (), None)
    assert shown(merged([first, second])) == [
        ([("counters", "req", b"12"), ("jobs", "j", b"2")], [], b"m1", False, 2)
    ]


def test_a_wipe_is_never_merged_with_the_batches_around_it() -> None:
    before = Batch([("jobs", "a", b"{}")], (), None)
    wipe = Batch([("jobs", "b", b"{}")], (), b"w", wipe=True)
    after = Batch((), [("jobs", "b")], None)
    assert shown(merged([before, before, wipe, after])) == [
        ([("jobs", "a", b"{}")], [], None, False, 2),
        ([("jobs", "b", b"{}")], [], b"w", True, 1),
        ([], [("jobs", "b")], None, False, 1),
    ]


def test_a_groups_marks_make_the_batch_merged_makes_of_each_requests_batch() -> None:
    """Marks (a group's changes encoded once, at its close) against `merged` of the batch each
    request would have written: rows written, rewritten, deleted, deleted then written again
    (an idempotency key stored, dropped and stored again), in random orders."""
    rng = random.Random(11)
    fixtures = load_fixtures()
    keys = [bytes([n]) * 4 for n in range(5)]
    for _ in range(200):
        state = State.from_fixtures(fixtures, 0)
        for key in keys[:2]:  # rows that exist before the group
            state.idempotency.store(key, _response(0))
        state.dirty.clear()
        marks, batches = Marks(), []
        for request in range(rng.randint(1, 6)):
            for _ in range(rng.randint(1, 3)):
                key = rng.choice(keys)
                if rng.random() < 0.4:
                    state.idempotency.discard(key)
                else:
                    state.idempotency.store(key, _response(request))
            batches.append(dirty_batch(state, None, None, meta=False))  # type: ignore[arg-type]
            marks.add(state)
            state.dirty.clear()
        [(expected, _)] = merged([*batches, Batch((), (), b"m")])
        found = marks.batch(state, b"m")
        assert not marks
        assert _same(found, expected), batches


def _response(n: int) -> StoredResponse:
    return StoredResponse("key_1", "createInfluencer", b"fp", 202, b"", b"%d" % n, n)


def _same(a: Batch, b: Batch) -> bool:
    return (list(a.upserts), list(a.deletes), a.meta) == (list(b.upserts), list(b.deletes), b.meta)
