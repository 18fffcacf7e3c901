"""Where state lives between requests. In memory by default; durable stores keep the same face.

The simulator marks what a request changed in `state.dirty`; the HTTP edge calls `commit`
before the response leaves, so a client that saw a 2xx can rely on its effect surviving a
crash of a durable store.
"""

from __future__ import annotations

from typing import Protocol

from .clock import Clock
from .state import State


class Store(Protocol):
    def load(self, clock: Clock) -> State | None:
        """The state kept from an earlier run, or None to start from the fixtures."""

    def commit(self, state: State, clock: Clock) -> None:
        """Persist what `state.dirty` names, then clear it."""

    def replace(self, state: State, clock: Clock) -> None:
        """Persist everything (after a reset or an import)."""


class MemoryStore:
    """The default: nothing to write, so nothing to wait for."""

    def load(self, clock: Clock) -> State | None:
        return None

    def commit(self, state: State, clock: Clock) -> None:
        state.dirty.clear()

    def replace(self, state: State, clock: Clock) -> None:
        state.dirty.clear()
