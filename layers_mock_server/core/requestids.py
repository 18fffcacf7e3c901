"""Request ids: unique per store, for ever.

A request id names one request in a partner's logs and in the journal, so it must never name
two. It is a ULID of mock time and a seeded hash of a per-kind sequence number; the sequence is
kept apart from the resettable state, so a reset does not rewind it and an import only moves it
forward. A durable store could still lose the last numbers to a kill -9 (reads write nothing),
so numbers are reserved in blocks: before the first number of a block is handed out, the end
of the block is written to the store, and a restarted server continues after the last
reservation. A crash costs at most one block of unused numbers, and reads stay write-free.
A shared store (many workers) hands each worker blocks of its own, and the worker's numbers jump
to each block it is granted. A worker asks for its next block without waiting for it (`ask`),
while half of the current one is left, so that no request waits for a round trip to the store
(nor does the worker's event loop): the block has come long before it is needed. Should it not
have (the store unreachable for half a block of requests), the numbers that go on past the
block are no other worker's: their ids are minted with this worker's name, so they are unique
(but not reproducible) until the next block comes. Likewise for good once the store lost its
count (`alone`: a Redis flushed, or restarted without its data, under running workers): the
blocks it grants from then on may be ones it granted before, to this worker or another.
"""

from __future__ import annotations

from collections.abc import Callable

from .ids import ulid_from
from .store import StoreUnavailable

KINDS = ("req", "control-req")  # partner requests, control-plane requests: counted apart
BLOCK = 1024
# (kind, the ceilings wanted) -> None (granted as asked) or the end of the block granted
Reserve = Callable[[str, dict[str, int]], int | None]


class RequestIds:
    __slots__ = ("alone", "ask", "asking", "counters", "reserve", "reserved", "spare", "worker")

    def __init__(self, counters: dict[str, int] | None = None) -> None:
        self.counters: dict[str, int] = {kind: 0 for kind in KINDS}
        self.reserved: dict[str, int] = {}
        self.reserve: Reserve | None = None  # set when a durable store keeps the reservations
        # A shared store's: asks for the next block of a kind without waiting; `landed` gets
        # it. `worker` names this worker in the ids it mints outside any block.
        self.ask: Callable[[str], None] | None = None
        self.worker = ""
        self.spare: dict[str, int] = {}  # per kind: the end of the next block, granted
        self.asking: set[str] = set()  # kinds whose next block is on its way
        self.alone = False  # the shared store lost its count: every id is named as this worker's
        self.advance(counters or {})

    def next(self, kind: str, seed: int, at_ms: int) -> str:
        n = self.counters[kind] + 1
        if self.ask is not None:
            end = self.reserved.get(kind, 0)
            # the block's second half (or past it): the next one, unless it is granted and
            # not needed yet, or on its way (most requests of a second half: no call)
            spare = self.spare
            if end - n < BLOCK // 2 and (
                (n > end and kind in spare) or (kind not in spare and kind not in self.asking)
            ):
                n = self._ahead(kind, n)
                end = self.reserved.get(kind, 0)
            self.counters[kind] = n
            if n > end or self.alone:  # in no block of ours (or none to trust): this worker's
                return "req_" + ulid_from(seed, f"{kind}:seq:{n}:{self.worker}", at_ms)
            return "req_" + ulid_from(seed, f"{kind}:seq:{n}", at_ms)
        if self.reserve is not None and n > self.reserved.get(kind, 0):
            ceilings = {**self.reserved, kind: n + BLOCK - 1}
            try:
                granted = self.reserve(kind, ceilings)
                if granted is not None:
                    n = max(n, granted - BLOCK + 1)
                    ceilings = {**self.reserved, kind: granted}
                self.reserved = ceilings
            except StoreUnavailable:
                pass  # tried again on the next request; only a crash before then could repeat
        self.counters[kind] = n
        return "req_" + ulid_from(seed, f"{kind}:seq:{n}", at_ms)

    def _ahead(self, kind: str, n: int) -> int:
        """A shared store's blocks: the next one is taken when the current one is used up,
        and asked for while half of it is left."""
        if n > self.reserved.get(kind, 0) and kind in self.spare:
            end = self.spare.pop(kind)
            n = max(n, end - BLOCK + 1)
            self.reserved[kind] = end
        if self.reserved.get(kind, 0) - n < BLOCK // 2:
            self.prefetch(kind)
        return n

    def prefetch(self, kind: str) -> None:
        """Ask for the next block of `kind`, unless it is granted or on its way already."""
        if self.ask is not None and kind not in self.spare and kind not in self.asking:
            self.asking.add(kind)
            self.ask(kind)

    def landed(self, kind: str, end: int | None) -> None:
        """The block asked for was granted (`end`, its last number), or could not be (None:
        asked again by the next request)."""
        self.asking.discard(kind)
        if end is not None:
            self.spare[kind] = end

    def sequence(self) -> int:
        """The number of the latest partner request: seeded draws (chaos, rule probability)
        are made per request number."""
        return self.counters["req"]

    def advance(self, counters: dict[str, int]) -> None:
        """Move forward to `counters` (an import, a restart); never back."""
        for kind in KINDS:
            self.counters[kind] = max(self.counters[kind], int(counters.get(kind, 0)))

    def resume(self, ceilings: dict[str, int]) -> None:
        """After a restart: every number up to the last reservation may have been handed out."""
        self.advance(ceilings)
        self.reserved = {}
