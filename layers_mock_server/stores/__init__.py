"""Stores: where the state is kept between requests (see core/store.py for what a store is).

`memory` keeps nothing (the default: zero set-up, nothing to wait for); `sqlite:PATH` keeps
everything in one file and survives a killed server; `redis://HOST:PORT/DB` keeps everything
in Redis, shared by many workers and hosts (redis.py).
"""

from __future__ import annotations

from pathlib import Path

from ..core.store import Store
from . import redis_url
from .memory import MemoryStore


def make_store(spec: str | None) -> Store:
    """`memory`, `sqlite:PATH` or `redis://HOST:PORT/DB`; anything else is a usage error."""
    if spec in (None, "memory"):
        return MemoryStore()
    if spec.startswith("sqlite:") and len(spec) > len("sqlite:"):
        from .sqlite import SqliteStore

        return SqliteStore(Path(spec[len("sqlite:") :]))
    if spec.startswith(("redis://", "rediss://")):
        from .redis import RedisStore

        return RedisStore(spec)
    raise ValueError(f"--state must be memory, sqlite:PATH or redis://HOST:PORT/DB, not {spec!r}")


def shown(spec: str | None) -> str:
    """`--state` as messages may show it: a Redis URL without its password."""
    if spec is not None and spec.startswith(("redis://", "rediss://")):
        return redis_url.shown(spec)
    return str(spec)


__all__ = ["MemoryStore", "make_store", "shown"]
