"""`--state sqlite:PATH`: every 2xx answer survives a SIGKILL (issue 4, State that survives)."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from served import Served, Servers
from starlette.testclient import TestClient
from support import FULL, PROJECT, SEED, auth

from layers_mock_server.core.clock import format_ms
from layers_mock_server.http.app import build_app
from layers_mock_server.settings import Settings, make_deps
from layers_mock_server.stores import make_store
from layers_mock_server.stores.sqlite import SqliteStore

START = 1_767_225_600_000


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state.sqlite"


def rows(path: Path) -> dict[str, dict[str, Any]]:
    """The file as another process sees it: committed transactions only."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        found: dict[str, dict[str, Any]] = {}
        for tbl, ident, data in conn.execute("SELECT tbl, id, data FROM records"):
            found.setdefault(tbl, {})[ident] = orjson.loads(data)
        return found


WORKERS = 8
PER_WORKER = 60
KILL_AFTER = 150  # answered creates before the SIGKILL; the rest are in flight or never sent


async def load(url: str, server: Served) -> dict[str, httpx.Response]:
    """Concurrent creates with Idempotency-Keys; SIGKILL the server while requests are in flight."""
    answered: dict[str, httpx.Response] = {}
    killed = asyncio.Event()

    async def worker(w: int) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            for n in range(PER_WORKER):
                if killed.is_set():
                    return
                key = f"w{w}-{n}"
                body = {"gender": ("male", "female", "non_binary")[n % 3], "prompt": key}
                try:
                    response = await client.post(
                        f"/v1/projects/{PROJECT}/influencers",
                        headers=auth(FULL, **{"Idempotency-Key": key}),
                        json=body,
                    )
                except httpx.TransportError:
                    return
                assert response.status_code == 202, response.text
                answered[key] = response
                if len(answered) == KILL_AFTER and not killed.is_set():
                    killed.set()
                    os.kill(server.proc.pid, signal.SIGKILL)

    await asyncio.wait_for(asyncio.gather(*(worker(w) for w in range(WORKERS))), 60)
    return answered


def test_every_2xx_survives_sigkill_and_jobs_carry_on(db: Path, servers: Servers) -> None:
    first = servers(db)
    with httpx.Client(base_url=first.url, timeout=10) as client:
        early = client.post(
            f"/v1/projects/{PROJECT}/influencers",
            headers=auth(FULL, **{"Idempotency-Key": "early"}),
        )
        assert early.status_code == 202
        plain = client.post(
            f"/v1/projects/{PROJECT}/influencers", headers=auth(FULL)
        )  # minted by counter
        assert client.post("/_mock/clock/advance", json={"seconds": 30}).status_code == 200
    answered = asyncio.run(load(first.url, first))
    first.kill()
    assert KILL_AFTER <= len(answered) < WORKERS * PER_WORKER  # killed in the middle of the load

    # Nothing half-written: each committed request left all of its rows or none of them.
    stored = rows(db)
    influencers, jobs, keyed = stored["influencers"], stored["jobs"], stored["idempotency"]
    assert {i["job_id"] for i in influencers.values()} == set(jobs)
    assert {j["influencer_id"] for j in jobs.values()} == set(influencers)
    positions = sorted(i["position"] for i in influencers.values() if i["project_id"] == PROJECT)
    assert positions == list(range(len(influencers)))  # the project's list has no hole
    for record in keyed.values():
        body = orjson.loads(record["body"])
        assert body["influencerId"] in influencers and body["jobId"] in jobs
    assert len(keyed) == len(influencers) - 1  # all but the one created without a key

    second = servers(db)
    with httpx.Client(base_url=second.url, timeout=10) as client:
        clock = client.get("/_mock/clock").json()
        assert clock["now"] == format_ms(START + 30_000)  # the clock resumes where it was
        for key, original in {**answered, "early": early}.items():
            body = {} if key == "early" else orjson.loads(original.request.content)
            replay = client.post(
                f"/v1/projects/{PROJECT}/influencers",
                headers=auth(FULL, **{"Idempotency-Key": key}),
                json=body,
            )
            assert (replay.status_code, replay.content) == (202, original.content), key
            assert replay.headers["location"] == original.headers["location"]
            job = client.get(original.headers["location"], headers=auth(FULL))
            assert job.status_code == 200
            inf = client.get(
                f"/v1/influencers/{original.json()['influencerId']}", headers=auth(FULL)
            )
            assert inf.status_code == 200
            assert inf.json()["gender"] == (body.get("gender") or "female")
        assert len(rows(db)["influencers"]) == len(influencers)  # replays created nothing new

        fresh = client.post(f"/v1/projects/{PROJECT}/influencers", headers=auth(FULL)).json()
        assert fresh["influencerId"] not in influencers  # the id counter went on, not back
        assert fresh["influencerId"] != plain.json()["influencerId"]

        early_job = client.get(early.headers["location"], headers=auth(FULL)).json()
        assert (early_job["status"], early_job["stage"]) == ("running", "rendering_portrait")
        assert client.post("/_mock/clock/advance", json={"seconds": 30}).status_code == 200
        assert (
            client.get(early.headers["location"], headers=auth(FULL)).json()["status"]
            == "completed"
        )
        a_loaded = next(iter(answered.values())).headers["location"]
        assert client.get(a_loaded, headers=auth(FULL)).json()["stage"] == "rendering_portrait"
        assert client.post("/_mock/clock/advance", json={"seconds": 30}).status_code == 200
        for original in answered.values():
            job = client.get(original.headers["location"], headers=auth(FULL)).json()
            assert job["status"] == "completed"
            assert job["finishedAt"] == format_ms(START + 90_000)
    second.kill()


def test_restart_in_process_restores_the_same_state(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    settings = Settings(clock="virtual", seed=SEED, state=f"sqlite:{path}", strict=True)
    with TestClient(build_app(make_deps(settings))) as client:
        created = client.post(f"/v1/projects/{PROJECT}/influencers", headers=auth(FULL)).json()
        client.patch(
            f"/v1/influencers/{created['influencerId']}", headers=auth(FULL), json={"prompt": "x"}
        )
        client.post(
            "/_mock/rules", json={"match": {"operationId": "whoami"}, "fault": "503", "count": 3}
        )
        client.post("/_mock/clock/advance", json={"seconds": 5})
        project = client.post(
            "/v1/projects",
            headers=auth(FULL, **{"Idempotency-Key": "p"}),
            json={"name": "Kept", "timezone": "UTC"},
        )
        client.post(f"/v1/jobs/{created['jobId']}/cancel", headers=auth(FULL))  # the last commit
        before = client.get("/_mock/state").json()
    with TestClient(build_app(make_deps(settings))) as client:
        after = client.get("/_mock/state").json()
        # request ids go on after the last block reserved before the restart, never back
        assert after.pop("requests")["req"] > before.pop("requests")["req"]
        assert after == before
        replay = client.post(
            "/v1/projects",
            headers=auth(FULL, **{"Idempotency-Key": "p"}),
            json={"name": "Kept", "timezone": "UTC"},
        )
        assert replay.content == project.content
        assert client.get("/v1/whoami", headers=auth(FULL)).status_code == 503  # rules kept
        assert (
            client.get(f"/v1/jobs/{created['jobId']}", headers=auth(FULL)).json()["status"]
            == "canceled"
        )
        client.post("/_mock/reset", json={})  # replace: the file holds the fixtures again
    with TestClient(build_app(make_deps(settings))) as client:
        assert client.get(f"/v1/jobs/{created['jobId']}", headers=auth(FULL)).status_code == 404
        assert client.get("/_mock/clock").json()["now"] == format_ms(START)


def test_only_dirty_rows_are_written_in_one_transaction(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    settings = Settings(clock="virtual", seed=SEED, state=f"sqlite:{path}")
    deps = make_deps(settings)
    store = deps.sim.store
    assert isinstance(store, SqliteStore)
    statements: list[str] = []
    store._db.set_trace_callback(statements.append)  # type: ignore[union-attr]
    with TestClient(build_app(deps)) as client:
        client.get("/v1/whoami", headers=auth(FULL))
        assert statements[-2].startswith("INSERT INTO records")  # a block of request ids
        statements.clear()
        client.get("/v1/whoami", headers=auth(FULL))
        assert statements == []  # a read changes nothing: no write, no wait
        client.post(
            f"/v1/projects/{PROJECT}/influencers", headers=auth(FULL, **{"Idempotency-Key": "a"})
        )
    assert statements[0] == "BEGIN IMMEDIATE" and statements[-1] == "COMMIT"
    assert (
        sum(s.startswith("INSERT INTO records") for s in statements) == 3
    )  # influencer, job, idempotency record: not the project, whose stored row did not change
    assert sum(s.startswith("INSERT INTO meta") for s in statements) == 1
    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_state_option_is_memory_or_sqlite(tmp_path: Path) -> None:
    assert not isinstance(make_store(None), SqliteStore)
    assert isinstance(make_store(f"sqlite:{tmp_path / 's.db'}"), SqliteStore)
    for bad in ("sqlite:", "postgres://x", "disk"):
        with pytest.raises(ValueError, match="--state"):
            make_store(bad)


def test_control_plane_moves_survive_a_restart(tmp_path: Path) -> None:
    settings = Settings(clock="virtual", seed=SEED, state=f"sqlite:{tmp_path / 's.sqlite'}")
    with TestClient(build_app(make_deps(settings))) as client:
        client.post("/_mock/rules", json={"match": {"operationId": "whoami"}, "fault": "500"})
        moved = client.post("/_mock/clock/advance", json={"seconds": 30}).json()["now"]
    with TestClient(build_app(make_deps(settings))) as client:
        assert client.get("/_mock/clock").json()["now"] == moved
        assert [r["fault"] for r in client.get("/_mock/rules").json()["items"]] == ["500"]
