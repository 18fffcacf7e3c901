"""The round trips of a worker on Redis Cluster or over TLS, off its event loop.

On one Redis without TLS a worker sends everything through the pipe (redis_pipe.py): one
socket read by the event loop, many commands in flight. The pipe cannot serve a cluster (a
shard may answer MOVED, ASK or TRYAGAIN, which redis-py's cluster client follows, trying a
TRYAGAIN again for up to ~0.4 s: redis_cluster.py) nor TLS (its socket is redis-py's SSL one),
so these went through redis-py's synchronous client, on the event loop: while a round trip
waited, every request of the worker waited with it, /_mock/health and the reads answered
from the copy too, and a reshard half-way stalled the whole worker for its retries.

A `Lane` runs them on a thread of its own instead, one at a time in the order they were sent
(the order the shared gate, http/shared.py, counts on, as it does on the pipe's), each on the
lane's own connection (a `SlotConnection` on a cluster, which follows the slot), and hands
each answer to its future on the event loop. Only the requests that need Redis wait for it.

Each round trip ends `timeout` after it was called at the latest, as a command on the pipe
does (redis_cluster.py `deadline`: its tries again and readings of the slot map included).
One that waited that long behind the one ahead of it fails unsent (StoreUnavailable: nothing
of it ran), so a request waits the timeout at most whatever the lane was doing.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..core.store import Reach, StoreUnavailable
from .redis_cluster import deadline
from .redis_pipe import handled


class Lane:
    """One thread that runs a worker's round trips in order (see the module docstring)."""

    def __init__(self, where: str, timeout: float) -> None:
        self.where = where
        self.timeout = timeout
        self.thread = ThreadPoolExecutor(1, thread_name_prefix="redis-lane")
        # Each round trip in flight: when it was called, and its future.
        self.sent: collections.deque[tuple[float, asyncio.Future[Any]]] = collections.deque()
        self.closed = False

    def call(self, run: Callable[[], Any]) -> asyncio.Future[Any]:
        """`run()` on the lane's thread, after everything called before it; its future (on
        the running loop) gets what it returns or raises."""
        loop = asyncio.get_running_loop()
        called = time.monotonic()
        future = loop.run_in_executor(self.thread, self._guarded, run, called + self.timeout)
        self.sent.append((called, future))
        future.add_done_callback(self._answered)
        return future

    def reach(self, down: str | None) -> Reach:
        """What the last round trips said of Redis, and how long the oldest one in flight has
        waited (what /_mock/health shows: no round trip of its own)."""
        waited = time.monotonic() - self.sent[0][0] if self.sent else 0.0
        return Reach(down is None, down, int(waited * 1000))

    def close(self) -> None:
        """Wait for the round trip running (bounded by the connection's timeouts); those not
        started fail at once, unsent, as the pipe's do when it closes. A stopping worker's
        loop may not run again to look at them: each is marked handled (else asyncio prints
        "Future exception was never retrieved" for it)."""
        self.closed = True
        for _, future in self.sent:
            future.add_done_callback(handled)
        with contextlib.suppress(Exception):
            self.thread.shutdown(wait=True)

    def _guarded(self, run: Callable[[], Any], until: float) -> Any:
        if self.closed:  # (nothing of it was sent)
            raise StoreUnavailable(f"{self.where} is not open")
        if time.monotonic() >= until:  # (nor of this one)
            raise StoreUnavailable(
                f"{self.where}: Timeout: the round trips ahead of this one took {self.timeout:g} s"
            )
        with deadline(until):
            return run()

    def _answered(self, _: asyncio.Future[Any]) -> None:
        # Answers come in the order the round trips went (a cancelled one may end first)
        while self.sent and self.sent[0][1].done():
            self.sent.popleft()
