"""Request ids on a shared store (core/requestids.py): numbers come from blocks each worker
reserved, the next block asked for ahead of need and without waiting for it."""

from __future__ import annotations

from layers_mock_server.core.requestids import BLOCK, RequestIds


class Store:
    """Blocks granted in order, as Redis's HINCRBY grants them, once `grant()` says so."""

    def __init__(self) -> None:
        self.total = 0
        self.asked: list[str] = []

    def grant(self, ids: RequestIds) -> None:
        for kind in self.asked:
            self.total += BLOCK
            ids.landed(kind, self.total)
        self.asked.clear()


def shared(store: Store, worker: str) -> RequestIds:
    ids = RequestIds()
    ids.worker = worker
    ids.ask = store.asked.append
    return ids


def test_the_next_block_is_asked_for_while_half_of_the_current_one_is_left() -> None:
    store = Store()
    ids = shared(store, "w1")
    ids.prefetch("req")
    store.grant(ids)  # start-up: the first block, [1, BLOCK]
    made = [ids.next("req", 0, 0) for _ in range(BLOCK // 2)]
    assert store.asked == []
    made.append(ids.next("req", 0, 0))  # half of it is left: the next is asked for, once
    made += [ids.next("req", 0, 0) for _ in range(3)]
    assert store.asked == ["req"]
    store.grant(ids)  # [BLOCK + 1, 2 * BLOCK]
    made += [ids.next("req", 0, 0) for _ in range(BLOCK)]
    again = RequestIds()  # the same numbers as a worker that waited for each block
    assert made == [again.next("req", 0, 0) for _ in range(len(made))]


def test_numbers_past_a_block_whose_next_has_not_come_are_no_other_workers() -> None:
    """The store did not answer in time: the worker goes on, with ids of its own name, and
    takes the next block when it comes."""
    store = Store()
    first, second = shared(store, "w1"), shared(store, "w2")
    for ids in (first, second):
        ids.prefetch("req")
        store.grant(ids)  # first: [1, BLOCK]; second: [BLOCK + 1, 2 * BLOCK]
    made = [first.next("req", 0, 0) for _ in range(BLOCK + 5)]  # its next block not granted
    made += [second.next("req", 0, 0) for _ in range(5)]
    assert len(set(made)) == len(made)
    store.grant(first)  # first: [2 * BLOCK + 1, 3 * BLOCK]
    taken = first.next("req", 0, 0)
    assert taken == RequestIds({"req": 2 * BLOCK}).next("req", 0, 0)
