"""A guard for granian's respawn of dead workers: two deaths at once were one respawn.

granian (2.x, `granian/server/common.py`) notes a worker's death from a thread per worker
(`AbstractWorker._watcher`): `parent.interrupt_children.append(idx)`, then
`parent.main_loop_interrupt.set()`. Its main thread (`AbstractServer._serve_loop`) wakes on the
event and does, with no lock between the threads:

    workers = list(self.interrupt_children)
    self.interrupt_children.clear()
    self.respawned_wrks.clear()
    self.main_loop_interrupt.clear()
    self._respawn_workers(workers, ...)

A second worker's watcher that appends between the copy and `clear()` has its death wiped
(never respawned); one that appends and sets the event between the list's `clear()` and the
event's has its death kept but its wake-up wiped (respawned only when something else wakes the
loop: never, on a quiet serve). Either way `--workers 2` goes on with one worker. Seen 1 run in
~6 when both workers of a serve were killed at once (tests/redis/test_waiting.py).

`guard_deaths` gives the server a list and an event that close both windows without touching
granian's loop: `Deaths.clear()` removes only the deaths the last copy took (a copy is an
iteration, and the loop iterates just before it clears), and `Wakeup.clear()` leaves the event
set while a death is still waiting. Both take the list's lock, as `append` does.
tests/test_respawn_guard.py runs granian's own `_serve_loop` with each window forced open:
if a granian release changes that loop, the test says so.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any


class Deaths(list[int]):
    """granian's `interrupt_children`: whose deaths a copy took is what `clear()` removes."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.taken = 0  # how many of the first entries the last copy saw

    def append(self, idx: int) -> None:
        with self.lock:
            super().append(idx)

    def __iter__(self) -> Iterator[int]:
        with self.lock:
            copy = self[:]  # (a plain list: slicing a list subclass makes one)
            self.taken = len(copy)
        return iter(copy)

    def clear(self) -> None:
        """Only the deaths the last copy took: one noted since is the next round's. (Deaths
        are only ever appended, so those taken are the first ones.)"""
        with self.lock:
            del self[: self.taken]
            self.taken = 0


class Wakeup(threading.Event):
    """granian's `main_loop_interrupt`: not cleared while a death waits to be respawned."""

    def __init__(self, deaths: Deaths) -> None:
        super().__init__()
        self.deaths = deaths

    def clear(self) -> None:
        with self.deaths.lock:
            if not self.deaths:
                super().clear()


def guard_deaths(server: Any, deaths: Deaths | None = None) -> None:
    """Give a granian server (not started yet) the guarded list and event (see above);
    `deaths`, a list of a test's (one that notes a death at a chosen step)."""
    deaths = Deaths() if deaths is None else deaths
    server.interrupt_children = deaths
    server.main_loop_interrupt = Wakeup(deaths)
