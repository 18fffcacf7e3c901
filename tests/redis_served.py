"""`layers-mock serve` on a Redis sandbox in a subprocess, and what the tests read of the
sandbox's liveness marks (stores/redis_serving.py)."""

from __future__ import annotations

import contextlib
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
import redis
from redisd import RedisServer
from served import BANNER_TIMEOUT_S
from support import FULL, HTTP_TIMEOUT_S, PROJECT, SEED, auth

from layers_mock_server.cli import main

LIVENESS_S = 60  # a wait only a hung or broken server reaches


# `serve` with multiprocessing's default start method set first (its argv[1]), as Python 3.14
# does on Linux (forkserver) and macOS does (spawn).
WITH_START_METHOD = """import multiprocessing, sys
multiprocessing.set_start_method(sys.argv.pop(1), force=True)
from layers_mock_server.cli import main
sys.exit(main(sys.argv[1:]))"""


class Serve:
    """`layers-mock serve` in a subprocess, found through its banner."""

    def __init__(self, *args: str, start_method: str | None = None) -> None:
        command = [sys.executable, "-m", "layers_mock_server.cli", "serve", "--port", "0"]
        if start_method is not None:
            command[1:3] = ["-c", WITH_START_METHOD, start_method]
        command += ["--clock", "virtual", "--seed", str(SEED), *args]
        self.proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        first = self.lines.get(timeout=BANNER_TIMEOUT_S)
        assert first.startswith("layers-mock listening on http://127.0.0.1:"), first
        self.url = first.split()[-1]

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)


DEFAULT_FIXTURES = Path(__file__).resolve().parents[1] / "layers_mock_server/fixtures/default.yaml"
OTHER_FLAGS = ("--seed", "8", "--clock", "wall", "--speed", "60", "--progression", "poll")


def refused_with(url: str, capsys: pytest.CaptureFixture[str], *flags: str) -> str:
    """`serve` on the sandbox with `flags`: refused before it listens, exit code 2, one
    sentence on stderr (returned), nothing on stdout."""
    argv = ["serve", "--port", "0", "--state", url, "--clock", "virtual", "--seed", str(SEED)]
    assert main([*argv, *flags]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"layers-mock: --state {url}: the sandbox "), err
    assert "stop those workers" in err and "start this one with their flags" in err, err
    assert "use another sandbox (?sandbox=NAME) or database in --state" in err, err
    return err


def marks(url: str) -> dict[bytes, float]:
    """The sandbox's liveness marks: worker -> when it runs out (ms, Redis's clock)."""
    name = url.partition("sandbox=")[2] or "default"
    with contextlib.closing(redis.Redis.from_url(url.partition("?")[0])) as client:
        return dict(client.zrange(f"{{lm:{name}}}:workers", 0, -1, withscores=True))


def every_worker_serving(url: str, workers: int) -> None:
    """Until each of a serve's `workers` has opened its store (its liveness mark, named after
    the serve's: "serve worker"; the serve's own is "serve serve"). A serve answers as soon as
    one worker does: a test that kills Redis or a worker next must not race a slow start (a
    worker still opening as Redis goes waits for it, as a replacement does)."""
    deadline = time.monotonic() + LIVENESS_S
    while sum(len(set(m.split())) == 2 for m in marks(url)) < workers:
        assert time.monotonic() < deadline, f"not every worker opened its store: {marks(url)}"


def run_out(url: str) -> None:
    """Every liveness mark runs out now, as it does LIVE_MS after a killed worker's last
    beat: Redis drops it at the next start (the test moves its time, not the clock)."""
    name = url.partition("sandbox=")[2] or "default"
    with contextlib.closing(redis.Redis.from_url(url.partition("?")[0])) as client:
        for worker in marks(url):
            client.zadd(f"{{lm:{name}}}:workers", {worker: 0}, xx=True)


CREATE = f"/v1/projects/{PROJECT}/influencers"


def killed_mid_burst(redis_server: RedisServer, url: str) -> None:
    """kill -9 of `redis_server` while four clients create through two workers serving `url`
    (the server itself, plain or TLS; restarted on its port and directory, so from its AOF):
    every create answered 202, before or after the kill, is there once Redis restarts; a
    create answered 503 may be there too only if its commit was in flight at the kill (at most
    one a client). Anything else than 202 or 503 STORAGE_UNAVAILABLE fails."""
    server = Serve("--state", url + ("&" if "?" in url else "?") + "lease=300", "--workers", "2")
    acknowledged: list[str] = []
    refused = [0] * 4
    thirty, down, enough = threading.Event(), threading.Event(), threading.Event()
    restarted = threading.Event()
    after: list[str] = []
    unexpected: list[str] = []

    def send(me: int) -> None:
        with httpx.Client(base_url=server.url, timeout=HTTP_TIMEOUT_S) as client:
            while not enough.is_set():
                try:
                    answer = client.post(CREATE, headers=auth(FULL), json={})
                except httpx.HTTPError as exc:  # the workers stay up: none expected
                    unexpected.append(repr(exc))
                    continue
                if answer.status_code == 202:
                    acknowledged.append(answer.json()["influencerId"])
                    if restarted.is_set():
                        after.append(answer.json()["influencerId"])
                elif answer.status_code != 503 or "STORAGE_UNAVAILABLE" not in answer.text:
                    unexpected.append(f"{answer.status_code} {answer.text}")
                else:
                    refused[me] += 1
                    if all(refused):
                        down.set()  # every client has seen Redis gone
                if len(acknowledged) >= 30:
                    thirty.set()
                if len(after) >= 30:
                    enough.set()

    senders = [threading.Thread(target=send, args=(n,)) for n in range(4)]
    for sender in senders:
        sender.start()
    try:
        assert thirty.wait(timeout=60)
        redis_server.kill()  # mid-burst: four clients are sending
        assert down.wait(timeout=60)
        redis_server.start()  # the same port and directory: it loads its AOF
        restarted.set()
        assert enough.wait(timeout=60)
    finally:
        enough.set()
        for sender in senders:
            sender.join(timeout=30)
    assert unexpected == []
    kept = set(all_influencers(server.url))
    assert set(acknowledged) <= kept
    assert len(kept - set(acknowledged)) <= 4  # in flight at the kill, answered 503
    assert server.stop() == 0


def all_influencers(base: str) -> list[str]:
    found: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        page = httpx.get(
            base + CREATE, headers=auth(FULL), params=params, timeout=HTTP_TIMEOUT_S
        ).json()
        found += [i["influencerId"] for i in page["items"]]
        cursor = page["nextCursor"]
        if cursor is None:
            return found


EXITED = "(the serve's stderr closed)"


class Said:
    """The serve's stderr, line by line, as it comes (read on a thread of its own, so the
    pipe never fills)."""

    def __init__(self, server: Serve) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.all: list[str] = []
        assert server.proc.stderr is not None
        threading.Thread(target=self._pump, args=(server.proc.stderr,), daemon=True).start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.put(line)
        self.lines.put(EXITED)

    def wait_for(self, text: str) -> str:
        """The first line (from here on) holding `text`; fails when the serve exits first
        (its stderr closed), or after LIVENESS_S (a hung serve)."""
        deadline = time.monotonic() + LIVENESS_S
        while True:
            line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            if line is EXITED:
                self.lines.put(EXITED)  # (for the next wait)
                pytest.fail(f"the serve exited before saying {text!r}: {''.join(self.all)}")
            self.all.append(line)
            if text in line:
                return line

    def waiting_worker(self, *before: int) -> int:
        """The pid of the first worker, none of `before` (those alive before a kill), that
        says it waits for Redis: on a loaded machine a worker's first open can time out and
        wait too, and say so at its own start (seen once in a loaded suite)."""
        while True:
            line = self.wait_for("waits for Redis")
            worker = int(line.split("worker ", 1)[1].split(":", 1)[0])
            if worker not in before:
                return worker

    def rest(self) -> list[str]:
        """Every line the serve said, once it exited (its stderr closed)."""
        while (line := self.lines.get(timeout=LIVENESS_S)) is not EXITED:
            self.all.append(line)
        self.lines.put(EXITED)
        return self.all


def workers_of(pid: int) -> list[int]:
    """The worker processes of the serve (children of its main process)."""
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            children += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):  # a thread that ended
            continue
    return children


def created(base: str, n: int) -> list[str]:
    with httpx.Client(base_url=base, timeout=LIVENESS_S) as client:
        made = [client.post(CREATE, headers=auth(FULL), json={}) for _ in range(n)]
    assert {m.status_code for m in made} == {202}, [m.text for m in made]
    return [m.json()["influencerId"] for m in made]
