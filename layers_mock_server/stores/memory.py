"""The default store: the state lives in the server's memory and nowhere else."""

from __future__ import annotations

from ..core.store import Batch, Stored


class MemoryStore:
    """Nothing to write, so nothing to wait for, and nothing to resume after a restart.
    Callers skip building batches for a store that is not durable (see core/persist.py)."""

    durable = False
    shared = False

    def open(self) -> Stored | None:
        return None

    def write(self, batch: Batch) -> None:
        return None

    def close(self) -> None:
        return None
