"""`serve --workers 2` rides out a Redis outage in which a worker dies (respawn13).

Granian replaces a worker that dies, and takes a replacement that exits within 5.5 s of its
start for a crash loop: it then stops the whole serve, its healthy workers with it. A worker
started while Redis cannot be reached used to exit at once (its store would not open), so a
worker killed during an outage took the serve down (outside13, "found and left"). It now
waits for Redis, takes no connection meanwhile (the other workers answer, 503 with
Retry-After while Redis is down), and serves once Redis is back.

Real processes against a real redis-server of the test's own (`appendfsync always`: killed and
started again on its AOF). What a test waits for is a line the serve prints or an answer,
never a timer; LIVENESS_S bounds only a serve that is hung or gone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from redis_served import LIVENESS_S, Said, Serve, created, every_worker_serving, workers_of
from redisd import RedisServer, started
from support import FULL, PROJECT, auth

CREATE = f"/v1/projects/{PROJECT}/influencers"


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    with started(fsync="always") as server:
        yield server


def test_a_worker_killed_while_redis_is_down_is_replaced_by_one_that_waits_for_redis(
    private_redis: RedisServer,
) -> None:
    """Redis killed, then one of two workers: the serve stays up (the other worker answers
    503 with Retry-After), the replacement says it waits for Redis, and once Redis is back
    it serves: with the other worker killed in turn, it alone answers 202, and every create
    answered 202 before the outage is there."""
    server = Serve("--state", private_redis.url + "?lease=300", "--workers", "2")
    said = Said(server)
    try:
        before = created(server.url, 10)
        every_worker_serving(private_redis.url, 2)
        victim, survivor = workers_of(server.proc.pid)
        private_redis.kill()
        os.kill(victim, signal.SIGKILL)
        replacement = said.waiting_worker(victim, survivor)  # it waits, not a crash loop
        assert "Traceback" not in "".join(said.all), said.all
        assert sorted(workers_of(server.proc.pid)) == sorted([survivor, replacement])
        with httpx.Client(base_url=server.url, timeout=LIVENESS_S) as client:
            down = client.post(CREATE, headers=auth(FULL), json={})  # the survivor's answer
            assert down.status_code == 503, down.text
            assert down.json()["error"]["code"] == "STORAGE_UNAVAILABLE"
            assert down.headers["retry-after"] == "1"
            assert client.get("/_mock/health").status_code == 200
        assert server.proc.poll() is None
        private_redis.start()  # the same port, its AOF
        said.wait_for(f"worker {replacement}: {private_redis.url}")  # ... answers again
        os.kill(survivor, signal.SIGSTOP)  # it accepts nothing: the replacement alone answers
        try:
            after = created(server.url, 5)
            with httpx.Client(base_url=server.url, timeout=LIVENESS_S) as client:
                listed = client.get(CREATE, headers=auth(FULL), params={"limit": 100}).json()
        finally:
            os.kill(survivor, signal.SIGCONT)
        kept = {i["influencerId"] for i in listed["items"]}
        assert set(before) | set(after) <= kept
        assert server.proc.poll() is None
    finally:
        code = server.stop()
    assert code == 0, said.rest()


def test_a_serve_whose_worker_waits_for_redis_stops_at_once_on_sigterm(
    private_redis: RedisServer,
) -> None:
    """SIGTERM while a replacement waits for Redis: the wait ends, the worker says so, and
    the serve exits 0 (the worker is not left for granian to kill 10 s later)."""
    server = Serve("--state", private_redis.url, "--workers", "2")
    said = Said(server)
    try:
        created(server.url, 1)
        before = workers_of(server.proc.pid)
        private_redis.kill()
        os.kill(before[0], signal.SIGKILL)
        replacement = said.waiting_worker(*before)
    finally:
        code = server.stop()
    assert code == 0, said.rest()
    stopped = [line for line in said.rest() if f"worker {replacement}: stopped" in line]
    assert stopped, "".join(said.all)


def test_workers_whose_serve_was_killed_stop_and_give_the_port_back(
    private_redis: RedisServer,
) -> None:
    """`kill -9` of the serve's main process (a supervisor's last resort, the OOM killer) left
    its workers answering on the port for ever, orphans nothing would replace or stop: the
    supervisor's next `serve` found the port taken (exit 2), and the sandbox counted them
    live. Each now notices that its serve is gone, says so and stops as on SIGTERM."""
    server = Serve("--state", private_redis.url, "--workers", "2")
    said = Said(server)
    created(server.url, 1)
    workers = workers_of(server.proc.pid)
    port = int(server.url.rsplit(":", 1)[1])
    os.kill(server.proc.pid, signal.SIGKILL)
    server.proc.wait(timeout=LIVENESS_S)
    try:
        lines = said.rest()  # every worker's stderr closed: each has exited
    finally:  # (failing, never leave them running)
        for pid in workers:
            with contextlib.suppress(OSError):
                if b"layers_mock_server" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    os.kill(pid, signal.SIGKILL)
    for pid in workers:
        assert any(f"worker {pid}: its serve" in line and "is gone" in line for line in lines)
    with socket.socket() as again:
        again.bind(("127.0.0.1", port))  # the port is free for the next serve
