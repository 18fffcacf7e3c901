"""The state as batches of rows for a store, and back (see store.py for what a store is).

A commit writes only what `state.dirty` names and the rules, rate windows and organizations'
clocks marked changed (each a row of its own: snapshot.PARTS), plus the meta row, which holds
only the seed, the counters and the server clock (snapshot.stored_meta): a few hundred bytes
whether the sandbox holds no rule or 4,000 rules, 10,000 keys' windows and 1,000 clocks. A
whole write (reset, import, a new file) wipes the store and writes everything. A store written
by an earlier version holds them all in its meta row: it loads, and its first commit writes
them as rows (`load` marks them all changed). Request-id reservations are rows of their
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
from .snapshot import (
    ALL_TABLES,
    PART_ROWS,
    PARTS,
    ROW_DICTS,
    all_parts,
    changed_parts,
    idempotency_row,
    part_row,
    row_bytes,
    stored_meta,
    table_rows,
)
from .state import State
from .store import Batch, Row, Stored

COUNTERS = "counters"


def meta_bytes(state: State, ids: RequestIds, clock: Clock, now_ms: int | None = None) -> bytes:
    """The meta row a store keeps (snapshot.stored_meta)."""
    document = stored_meta(state, ids, clock)
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
    _parts(state, upserts, deletes)
    return Batch(upserts, deletes, meta_bytes(state, ids, clock) if meta else None)


def _parts(state: State, upserts: list[Row], deletes: list[tuple[str, str]]) -> None:
    """The rule, rate window and clock rows changed (marked; the marks stay until the state
    is stored: State.clean), as they are now, or deleted when gone."""
    for table, ident in changed_parts(state):
        data = part_row(state, table, ident)
        if data is None:
            deletes.append((table, ident))
        else:
            upserts.append((table, ident, data))


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
        _parts(state, upserts, deletes)
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
        yield from all_parts(state)
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
    """What a durable store held, checked like an import: (the state, request-id ceilings).
    The rule, rate window and clock rows go back into the meta row, which is then checked
    whole, as an export's; from a meta row an earlier version wrote (all of them in it), they
    are all marked changed, so that the first commit writes them as rows."""
    builder = StateBuilder(check)
    document = orjson.loads(stored.meta)
    split = isinstance(document, dict) and bool(document.pop(PART_ROWS, False))
    rules: list[Any] = []
    rates: list[Any] = []
    clocks: dict[str, Any] = {}
    ceilings: dict[str, int] = {}
    for table, ident, data in stored.rows:
        if table == COUNTERS:
            ceilings[ident] = int(data)
        elif table in PARTS:
            if table == "rules":
                rules.append(orjson.loads(data))
            elif table == "rates":
                rates.append(orjson.loads(data))
            else:
                clocks[ident] = orjson.loads(data)
        else:
            builder.row(table, orjson.loads(data))
    if split and isinstance(document, dict):
        _embed(document, rules, rates, clocks)
    builder.meta(document)
    restored = builder.finish()
    if not split:
        _mark_all(restored.state)
    return restored, ceilings


def _embed(document: dict[str, Any], rules: list[Any], rates: list[Any], clocks: Any) -> None:
    """The part rows back in the meta row, where an export has them (an ill-formed meta row
    is left as it is, for the check to name)."""
    if isinstance(document.get("rules"), dict) and isinstance(document["rules"].get("rules"), list):
        document["rules"]["rules"] += rules
    if isinstance(document.get("rates"), list):
        document["rates"] += rates
    if clocks and isinstance(document.get("clock"), dict):
        document["clock"]["organizations"] = clocks


def _mark_all(state: State) -> None:
    """Every rule, rate window and clock to be written as a row by the next commit."""
    state.rules.changed.update(dict.fromkeys(state.rules.rules))
    state.rates.changed.update((b, None) for b in state.rates.buckets())
    state.clocks.changed.update(dict.fromkeys(state.clocks.detached))
    if state.rules.rules or state.rates.changed or state.clocks.detached:
        state.dirty.add(("meta", ""))
