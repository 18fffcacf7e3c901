"""The journal entries a worker on Redis has recorded and Redis has not appended yet.

Entries go with the worker's next round trip (redis_journal.py), and a round trip can fail:
refused (Redis full, its scripts flushed, a replica), never sent (Redis cannot be reached),
or sent and its answer lost (a connection closed or timed out: it may have run). In every
case what it carried comes back here, ahead of what was recorded since, and goes with a
later round trip: an outage loses none of the answers the clients got, 503s included. Only
the newest `capacity` wait (as many as the journal keeps).

So that an entry whose round trip ran but whose answer was lost is not appended twice, the
worker numbers its entries (its own numbers, one after the other, not the journal's) and
Redis keeps the last number it appended for this worker (its mark, redis_journal.py): the
entries of one round trip are a run of numbers, and the ones at or below the mark are
skipped. An entry keeps its number when it comes back only if none sent after it went
meanwhile (their answers come back in order on one connection, and a lost connection fails
everything on it at once); else it was refused for certain, and is numbered anew, after
everything sent: it is then appended after entries recorded later, but it is appended.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any


class Outbox:
    """The entries waiting to go (numbered from `first` on) and those on their way."""

    __slots__ = ("capacity", "entries", "first", "pressing", "sending")

    def __init__(self, capacity: int = 1000) -> None:
        self.capacity = capacity
        self.entries: list[bytes] = []
        self.first = 0  # the worker's number of entries[0]
        # Whether one waiting is not a read's answer (a 503, a group's, one a round trip
        # brought back): a read's catch-up carries them all then, else none (redis.py).
        self.pressing = False
        # The round trips that carry entries, in the order they were sent: (its future, the
        # number of its first entry, the entries). Each is looked at once it came back.
        self.sending: deque[tuple[asyncio.Future[Any], int, list[bytes]]] = deque()

    def __len__(self) -> int:
        return len(self.entries)

    def add(self, *entries: bytes, pressing: bool = True) -> None:
        self.entries += entries
        self.pressing = self.pressing or pressing

    def take(self) -> tuple[int, list[bytes]]:
        """Every entry waiting, for a round trip about to go, and the number of the first."""
        self.settle()
        taken, self.entries = self.entries, []
        self.pressing = False
        first, self.first = self.first, self.first + len(taken)
        return first, taken

    def trim(self) -> None:
        """Keep the newest `capacity` (Redis takes none now: they wait)."""
        self.settle()
        self._keep_newest()

    def sent(self, sent: asyncio.Future[Any], first: int, entries: list[bytes]) -> None:
        """`entries` (numbered from `first`) went with `sent`: they come back if it fails."""
        if entries:
            self.sending.append((sent, first, entries))
            sent.add_done_callback(self.settle)

    def settle(self, _: object = None) -> None:
        """The round trips that came back: what a failed one carried waits again, newest
        first, so that each run goes back ahead of the one sent after it."""
        still: deque[tuple[asyncio.Future[Any], int, list[bytes]]] = deque()
        while self.sending:
            sent, first, entries = self.sending.pop()
            if not sent.done():
                still.appendleft((sent, first, entries))
            elif sent.cancelled() or sent.exception() is not None:
                self.back(first, entries)
        self.sending = still

    def back(self, first: int, entries: list[bytes]) -> None:
        """Entries a round trip carried that may not have been appended, ahead of the rest:
        with their numbers if nothing sent after them went, else numbered after the rest."""
        self.pressing = True
        if first + len(entries) == self.first:
            self.entries[:0] = entries
            self.first = first
        else:
            self.entries += entries
        self._keep_newest()

    def _keep_newest(self) -> None:
        drop = len(self.entries) - self.capacity
        if drop > 0:
            del self.entries[:drop]
            self.first += drop

    def clear(self) -> None:
        """A reset's: nothing recorded before it goes, whatever happens to its round trips."""
        self.entries.clear()
        self.sending.clear()
