"""A `--workers` serve whose every worker was replaced during a Redis outage answers (outage15).

A worker started while Redis cannot be reached waits for it (test_respawn.py) and used to
take no connection meanwhile: with both workers of `serve --workers 2` killed during an
outage, a create and `/_mock/health` got no answer at all (a client's or a probe's timeout).
The waiting worker now answers from a stand-in (http/waiting.py): health 200 saying Redis is
unreachable, `/_mock/ready` 503, every other request 503 `STORAGE_UNAVAILABLE` with
`Retry-After: 1` and a request id, all as the spec describes them; once Redis is back the
same workers serve, without a restart.

Real processes against a real redis-server of the test's own. What a test waits for is a
line the serve prints or an answer, never a timer; LIVENESS_S bounds a hung serve only.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import httpx
import pytest
from redis_served import LIVENESS_S, Said, Serve, created, workers_of
from redisd import RedisServer, started
from support import FULL, PROJECT, auth

from layers_mock_server.http.strict import check_response
from layers_mock_server.spec import control_spec, partner_spec

CREATE = f"/v1/projects/{PROJECT}/influencers"
ANSWER_S = 5  # a client's patience: an answer, not a hang (the defect: none within 5 s)


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    with started(fsync="always") as server:
        yield server


def raw(answer: httpx.Response) -> list[tuple[bytes, bytes]]:
    return [(k.lower(), v) for k, v in answer.headers.raw]


def test_a_serve_whose_workers_all_died_during_an_outage_answers_and_serves_when_redis_is_back(
    private_redis: RedisServer,
) -> None:
    server = Serve("--state", private_redis.url, "--workers", "2")
    said = Said(server)
    try:
        before = created(server.url, 3)
        workers = workers_of(server.proc.pid)
        private_redis.kill()
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        replacements = set()
        for _ in workers:
            line = said.wait_for("waits for Redis")
            replacements.add(int(line.split("worker ", 1)[1].split(":", 1)[0]))
        assert sorted(workers_of(server.proc.pid)) == sorted(replacements)
        assert not replacements & set(workers)
        partner, control = partner_spec(), control_spec()
        create_op = next(
            o
            for o in partner.operations.values()
            if o.path == CREATE.replace(PROJECT, "{projectId}") and o.method == "POST"
        )
        health_op = next(o for o in control.operations.values() if o.path == "/_mock/health")
        ready_op = next(o for o in control.operations.values() if o.path == "/_mock/ready")
        with httpx.Client(base_url=server.url, timeout=ANSWER_S) as client:
            health = client.get("/_mock/health")
            assert health.status_code == 200, health.text
            shared = health.json()["sharedStore"]
            assert shared["reachable"] is False and "Connection refused" in shared["reason"]
            check_response(health_op, 200, raw(health), health.content)
            down = client.post(CREATE, headers=auth(FULL), json={})
            assert down.status_code == 503, down.text
            error = down.json()["error"]
            assert error["code"] == "STORAGE_UNAVAILABLE"
            assert down.headers["retry-after"] == "1"
            assert error["requestId"] == down.headers["x-request-id"]
            assert error["requestId"].startswith("req_")
            check_response(create_op, 503, raw(down), down.content)
            ready = client.get("/_mock/ready")
            assert ready.status_code == 503, ready.text
            assert "retry-after" not in ready.headers
            check_response(ready_op, 503, raw(ready), ready.content)
        assert server.proc.poll() is None
        private_redis.start()  # the same port, its AOF
        for _ in workers:
            said.wait_for("answers again: it serves")
        after = created(server.url, 4)  # both workers: each one has swapped its app in
        with httpx.Client(base_url=server.url, timeout=LIVENESS_S) as client:
            listed = client.get(CREATE, headers=auth(FULL), params={"limit": 100}).json()
            health = client.get("/_mock/health").json()
            assert client.get("/_mock/ready").status_code == 200
        assert health["sharedStore"]["reachable"] is True
        assert set(before) | set(after) <= {i["influencerId"] for i in listed["items"]}
        assert "Traceback" not in "".join(said.all), said.all
    finally:
        code = server.stop()
    assert code == 0, said.rest()
