"""The journal entries a worker on Redis has not had appended yet (stores/redis_outbox.py):
what a failed round trip carried comes back, numbered so that Redis appends each entry once
(an entry at or below the worker's mark is skipped) and none is skipped that never was."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from layers_mock_server.core.store import OutcomeUnknown, Refused
from layers_mock_server.stores.redis_outbox import Outbox


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    made = asyncio.new_event_loop()
    yield made
    made.close()


def numbered(outbox: Outbox) -> list[tuple[int, bytes]]:
    return [(outbox.first + i, e) for i, e in enumerate(outbox.entries)]


def sent(outbox: Outbox, loop: asyncio.AbstractEventLoop) -> tuple[asyncio.Future[Any], int]:
    """A round trip takes every entry waiting; (its future, the number of its first)."""
    trip: asyncio.Future[Any] = loop.create_future()
    first, entries = outbox.take()
    outbox.sent(trip, first, entries)
    return trip, first


def test_a_lost_connection_gives_back_every_run_in_flight_with_its_numbers_in_order(
    loop: asyncio.AbstractEventLoop,
) -> None:
    """Both runs may have been appended (their answers lost): each keeps its numbers, so that
    Redis's mark skips what it appended, and they go ahead of what was recorded since."""
    outbox = Outbox()
    outbox.add(b"a", b"b")
    one, _ = sent(outbox, loop)
    outbox.add(b"c")
    two, _ = sent(outbox, loop)
    outbox.add(b"d")
    for trip in (one, two):  # as the pipe fails everything on a connection, oldest first
        trip.set_exception(OutcomeUnknown("lost"))
    assert outbox.take() == (0, [b"a", b"b", b"c", b"d"])


def test_a_refused_run_sent_before_one_appended_comes_back_numbered_after_everything(
    loop: asyncio.AbstractEventLoop,
) -> None:
    """Refused (nothing done) while a later run was appended: Redis's mark is past its
    numbers, so it comes back with new ones (after the later run's), and is appended."""
    outbox = Outbox()
    outbox.add(b"a")
    one, _ = sent(outbox, loop)
    outbox.add(b"b")
    two, second = sent(outbox, loop)
    outbox.add(b"c")
    one.set_exception(Refused("NOSCRIPT"))
    two.set_result("appended")
    first, entries = outbox.take()
    assert entries == [b"c", b"a"] and first > second


def test_only_the_newest_entries_wait_as_many_as_the_journal_keeps(
    loop: asyncio.AbstractEventLoop,
) -> None:
    outbox = Outbox(capacity=3)
    outbox.add(b"a", b"b")
    trip, _ = sent(outbox, loop)
    outbox.add(b"c", b"d")
    trip.set_exception(OutcomeUnknown("lost"))
    outbox.settle()
    assert numbered(outbox) == [(1, b"b"), (2, b"c"), (3, b"d")]
