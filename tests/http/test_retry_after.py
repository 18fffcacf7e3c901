"""Which 503s say when to retry (CONTRACT.md "Changes"; the coordinator's decision of
retry12): a `STORAGE_UNAVAILABLE` whose cause passes by itself carries `Retry-After: 1`, in
real seconds whatever the mock clock; one that waiting does not cure carries none. Here the
ones without: the mock at capacity, a full disk under SQLite, a killed key and an injected
fault (tests/redis/test_retry_after.py has Redis's, both kinds). The journal records what was
sent."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient
from support import FULL, KILLED, PROJECT, SEED, auth, make_mock

from layers_mock_server.core import simulator
from layers_mock_server.core.store import (
    OutcomeUnknown,
    Refused,
    StoreConflict,
    StoreFull,
    StoreUnavailable,
)
from layers_mock_server.http.app import build_app
from layers_mock_server.http.pipeline import REFUSALS, storage_error
from layers_mock_server.settings import Settings, make_deps

CREATE = f"/v1/projects/{PROJECT}/influencers"
JSON = {"content-type": "application/json"}


def journaled(client: TestClient, response: httpx.Response) -> dict[str, str]:
    """The response headers the journal recorded for this answer."""
    page = client.get("/_mock/requests", params={"limit": 100}).json()
    [entry] = [e for e in page["items"] if e["requestId"] == response.headers["x-request-id"]]
    headers: dict[str, str] = entry["response"]["headers"]
    return headers


def sqlite_client(tmp_path: Path) -> tuple[TestClient, sqlite3.Connection]:
    settings = Settings(
        clock="virtual",
        seed=SEED,
        state=f"sqlite:{tmp_path / 's.sqlite'}",
        strict=True,
        journal_bodies=True,
    )
    deps = make_deps(settings)
    db: sqlite3.Connection = deps.sim.store._db  # type: ignore[attr-defined]
    return TestClient(build_app(deps)), db


def test_a_full_disk_is_503_without_retry_after(tmp_path: Path) -> None:
    """The state file may not grow (as on a full disk): a create and a clock move are 503
    STORAGE_UNAVAILABLE with no Retry-After (the disk stays full until someone frees it), and
    the journal's copy of each 503 has none either."""
    client, db = sqlite_client(tmp_path)
    with client:
        assert client.post(CREATE, headers=auth(FULL), json={}).status_code == 202
        db.execute(f"PRAGMA max_page_count = {db.execute('PRAGMA page_count').fetchone()[0]}")
        for _ in range(200):  # creates fill what room the last pages had, then are refused
            refused = client.post(CREATE, headers=auth(FULL), json={"prompt": "x" * 60})
            if refused.status_code != 202:
                break
        moved = client.post("/_mock/clock/advance", headers=JSON, json={"seconds": 1})
        for response in (refused, moved):
            assert response.status_code == 503, response.text
            assert response.json()["error"]["code"] == "STORAGE_UNAVAILABLE"
            assert "retry-after" not in response.headers
        db.execute("PRAGMA max_page_count = 1073741823")
        assert "retry-after" not in journaled(client, refused)


def test_the_mock_at_capacity_is_503_without_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    """At capacity ("reset it to make room") a retry a second later is refused the same way."""
    monkeypatch.setattr(simulator, "MAX_INFLUENCERS", 1)
    mock = make_mock()
    with mock.client:
        mock.create(json={})
        refused = mock.create(json={})
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"]["details"] == {"reason": "capacity"}
        assert "retry-after" not in refused.headers


def test_a_killed_key_and_an_injected_503_carry_no_retry_after() -> None:
    """KILL_SWITCH, killed or injected (`Prefer: fault=503`, which imitates it): unchanged."""
    mock = make_mock()
    with mock.client:
        killed = mock.client.get("/v1/whoami", headers=auth(KILLED))
        injected = mock.client.get("/v1/whoami", headers=auth(FULL, Prefer="fault=503"))
        for response in (killed, injected):
            assert response.status_code == 503, response.text
            assert response.json()["error"]["code"] == "KILL_SWITCH"
            assert "retry-after" not in response.headers


PASSES = ("BUSY", "LOADING", "NOSCRIPT", "TRYAGAIN", "ASK", "MOVED")


@pytest.mark.parametrize(
    ("failure", "retry"),
    [
        (StoreUnavailable("redis://127.0.0.1:1/0: Connection refused"), "1"),
        (OutcomeUnknown("redis://127.0.0.1:1/0: Connection reset by peer"), "1"),
        (StoreConflict("redis://127.0.0.1:1/0: another worker wrote first (LATE)"), "1"),
        (StoreFull("redis://127.0.0.1:1/0 is full: OOM", "OOM"), None),
        (Refused("redis://127.0.0.1:1/0: ERR something new", "ERR"), None),
        *[(Refused(f"redis://127.0.0.1:1/0: {code} ...", code), "1") for code in PASSES],
        *[
            (Refused(f"redis://127.0.0.1:1/0: {code} ...", code), None)
            for code in sorted(set(REFUSALS) - set(PASSES))
        ],
    ],
    ids=repr,
)
def test_each_cause_of_a_503_says_whether_a_retry_a_second_later_may_work(
    failure: StoreUnavailable, retry: str | None
) -> None:
    """The decision, cause by cause: what passes by itself (unreachable, an answer lost, a
    lease lost to another worker, busy, loading, the scripts loaded again, a reshard) and what
    needs someone to act (full, unable to save, a replica, too few replicas, a damaged key,
    a refusal the mock does not know)."""
    error = storage_error(failure)
    assert (error.headers or {}).get("retry-after") == retry


def test_a_tenants_reset_refused_by_the_file_is_503_without_retry_after(tmp_path: Path) -> None:
    """A tenant's reset keeps its organization's journal mark in the state file first. When
    the file refuses that write (a disk that fills just then), the reset is a 503
    STORAGE_UNAVAILABLE with no Retry-After that reset nothing, never a 500."""
    settings = Settings(
        clock="virtual", seed=SEED, state=f"sqlite:{tmp_path / 's.sqlite'}", admin_token="op"
    )
    deps = make_deps(settings)
    db: sqlite3.Connection = deps.sim.store._db  # type: ignore[attr-defined]
    with TestClient(build_app(deps), raise_server_exceptions=False) as client:
        assert client.post(CREATE, headers=auth(FULL), json={}).status_code == 202
        db.execute(
            "CREATE TEMP TRIGGER full BEFORE INSERT ON journal_org_marks"
            " BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
        )
        refused = client.post("/_mock/reset", headers={**auth(FULL), **JSON}, json={})
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"]["code"] == "STORAGE_UNAVAILABLE"
        assert "retry-after" not in refused.headers
        db.execute("DROP TRIGGER full")
        listed = client.get(f"/v1/projects/{PROJECT}/influencers", headers=auth(FULL))
        assert listed.status_code == 200 and listed.json()["items"], listed.text
