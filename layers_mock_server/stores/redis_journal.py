"""The request journal of a sandbox on Redis: every worker's entries in one capped stream.

Each worker records its entries as a single server does (core/journal.py) and sends them to the
sandbox's `journal` stream with its next round trip to Redis (a catch-up or a commit: under
load, no round trip of their own), or within `FLUSH_S` when no request comes. A read of
`/_mock/requests` on any worker sends that worker's own first, then reads the stream: it shows
what every worker answered, newest first in the order the entries reached Redis (entries of two
workers answered within a few milliseconds of each other may swap places). The stream keeps the
newest `capacity` entries (1,000); the byte bound applies when the journal is read, as in one
process.

A request answered in a group commit (http/shared.py) is answered only once the group's
commit returned, so its entry waits with it (`holding`): the entries of a group go with its
commit and are appended only if the commit is kept; if it fails, each is rewritten with the
503 its client got instead (`settle`) and sent with the next round trip. The journal records
what the client received.

Entries travel as JSON: headers and bodies as latin-1 text, so bytes come back exactly, and
keys are redacted when the journal is read, as in one process.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from ..core.journal import (
    DEFAULT_CAPACITY,
    DEFAULT_MAX_BYTES,
    FIELDS,
    Failed,
    Journal,
    JournalEntry,
    reanswered,
)

if TYPE_CHECKING:
    from .redis import RedisStore

FLUSH_S = 0.01

APPEND = """#!lua
local journal, seq, cap = KEYS[1], KEYS[2], ARGV[1]
for i = 2, #ARGV do
  local n = redis.call('INCR', seq)
  redis.call('XADD', journal, 'MAXLEN', cap, '*', 'n', n, 'e', ARGV[i])
end
return #ARGV - 1
"""


def _encode(entry: tuple[Any, ...] | JournalEntry) -> bytes:
    fields = list(entry) if isinstance(entry, tuple) else [getattr(entry, f) for f in FIELDS]
    for at in (10, 11):  # request, response: (headers, body, truncated) or None
        message = fields[at]
        if message is not None:
            headers, body, truncated = message
            fields[at] = [
                [[k.decode("latin-1"), v.decode("latin-1")] for k, v in headers],
                body.decode("latin-1"),
                truncated,
            ]
    return orjson.dumps(fields)


def _decode(sequence: int, raw: bytes) -> JournalEntry:
    fields = orjson.loads(raw)
    for at in (10, 11):
        message = fields[at]
        if message is not None:
            headers, body, truncated = message
            fields[at] = (
                [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers],
                body.encode("latin-1"),
                truncated,
            )
    fields[0] = sequence
    return JournalEntry(*fields)


class SharedJournal(Journal):
    """A Journal whose reads show every worker's entries (see the module docstring)."""

    __slots__ = ("held", "holding", "store", "timer")

    def __init__(
        self,
        store: RedisStore,
        capacity: int = DEFAULT_CAPACITY,
        *,
        bodies: bool = False,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        super().__init__(capacity, bodies=bodies, max_bytes=max_bytes)
        self.store = store
        store.journal_capacity = capacity
        self.timer: asyncio.TimerHandle | None = None
        # Whether the request recording now is answered with its group's commit (the gate
        # sets it), and those entries, in order, until that commit returned.
        self.holding: Callable[[], bool] = lambda: False
        self.held: list[tuple[Any, ...] | JournalEntry] = []

    def _keep(self, entry: tuple[Any, ...] | JournalEntry) -> None:
        if self.holding():
            self.held.append(entry)
            self.store.staged.append(_encode(entry))  # kept only with the group's commit
            return
        self._send(entry)

    def _send(self, entry: tuple[Any, ...] | JournalEntry) -> None:
        super()._keep(entry)  # this worker's own, for `last()` (--log-requests)
        self.store.outbox.append(_encode(entry))  # goes with the worker's next round trip
        self._schedule()

    def _schedule(self) -> None:
        if self.timer is None:
            with contextlib.suppress(RuntimeError):  # no loop: sent with the next round trip
                self.timer = asyncio.get_running_loop().call_later(FLUSH_S, self.flush, False)

    def detach(self) -> list[tuple[Any, ...] | JournalEntry]:
        """The entries held for the group being committed now (its staged copies go with
        its commit): the next group's are held apart from them."""
        held, self.held = self.held, []
        return held

    def settle(
        self, failed: Failed | None, held: list[tuple[Any, ...] | JournalEntry] | None = None
    ) -> None:
        """The held entries' commit returned (or none will come): kept as they are, or, when
        `failed` (the commit failed, and did not append them), each answered entry as the
        503 its client got instead."""
        if held is None:
            held = self.detach()
        if failed is None:
            for entry in held:
                super()._keep(entry)
            return
        for entry in held:
            fields = entry if isinstance(entry, tuple) else tuple(getattr(entry, f) for f in FIELDS)
            status, request_id, response = fields[5], fields[6], fields[11]
            if status:  # 0: the connection was dropped, nothing was sent either way
                headers, body = failed(request_id, response[0] if response else ())
                fields = reanswered(fields, 503, headers, body)
            self._send(fields)

    def unstage(self, kept: bool) -> None:
        """The staged copies of a group that sends no commit: sent as they are when its
        answers stand, dropped when they do not (settle sends the 503s instead)."""
        staged, self.store.staged = self.store.staged, []
        if kept and staged:
            self.store.outbox += staged
            self._schedule()

    def flush(self, wait: bool = True) -> None:
        """Send what no round trip has taken along (the timer's: without waiting for it); a
        Redis that cannot take it loses those entries (the journal is a window on the
        traffic, not a record the mock answers from)."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        with contextlib.suppress(Exception):
            self.store.journal_flush(wait)

    def _all(self) -> list[JournalEntry]:
        self.flush()
        found = [_decode(n, raw) for n, raw in self.store.journal_read(self.capacity)]
        kept: list[JournalEntry] = []
        size = 0
        for entry in reversed(found):  # newest first, within the byte bound
            size += entry.size
            if kept and size > self.max_bytes:
                break
            kept.append(entry)
        kept.reverse()
        return kept

    def query(self, *args: Any, **kwargs: Any) -> tuple[list[dict[str, Any]], int]:
        """Journal.query over every worker's entries (its arguments, whatever they are)."""
        view = Journal(self.capacity, bodies=self.bodies, max_bytes=self.max_bytes)
        view._entries.extend(self._all())
        return view.query(*args, **kwargs)

    def clear(self) -> None:
        super().clear()
        self.held.clear()
        self.store.staged.clear()
        self.store.outbox.clear()
        self.store.journal_clear()
