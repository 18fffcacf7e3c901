"""The state as batches of rows for a store, and back (see store.py for what a store is).

A commit writes only what `state.dirty` names, plus the meta row; a whole write (reset, import,
a new file) wipes the store and writes everything. Request-id reservations are rows of their
own (table `counters`), so that reserving a block never writes the rest of the state. A group
of batches written at once can be merged into one (`merged`), which a shared store writes and
logs as one commit; a group commit's requests mark what they change (`Marks`), and their rows
are encoded once, as that one batch, when the group closes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import orjson

from .clock import Clock
from .ratelimit import READ_CLASS
from .requestids import RequestIds
from .restore import Check, Restored, StateBuilder
from .snapshot import ALL_TABLES, ROW_DICTS, idempotency_row, meta, row_bytes, table_rows
from .state import State
from .store import Batch, Row, Stored

COUNTERS = "counters"


def meta_bytes(state: State, ids: RequestIds, clock: Clock, now_ms: int | None = None) -> bytes:
    document = meta(state, ids, clock)
    if now_ms is not None:
        document["clock"]["nowMs"] = now_ms
    return orjson.dumps(document)


def counter_rows(ceilings: dict[str, int]) -> list[Row]:
    return [(COUNTERS, kind, str(n).encode()) for kind, n in ceilings.items()]


def dirty_batch(state: State, ids: RequestIds, clock: Clock, *, meta: bool = True) -> Batch:
    """The rows a request changed, as they are now (or deleted when gone), and the meta row
    (unless `meta` is False)."""
    upserts: list[Row] = []
    deletes: list[tuple[str, str]] = []
    for table, ident in state.dirty:
        if table == "meta":
            continue
        found = record(state, table, ident)
        if found is None:
            deletes.append((table, ident))
        else:
            upserts.append((table, ident, encoded(table, ident, found)))
    return Batch(upserts, deletes, meta_bytes(state, ids, clock) if meta else None)


def record(state: State, table: str, ident: str) -> Any:
    """The record a dirty mark names, or None when it is gone."""
    if table == "idempotency":
        return state.idempotency.get(bytes.fromhex(ident))
    return getattr(state, table).get(ident)


def encoded(table: str, ident: str, found: Any) -> bytes:
    if table == "idempotency":
        return orjson.dumps(idempotency_row(bytes.fromhex(ident), found))
    return row_bytes(table, found)


class Marks:
    """What the requests of a group commit changed, request after request, kept as marks and
    encoded once, when the group closes, as one batch: the batch `merged` makes of each
    request's `dirty_batch` (a row's place is where it was first written since it last
    existed, its data the last; a row deleted then written again is in both lists; one
    written then deleted only deleted). A request's marks cost a lookup a row; the rows are
    encoded once a group, not once a request and merged again."""

    __slots__ = ("deleted", "written")

    def __init__(self) -> None:
        self.written: dict[tuple[str, str], None] = {}  # a set that keeps its order
        self.deleted: dict[tuple[str, str], None] = {}

    def __bool__(self) -> bool:
        return bool(self.written or self.deleted)

    def add(self, state: State) -> None:
        """The rows the request that just ran changed (`state.dirty`, not cleared here)."""
        written, deleted = self.written, self.deleted
        for key in state.dirty:
            table, ident = key
            if table == "meta":
                continue
            # (`record` inlined: a call fewer a row, two a create)
            if table == "idempotency":
                found = state.idempotency.get(bytes.fromhex(ident))
            else:
                found = getattr(state, table).get(ident)
            if found is None:
                written.pop(key, None)
                deleted[key] = None
            elif key not in written:
                written[key] = None

    def batch(self, state: State, meta: bytes | None) -> Batch:
        """The marked rows as they are now, as one batch; the marks are cleared."""
        upserts: list[Row] = []
        for table, ident in self.written:
            # (`record` and `encoded` inlined for the rows of records, two a create; and
            # row_bytes, but for a project's row)
            if table == "idempotency":
                found = state.idempotency.get(bytes.fromhex(ident))
                data = None if found is None else encoded(table, ident, found)
            else:
                found = getattr(state, table).get(ident)
                if found is None:
                    data = None
                elif table == "projects" or (as_dict := ROW_DICTS.get(type(found))) is None:
                    data = row_bytes(table, found)
                else:
                    data = orjson.dumps(as_dict(found))
            if data is None:  # (not while a group is open: every change is marked)
                self.deleted[table, ident] = None
            else:
                upserts.append((table, ident, data))
        deletes = list(self.deleted)
        self.clear()
        return Batch(upserts, deletes, meta)

    def clear(self) -> None:
        self.written.clear()
        self.deleted.clear()


def whole_batch(state: State, ids: RequestIds, clock: Clock, now_ms: int | None = None) -> Batch:
    """Everything, replacing whatever the store held (rows are produced as the store reads)."""

    def rows() -> Iterator[Row]:
        for table in ALL_TABLES:
            for ident, data in table_rows(state, table):
                yield table, ident, data
        yield from counter_rows(ids.reserved)

    reads = [w for w in state.rates.snapshot() if w[1] == READ_CLASS]
    return Batch(rows(), (), meta_bytes(state, ids, clock, now_ms), wipe=True, reads=reads)


def merged(batches: Sequence[Batch]) -> list[tuple[Batch, int]]:
    """Consecutive batches as one, each with the number of batches it stands for: applying
    the merged batch (wipe, deletes, upserts, meta, in that order) leaves exactly what applying
    them one after another does. A row deleted then written again is in both lists, so that it
    is removed first and written after the rows written before it (a row's place is where it
    was first written since it last existed); a row written then deleted is only deleted; a
    row written twice keeps its first place and its last data; a request-number ceiling keeps
    the highest; the last meta row wins; the keys whose counted windows go add up. A wipe is
    never merged with others: it starts a batch of its own (its rows are everything; a reader
    reads everything after it)."""
    out: list[tuple[Batch, int]] = []
    run: list[Batch] = []
    for batch in batches:
        if batch.wipe:
            if run:
                out.append((_merge(run), len(run)))
                run = []
            out.append((batch, 1))
        else:
            run.append(batch)
    if run:
        out.append((_merge(run) if len(run) > 1 else run[0], len(run)))
    return out


def _merge(run: Sequence[Batch]) -> Batch:
    upserts: dict[tuple[str, str], bytes] = {}
    deletes: dict[tuple[str, str], None] = {}  # a set that keeps its order
    unread: dict[str, None] = {}
    meta = None
    for batch in run:
        unread.update(dict.fromkeys(batch.unread))
        for key in batch.deletes:
            upserts.pop(key, None)
            deletes[key] = None
        for table, ident, data in batch.upserts:
            key = (table, ident)
            if table == COUNTERS and key in upserts and int(upserts[key]) > int(data):
                continue  # a ceiling only rises (the store keeps the highest)
            upserts[key] = data
        if batch.meta is not None:
            meta = batch.meta
    rows = [(table, ident, data) for (table, ident), data in upserts.items()]
    return Batch(rows, list(deletes), meta, unread=list(unread))


def load(stored: Stored, check: Check) -> tuple[Restored, dict[str, int]]:
    """What a durable store held, checked like an import: (the state, request-id ceilings)."""
    builder = StateBuilder(check)
    builder.meta(orjson.loads(stored.meta))
    ceilings: dict[str, int] = {}
    for table, ident, data in stored.rows:
        if table == COUNTERS:
            ceilings[ident] = int(data)
        else:
            builder.row(table, orjson.loads(data))
    return builder.finish(), ceilings
