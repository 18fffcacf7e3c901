"""PUT /_mock/state at size and under failure (issue 9, D4 and D10).

An export bigger than the 1 MiB body limit could not be imported; an import (or a reset) that
the SQLite file could not take left memory and file different. An import is read as it
arrives, checked whole, and applied whole or not at all, in memory and on disk.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import orjson
from starlette.testclient import TestClient
from support import FULL, PROJECT, SEED, Mock, auth, bulk, make_mock

from layers_mock_server.core.clock import Clock
from layers_mock_server.core.fixtures import load_fixtures
from layers_mock_server.core.simulator import Simulator
from layers_mock_server.core.store import Batch, StoreUnavailable
from layers_mock_server.deps import Deps
from layers_mock_server.http.app import build_app
from layers_mock_server.settings import Settings, make_deps
from layers_mock_server.statecheck import state_check

JSON = {"Content-Type": "application/json"}
ORG = "org_3f6c2a8e-1b7d-4c59-9e0a-5d4b8c7f1a23"


def test_an_export_bigger_than_a_megabyte_imports_and_answers_alike(mock: Mock) -> None:
    path = f"/v1/projects/{PROJECT}/influencers"
    creates = [
        ("POST", path, auth(**{"Idempotency-Key": f"k{n}"}), {"prompt": f"p{n}"})
        for n in range(800)
    ]
    assert {r.status_code for r in bulk(mock.client.app, creates)} == {202}

    exported = mock.client.get("/_mock/state")
    assert len(exported.content) > 1024 * 1024
    fresh = make_mock(seed=SEED + 1)
    with fresh.client:
        imported = fresh.client.put("/_mock/state", content=exported.content, headers=JSON)
        assert imported.status_code == 200, imported.text
        again = fresh.create(json={"prompt": "p799"}, headers={"Idempotency-Key": "k799"})
        original = mock.create(json={"prompt": "p799"}, headers={"Idempotency-Key": "k799"})
        assert again.content == original.content
        assert fresh.client.get("/_mock/state").content == mock.client.get("/_mock/state").content


def test_a_document_in_another_layout_is_read_whole(mock: Mock) -> None:
    mock.create(json={}, headers={"Idempotency-Key": "one"})
    document = mock.client.get("/_mock/state").json()
    compact = orjson.dumps(document, option=orjson.OPT_INDENT_2)  # what a jq pass might leave
    fresh = make_mock(seed=SEED + 1)
    with fresh.client:
        assert fresh.client.put("/_mock/state", content=compact, headers=JSON).status_code == 200
        assert fresh.client.get("/_mock/state").json() == mock.client.get("/_mock/state").json()


def test_a_one_line_document_is_read_whole_wherever_its_commas_fall(mock: Mock) -> None:
    """A valid export squeezed onto one line (`jq -c`, `json.dumps`) longer than the 64 KiB the
    reader looks at to tell the layout was read as an export's lines when that window happened
    to end on a comma: 422 "ends before the closing `]}` of its last table", for a document
    that is whole and valid (and accepted when the comma fell a byte elsewhere)."""
    path = f"/v1/projects/{PROJECT}/influencers"
    creates = [("POST", path, auth(**{"Idempotency-Key": f"k{n}"}), {}) for n in range(120)]
    assert {r.status_code for r in bulk(mock.client.app, creates)} == {202}
    document = mock.client.get("/_mock/state").json()
    one_line = orjson.dumps(document)
    assert b"\n" not in one_line and len(one_line) > 2 * 64 * 1024
    comma = one_line.rindex(b",", 0, 64 * 1024)  # pad the first organization's name so that
    document["organizations"][0]["name"] += "x" * (64 * 1024 - 1 - comma)  # the window ends on it
    one_line = orjson.dumps(document)
    assert one_line[64 * 1024 - 1 : 64 * 1024] == b","
    fresh = make_mock(seed=SEED + 1)
    with fresh.client:
        imported = fresh.client.put("/_mock/state", content=one_line, headers=JSON)
        assert imported.status_code == 200, imported.text
        kept = fresh.client.get("/_mock/state").json()
        assert kept["organizations"] == document["organizations"]
        assert len(kept["influencers"]) == len(document["influencers"]) == 120


def test_a_broken_line_of_an_export_is_named_and_changes_nothing(mock: Mock) -> None:
    created = mock.create(json={}).json()
    lines = mock.client.get("/_mock/state").content.split(b"\n")
    row = next(i for i, line in enumerate(lines) if b'"influencer_id"' in line)
    lines[row] = lines[row][:-5]
    answer = mock.client.put("/_mock/state", content=b"\n".join(lines), headers=JSON)
    assert answer.status_code == 422
    assert f"line {row + 1}" in answer.json()["error"]["details"]["formErrors"][0]
    assert mock.job(created["jobId"]).status_code == 200


def full(deps: object) -> None:
    """The file may not grow any more (as on a full disk)."""
    db: sqlite3.Connection = deps.sim.store._db  # type: ignore[attr-defined]
    db.execute(f"PRAGMA max_page_count = {db.execute('PRAGMA page_count').fetchone()[0]}")


def test_an_import_the_file_cannot_take_changes_nothing(tmp_path: Path) -> None:
    settings = Settings(
        clock="virtual", seed=SEED, state=f"sqlite:{tmp_path / 's.sqlite'}", strict=True
    )
    source = make_mock()
    path = f"/v1/projects/{PROJECT}/influencers"
    bulk(source.client.app, [("POST", path, auth(), {"prompt": f"p{n}"}) for n in range(300)])
    with source.client:
        document = source.client.get("/_mock/state").content
    deps = make_deps(settings)
    with TestClient(build_app(deps)) as client:
        kept = client.post(f"/v1/projects/{PROJECT}/influencers", headers=auth(FULL), json={})
        before = client.get("/_mock/state").json()
        full(deps)
        answer = client.put("/_mock/state", content=document, headers=JSON)
        assert answer.status_code == 503, answer.text
        error = answer.json()["error"]
        assert error["code"] == "STORAGE_UNAVAILABLE" and "full" in error["details"]["reason"]
        after = client.get("/_mock/state").json()
        assert after.pop("requests")["control-req"] > before.pop("requests")["control-req"]
        assert after == before  # memory kept the state it had
        for _ in range(200):  # creates fill what room the last pages had, then are refused
            refused = client.post(f"/v1/projects/{PROJECT}/influencers", headers=auth(FULL))
            if refused.status_code != 202:
                break
        assert refused.status_code == 503 and "location" not in refused.headers
    with TestClient(build_app(make_deps(settings))) as client:  # and so did the file
        job = client.get(kept.headers["location"], headers=auth(FULL))
        assert job.status_code == 200
        listing = client.get(
            f"/v1/projects/{PROJECT}/influencers?limit=100", headers=auth(FULL)
        ).json()
        assert kept.json()["influencerId"] in {i["influencerId"] for i in listing["items"]}
        assert len(listing["items"]) < 100  # a handful of creates, not the 300 of the import


class Refusing:
    """A durable store that refuses every write once armed (a disk that just filled up)."""

    durable = True

    def __init__(self) -> None:
        self.armed = False

    def open(self) -> None:
        return None

    def write(self, batch: Batch) -> None:
        if self.armed:
            raise StoreUnavailable("cannot write: the disk is full")

    def close(self) -> None:
        return None


def test_a_reset_the_store_refuses_keeps_the_state() -> None:
    store = Refusing()
    sim = Simulator(load_fixtures(), Clock("virtual"), SEED, store)
    sim.start(state_check())
    client = TestClient(build_app(Deps(sim=sim, strict=True)))
    created = client.post(f"/v1/projects/{PROJECT}/influencers", headers=auth(FULL), json={})
    store.armed = True
    for answer in (
        client.post("/_mock/reset", json={}),
        client.post("/_mock/reset", json={"organizationId": ORG}),
    ):
        assert answer.status_code == 503
        assert answer.json()["error"]["details"]["reason"] == "cannot write: the disk is full"
    store.armed = False
    assert client.get(created.headers["location"], headers=auth(FULL)).status_code == 200
