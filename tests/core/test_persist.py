"""persist.merged: a group's batches as one commit (what a shared store writes and logs);
tests/stores checks the merged commit against writing the batches one by one."""

from __future__ import annotations

from layers_mock_server.core.persist import merged
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
