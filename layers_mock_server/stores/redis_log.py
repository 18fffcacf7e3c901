"""How commits cross into Redis and come back out of its log: the write script's arguments
(redis_scripts.WRITE) and a log entry read back as a batch. Pure: bytes in, batches out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from ..core.persist import merged
from ..core.ratelimit import READ_CLASS
from ..core.store import Batch, Row

COUNTERS = "counters"  # persist.COUNTERS: request-number reservations, kept in `requests`
SEP = "\x00"
WIPED = b'{"u":[],"d":[],"m":null,"w":true}'  # a wipe's entry in the log
LOGGED_FIELDS = 7000  # fields of a log entry made in the script: Lua's stack holds ~8000 values


def write_args(batches: Sequence[Batch]) -> list[Any]:
    """The batches as the write script takes them: merged into as few commits as they can be
    (persist.merged), each a header and its rows flat (see WRITE)."""
    args: list[Any] = []
    for batch, k in merged(batches):
        rows = list(batch.upserts)  # an iterable: read once
        upserts, ceilings = [], []
        for table, ident, data in rows:
            if table == COUNTERS:
                ceilings += [ident, data]
            else:
                upserts += [f"{table}{SEP}{ident}", data]
        # A wipe is logged without its rows (the others read everything after it); any other
        # commit as its own arguments (WRITE), unless that is too many for one XADD.
        logged = b""
        if batch.wipe:
            logged = WIPED
        elif len(upserts) + 2 * len(batch.deletes) > LOGGED_FIELDS:
            logged = log_entry(Batch(rows, batch.deletes, batch.meta))
        flags = int(batch.wipe) + (2 if batch.meta is not None else 0)
        args += [flags, k, b"" if batch.meta is None else batch.meta, logged]
        args += [len(batch.deletes), len(upserts) // 2, len(ceilings) // 2]
        args += [len(batch.unread), len(batch.reads)]
        args += [f"{table}{SEP}{ident}" for table, ident in batch.deletes]
        args += upserts + ceilings
        args += [read_field(key, READ_CLASS) for key in batch.unread]
        for key, endpoint_class, window, used in batch.reads:
            args += [read_field(key, endpoint_class), read_value(window, used, 0)]
    return args


def read_field(api_key_id: str, endpoint_class: str) -> str:
    """A key's counted window's field in the sandbox's `reads` hash (CHANGES counts it)."""
    return f"{api_key_id}:{endpoint_class}"


def read_value(window: int, used: int, before: int) -> str:
    """A counted window as the `reads` hash keeps it: its minute, the reads counted in it,
    and those counted in the minute before it (CHANGES)."""
    return f"{window}:{used}:{before}"


def log_entry(batch: Batch) -> bytes:
    """A batch as the log keeps it (rows as text: the data is JSON)."""
    upserts = [[t, i, d.decode()] for t, i, d in batch.upserts]
    deletes = [[t, i] for t, i in batch.deletes]
    meta = None if batch.meta is None else batch.meta.decode()
    return orjson.dumps({"u": upserts, "d": deletes, "m": meta, "w": batch.wipe})


def read_entry(fields: list[bytes]) -> tuple[int, int, Batch]:
    """A log entry: (its commit number, the batches merged in it, the batch). Fields (WRITE):
    `n`, `k` (absent before group commits: 1), then the batch as a document (`b`), or as `m`
    (the meta row), `d` (a deleted field) and upserted fields (`table\0id`) with their rows."""
    number, count, meta = 0, 1, None
    upserts: list[Row] = []
    deletes: list[tuple[str, str]] = []
    for name, value in zip(fields[::2], fields[1::2], strict=True):
        if name == b"n":
            number = int(value)
        elif name == b"k":
            count = int(value)
        elif name == b"b":
            return number, count, entry_batch(value)
        elif name == b"m":
            meta = value
        elif name == b"d":
            table, _, ident = value.decode().partition(SEP)
            deletes.append((table, ident))
        else:
            table, _, ident = name.decode().partition(SEP)
            upserts.append((table, ident, value))
    return number, count, Batch(upserts, deletes, meta)


def entry_batch(raw: bytes) -> Batch:
    entry = orjson.loads(raw)
    return Batch(
        [(t, i, d.encode()) for t, i, d in entry["u"] if t != COUNTERS],
        [(t, i) for t, i in entry["d"]],
        None if entry["m"] is None else entry["m"].encode(),
        bool(entry["w"]),
    )
