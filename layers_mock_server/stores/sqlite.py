"""The state in an SQLite file (`--state sqlite:PATH`): a 2xx answer survives a killed server.

One transaction per batch, so the file always holds the state after some whole request (or
reset, or import), never part of one. WAL with `synchronous=NORMAL` makes a commit durable
once it returns against a killed process (the WAL is in the OS's hands); it does not claim to
survive a power cut, which would need `FULL` and an fsync per request.

The file holds a table `records` (a row each: records, idempotency records, rules, rate
windows, organizations' clocks, request-number ceilings: core/persist.py) and the meta row
(`meta`: seed, counters, clock, a few hundred bytes however many rules and keys there are).

One file, one server. Two servers on one file would mint the same ids and overwrite each
other's rows, so `open` takes an exclusive lock (flock on `PATH.lock`, which the kernel
releases when the process dies, kill -9 included) and a second server refuses to start.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from ..core.store import Batch, Row, StoreBroken, Stored, StoreInUse

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
CREATE TABLE IF NOT EXISTS journal_marks (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    n    INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS journal_org_marks (
    org    TEXT NOT NULL,
    n      INTEGER NOT NULL,
    server INTEGER NOT NULL,
    PRIMARY KEY (org, n)
);
"""
# The journal's marks handed out (core/journal.py): not part of the state (a reset, an import
# or a wipe leaves them), so that a mark held from before a restart still names its reset.
MARKS = (
    "INSERT INTO journal_marks (id, n) VALUES (1, ?) "
    "ON CONFLICT (id) DO UPDATE SET n = max(n, excluded.n)"
)
# A tenant's marks (its n-th reset was the server's mark `server`), kept as the server's are.
ORG_MARKS = "INSERT OR REPLACE INTO journal_org_marks (org, n, server) VALUES (?, ?, ?)"
# Upsert keeps the rowid, so reading in rowid order gives the order rows were first written.
UPSERT = (
    "INSERT INTO records (tbl, id, data) VALUES (?, ?, ?) "
    "ON CONFLICT (tbl, id) DO UPDATE SET data = excluded.data"
)
DELETE = "DELETE FROM records WHERE tbl = ? AND id = ?"
META = (
    "INSERT INTO meta (id, data) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET data = excluded.data"
)


class SqliteStore:
    """A Store on one SQLite file, used from the server's single event-loop thread."""

    durable = True
    shared = False

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._lock: IO[str] | None = None
        self.marks = 0  # the journal's marks handed out so far, read by `open`
        self.org_marks: dict[str, list[int]] = {}  # and each organization's, in order

    def open(self) -> Stored | None:
        self._claim()
        try:
            # isolation_level=None: transactions are begun and ended here, explicitly.
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(SCHEMA)
            found = db.execute("SELECT data FROM meta WHERE id = 1").fetchone()
            marks = db.execute("SELECT n FROM journal_marks WHERE id = 1").fetchone()
            org_marks = db.execute(
                "SELECT org, server FROM journal_org_marks ORDER BY org, n"
            ).fetchall()
        except sqlite3.Error as exc:
            self.close()
            raise ValueError(f"cannot use {self.path} as a state file: {exc}") from None
        self._db = db
        self.marks = int(marks[0]) if marks is not None else 0
        self.org_marks = {}
        for org, server in org_marks:
            self.org_marks.setdefault(str(org), []).append(int(server))
        return None if found is None else Stored(bytes(found[0]), self._rows())

    def _claim(self) -> None:
        lock_path = self.path.with_name(self.path.name + ".lock")
        try:
            handle = lock_path.open("a+", encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"cannot create the lock file {lock_path}: {exc}") from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise StoreInUse(
                f"in use by another layers-mock server ({holder}); one state file serves one "
                "server at a time: stop that server or choose another file"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}\n")
        handle.flush()
        self._lock = handle

    def _rows(self) -> Iterator[Row]:
        assert self._db is not None
        for tbl, ident, data in self._db.execute(
            "SELECT tbl, id, data FROM records ORDER BY rowid"
        ):
            yield tbl, ident, bytes(data)

    def write(self, batch: Batch) -> None:
        db = self._db
        if db is None:
            raise StoreBroken(f"{self.path} is not open")
        try:
            db.execute("BEGIN IMMEDIATE")
            if batch.wipe:
                db.execute("DELETE FROM records")
            db.executemany(DELETE, batch.deletes)
            db.executemany(UPSERT, batch.upserts)
            if batch.meta is not None:
                db.execute(META, (batch.meta,))
            db.execute("COMMIT")
        except BaseException as exc:
            if db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise StoreBroken(f"cannot write {self.path}: {exc}") from None
            raise

    def keep_mark(self, mark: int) -> None:
        """A journal mark, written before the reset it names is answered."""
        db = self._db
        if db is None:
            raise StoreBroken(f"{self.path} is not open")
        try:
            db.execute(MARKS, (mark,))  # (one statement: its own transaction)
        except sqlite3.Error as exc:
            raise StoreBroken(f"cannot write {self.path}: {exc}") from None
        self.marks = mark

    def keep_org_mark(self, org: str, mark: int, server: int) -> None:
        """A tenant's journal mark (and the server's it stands for), as `keep_mark`."""
        db = self._db
        if db is None:
            raise StoreBroken(f"{self.path} is not open")
        try:
            db.execute(ORG_MARKS, (org, mark, server))
        except sqlite3.Error as exc:
            raise StoreBroken(f"cannot write {self.path}: {exc}") from None

    def close(self) -> None:
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None
        if self._lock is not None:
            self._lock.close()  # releases the flock
            self._lock = None
