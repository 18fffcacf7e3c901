"""Commits and catch-ups sent without waiting (RedisStore.send_write / send_changes): a worker
keeps the lease across its groups until another worker asks for it, commits follow each other
before they came back, and one refused commit takes every commit sent after it down with it.
Driven on the store itself, against a real redis-server (tests/redisd.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from redisd import RedisServer

from layers_mock_server.core.store import Batch, Bucket, OutcomeUnknown, StoreConflict
from layers_mock_server.stores.redis import RedisStore


@pytest.fixture
def pair(redis_server: RedisServer) -> Iterator[tuple[RedisStore, RedisStore]]:
    """Two workers' stores on a fresh sandbox, the first holding the lease."""
    url = redis_server.sandbox()
    first, second = RedisStore(url), RedisStore(url)
    assert first.open() is None
    first.write(Batch([], (), b"0", wipe=True))
    assert second.open() is not None
    yield first, second
    first.close()
    second.close()


def run(coroutine: Any) -> Any:
    return asyncio.new_event_loop().run_until_complete(coroutine)


def meta(n: int) -> Batch:
    return Batch([("projects", f"p{n}", b"{}")], (), str(n).encode())


def written(batch: Batch) -> list[str]:
    """The rows a commit wrote: what tells commits apart in a catch-up (their meta rows are
    all the sandbox's latest, redis_scripts.NAMED)."""
    return [ident for _, ident, _ in batch.upserts]


def test_a_kept_lease_stays_until_the_other_worker_asks_and_the_answer_says_so(
    pair: tuple[RedisStore, RedisStore],
) -> None:
    first, second = pair

    async def go() -> list[bool]:
        lease = await first.send_changes(True)
        assert lease is not None and first.holds()
        said = [await first.send_write([meta(1)], keep=True)]  # no one else asked
        assert first.holds() and second.lock() is None  # still the first's; the second waits
        said.append(await first.send_write([meta(2)], keep=True))  # ... and the answer says so
        said.append(await first.send_write([meta(3)], keep=False))  # given back
        assert not first.holds()
        return said

    assert run(go()) == [False, True, False]
    taken = second.lock()
    assert taken is not None and [written(b) for b in taken.batches] == [["p1"], ["p2"], ["p3"]]
    assert taken.batches[-1].meta == b"3"  # (each entry's meta row as of the catch-up: NAMED)
    second.unlock()


def test_commits_sent_behind_a_refused_one_are_refused_too_and_nothing_is_kept(
    pair: tuple[RedisStore, RedisStore],
) -> None:
    """The first commit is refused (another worker wrote since this one looked): the two sent
    behind it, before it came back, counted on it and are refused as well; the copy is
    forgotten before any of their answers is read, and the lease goes back."""
    first, second = pair

    async def go() -> list[Any]:
        assert await first.send_changes(True) is not None
        first.seen += 1  # as if it had missed a commit: compare-and-append refuses it
        sent = [first.send_write([meta(n)], keep=True) for n in (1, 2, 3)]
        assert not any(f.done() for f in sent)
        return await asyncio.gather(*sent, return_exceptions=True)

    answers = run(go())
    assert [type(a) for a in answers] == [StoreConflict] * 3
    assert all("nothing of this request was kept" in str(a) for a in answers)
    assert first.seen == -1 and not first.holds()  # read again whole next time; lease back
    assert second.lock() is not None  # free
    assert second.changes().batches == []  # none of the three was kept
    second.unlock()


def test_a_lost_connection_fails_every_commit_in_flight(
    pair: tuple[RedisStore, RedisStore],
) -> None:
    """The answers are lost, not the commands: both were sent whole and Redis ran them. The
    worker cannot tell, so it answers 503 and reads its copy again, which then shows them
    (the ambiguity of any lost answer; a retry with the same Idempotency-Key finds it)."""
    first, second = pair

    async def go() -> list[Any]:
        assert await first.send_changes(True) is not None
        sent = [first.send_write([meta(n)], keep=True) for n in (1, 2)]
        assert first.pipe is not None
        first.pipe.close()  # the socket goes away under both
        return await asyncio.gather(*sent, return_exceptions=True)

    answers = run(go())
    assert [type(a) for a in answers] == [OutcomeUnknown] * 2
    assert first.seen == -1 and not first.holds()
    assert [written(b) for b in second.changes().batches] == [["p1"], ["p2"]]


def test_a_catch_up_sent_without_waiting_counts_its_reads_and_brings_the_changes(
    pair: tuple[RedisStore, RedisStore],
) -> None:
    first, second = pair
    first.write(meta(1))
    window = Bucket("key_x", "read-light", 7)

    async def go() -> Any:
        return await second.send_changes(False, [window, window, window])

    found = run(go())
    assert [b.meta for b in found.batches] == [b"1"]
    assert found.counted == [1, 2, 3]
    assert not second.holds()  # a catch-up takes no lease
