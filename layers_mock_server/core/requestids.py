"""Request ids: unique per store, for ever.

A request id names one request in a partner's logs and in the journal, so it must never name
two. It is a ULID of mock time and a seeded hash of a per-kind sequence number; the sequence is
kept apart from the resettable state, so a reset does not rewind it and an import only moves it
forward. A durable store could still lose the last numbers to a kill -9 (reads write nothing),
so numbers are reserved in blocks: before the first number of a block is handed out, the end
of the block is written to the store, and a restarted server continues after the last
reservation. A crash costs at most one block of unused numbers, and reads stay write-free.
A shared store (many workers) hands each worker blocks of its own: `reserve` then returns the
end of the block it granted, and the worker's numbers jump to that block.
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
    __slots__ = ("counters", "reserve", "reserved")

    def __init__(self, counters: dict[str, int] | None = None) -> None:
        self.counters: dict[str, int] = {kind: 0 for kind in KINDS}
        self.reserved: dict[str, int] = {}
        self.reserve: Reserve | None = None  # set when a durable store keeps the reservations
        self.advance(counters or {})

    def next(self, kind: str, seed: int, at_ms: int) -> str:
        n = self.counters[kind] + 1
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
