"""The state in an SQLite file (`--state sqlite:PATH`): a 2xx answer survives a killed server.

One transaction per commit writes only the rows a request changed (`state.dirty`) and the meta
row (seed, id counters, clock instant, rate windows, rules), so the file always holds the state
after some whole request, never half of one. WAL with `synchronous=NORMAL` makes a commit
durable once it returns against a killed process (the WAL is in the OS's hands); it does not
claim to survive a power cut, which would need `FULL` and an fsync per request.

Rows hold the same JSON as a state export (snapshot.py), and `load` rebuilds the state through
`import_state`, so the file and the export cannot drift apart. One exception: a project row
leaves out its list of influencer ids, which grows with every create and would make each commit
cost O(influencers); `load` rebuilds the list from the influencers' positions.
"""

from __future__ import annotations

import sqlite3
from dataclasses import fields
from pathlib import Path
from typing import Any

import orjson

from .clock import Clock
from .errors import ApiError
from .idempotency import Scope
from .snapshot import TABLES, idempotency_item, import_state, meta
from .state import State

SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    tbl  TEXT NOT NULL,
    id   TEXT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (tbl, id)
);
CREATE TABLE IF NOT EXISTS meta (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    data BLOB NOT NULL
);
"""
# Upsert keeps the rowid, so loading in rowid order keeps insertion order (list order,
# idempotency eviction order) across a restart.
UPSERT = (
    "INSERT INTO records (tbl, id, data) VALUES (?, ?, ?) "
    "ON CONFLICT (tbl, id) DO UPDATE SET data = excluded.data"
)
DELETE = "DELETE FROM records WHERE tbl = ? AND id = ?"
META = (
    "INSERT INTO meta (id, data) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET data = excluded.data"
)
SEPARATOR = "\x1f"  # joins an idempotency scope into one id, as the pipeline marks it


class SqliteStore:
    """A Store (store.py) on one SQLite file, used from the server's single event-loop thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # isolation_level=None: transactions are begun and ended here, explicitly.
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def load(self, clock: Clock) -> State | None:
        found = self._db.execute("SELECT data FROM meta WHERE id = 1").fetchone()
        if found is None:
            return None
        document: dict[str, Any] = orjson.loads(found[0])
        for name in (*TABLES, "idempotency"):
            document[name] = []
        for tbl, data in self._db.execute("SELECT tbl, data FROM records ORDER BY rowid"):
            if tbl in document:
                document[tbl].append(orjson.loads(data))
        _relink(document)
        try:
            return import_state(document, clock)
        except ApiError as exc:
            raise ValueError(f"{self.path}: not a layers-mock state file: {exc.details}") from None

    def commit(self, state: State, clock: Clock) -> None:
        """Dirty rows plus the meta row; with nothing dirty (a control-plane move of the clock
        or of the rules, marked ("meta", "")) only the meta row."""
        upserts: list[tuple[str, str, bytes]] = []
        deletes: list[tuple[str, str]] = []
        now_ms = clock.now_ms()
        for tbl, ident in state.dirty:
            if tbl == "meta":
                continue
            data = self._row(state, tbl, ident, now_ms)
            if data is None:
                deletes.append((tbl, ident))
            else:
                upserts.append((tbl, ident, data))
        self._write(upserts, deletes, orjson.dumps(meta(state, clock)), wipe=False)
        state.dirty.clear()

    def replace(self, state: State, clock: Clock) -> None:
        upserts = [
            (name, ident, _dump(name, record))
            for name in TABLES
            for ident, record in getattr(state, name).items()
        ]
        upserts += [
            ("idempotency", SEPARATOR.join(scope), orjson.dumps(idempotency_item(scope, rec)))
            for scope, rec in state.idempotency.items()
        ]
        self._write(upserts, [], orjson.dumps(meta(state, clock)), wipe=True)
        state.dirty.clear()

    def close(self) -> None:
        self._db.close()

    @staticmethod
    def _row(state: State, tbl: str, ident: str, now_ms: int) -> bytes | None:
        """The row as it is now, or None when the record is gone (expired, evicted, dropped)."""
        if tbl == "idempotency":
            scope: Scope = tuple(ident.split(SEPARATOR))  # type: ignore[assignment]
            rec = state.idempotency.lookup(scope, now_ms)
            return None if rec is None else orjson.dumps(idempotency_item(scope, rec))
        record = getattr(state, tbl).get(ident)
        return None if record is None else _dump(tbl, record)

    def _write(
        self,
        upserts: list[tuple[str, str, bytes]],
        deletes: list[tuple[str, str]],
        meta_row: bytes,
        *,
        wipe: bool,
    ) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            if wipe:
                db.execute("DELETE FROM records")
            db.executemany(DELETE, deletes)
            db.executemany(UPSERT, upserts)
            db.execute(META, (meta_row,))
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")


def _dump(tbl: str, record: Any) -> bytes:
    """orjson writes a dataclass as `row` would, without asdict's deep copy."""
    if tbl == "projects":
        return orjson.dumps(
            {f.name: getattr(record, f.name) for f in fields(record) if f.name != "influencer_ids"}
        )
    return orjson.dumps(record)


def _relink(document: dict[str, Any]) -> None:
    """Each project's influencer ids in creation order, from the influencers' positions."""
    linked: dict[str, list[tuple[int, str]]] = {}
    for inf in document["influencers"]:
        linked.setdefault(inf["project_id"], []).append((inf["position"], inf["influencer_id"]))
    for project in document["projects"]:
        project["influencer_ids"] = [i for _, i in sorted(linked.get(project["project_id"], []))]
