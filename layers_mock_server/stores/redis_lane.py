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
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..core.store import Reach


class Lane:
    """One thread that runs a worker's round trips in order (see the module docstring)."""

    def __init__(self) -> None:
        self.thread = ThreadPoolExecutor(1, thread_name_prefix="redis-lane")
        self.sent: collections.deque[float] = collections.deque()  # when each in flight went
        self.closed = False

    def call(self, run: Callable[[], Any]) -> asyncio.Future[Any]:
        """`run()` on the lane's thread, after everything called before it; its future (on
        the running loop) gets what it returns or raises."""
        loop = asyncio.get_running_loop()
        self.sent.append(time.monotonic())
        future = loop.run_in_executor(self.thread, run)
        future.add_done_callback(self._answered)
        return future

    def waiting_ms(self) -> int:
        """How long the oldest round trip in flight has waited (what /_mock/health shows)."""
        return int((time.monotonic() - self.sent[0]) * 1000) if self.sent else 0

    def reach(self, down: str | None) -> Reach:
        return Reach(down is None, down, self.waiting_ms())

    def close(self) -> None:
        """Wait for the round trip running (bounded by the connection's timeouts) and drop the
        ones not started: a stopping worker's loop waits for none of them."""
        self.closed = True
        with contextlib.suppress(Exception):
            self.thread.shutdown(wait=True, cancel_futures=True)

    def _answered(self, _: asyncio.Future[Any]) -> None:
        if self.sent:
            self.sent.popleft()  # answers come in the order the round trips went
