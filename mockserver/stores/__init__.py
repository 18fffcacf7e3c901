"""Stores: where the state is kept between requests (see core/store.py for what a store is).

`memory` keeps nothing (the default: zero set-up, nothing to wait for); `sqlite:PATH` keeps
everything in one file and survives a killed server.
"""

from __future__ import annotations

from pathlib import Path

from ..core.store import Store
from .memory import MemoryStore


def make_store(spec: str | None) -> Store:
    """`memory` or `sqlite:PATH`; anything else is a usage error."""
    if spec in (None, "memory"):
        return MemoryStore()
    if spec.startswith("sqlite:") and len(spec) > len("sqlite:"):
        from .sqlite import SqliteStore

        return SqliteStore(Path(spec[len("sqlite:") :]))
    raise ValueError(f"--state must be memory or sqlite:PATH, not {spec!r}")


__all__ = ["MemoryStore", "make_store"]
