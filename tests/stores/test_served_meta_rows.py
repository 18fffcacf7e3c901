"""A big sandbox's rules, rate windows and organizations' clocks are rows of their own in a
durable store (core/persist.py), written when they change, not with every commit: a create
on a sandbox holding hundreds of rules wrote them all again (the meta row held every rule,
every key's windows and every organization's clock), ~0.5 MB a create at 4,000 rules. What a
client sees does not change: they survive a restart and reach every worker exactly, and a
store an earlier version wrote (all of them in its meta row) loads and is rewritten as rows.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from grouped import CREATE, Worker
from redisd import RedisServer
from support import ACME_ORG, FULL, GLOBEX, STANDARD, auth

from layers_mock_server.core.snapshot import ALL_TABLES
from layers_mock_server.core.store import Batch
from layers_mock_server.stores.sqlite import SqliteStore

BODY = {"gender": "female", "ageRange": "young_adult", "prompt": "barista energy"}
STORES = ("sqlite", "redis")


def _url(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if kind == "sqlite":
        return f"sqlite:{tmp_path / 'state.sqlite'}"
    server: RedisServer = request.getfixturevalue("redis_server")
    return server.sandbox()


def call(worker: Worker, method: str, path: str, key: str | None = None, body: Any = None) -> Any:
    status, found = worker.together((method, path, auth(key) if key else {}, body))[0]
    assert status < 300, (method, path, status, found)
    return found


class Written:
    """The batches a worker hands its store, as they go (SQLite's `write`, Redis's round
    trip of a group's commit)."""

    def __init__(self, worker: Worker, monkeypatch: pytest.MonkeyPatch) -> None:
        self.batches: list[Batch] = []
        if worker.store is None:
            write = SqliteStore.write

            def kept(store: SqliteStore, batch: Batch) -> None:
                self.batches.append(_listed(batch))
                write(store, self.batches[-1])

            monkeypatch.setattr(SqliteStore, "write", kept)
        else:
            send = worker.store.send_write

            def sent(batches: Any, keep: bool) -> Any:
                listed = [_listed(b) for b in batches]
                self.batches += listed
                return send(listed, keep)

            worker.store.send_write = sent

    def taken(self) -> list[Batch]:
        found, self.batches = self.batches, []
        return found


def _listed(batch: Batch) -> Batch:
    return Batch(
        list(batch.upserts), batch.deletes, batch.meta, batch.wipe, batch.unread, batch.reads
    )


def _weight(batches: list[Batch]) -> int:
    return sum(len(d) for b in batches for _, _, d in b.upserts) + sum(
        len(b.meta or b"") for b in batches
    )


@pytest.fixture(params=STORES)
def worker(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Worker]:
    made = Worker(_url(request.param, tmp_path, request))
    yield made
    made.close()


def test_a_create_on_a_sandbox_of_300_rules_writes_no_rule_and_no_more_bytes(
    worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    written = Written(worker, monkeypatch)
    call(worker, "POST", CREATE, FULL, BODY)
    lean = written.taken()
    for n in range(300):
        match = {"organizationId": ACME_ORG, "path": f"/v1/never/{n}/*"}
        call(worker, "POST", "/_mock/rules", None, {"match": match, "fault": "503"})
    call(
        worker, "POST", "/_mock/organizations/" + ACME_ORG + "/clock/advance", None, {"seconds": 60}
    )
    for key in (STANDARD, GLOBEX):
        call(worker, "GET", "/v1/whoami", key)
    written.taken()
    call(worker, "POST", CREATE, FULL, BODY)
    big = written.taken()
    tables = {table for b in big for table, _, _ in b.upserts}
    assert "rules" not in tables and "clocks" not in tables
    # as many bytes as on an empty sandbox, but for new counters (300 rules were ~30 KB)
    assert _weight(big) - _weight(lean) < 200, (_weight(lean), _weight(big))


def test_rules_windows_and_clocks_come_back_exactly_after_a_restart_and_on_another_worker(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    for kind in STORES:
        (tmp_path / kind).mkdir()
        url = _url(kind, tmp_path / kind, request)
        first = Worker(url)
        kept = []
        for n in range(5):
            match = {"organizationId": ACME_ORG, "path": f"/v1/never/{n}/*"}
            kept.append(call(first, "POST", "/_mock/rules", None, {"match": match, "fault": "503"}))
        counted = {"match": {"operationId": "whoami"}, "fault": "503", "count": 3}
        call(first, "POST", "/_mock/rules", None, counted)
        call(first, "DELETE", "/_mock/rules/" + kept[2]["ruleId"])
        status, _ = first.together(("GET", "/v1/whoami", auth(FULL), None))[0]
        assert status == 503  # the counted rule used once: 2 left
        path = f"/_mock/organizations/{ACME_ORG}/clock"
        call(first, "POST", path + "/advance", None, {"seconds": 3600})
        call(first, "POST", CREATE, STANDARD, BODY)
        before = _parts(call(first, "GET", "/_mock/state"))
        assert [r["remaining"] for r in before["rules"]["rules"]][-1] == 2
        assert ACME_ORG in before["clock"]["organizations"]
        if kind == "redis":  # another worker, which read everything, then follows batches
            second = Worker(url)
            assert _parts(call(second, "GET", "/_mock/state")) == before
            call(first, "POST", "/_mock/clock/advance", None, {"seconds": 3600})
            call(first, "POST", path + "/reset", None, None)  # its clock row goes
            call(first, "DELETE", "/_mock/rules/" + kept[0]["ruleId"])
            call(first, "POST", CREATE, FULL, BODY)
            after = _parts(call(first, "GET", "/_mock/state"))
            assert "organizations" not in after["clock"] and len(after["rules"]["rules"]) == 4
            assert _parts(call(second, "GET", "/_mock/state")) == after
            second.close()
            before = after
        first.close()
        again = Worker(url)
        assert _parts(call(again, "GET", "/_mock/state")) == before
        again.close()


def _parts(document: dict[str, Any]) -> dict[str, Any]:
    """An export's rules, rate windows (in any order) and clocks."""
    return {
        "rules": document["rules"],
        "rates": sorted(map(tuple, document["rates"])),
        "clock": document["clock"],
    }


def test_a_state_file_an_earlier_version_wrote_loads_and_its_first_commit_writes_rows(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.sqlite"
    first = Worker(f"sqlite:{path}")
    for n in range(3):
        match = {"organizationId": ACME_ORG, "path": f"/v1/never/{n}/*"}
        call(first, "POST", "/_mock/rules", None, {"match": match, "fault": "503"})
    call(first, "POST", f"/_mock/organizations/{ACME_ORG}/clock/advance", None, {"seconds": 60})
    call(first, "POST", CREATE, STANDARD, BODY)
    exported = call(first, "GET", "/_mock/state")
    first.close()
    # as the previous version kept it: everything but the records in the meta row
    legacy = {k: v for k, v in exported.items() if k not in ALL_TABLES}
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM records WHERE tbl IN ('rules', 'rates', 'clocks')")
        db.execute("UPDATE meta SET data = ? WHERE id = 1", (orjson.dumps(legacy),))
    db.close()
    upgraded = Worker(f"sqlite:{path}")
    assert _parts(call(upgraded, "GET", "/_mock/state")) == _parts(exported)
    call(upgraded, "POST", CREATE, FULL, BODY)  # its commit writes them as rows
    moved = _parts(call(upgraded, "GET", "/_mock/state"))
    upgraded.close()
    with sqlite3.connect(path) as db:
        tables = dict(db.execute("SELECT tbl, count(*) FROM records GROUP BY tbl").fetchall())
        meta = orjson.loads(db.execute("SELECT data FROM meta").fetchone()[0])
    db.close()
    assert (tables["rules"], tables["clocks"], meta["rules"]["rules"]) == (3, 1, [])
    again = Worker(f"sqlite:{path}")
    assert _parts(call(again, "GET", "/_mock/state")) == moved
    again.close()
