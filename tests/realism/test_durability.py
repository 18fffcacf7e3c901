"""Durability under faults (issue 9): kill -9 in the middle of an import and of a reset, two
servers on one file, a full disk, request ids across a kill. Each test starts real servers
(served.py); a SIGKILL is sent when the server is seen writing its WAL, not on a timer."""

from __future__ import annotations

import contextlib
import resource
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
from served import Servers, serve_command
from support import FULL, HTTP_TIMEOUT_S, PROJECT, SEED, auth

from layers_mock_server.core.clock import Clock
from layers_mock_server.core.fixtures import load_fixtures
from layers_mock_server.core.simulator import JobPlan, Simulator
from layers_mock_server.core.snapshot import export_chunks

CREATE = f"/v1/projects/{PROJECT}/influencers"
BIG = 10_000  # influencers in the big state: a write of ~20,000 rows, worth interrupting


def big_export(count: int = BIG) -> bytes:
    """An export of `count` influencers, made in-process exactly as a server would."""
    sim = Simulator(load_fixtures(), Clock("virtual"), SEED)
    project = sim.state.projects[PROJECT]
    for _ in range(count):
        sim.create_influencer(project, {"gender": "male"}, JobPlan())
    sim.state.dirty.clear()
    return b"".join(export_chunks(sim.state, sim.requests, sim.clock))


def influencer_ids(url: str) -> set[str]:
    document = httpx.get(f"{url}/_mock/state", timeout=60).json()
    return {i["influencer_id"] for i in document["influencers"]}


def kill_while_writing(served: Any, wal: Path, request: Callable[[], Any]) -> None:
    """Send `request` from a thread; SIGKILL the server as soon as its WAL changes (it is
    writing the transaction) or, if the answer came first, right after it."""
    before = wal.stat().st_mtime_ns
    thread = threading.Thread(target=_swallow(request), daemon=True)
    thread.start()
    while thread.is_alive() and wal.stat().st_mtime_ns == before:
        pass  # watching the file: the kill lands inside the write, not after a guessed delay
    served.kill()
    thread.join(timeout=30)


def _swallow(request: Callable[[], Any]) -> Callable[[], None]:
    def run() -> None:
        with contextlib.suppress(
            httpx.TransportError
        ):  # killed mid-request: no answer is the point
            request()

    return run


def test_kill_during_an_import_leaves_the_old_state_or_the_new_one_whole(
    tmp_path: Path, servers: Servers
) -> None:
    db = tmp_path / "state.sqlite"
    document = big_export()
    first = servers(db)
    made = httpx.post(
        first.url + CREATE, headers=auth(FULL), json={}, timeout=HTTP_TIMEOUT_S
    ).json()["influencerId"]
    old = influencer_ids(first.url)
    assert made in old
    new = {i["influencer_id"] for i in _rows(document, "influencers")}
    kill_while_writing(
        first,
        db.with_name(db.name + "-wal"),
        lambda: httpx.put(
            first.url + "/_mock/state",
            content=document,
            headers={"Content-Type": "application/json"},
            timeout=60,
        ),
    )
    second = servers(db)  # starting at all means the file passed every check of an import
    assert influencer_ids(second.url) in (old, new)


def test_kill_during_a_reset_leaves_the_old_state_or_the_fixtures(
    tmp_path: Path, servers: Servers
) -> None:
    db = tmp_path / "state.sqlite"
    first = servers(db)
    imported = httpx.put(
        first.url + "/_mock/state",
        content=big_export(),
        headers={"Content-Type": "application/json"},
        timeout=60,
    )
    assert imported.status_code == 200, imported.text
    old = influencer_ids(first.url)
    assert len(old) == BIG
    kill_while_writing(
        first,
        db.with_name(db.name + "-wal"),
        lambda: httpx.post(first.url + "/_mock/reset", json={}, timeout=60),
    )
    second = servers(db)
    assert influencer_ids(second.url) in (old, set())


def test_a_second_server_on_a_file_in_use_refuses_to_start(
    tmp_path: Path, servers: Servers
) -> None:
    db = tmp_path / "state.sqlite"
    first = servers(db)
    created = httpx.post(first.url + CREATE, headers=auth(FULL), json={}, timeout=HTTP_TIMEOUT_S)
    assert created.status_code == 202
    refused = subprocess.run(
        serve_command(db), check=False, capture_output=True, text=True, timeout=60
    )
    assert refused.returncode == 2
    assert "in use by another layers-mock server" in refused.stderr
    assert f"pid {first.proc.pid}" in refused.stderr
    assert "listening" not in refused.stdout
    first.kill()  # the kernel drops the lock with the process
    second = servers(db)
    job = httpx.get(
        second.url + created.headers["location"], headers=auth(FULL), timeout=HTTP_TIMEOUT_S
    )
    assert job.status_code == 200  # nothing the first server acknowledged was overwritten


def test_a_full_disk_is_503_and_loses_nothing_acknowledged(
    tmp_path: Path, servers: Servers
) -> None:
    db = tmp_path / "state.sqlite"
    limit = 512 * 1024  # RLIMIT_FSIZE: no file of the server may grow past this

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    first = servers(db, preexec=small_files)
    acknowledged: dict[str, str] = {}
    refused = None
    with httpx.Client(base_url=first.url, timeout=30) as client:
        for n in range(2_000):
            key = f"disk-{n}"
            body = {"prompt": "x" * 60}
            answer = client.post(CREATE, headers=auth(FULL, **{"Idempotency-Key": key}), json=body)
            if answer.status_code == 503:
                refused = (key, answer)
                break
            assert answer.status_code == 202, answer.text
            acknowledged[key] = answer.json()["influencerId"]
        assert refused is not None, "the file never filled up"
        error = refused[1].json()["error"]
        assert error["code"] == "STORAGE_UNAVAILABLE"
        assert "full" in error["details"]["reason"] or "large" in error["details"]["reason"]
        assert error["requestId"] == refused[1].headers["x-request-id"]
        assert "location" not in refused[1].headers  # nothing of the create is acknowledged
        assert client.get("/_mock/health").status_code == 200  # the server itself is fine
        resource.prlimit(
            first.proc.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY)
        )
        retried = client.post(
            CREATE, headers=auth(FULL, **{"Idempotency-Key": refused[0]}), json={"prompt": "x" * 60}
        )
        assert retried.status_code == 202  # the retry with the same key is acknowledged now
        acknowledged[refused[0]] = retried.json()["influencerId"]
    first.kill()
    second = servers(db)
    kept = influencer_ids(second.url)
    assert set(acknowledged.values()) <= kept
    assert len(acknowledged) > 10  # the limit left room for some creates before the refusal


def test_request_ids_are_never_sent_twice_across_kills_and_resets(
    tmp_path: Path, servers: Servers
) -> None:
    db = tmp_path / "state.sqlite"
    seen: list[str] = []
    for _ in range(2):
        served = servers(db)
        with httpx.Client(base_url=served.url, timeout=30) as client:
            for n in range(30):
                answer = client.get("/v1/whoami", headers=auth(FULL))
                seen.append(answer.headers["x-request-id"])
                if n == 10:
                    seen.append(client.post("/_mock/reset", json={}).headers["x-request-id"])
        served.kill()
    assert len(seen) == len(set(seen)) == 62


def _rows(document: bytes, table: str) -> list[dict[str, Any]]:
    return list(orjson.loads(document)[table])
