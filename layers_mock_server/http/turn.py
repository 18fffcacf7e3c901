"""The gate's turn: one leased request at a time runs on the worker's copy (http/shared.py).

Not an asyncio.Lock, whose release hands the lock to the first waiter: until that waiter
runs (the next loop iteration), every request that arrives queues behind it, so once a queue
formed (a request holding the turn waited for the lease) every request after it waited for
the turn too, a task suspension and wake-up each, though the turn was free when it came. Here
a free turn is taken at once, without awaiting (`take`); only a request that finds it held
waits, and a release wakes the first waiter, which takes the turn if it is still free when
it runs (else it waits again, first in line). A request holding the turn runs to its end
without awaiting unless it waits for Redis (a new group's lease, a latency fault), so a
waiter is passed over only by requests that run to their end at once.
"""

from __future__ import annotations

import asyncio
import collections


class Turn:
    """Held by at most one request; free turns are taken at once, waiters go first in order."""

    __slots__ = ("held", "waiters")

    def __init__(self) -> None:
        self.held = False
        self.waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    def locked(self) -> bool:
        return self.held

    def take(self) -> bool:
        """Take the turn if it is free (no await); False: the caller waits (`acquire`)."""
        if self.held:
            return False
        self.held = True
        return True

    async def acquire(self) -> None:
        """Wait until the turn is free, and take it (first in line after the first wait)."""
        first = False
        while self.held:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            if first:
                self.waiters.appendleft(waiter)
            else:
                self.waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    if not self.held:
                        self._wake()  # woken, then cancelled: the next waiter's wake-up
                elif waiter in self.waiters:  # (a release may have dropped it, cancelled)
                    self.waiters.remove(waiter)
                raise
            first = True
        self.held = True

    def release(self) -> None:
        self.held = False
        waiters = self.waiters
        while waiters:  # `_wake`, inline: once a request
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _wake(self) -> None:
        """The first waiter that still waits runs next (and takes the turn if it is free)."""
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
