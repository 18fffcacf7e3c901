"""granian's own respawn loop, with a second worker's death noted at its worst moments.

granian's main thread copies its list of dead workers, clears it, then clears its wake-up
event; a worker's watcher thread appends its death and sets the event, with no lock between
them (layers_mock_server/respawn.py). Two workers killed at once left one of them dead for good,
about 1 run in 6. Here the second death is noted from inside the loop's own steps (the copy;
the clearing of `respawned_wrks`, between the list's clear and the event's), so each window is
open every run: no threads, no timing. The loop is granian's `_serve_loop`, run on a stand-in
server whose `_respawn_workers` records what it is asked to respawn.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from granian.server.mp import MPServer

from layers_mock_server.respawn import Deaths, guard_deaths

SECOND = 1  # the worker whose death is noted while the loop handles worker 0's


class Metrics:
    def incr_respawn_err(self, count: int) -> None:
        del count


class Respawns(dict[int, float]):
    """`respawned_wrks`; its `clear()` is the loop's step between the list's clear and the
    event's, where the test may note the second death."""

    def __init__(self, server: Server) -> None:
        super().__init__()
        self.server = server

    def clear(self) -> None:
        super().clear()
        if self.server.window == "between the clears":
            self.server.second_death()


class Server:
    """What granian's `_serve_loop` reads and calls, and no more."""

    def __init__(self, window: str, guarded: bool) -> None:
        self.window = window
        self.noted = False
        self.interrupt_signal = False
        self.respawn_failed_workers = True
        self.reload_signal = self.lifetime_signal = self.rss_signal = False
        self._metrics = Metrics()
        self.respawned_wrks = Respawns(self)
        self.main_loop_interrupt = threading.Event()
        self.interrupt_children: list[int] = copying(self, Deaths if guarded else list)()
        if guarded:
            guard_deaths(self, self.interrupt_children)  # type: ignore[arg-type]
        self.respawned: list[int] = []
        self.pending_at_first: tuple[bool, bool] | None = None

    def second_death(self) -> None:
        """What granian's watcher thread of worker SECOND does (`AbstractWorker._watcher`)."""
        if not self.noted:
            self.noted = True
            self.interrupt_children.append(SECOND)
            self.main_loop_interrupt.set()

    def _respawn_workers(self, workers: list[int], spawn: Any, loader: Any) -> None:
        if self.pending_at_first is None:  # is the second death still to be handled?
            self.pending_at_first = (
                SECOND in list.__iter__(self.interrupt_children),
                self.main_loop_interrupt.is_set(),
            )
        self.respawned += workers
        for idx in workers:
            self.respawned_wrks[idx] = time.monotonic()
        if SECOND in self.respawned or self.pending_at_first != (True, True):
            self.interrupt_signal = True  # done: the loop ends (a lost death would hang it)
            self.main_loop_interrupt.set()


def copying(server: Server, base: type[list[int]]) -> type[list[int]]:
    """The server's list, whose iteration notes the second death right after the loop's copy
    (its second iteration of a round: the crash-loop check comes first)."""

    class Copying(base):  # type: ignore[valid-type, misc]
        rounds = 0

        def __iter__(self) -> Iterator[int]:
            items = list(base.__iter__(self))  # the copy, whole (Deaths' own: it takes them)
            Copying.rounds += 1
            if server.window == "after the copy" and Copying.rounds == 2:
                server.second_death()
            return iter(items)

    return Copying


WINDOWS = ["after the copy", "between the clears"]


def run_loop(window: str, guarded: bool) -> Server:
    server = Server(window, guarded)
    server.interrupt_children.append(0)  # worker 0's watcher, first
    server.main_loop_interrupt.set()
    MPServer._serve_loop(server, None, None)  # type: ignore[arg-type]
    return server


@pytest.mark.parametrize("window", WINDOWS)
def test_two_workers_dying_at_once_are_both_respawned(window: str) -> None:
    server = run_loop(window, guarded=True)
    assert server.noted
    assert server.pending_at_first == (True, True)  # still in the list, the loop still awake
    assert server.respawned == [0, SECOND]


@pytest.mark.parametrize("window", WINDOWS)
def test_granians_own_list_and_event_lose_the_second_death(window: str) -> None:
    """Why the guard is there. If this fails, granian closed the windows itself: the guard
    (respawn.py) can go, and this file with it."""
    server = run_loop(window, guarded=False)
    assert server.noted
    assert server.pending_at_first != (True, True)
    assert server.respawned == [0]
