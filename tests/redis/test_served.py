"""`serve --workers N` and what survives a kill -9, with real processes (issue 12 items 1-2).

Durability promise tested here (README "A shared sandbox on Redis"): a 2xx answer leaves a
worker only after Redis answered the commit that holds its effect, so a killed worker loses
nothing acknowledged (whatever Redis's persistence); with `appendonly yes` and `appendfsync
always` (the setting the README recommends), Redis answers only after the AOF is fsynced, so
a killed redis-server loses nothing acknowledged either. "Acknowledged" is an answer the
client received, before the kill or after it (an answer in flight at the kill was answered
by Redis before it died).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import multiprocessing
import os
import queue
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from grouped import Worker
from redis_served import (
    DEFAULT_FIXTURES,
    LIVENESS_S,
    OTHER_FLAGS,
    Serve,
    all_influencers,
    killed_mid_burst,
    marks,
    refused_with,
    run_out,
)
from redisd import RedisServer, started
from starlette.testclient import TestClient
from support import FULL, HTTP_TIMEOUT_S, PROJECT, SEED, auth

from layers_mock_server.cli import main
from layers_mock_server.http.app import build_app
from layers_mock_server.settings import Settings, make_deps
from layers_mock_server.stores.redis import RedisStore
from layers_mock_server.stores.redis_scripts import CHANGES, PEEK

CREATE = f"/v1/projects/{PROJECT}/influencers"


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    """A redis-server of the test's own, as this test kills it: `appendfsync always`."""
    with started(fsync="always") as server:
        yield server


@pytest.mark.parametrize("state", ["memory", "sqlite:{tmp}/state.sqlite"])
def test_more_than_one_worker_needs_a_shared_store(
    state: str, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(["serve", "--port", "0", "--workers", "2", "--state", state.format(tmp=tmp_path)]) == 2
    )
    out, err = capsys.readouterr()
    assert err.count("\n") == 1, err
    assert "--workers 2 needs a state the workers share: --state redis://" in err
    assert out == ""
    assert not (tmp_path / "state.sqlite").exists()  # refused before anything was opened


def test_more_than_one_worker_needs_fork(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Where there is no fork (Windows) the workers could not inherit the listening socket:
    one clear sentence, before anything is opened (nothing listens on port 1)."""
    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    argv = ["serve", "--port", "0", "--workers", "2", "--state", "redis://127.0.0.1:1/0"]
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert err == (
        "layers-mock: --workers 2 needs a platform that can fork (its workers inherit the"
        " listening socket): on this one, serve one process per port with the same --state\n"
    )
    assert out == ""


@pytest.mark.parametrize("value", ["0", "-1", "65", "two", ""])
def test_a_number_of_workers_that_is_not_one_to_64_is_a_usage_error(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--workers", value])
    assert exited.value.code == 2
    assert "is not a number of workers: use a whole number, 1 to 64" in capsys.readouterr().err


def test_two_worker_processes_on_one_port_answer_as_one_mock(
    redis_server: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """`serve --workers 2` on Redis (the kernel spreads connections over both workers): twenty
    concurrent creates with one key make one influencer, then every conformance clause, with
    every identity it needs, passes; SIGTERM stops both workers."""
    server = Serve("--state", redis_server.sandbox(), "--workers", "2")
    try:
        headers = auth(FULL, **{"Idempotency-Key": "one-key"})

        async def burst() -> list[httpx.Response]:
            limits = httpx.Limits(max_keepalive_connections=0)  # a new connection each
            async with httpx.AsyncClient(
                base_url=server.url, limits=limits, timeout=HTTP_TIMEOUT_S
            ) as client:
                sent = [client.post(CREATE, headers=headers, json={}) for _ in range(20)]
                return list(await asyncio.gather(*sent))

        answers = asyncio.run(burst())
        assert {a.status_code for a in answers} == {202}
        assert len({a.content for a in answers}) == 1
        assert all_influencers(server.url) == [answers[0].json()["influencerId"]]
        status = main(conform_argv(server.url))
    finally:
        assert server.stop() == 0
    out = capsys.readouterr().out
    assert status == 0, out[-3000:]
    assert " 0 failed, 0 NOT CHECKED" in out
    assert "layers-mock stopped\n" in list(server.lines.queue)


@pytest.mark.parametrize("start_method", ["spawn", "forkserver"])
def test_workers_start_whatever_multiprocessing_s_default_start_method(
    start_method: str, redis_server: RedisServer
) -> None:
    """The workers inherit the socket `serve` bound, so they are forked even where spawn
    (macOS) or forkserver (Linux from Python 3.14) is the default: there a worker started
    otherwise had no socket and granian crash-looped until the server stopped."""
    server = Serve("--state", redis_server.sandbox(), "--workers", "2", start_method=start_method)
    try:
        created = httpx.post(server.url + CREATE, headers=auth(FULL), json={}, timeout=LIVENESS_S)
        assert created.status_code == 202, created.text
        job_id = created.json()["jobId"]
        job = httpx.get(f"{server.url}/v1/jobs/{job_id}", headers=auth(FULL), timeout=LIVENESS_S)
        assert job.status_code == 200, job.text
        assert job.json()["jobId"] == job_id
    finally:
        assert server.stop() == 0, server.proc.stderr.read()[-2000:] if server.proc.stderr else ""
    assert "layers-mock stopped\n" in list(server.lines.queue)


def conform_argv(url: str) -> list[str]:
    """`conform` against a served mock with every identity the clauses need."""
    keys = {
        "api-key": FULL,
        "project-id": PROJECT,
        "scopeless-key": "lp_test_acmenoinf_H3kV9sLq2MwP8dYt",
        "second-key": "lp_test_acmestd_Bq5Hs8Ty1Uw3Xz6C",
        "throttle-key": "lp_test_acmestd_Bq5Hs8Ty1Uw3Xz6C",
        "foreign-key": "lp_test_globexfull_M4nB7vC1xZ9lK6jH",
        "foreign-project-id": "prj_7b3e9d21-4a5c-4f6e-8d9b-0c1a2e3f4b5d",
        "killed-key": "lp_live_acmekilled_G7hJ3kL9zX5cV2bN",
        "org-admin-key": "lp_live_northadmin_T5yU8iO2pA4sD7fG",
        "child-organization-id": "org_c4d5e6f7-0a1b-4c2d-9e3f-5a6b7c8d9e0f",
        "wallet-key": "lp_live_bakery_Q9wE3rT6yU1iO4pA",
        "wallet-project-id": "prj_8e9f0a1b-2c3d-4e5f-9a6b-7c8d9e0f1a2b",
        "max-creates": "40",
        "max-projects": "20",
    }
    argv = ["conform", "--base-url", url, "--control-plane", "--fail-on-not-checked"]
    for flag, value in keys.items():
        argv += [f"--{flag}", value]
    return argv


def workers_of(pid: int) -> list[int]:
    """The worker processes `serve --workers` started (children of its main process)."""
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):  # a thread that ended
            children += [int(c) for c in (task / "children").read_text().split()]
    return children


def replaced(pid: int, victim: int, url: str) -> list[int]:
    """The workers once the main process has reaped `victim` and started another in its place.

    Granian does that on threads of its own when it sees the death, and nothing a client can
    ask waits for it: the other worker answered the burst's next 30 creates as soon as 30 ms
    after the kill, before the new worker was there (seen failing under load). So the process
    table is read until it shows the replacement, once after each answer of the server (a
    round trip, not a timer, between two reads); the liveness bound only a server that never
    replaces a worker reaches."""
    deadline = time.monotonic() + LIVENESS_S
    while victim in (found := workers_of(pid)) or len(found) != 2:
        assert time.monotonic() < deadline, f"worker {victim} was not replaced: {found}"
        assert httpx.get(f"{url}/_mock/health", timeout=LIVENESS_S).status_code == 200
    return found


def test_a_worker_killed_mid_burst_loses_nothing_it_acknowledged(
    redis_server: RedisServer,
) -> None:
    """kill -9 of one of two workers while four clients create: the other worker goes on
    (after the dead one's lease runs out), the dead one is replaced, and every create that
    was answered 202 is there."""
    url = redis_server.sandbox() + "&lease=300"  # a dead worker's lease is gone in 0.3 s
    server = Serve("--state", url, "--workers", "2")
    acknowledged: list[str] = []
    killed = threading.Event()
    after_kill: list[str] = []
    thirty, enough = threading.Event(), threading.Event()

    def send() -> None:
        with httpx.Client(base_url=server.url, timeout=HTTP_TIMEOUT_S) as client:
            while not enough.is_set():
                try:
                    answer = client.post(CREATE, headers=auth(FULL), json={})
                except httpx.HTTPError:
                    continue  # its worker died: the next request opens a new connection
                if answer.status_code == 202:
                    acknowledged.append(answer.json()["influencerId"])
                    if killed.is_set():
                        after_kill.append(answer.json()["influencerId"])
                if len(acknowledged) >= 30:
                    thirty.set()
                if len(after_kill) >= 30:
                    enough.set()

    senders = [threading.Thread(target=send) for _ in range(4)]
    for sender in senders:
        sender.start()
    try:
        assert thirty.wait(timeout=60)
        victim = workers_of(server.proc.pid)[0]
        os.kill(victim, signal.SIGKILL)  # mid-burst: four clients are sending
        killed.set()
        assert enough.wait(timeout=60)
    finally:
        enough.set()
        for sender in senders:
            sender.join(timeout=30)
    kept = all_influencers(server.url)
    assert set(acknowledged) <= set(kept)
    assert len(kept) - len(acknowledged) <= 4  # at most one unanswered create per client
    assert len(replaced(server.proc.pid, victim, server.url)) == 2
    assert server.stop() == 0


def test_redis_killed_and_restarted_keeps_every_acknowledged_write(
    private_redis: RedisServer,
) -> None:
    settings = Settings(state=private_redis.url, clock="virtual", seed=SEED, strict=True)
    with TestClient(build_app(make_deps(settings))) as client:
        made = [client.post(CREATE, headers=auth(FULL), json={}) for _ in range(10)]
        assert {m.status_code for m in made} == {202}
        private_redis.kill()  # kill -9: no shutdown save, only the AOF
        down = client.post(CREATE, headers=auth(FULL), json={})
        assert down.status_code == 503
        assert down.json()["error"]["code"] == "STORAGE_UNAVAILABLE"
        down = client.get(CREATE, headers=auth(FULL))
        assert down.status_code == 503
        assert client.get("/_mock/health").status_code == 200  # the worker itself is alive
        private_redis.start()
        listed = client.get(CREATE, headers=auth(FULL), params={"limit": 100}).json()["items"]
        assert {i["influencerId"] for i in listed} == {m.json()["influencerId"] for m in made}
        assert client.post(CREATE, headers=auth(FULL), json={}).status_code == 202
    with TestClient(build_app(make_deps(settings))) as fresh:  # a worker started afterwards
        listed = fresh.get(CREATE, headers=auth(FULL), params={"limit": 100}).json()["items"]
        assert len(listed) == 11


def test_redis_killed_mid_burst_keeps_every_create_it_acknowledged(
    private_redis: RedisServer,
) -> None:
    """kill -9 of redis-server while four clients create through two workers (group commits
    of several requests each): every create answered 202, before or after the kill, is there
    once Redis restarts from its AOF; a create answered 503 may be there too only if its
    commit was in flight at the kill (at most one a client)."""
    killed_mid_burst(private_redis, private_redis.url)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_every_worker_follows_the_sandbox_before_any_request_reaches_it(workers: str) -> None:
    """`serve` starts each worker following what the others commit (a catch-up, without the
    lease, every FOLLOW_S) as it starts, not at its first request: a worker no connection
    reached while the others wrote would read the whole sandbox on its first request (2.7 s
    after 49,000 creates). Redis's MONITOR shows each worker's catch-ups (CHANGES without the
    lease, or PEEK: redis_scripts.py), no request sent."""
    changes = hashlib.sha1(CHANGES.encode()).hexdigest()
    peek = hashlib.sha1(PEEK.encode()).hexdigest()  # (a read's catch-up with nothing to count)
    with (
        started() as redis_server,
        socket.create_connection(("127.0.0.1", redis_server.port), LIVENESS_S) as monitor,
    ):
        monitor.sendall(b"MONITOR\r\n")
        lines = monitor.makefile("r", encoding="utf-8", errors="replace")
        assert lines.readline() == "+OK\n"
        server = Serve("--state", redis_server.sandbox(), "--workers", workers)
        try:
            following: set[str] = set()  # the connections that sent one
            deadline = time.monotonic() + LIVENESS_S
            while len(following) < int(workers):  # (a socket timeout bounds each line)
                assert time.monotonic() < deadline, f"only {following} follow"
                head, _, command = lines.readline().partition("] ")
                argv = shlex.split(command)
                token = argv[4 + int(argv[2])] if argv[:2] == ["EVALSHA", changes] else None
                if argv[:2] == ["EVALSHA", peek]:
                    token = ""  # (PEEK never takes the lease)
                if token == "":  # a catch-up without the lease: no request asked for it
                    following.add(head.rpartition(" ")[2])
        finally:
            assert server.stop() == 0


# -- one sandbox, one set of settings (stores/redis_serving.py) --------------------------------


def test_a_serve_with_other_settings_is_refused_while_the_sandbox_is_served(
    redis_server: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """A second `serve` on a live sandbox with another seed, clock, speed or progression is
    refused in one sentence naming each setting, the value in use and the one asked for;
    `--workers 2` does not refuse its own workers; once they stopped (SIGTERM), the new
    settings are taken: the sandbox's clock is then theirs."""
    url = redis_server.sandbox()
    server = Serve("--state", url, "--workers", "2")
    try:
        created = httpx.post(server.url + CREATE, headers=auth(FULL), json={}, timeout=LIVENESS_S)
        assert created.status_code == 202, created.text
        deadline = time.monotonic() + LIVENESS_S
        while len(marks(url)) < 3:  # the main process's, and each worker's: none refused
            assert time.monotonic() < deadline, marks(url)
        err = refused_with(url, capsys, *OTHER_FLAGS)
        assert "is served by " in err and " live workers with other settings: " in err, err
        for said in (
            f"--seed {SEED} (asked for 8)",
            "--clock virtual (asked for wall)",
            "--speed 1 (asked for 60)",
            "--progression time (asked for poll)",
        ):
            assert said in err, err
        assert "--fixtures" not in err  # the same fixtures
        clock = httpx.get(server.url + "/_mock/clock", timeout=LIVENESS_S).json()
        assert clock["mode"] == "virtual" and clock["progression"] == "time"  # unmoved
    finally:
        assert server.stop() == 0
    assert marks(url) == {}  # each worker, and the main process, removed its mark
    taking = Serve("--state", url, *OTHER_FLAGS)
    try:
        clock = httpx.get(taking.url + "/_mock/clock", timeout=LIVENESS_S).json()
        assert (clock["mode"], clock["speed"], clock["progression"]) == ("wall", 60, "poll")
        listed = httpx.get(taking.url + CREATE, headers=auth(FULL), timeout=LIVENESS_S).json()
        assert [i["influencerId"] for i in listed["items"]] == [created.json()["influencerId"]]
    finally:
        assert taking.stop() == 0


def test_a_killed_serve_holds_its_settings_until_its_mark_runs_out(
    redis_server: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """kill -9 leaves the worker's liveness mark: another `serve` with other settings is
    refused (saying how long the mark may last) until the mark runs out, then starts."""
    url = redis_server.sandbox()
    server = Serve("--state", url)
    server.proc.kill()
    server.proc.wait(timeout=LIVENESS_S)
    err = refused_with(url, capsys, "--seed", "8")
    assert " 1 live worker with other settings: --seed 7 (asked for 8); " in err, err
    assert "one killed with kill -9 counts as live until its mark runs out, within " in err
    run_out(url)
    taking = Serve("--state", url, "--seed", "8")
    try:
        assert httpx.get(taking.url + "/_mock/ready", timeout=LIVENESS_S).status_code == 200
    finally:
        assert taking.stop() == 0


def test_the_same_settings_are_the_same_values_and_fixtures_the_same_content(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """Speed 1 is speed 1.0, and a copy of the fixtures elsewhere is the same fixtures: both
    join the sandbox. An edited copy at that path is not: refused, naming both sources."""
    url = redis_server.sandbox()
    live = make_deps(Settings(state=url, clock="virtual", seed=SEED))
    copy = tmp_path / "copy.yaml"
    copy.write_text(DEFAULT_FIXTURES.read_text())
    try:
        for same in ({"speed": 1}, {"fixtures": copy}):
            joined = make_deps(Settings(state=url, clock="virtual", seed=SEED, **same))
            joined.sim.store.close()  # type: ignore[union-attr]
        copy.write_text(DEFAULT_FIXTURES.read_text().replace("Acme Growth", "Acme Shrink"))
        with pytest.raises(ValueError, match="with other settings: --fixtures ") as refused:
            make_deps(Settings(state=url, clock="virtual", seed=SEED, fixtures=copy))
        said = str(refused.value)
        assert "--fixtures default (shipped with layers-mock) (content " in said, said
        assert f"(asked for {copy} (content " in said, said
        assert "--seed" not in said and "--clock" not in said, said
    finally:
        live.sim.store.close()  # type: ignore[union-attr]
    assert marks(url) == {}


def test_a_serving_worker_renews_its_mark_from_its_idle_timer(redis_server: RedisServer) -> None:
    """A worker that serves keeps its mark live (else, LIVE_MS after it started, any other
    settings would be taken over it): its follow timer renews it every BEAT_S, busy or idle."""
    url = redis_server.sandbox()
    worker = Worker(url)
    try:
        (ident,) = marks(url)
        run_out(url)
        gate = worker.deps.shared
        gate.beaten = -math.inf  # BEAT_S since the last beat
        beats: list[Any] = []
        beat = worker.store.beat
        worker.store.beat = lambda: beats.append(beat()) or beats[-1]

        async def follow() -> None:
            gate._follow(-1)
            assert gate.follower is not None
            gate.follower.cancel()
            assert await beats[0] == b"OK"

        worker.loop.run_until_complete(follow())
        with contextlib.closing(redis.Redis.from_url(redis_server.url)) as client:
            seconds, _ = client.time()
        (renewed,) = marks(url).items()
        assert renewed[0] == ident and renewed[1] > seconds * 1000  # live again, for LIVE_MS
    finally:
        worker.close()


# `serve` with every fork of the main process said on stderr with the threads it then had.
COUNTING_FORKS = """import os, sys, threading
fork = os.fork
def counted():
    print(f"fork with {threading.active_count()} thread(s)", file=sys.stderr, flush=True)
    return fork()
os.fork = counted
from layers_mock_server.cli import main
sys.exit(main(sys.argv[1:]))"""


def test_the_workers_are_forked_before_any_thread_starts(redis_server: RedisServer) -> None:
    """Python 3.12 warns (DeprecationWarning) that a fork in a process with threads may
    deadlock the child: granian starts a thread per worker (waiting for its exit) right after
    forking it, so the second worker was forked beside the first one's thread. Every worker
    is forked first now; the threads start after."""
    command = [sys.executable, "-c", COUNTING_FORKS, "serve", "--port", "0", "--workers", "3"]
    command += ["--state", redis_server.sandbox()]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    forks: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            forks.put(line)

    threading.Thread(target=pump, daemon=True).start()
    try:
        said = [forks.get(timeout=LIVENESS_S) for _ in range(3)]
    finally:
        deadline = time.monotonic() + LIVENESS_S
        while len(children := workers_of(proc.pid)) < 3 and proc.poll() is None:
            assert time.monotonic() < deadline, children  # each fork returns in the parent
        # kill -9, each process: a SIGTERM while a worker is still starting waits for granian
        # to kill it (10 s); the sandbox is the test's own
        for pid in [*children, proc.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=LIVENESS_S)
    assert said == ["fork with 1 thread(s)\n"] * 3


def test_serve_workers_removes_the_marks_of_workers_killed_before_it_stopped(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`serve --workers N` stopping (its workers stopped, or killed by granian when one does
    not stop within 10 s of SIGTERM, as one still starting) removes every mark of its own
    workers: a restart with new flags is not refused for a worker that is gone for sure."""
    monkeypatch.setattr(RedisStore, "leader", "")
    url = redis_server.sandbox()
    settings = Settings(state=url, clock="virtual", seed=SEED)
    main_deps = make_deps(settings)
    leader: Any = main_deps.sim.store
    leader.lead()  # as `serve` does before forking
    worker = make_deps(settings)  # as a forked worker does (never stopped: killed)
    monkeypatch.setattr(RedisStore, "leader", "")
    other = make_deps(settings)  # another serve's
    assert len(marks(url)) == 3
    leader.close(leave=False)
    leader.leave()
    assert list(marks(url)) == [other.sim.store.member.encode()]  # type: ignore[union-attr]
    for deps in (worker, other):
        deps.sim.store.close()  # type: ignore[union-attr]


@pytest.mark.parametrize("failing", ["port in use", "chaos file"])
def test_a_serve_that_cannot_start_leaves_no_liveness_mark(
    redis_server: RedisServer, capsys: pytest.CaptureFixture[str], tmp_path: Path, failing: str
) -> None:
    """A `serve` refused after it marked itself live (its port taken, its --chaos file not
    YAML) exits 2 saying why and takes its mark with it: a serve with other flags is then not
    refused for 15 s in the name of a live worker that never served."""
    url = redis_server.sandbox()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1]) if failing == "port in use" else "0"
        chaos = tmp_path / "chaos.yaml"
        chaos.write_text("bad: [" if failing == "chaos file" else "profile: {}\n")
        argv = ["serve", "--port", port, "--state", url, "--clock", "virtual"]
        assert main([*argv, *(["--chaos", str(chaos)] if failing == "chaos file" else [])]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("layers-mock: "), err
    assert marks(url) == {}
    taking = Serve("--state", url, "--progression", "poll")  # taken: no worker is live
    try:
        clock = httpx.get(taking.url + "/_mock/clock", timeout=LIVENESS_S).json()
        assert clock["progression"] == "poll"
    finally:
        assert taking.stop() == 0


# `serve` that receives SIGTERM as it prints its banner: after its mark was set, before the
# server (and its own handlers) ran.
TERMINATED_IN_START_UP = """import os, signal, sys
from layers_mock_server import cli
def banner(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGTERM)
    return "unreached"
cli.banner = banner
sys.exit(cli.main(sys.argv[1:]))"""


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_serve_stopped_while_it_starts_leaves_no_liveness_mark(
    redis_server: RedisServer, workers: str
) -> None:
    """SIGTERM between the liveness mark and the server's own signal handlers (a service
    manager stopping a serve that is still starting) stops it as a SIGTERM later does (exit
    0, "stopped"), not where it stands: its mark goes with it."""
    url = redis_server.sandbox()
    command = [sys.executable, "-c", TERMINATED_IN_START_UP, "serve", "--port", "0"]
    command += ["--state", url, "--workers", workers]
    done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done
    assert done.stdout == "layers-mock stopped\n" and done.stderr == "", done
    assert marks(url) == {}
