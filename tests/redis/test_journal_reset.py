"""A request answered before a reset is never counted after it, though its journal entry
reaches Redis after the reset (stores/redis_journal.py).

A read's entry leaves its worker after the answer, with the worker's next round trip (or within
`FLUSH_S`); a reset that another worker commits meanwhile is in the stream first. Here
`FLUSH_S` is an hour, so worker A holds the read's entry until its next request, which comes
after worker B's reset: the race a stranger lost 189 times in 200 (tenant reset) and 31 in
200 (global reset) with two `serve` processes on one Redis is lost here on every run.

Each server is a whole one (its app, its store connection, its loop and thread) on its own
port, all on one sandbox: what two `serve` processes on one Redis are to each other.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import httpx
import pytest
import redis
from redisd import RedisServer
from support import FULL, PROJECT, SEED, auth

from layers_mock import RemoteMock, connect
from layers_mock_server import serving
from layers_mock_server.http.app import build_app
from layers_mock_server.settings import Settings, make_deps
from layers_mock_server.stores import redis_journal

TOKEN = "operator-secret"
CREATE = f"/v1/projects/{PROJECT}/influencers"


@pytest.fixture(autouse=True)
def held(monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker's entries wait for its next round trip: no timer sends them meanwhile."""
    monkeypatch.setattr(redis_journal, "FLUSH_S", 3600.0)


@contextlib.contextmanager
def servers(url: str) -> Iterator[tuple[str, str]]:
    """Two servers (A, B) on one sandbox, with an admin token: keys are tenants."""
    settings = Settings(state=url, clock="virtual", seed=SEED, strict=True, admin_token=TOKEN)
    with (
        serving.running(build_app(make_deps(settings))) as (host_a, port_a),
        serving.running(build_app(make_deps(settings))) as (host_b, port_b),
    ):
        yield f"http://{host_a}:{port_a}", f"http://{host_b}:{port_b}"


@contextlib.contextmanager
def sandbox(redis_server: RedisServer) -> Iterator[tuple[httpx.Client, RemoteMock, RemoteMock]]:
    """Acme's client on A, and on B Acme as a tenant and the operator. The handles are made
    first: connecting reads /_mock/fixtures, a round trip that would carry A's entries."""
    with (
        servers(redis_server.sandbox()) as (a, b),
        httpx.Client(base_url=a, headers=auth(FULL), timeout=30) as on_a,
        connect(b, key=FULL) as tenant,
        connect(b, admin_token=TOKEN) as operator,
    ):
        yield on_a, tenant, operator


def carried_and_flushed(on_a: httpx.Client) -> None:
    """A's next request: its catch-up carries the entry A held (it reaches Redis now, after
    the reset); then a read of the journal on A sends that request's own entry."""
    assert on_a.get("/v1/credits").status_code == 200
    assert on_a.get("/_mock/requests").status_code == 200


def test_a_read_answered_before_a_tenants_reset_on_another_worker_is_not_counted_after_it(
    redis_server: RedisServer,
) -> None:
    with sandbox(redis_server) as (on_a, tenant, operator):
        assert on_a.get("/v1/whoami").status_code == 200  # answered before the reset
        tenant.reset()
        carried_and_flushed(on_a)
        assert [r.path for r in tenant.requests()] == ["/v1/credits"]
        tenant.assert_not_called("GET", "/v1/whoami")
        # An organization's reset keeps the server's journal: the operator sees the read
        operator.assert_called("GET", "/v1/whoami", times=1)


def test_a_read_answered_before_a_global_reset_on_another_worker_is_not_in_the_fresh_journal(
    redis_server: RedisServer,
) -> None:
    with sandbox(redis_server) as (on_a, _, operator):
        assert on_a.get("/v1/whoami").status_code == 200  # answered before the reset
        operator.reset()
        carried_and_flushed(on_a)
        entries = operator.requests()
        assert [(e.path, e.sequence) for e in entries] == [("/v1/credits", 1)]


@pytest.mark.parametrize("who", ["tenant", "operator"])
def test_every_request_answered_after_a_reset_is_kept_whichever_worker_answered_it(
    redis_server: RedisServer, who: str
) -> None:
    with sandbox(redis_server) as (on_a, tenant, operator):
        assert on_a.get("/v1/whoami").status_code == 200  # answered before the reset
        resetting = tenant if who == "tenant" else operator
        resetting.reset()
        with tenant.client() as on_b:
            after = on_b.get("/v1/whoami")  # on the worker that reset
        assert after.status_code == 200
        assert on_a.post(CREATE, json={}).status_code == 202  # a write: goes with its commit
        carried_and_flushed(on_a)
        assert sorted((r.method, r.path) for r in resetting.requests()) == [
            ("GET", "/v1/credits"),
            ("GET", "/v1/whoami"),
            ("POST", CREATE),
        ]
        [kept] = resetting.requests("GET", "/v1/whoami")
        assert kept.request_id == after.headers["x-request-id"]  # B's, not A's before


def test_an_answer_no_worker_can_order_against_a_reset_is_never_dropped_by_one(
    redis_server: RedisServer,
) -> None:
    """A request without a key is answered 401 at once, whatever the state, with no round
    trip to Redis: whether that was before or after another worker's reset, no worker can
    know. The journal keeps it (this one came after the reset, on a worker that had not
    caught up with it)."""
    with sandbox(redis_server) as (on_a, _, operator):
        operator.reset()  # on B
        keyless = on_a.get("/v1/whoami", headers={"Authorization": ""})
        assert keyless.status_code == 401
        carried_and_flushed(on_a)
        assert [(r.path, r.status) for r in operator.requests()] == [
            ("/v1/whoami", 401),
            ("/v1/credits", 200),
        ]


def test_a_read_answered_on_another_worker_is_counted_by_the_next_journal_read(
    redis_server: RedisServer,
) -> None:
    """What the README's testing API promises: after `reset()`, `assert_called` counts exactly
    the requests answered after it, on a sandbox with several workers too. A CI test's client
    and its handle are two connections, which the kernel gives to two workers of one port (or
    two serves): the read is answered by A, the handle asks B."""
    with sandbox(redis_server) as (on_a, tenant, _):
        tenant.reset()  # on B
        assert on_a.get("/v1/whoami").status_code == 200  # answered (by A) after the reset
        tenant.assert_called("GET", "/v1/whoami", times=1)  # asked (of B) after the answer


def test_a_worker_that_looks_live_but_never_answers_costs_only_the_bound(
    redis_server: RedisServer,
) -> None:
    """A worker killed with `kill -9` keeps its liveness mark until it runs out: the journal
    read waits for its word no longer than BARRIER_S, then reads what the live ones sent."""
    with sandbox(redis_server) as (on_a, tenant, _):
        tenant.reset()
        ghost = "0123456789abcdef 0123456789abcdef"  # a mark as RedisStore.member writes
        with contextlib.closing(redis.Redis.from_url(redis_server.url)) as client:
            workers = f"{{lm:t{redis_server.sandboxes}}}:workers"  # this test's sandbox
            assert client.zcard(workers) == 2  # A's and B's
            client.zadd(workers, {ghost: time.time() * 1000 + 60_000})
        assert on_a.get("/v1/whoami").status_code == 200
        began = time.monotonic()
        tenant.assert_called("GET", "/v1/whoami", times=1)
        assert time.monotonic() - began >= redis_journal.BARRIER_S  # it waited for the ghost
