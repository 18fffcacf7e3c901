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

import asyncio
import io
import os
import re
import signal
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from redis_served import LIVENESS_S, Said, Serve, created, every_worker_serving, workers_of
from redisd import RedisServer, started
from support import FULL, PROJECT, SEED, auth

from layers_mock_server.cli import opened
from layers_mock_server.core.clock import Clock
from layers_mock_server.core.fixtures import load_fixtures
from layers_mock_server.core.simulator import Simulator
from layers_mock_server.deps import Deps
from layers_mock_server.http.app import build_app
from layers_mock_server.http.strict import check_response
from layers_mock_server.http.waiting import KEY_FORM, Waiting
from layers_mock_server.settings import Settings
from layers_mock_server.spec import control_spec, not_simulated_spec, partner_spec
from layers_mock_server.ui import assets
from layers_mock_server.ui.assets import SCRIPT

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
    """Both workers killed at once during the outage: both are replaced, and answer. (One
    was left unreplaced 1 run in 6: granian's main loop copies, then clears, its list of dead
    workers and then its wake-up, and a death noted in between was lost; respawn.py guards
    it, tests/test_respawn_guard.py opens each window every run.)"""
    server = Serve("--state", private_redis.url, "--workers", "2")
    said = Said(server)
    try:
        before = created(server.url, 3)
        every_worker_serving(private_redis.url, 2)
        workers = workers_of(server.proc.pid)
        private_redis.kill()
        for pid in workers:  # at once
            os.kill(pid, signal.SIGKILL)
        replacements: set[int] = set()
        for _ in workers:
            replacements.add(said.waiting_worker(*workers, *replacements))
        assert sorted(workers_of(server.proc.pid)) == sorted(replacements), said.all
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


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_serve_started_while_redis_is_down_answers_and_serves_once_redis_is_up(
    private_redis: RedisServer, workers: str
) -> None:
    """`serve` started with its Redis down used to say so and exit 2, and a supervisor's
    restarts meanwhile left clients and probes with nothing to talk to. It now listens and
    answers from the stand-in (health 200, a create 503 with Retry-After, ready 503), and
    once Redis is up the same serve serves, with no restart."""
    private_redis.kill()
    server = Serve("--state", private_redis.url, "--workers", workers)
    said = Said(server)
    try:
        said.wait_for("the keys and the seed are the sandbox's")  # the serve's own line
        for _ in range(int(workers) if workers != "1" else 0):  # each worker's, forked after
            assert "layers-mock: worker " in said.wait_for("waits for Redis")
        with httpx.Client(base_url=server.url, timeout=ANSWER_S) as client:
            health = client.get("/_mock/health")
            assert health.status_code == 200, health.text
            assert health.json()["sharedStore"]["reachable"] is False
            down = client.post(CREATE, headers=auth(FULL), json={})
            assert down.status_code == 503, down.text
            assert down.headers["retry-after"] == "1"
            assert down.json()["error"]["requestId"] == down.headers["x-request-id"]
            assert client.get("/_mock/ready").status_code == 503
        private_redis.start()
        for _ in range(int(workers)):
            said.wait_for("answers again: it serves")
        assert len(created(server.url, 3)) == 3
        with httpx.Client(base_url=server.url, timeout=LIVENESS_S) as client:
            assert client.get("/_mock/ready").status_code == 200
        assert server.proc.poll() is None
    finally:
        code = server.stop()
    assert code == 0, said.rest()
    assert "Traceback" not in "".join(said.all), said.all


class Writes(io.StringIO):
    """A stream that keeps each write call apart."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def write(self, text: str) -> int:
        self.calls.append(text)
        return super().write(text)


def test_a_waiting_workers_line_reaches_stderr_in_one_write(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The workers of a serve share its stderr pipe, and stderr passes each write on at once:
    a line printed as the text, then its newline, spliced into the other worker's line when
    both started during an outage at the same moment (the serve's log showed one worker's
    line inside the other's, and test_a_serve_started_while_redis_is_down... missed a worker,
    1 run in 4). Each line is now one write, whole."""
    stderr = Writes()
    monkeypatch.setattr("sys.stderr", stderr)
    deps, why = opened(Settings(state="redis://127.0.0.1:1/0"))
    assert deps is None and "Connection refused" in why
    assert len(stderr.calls) == 1, stderr.calls
    assert stderr.calls[0].endswith(
        "waits for Redis, trying every 1 s, and answers 503 meanwhile (/_mock/health 200)\n"
    )
    assert stderr.calls[0].startswith(f"layers-mock: worker {os.getpid()}: ")


def exchange(
    app: Waiting, method: str, path: str, authorization: str | None = None
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """One request to the stand-in, in process: its status, headers and body."""
    sent: list[dict[str, Any]] = []
    headers = [] if authorization is None else [(b"authorization", authorization.encode())]
    scope = {"type": "http", "method": method, "path": path, "headers": headers}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], sent[0]["headers"], sent[1]["body"]


REASON = "redis://127.0.0.1:1/0: Error 111 connecting to 127.0.0.1:1. Connection refused."
VALUES = {"projectId": PROJECT, "name": SCRIPT}


def bearer_for(op_path: str, token: str | None) -> str | None:
    """A credential each operation lets through while waiting: a partner key's form for the
    partner API, the admin token (when set) for the control plane."""
    if op_path.startswith("/v1/"):
        return f"Bearer {FULL}"
    return None if token is None else f"Bearer {token}"


@pytest.mark.parametrize("token", [None, "admin-secret"])
def test_every_answer_of_a_waiting_worker_is_one_its_operation_documents(
    token: str | None,
) -> None:
    """Each operation of the three documents, asked of the stand-in (with a credential it
    lets through): the answer is one the operation's spec declares, in the envelope."""
    app = Waiting(REASON, token)
    statuses: dict[int, int] = {}
    for spec in (partner_spec(), control_spec(), not_simulated_spec()):
        for op in spec.operations.values():
            path = re.sub(r"\{(\w+)\}", lambda m: VALUES.get(m[1], "x_1"), op.path)
            status, headers, body = exchange(app, op.method, path, bearer_for(op.path, token))
            media_type = dict(headers)[b"content-type"].decode().split(";")[0]
            check_response(op, status, headers, body, media_type)
            statuses[status] = statuses.get(status, 0) + 1
            if status >= 400:
                error = orjson.loads(body)["error"]
                assert error["requestId"] == dict(headers)[b"x-request-id"].decode()
    assert set(statuses) == {200, 501, 503}, statuses
    assert statuses[200] == 3  # health, the links, the asset


def test_a_waiting_worker_with_an_admin_token_asks_a_probe_for_a_bearer() -> None:
    """As the real app: health without credentials is a 401 when an admin token is set; a
    bearer of a key's form passes (which key is an organization's is in Redis, out of reach)."""
    app = Waiting(REASON, "admin-secret")
    assert exchange(app, "GET", "/_mock/health")[0] == 401
    assert exchange(app, "GET", "/_mock/health", "Bearer lp_live_anything_x")[0] == 200
    assert exchange(app, "GET", "/_mock/ready", "Bearer admin-secret")[0] == 503
    ids = {exchange(app, "POST", CREATE, f"Bearer {FULL}")[1][0] for _ in range(3)}
    assert len(ids) == 3  # a fresh request id each


def test_the_key_form_a_waiting_worker_lets_through_is_the_states() -> None:
    """The stand-in refuses a bearer of any other form than a state's key can have: were its
    form narrower than the spec's, a sandbox's own key would get a 401 while Redis is away."""
    schema = control_spec().document["components"]["schemas"]["StateKey"]
    assert KEY_FORM.pattern == schema["properties"]["key"]["pattern"]


def answers(app: Any, requests: list[tuple[str, str, dict[str, str]]]) -> list[Any]:
    """What the app answers each request with, as far as a client can tell two apart."""

    async def run() -> list[Any]:
        transport = httpx.ASGITransport(app=app)
        found = []
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            for method, path, headers in requests:
                r = await client.request(method, path, headers=headers)
                json = r.headers.get("content-type", "").startswith("application/json")
                code = (
                    r.json()["error"]["code"]
                    if r.status_code >= 400 and json and r.content
                    else None
                )
                kept = ("allow", "cache-control", "content-type", "content-length", "retry-after")
                found.append(
                    (
                        method,
                        path,
                        r.status_code,
                        code,
                        {k: r.headers[k] for k in kept if k in r.headers},
                        r.content if r.status_code < 400 else None,
                    )
                )
        return found

    return asyncio.run(run())


def stateless_requests(token: str | None) -> list[tuple[str, str, dict[str, str]]]:
    """Requests whose answer does not depend on the stored state."""
    asset = assets.asset(SCRIPT)
    assert asset is not None
    html = {"Accept": "text/html"}
    sent: list[tuple[str, str, dict[str, str]]] = [
        ("GET", "/nowhere", {}),
        ("POST", "/v1", {}),
        ("GET", "/_mock/nope", {}),
        ("GET", "/v1/projects/prj_x%2Finfluencers", {}),
        ("GET", "/", {}),
        ("GET", "/", html),
        ("HEAD", "/", html),
        ("GET", asset.url, {}),
        ("GET", f"/_mock/ui/assets/{SCRIPT}?v=stale", {}),
        ("GET", f"/_mock/ui/assets/{SCRIPT}", {}),
        ("HEAD", asset.url, {}),
        ("GET", f"/_mock/ui/assets/{SCRIPT}?v=1&v=2", {}),
        ("GET", "/_mock/ui/assets/nothing.js", {}),
        ("GET", "/v1/whoami", {}),
        ("HEAD", "/v1/whoami", {}),
        ("POST", CREATE, {}),
        ("POST", CREATE, {"Authorization": f"Basic {FULL}"}),
        ("POST", CREATE, {"Authorization": "Bearer not-a-key"}),
        ("POST", CREATE, {"Authorization": "Bearer "}),
        ("GET", "/_mock/clock", {"Origin": "https://elsewhere.example"}),
    ]
    sent.append(("TRACE", CREATE, {}))
    every: dict[str, set[str]] = {}
    for spec in (partner_spec(), not_simulated_spec(), control_spec()):
        for op in spec.operations.values():
            every.setdefault(op.path, set()).add(op.method)
    for path, methods in every.items():
        other = next(m for m in ("PATCH", "PUT", "DELETE", "POST", "GET") if m not in methods)
        sent.append((other, re.sub(r"\{\w+\}", "x_1", path), {}))
    if token is not None:
        sent += [
            ("GET", "/_mock/health", {}),
            ("GET", "/_mock/health", {"Authorization": "Bearer wrong"}),
            ("GET", "/_mock/ui?token=wrong", html),
            ("GET", "/_mock/ui", {**html, "Authorization": "Bearer lp_nope"}),
        ]
    return sent


@pytest.mark.parametrize("token", [None, "admin-secret"])
def test_a_waiting_worker_answers_what_the_app_answers_where_the_state_does_not_matter(
    token: str | None,
) -> None:
    """The stand-in answered 503 where the real app answers without reading the state: an
    unknown path (404), a method a path does not declare (405 with Allow), a partner request
    without a key or with one no sandbox can hold (401), a cross-site control request (403),
    the links as HTML for a browser, and the dashboard's files with a cache that ignored a
    current `?v=`. Each of those requests, asked of both: the same status, error code,
    headers a client acts on, and body."""
    sim = Simulator(load_fixtures(), Clock("virtual"), SEED)
    real = build_app(Deps(sim=sim, strict=True, admin_token=token))  # type: ignore[arg-type]
    sent = stateless_requests(token)
    assert answers(Waiting(REASON, token), sent) == answers(real, sent)


def test_a_browser_opening_the_dashboard_of_a_waiting_worker_gets_a_page_that_reloads() -> None:
    """It got the JSON 503. Now a page in the dashboard's look says the sandbox's Redis cannot
    be reached and reloads itself (a meta refresh: no script), as the spec describes; a
    script asking for JSON still gets the envelope."""
    app = Waiting(REASON, None)
    op = next(o for o in control_spec().operations.values() if o.operation_id == "mockDashboard")

    async def run() -> tuple[httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            page = await client.get("/_mock/ui", headers={"Accept": "text/html,*/*;q=0.8"})
            return page, await client.get("/_mock/ui")

    page, script = asyncio.run(run())
    assert page.status_code == 503
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["retry-after"] == "1"
    text = page.text
    assert '<meta http-equiv="refresh" content="1">' in text
    assert "Redis cannot be reached" in text and "<script" not in text
    css = assets.asset(assets.STYLESHEET)
    assert css is not None and f'href="{css.url}"' in text  # the dashboard's look
    assert REASON not in text  # no address: the stand-in cannot tell who asks
    check_response(op, 503, raw(page), page.content, "text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert script.status_code == 503 and script.json()["error"]["code"] == "STORAGE_UNAVAILABLE"
    check_response(op, 503, raw(script), script.content)
