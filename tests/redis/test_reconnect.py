"""A worker whose Redis is unreachable, slow, blackholed or restarting keeps answering what
needs no round trip to Redis (`/_mock/health` first), says in its health what it knows of
Redis, answers the rest 503 within the pipe's timeout or once Redis answers, and recovers by
itself when Redis is back. No round trip to Redis ever blocks the worker's event loop.

Driven in-process (tests/grouped.py) against a real redis-server, reached directly or through
a proxy that the test makes silent or slow (tests/blackhole.py). Nothing waits on a timer:
each test orders what happens (the proxy holds a connection until released, a paused Redis
holds a command until unpaused) and asserts on answers and their order.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
import redis
from blackhole import Blackhole
from grouped import CREATE, NEVER_S, Turn, Worker, influencers, timed_out
from redisd import RedisServer, sockets_to, started
from support import FULL, NORTH_ORG, auth

from layers_mock_server.core.requestids import BLOCK
from layers_mock_server.http.strict import check_response
from layers_mock_server.http.waiting import Waiting
from layers_mock_server.spec import control_spec
from layers_mock_server.stores import redis_handoff, redis_journal

HEALTH = "/_mock/health"
ALIVE = {"status": "ok", "sharedStore": {"reachable": True, "waitingMs": 0, "full": False}}


def through(hole: Blackhole, server: RedisServer) -> str:
    """A fresh sandbox of `server`, reached through the proxy."""
    return server.sandbox().replace(f":{server.port}/", f":{hole.port}/")


async def under_way(task: asyncio.Future[Any]) -> None:
    """Let a request the test just started run until it waits on Redis (a few turns of the
    loop: it reads its body, takes its turn, sends its round trip)."""
    for _ in range(20):
        await Turn()
    assert not task.done()


@pytest.fixture
def unflushed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The journal's entries go with the worker's round trips only, not also on a 10 ms
    timer of their own: one that fired as a health check began had its append in flight
    when health read how long the oldest command waited ("waitingMs": 1, not 0)."""
    monkeypatch.setattr(redis_journal, "FLUSH_S", 3600.0)


def drained(worker: Worker) -> None:
    """Run the worker's loop until every command it sent Redis has its answer. `together`
    returns once the lease went back, which is when its release (UNLOCK, sent LINGER_S after
    the last commit came back, when the commit kept the lease) went out, not when Redis
    answered it: health read meanwhile says how long it has waited ("waitingMs": 3 or 4 on a
    loaded machine, not 0)."""
    pipe = worker.store.pipe

    async def run() -> None:
        while pipe.waiting:
            await asyncio.gather(*(future for *_, future in pipe.waiting), return_exceptions=True)

    worker.loop.run_until_complete(run())


def healthy(worker: Worker) -> Any:
    """Health once nothing the worker sent is in flight (`drained`)."""
    drained(worker)
    [(status, health)] = worker.together(("GET", HEALTH, {}, None))
    assert status == 200
    return health


@pytest.fixture
def own() -> Iterator[RedisServer]:
    """A redis-server of the test's own (it is killed and started again)."""
    with started() as server:
        yield server


def test_health_answers_while_redis_is_blackholed_and_the_worker_recovers_when_it_is_back(
    redis_server: RedisServer, unflushed: None
) -> None:
    with Blackhole(redis_server.port) as hole:
        worker = Worker(through(hole, redis_server))
        worker.store.pipe.timeout = NEVER_S  # how long a command waits (5 s in serve)
        [(status, _)] = worker.together(("POST", CREATE, auth(FULL), {"gender": "male"}))
        assert status == 202 and healthy(worker) == ALIVE
        hole.swallow()  # Redis's host falls off the network: nothing comes back, nor closes

        async def run() -> list[tuple[int, Any]]:
            created = asyncio.ensure_future(
                worker.call("POST", CREATE, auth(FULL), {"gender": "female"})
            )
            await under_way(created)
            while_waiting = await worker.call("GET", HEALTH, {})
            assert not created.done()  # health answered before the create, which waits
            timed_out(worker)
            lost = await created
            after = await worker.call("GET", HEALTH, {})
            # The next request connects again, into the hole: the handshake never ends.
            again = asyncio.ensure_future(worker.call("POST", CREATE, auth(FULL), {}))
            await under_way(again)
            while_connecting = await worker.call("GET", HEALTH, {})
            assert not again.done()  # health answered before it (the loop was not blocked)
            timed_out(worker)
            refused = await again
            hole.restore()  # Redis is back: the next request connects, and is answered
            back = await worker.call("POST", CREATE, auth(FULL), {"gender": "male"})
            await worker.deps.shared.settled()
            return [while_waiting, lost, after, while_connecting, refused, back]

        answers = worker.loop.run_until_complete(run())
        while_waiting, lost, after, while_connecting, refused, back = answers
        assert while_waiting[0] == 200 and while_waiting[1]["sharedStore"]["reachable"] is True
        assert lost[0] == 503 and lost[1]["error"]["code"] == "STORAGE_UNAVAILABLE"
        assert after[0] == 200
        assert after[1]["sharedStore"]["reachable"] is False
        assert after[1]["sharedStore"]["reason"].endswith("Timeout reading from socket")
        assert while_connecting[0] == 200
        assert while_connecting[1]["sharedStore"]["reachable"] is False
        assert refused[0] == 503
        assert "Timeout connecting to server" in refused[1]["error"]["details"]["reason"]
        assert refused[1]["error"]["message"].endswith("nothing of this request was done.")
        assert back[0] == 202  # recovered, without a restart
        assert healthy(worker) == ALIVE
        worker.close()


def test_health_says_why_redis_is_down_while_it_restarts_and_the_worker_recovers(
    own: RedisServer, unflushed: None
) -> None:
    """kill -9 of redis-server, then started again on its AOF: meanwhile requests answer 503
    at once (connection refused) and health says why; then the worker goes on by itself."""
    worker = Worker(own.sandbox())
    [(status, _)] = worker.together(("POST", CREATE, auth(FULL), {"gender": "male"}))
    assert status == 202
    own.kill()
    [(status, _)] = worker.together(("POST", CREATE, auth(FULL), {"gender": "male"}))
    assert status == 503
    [(status, down)] = worker.together(("GET", HEALTH, {}, None))
    assert status == 200 and down["status"] == "ok"
    assert down["sharedStore"]["reachable"] is False
    assert down["sharedStore"]["reason"].startswith(f"redis://127.0.0.1:{own.port}/0: ")
    own.start()  # the same port, the same AOF
    [(status, _)] = worker.together(("POST", CREATE, auth(FULL), {"gender": "female"}))
    assert status == 202
    assert healthy(worker) == ALIVE
    worker.close()


def test_a_control_request_waiting_on_a_paused_redis_does_not_hold_health(
    redis_server: RedisServer,
) -> None:
    """A clock advance (a control request: lease, then write) while Redis holds writes
    (CLIENT PAUSE WRITE): health answers meanwhile, and the advance once Redis answers."""
    worker = Worker(redis_server.sandbox())
    worker.store.pipe.timeout = NEVER_S  # the advance waits for the unpause, however late
    [(status, _)] = worker.together(("GET", "/_mock/clock", {}, None))  # the pipe is up
    assert status == 200
    pauser = redis.Redis.from_url(redis_server.url)
    pauser.execute_command("CLIENT", "PAUSE", "20000", "WRITE")
    try:

        async def run() -> tuple[tuple[int, Any], tuple[int, Any]]:
            advanced = asyncio.ensure_future(
                worker.call("POST", "/_mock/clock/advance", {}, {"seconds": 30})
            )
            await under_way(advanced)
            health = await worker.call("GET", HEALTH, {})
            assert not advanced.done()  # health first: the advance waits for Redis
            pauser.execute_command("CLIENT", "UNPAUSE")
            done = await advanced
            await worker.deps.shared.settled()
            return health, done

        health, advanced = worker.loop.run_until_complete(run())
    finally:
        pauser.execute_command("CLIENT", "UNPAUSE")
    assert health[0] == 200
    assert advanced[0] == 200, advanced
    [(_, clock)] = worker.together(("GET", "/_mock/clock", {}, None))
    assert clock["now"] == advanced[1]["now"]
    worker.close()


def test_answers_that_need_nothing_from_redis_are_given_while_it_is_blackholed(
    redis_server: RedisServer,
) -> None:
    """A partner request without an API key (a 401 whatever the state holds), the
    dashboard's links (and static files): no round trip, so no wait and no 503."""
    with Blackhole(redis_server.port) as hole:
        worker = Worker(through(hole, redis_server))
        worker.store.pipe.timeout = NEVER_S
        [(status, _)] = worker.together(("GET", CREATE, auth(FULL), None))
        assert status == 200
        hole.swallow()

        async def run() -> list[tuple[int, Any]]:
            listed = asyncio.ensure_future(worker.call("GET", CREATE, auth(FULL)))
            await under_way(listed)
            answered = [
                await worker.call("GET", CREATE, {}),
                await worker.call("POST", CREATE, {}, {"gender": "male"}),
                await worker.call("GET", CREATE, {"Authorization": "Basic dXNlcjpwYXNz"}),
                await worker.call("GET", "/", {}),
            ]
            assert not listed.done()
            timed_out(worker)
            return [*answered, await listed]

        *anonymous, links, listed = worker.loop.run_until_complete(run())
        assert [a[0] for a in anonymous] == [401, 401, 401]
        assert {a[1]["error"]["code"] for a in anonymous} == {"UNAUTHENTICATED"}
        assert links == (200, {**links[1], "dashboard": "/_mock/ui"})
        assert listed[0] == 503  # it needs Redis
    worker.close()  # (the proxy closed first: the store's own connection is not swallowed)


def test_request_ids_stay_unique_when_redis_is_paused_as_a_workers_block_runs_out(
    two: tuple[Worker, Worker],
) -> None:
    """Each worker hands out request numbers from blocks it reserved in Redis. The next block
    is reserved while the current one still lasts: a worker whose block runs out while Redis
    holds writes goes on in the block it reserved ahead, not in numbers another worker gets."""
    first, second = two
    health = ("GET", HEALTH, {}, None)
    first.together(*[health] * (BLOCK - 2))  # the next block is reserved meanwhile
    pauser = redis.Redis.from_url(first.store.url)
    pauser.execute_command("CLIENT", "PAUSE", "20000", "WRITE")
    try:
        answers = first.together(*[health] * 4)  # past the end of the block
    finally:
        pauser.execute_command("CLIENT", "UNPAUSE")
    assert [status for status, _ in answers] == [200] * 4
    second.together(*[health] * 4)
    assert len(set(first.request_ids + second.request_ids)) == BLOCK + 6


def test_no_round_trip_to_redis_blocks_a_serving_workers_event_loop(
    two: tuple[Worker, Worker], on_the_loop: list[bytes]
) -> None:
    """Writes, reads, control requests, a reset (the other worker then reads everything), an
    import, journal reads and request ids past a block: every round trip goes through the
    pipe, none waits on the event loop."""
    first, second = two
    create = ("POST", CREATE, auth(FULL), {"gender": "male"})
    listed = ("GET", CREATE, auth(FULL), None)
    journal = ("GET", "/_mock/requests", {}, None)
    [(status, exported)] = first.together(("GET", "/_mock/state", {}, None))
    assert status == 200
    answers = [
        *first.together(create, listed),
        *second.together(listed, create),
        *first.together(("POST", "/_mock/clock/advance", {}, {"seconds": 5})),
        *first.together(
            ("POST", "/_mock/rules", {}, {"match": {"method": "GET"}, "fault": "503", "count": 1})
        ),
        *second.together(listed, listed),
        *first.together(journal),
        *first.together(("POST", "/_mock/reset", {}, {})),
        *second.together(listed, create, journal),
        *first.together(*[("GET", HEALTH, {}, None)] * BLOCK),
        *second.together(("PUT", "/_mock/state", {}, exported)),
        *first.together(listed, create),
    ]
    assert [s for s, _ in answers] == [
        202, 200, 200, 202, 200, 201, 503, 200, 200, 200, 200, 202, 200,
        *[200] * BLOCK, 200, 200, 202,
    ]  # fmt: skip
    assert on_the_loop == [], [c.split(b"\r\n")[2:7] for c in on_the_loop]


def test_a_read_that_cannot_reach_redis_answers_the_503_its_operation_documents(
    own: RedisServer,
) -> None:
    """Every control-plane read and dashboard page catches up with Redis first: while it
    is unreachable, each answers 503 STORAGE_UNAVAILABLE, which its spec must describe (the
    mock never sends what openapi/ does not)."""
    worker = Worker(own.sandbox())
    own.kill()
    values = {"organizationId": NORTH_ORG, "jobId": "job_x", "sequence": "1"}
    answered: dict[str, int] = {}
    for op in control_spec().operations.values():
        needs_nothing = op.path in (HEALTH, "/") or op.path.startswith("/_mock/ui/assets/")
        if op.method != "GET" or needs_nothing:
            continue
        status, headers, body = worker.loop.run_until_complete(
            worker.exchange("GET", op.path.format(**values), {})
        )
        answered[op.operation_id] = status
        assert orjson.loads(body)["error"]["code"] == "STORAGE_UNAVAILABLE"
        check_response(op, status, headers, body)
    assert set(answered.values()) == {503}
    assert len(answered) >= 15
    worker.close()


def test_a_reset_whose_commit_fails_answers_503_and_leaves_state_and_journal_as_they_were(
    two: tuple[Worker, Worker],
) -> None:
    """A reset replaces the worker's copy at once and is sent with its group's commit: when
    Redis refuses that commit, the reset is answered 503 and did not happen, on any worker,
    nor was the journal cleared."""
    first, second = two
    [(status, made)] = first.together(("POST", CREATE, auth(FULL), {"gender": "male"}))
    assert status == 202
    real = first.store.send_write

    def refused(batches: Any, keep: bool) -> Any:
        first.store.send_write = real
        first.store.seen += 1  # as if it missed a commit: Redis refuses (compare-and-append)
        return real(batches, keep)

    first.store.send_write = refused
    [(status, answer)] = first.together(("POST", "/_mock/reset", {}, {}))
    assert status == 503 and answer["error"]["code"] == "STORAGE_UNAVAILABLE"
    assert influencers(first) == influencers(second) == [made["influencerId"]]
    [(_, page)] = second.together(("GET", "/_mock/requests", {}, None))
    assert ("POST", 202) in [(i["method"], i["status"]) for i in page["items"]]


def test_a_journal_that_cannot_be_read_answers_the_503_its_routes_document(
    redis_server: RedisServer,
) -> None:
    """The journal's read fails in Redis (here its older stream, tampered with, is not a
    stream): /_mock/requests and the dashboard's pages that show it answer 503 in the
    envelope, as their spec says (the dashboard answered a bare 500)."""
    worker = Worker(redis_server.sandbox())
    [(status, _)] = worker.together(("GET", "/_mock/requests", {}, None))
    assert status == 200
    redis.Redis.from_url(redis_server.url).set(worker.store.keys["journal-v1"], "not a stream")
    operations = control_spec().operations
    for operation_id, path in [
        ("mockRequests", "/_mock/requests"),
        ("mockDashboardLive", "/_mock/ui/live"),
    ]:
        status, headers, body = worker.loop.run_until_complete(worker.exchange("GET", path, {}))
        assert status == 503, (path, body)
        assert orjson.loads(body)["error"]["code"] == "STORAGE_UNAVAILABLE"
        check_response(operations[operation_id], status, headers, body)
    worker.close()


def test_a_worker_recovers_after_more_failed_connects_than_the_pool_would_count(
    own: RedisServer, unflushed: None
) -> None:
    """outside13: each connect the pipe tried was a connection made by redis-py's pool, which
    counts what it made and never got back: after 100 (its max_connections) every connect was
    MaxConnectionsError, an exception no handler knew (a 500, callbacks failing), and it stayed
    so once Redis was back: two serves on a Redis killed and restarted under a burst, one of
    them answered nothing from then on. A connect the pipe makes is its own."""
    worker = Worker(own.sandbox())
    own.kill()
    for _ in range(120):  # each request while Redis is down tries one connect, refused at once
        guarded = asyncio.wait_for(worker.call("GET", "/v1/whoami", auth(FULL)), 60)
        status, down = worker.loop.run_until_complete(guarded)  # a wedged worker fails here
        assert status == 503, down
        assert down["error"]["code"] == "STORAGE_UNAVAILABLE"
    own.start()
    [(status, _)] = worker.together(("POST", CREATE, auth(FULL), {"gender": "female"}))
    assert status == 202
    assert healthy(worker) == ALIVE
    worker.close()


def held(server: RedisServer, pair: list[Worker]) -> tuple[int, int, int]:
    """Once each worker created (202) and listens again: this process's sockets to the
    server (file descriptors: `redisd.sockets_to`), the server's clients (less the asking
    one), and the most connections a worker's pool made."""
    for worker in pair:
        [(status, answer)] = worker.together(("POST", CREATE, auth(FULL), {}))
        assert status == 202, answer
    deadline = time.monotonic() + 30
    while not all(worker.store.handoff.listening for worker in pair):
        assert time.monotonic() < deadline, "a listener did not connect again"
        for worker in pair:  # its loop runs the subscription's answer
            worker.loop.run_until_complete(Turn())
    gc.collect()  # a connection dropped but not collected still holds its socket
    with redis.Redis(port=server.port) as client:
        clients = len(client.client_list()) - 1
    made = max(worker.store._client.connection_pool._created_connections for worker in pair)
    return sockets_to([server.port]), clients, made


def test_workers_hold_no_more_connections_after_a_long_outage_than_before(
    own: RedisServer, unflushed: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kill -9 of Redis while two workers take 110 creates each (503s; each a connect of the
    pipe and of the handoff listener, RECONNECT_S 0: one at every lease try), then Redis is
    started again: once each worker creates and listens again, this process holds no more file
    descriptors, and Redis lists no more clients, than before the outage."""
    monkeypatch.setattr(redis_handoff, "RECONNECT_S", 0.0)
    url = own.sandbox()
    pair = [Worker(url), Worker(url)]
    before = held(own, pair)
    own.kill()
    for _ in range(110):
        for worker in pair:
            guarded = asyncio.wait_for(worker.call("POST", CREATE, auth(FULL), {}), 60)
            status, down = worker.loop.run_until_complete(guarded)
            assert status == 503, down
    own.start()
    after = held(own, pair)
    assert 0 < after[0] <= before[0]  # sockets to Redis
    assert after[1] <= before[1]  # clients
    assert after[2] <= before[2] < 100  # a pool's count
    for worker in pair:
        worker.close()


def test_a_browser_opening_the_dashboard_while_redis_is_down_gets_the_page_that_reloads(
    own: RedisServer,
) -> None:
    """A running worker's dashboard, Redis gone: a browser got the JSON 503. It now gets the
    page a worker waiting for Redis at its start gives (http/waiting.py), the same bytes: it
    says Redis cannot be reached and reloads itself; a script still gets the envelope."""
    worker = Worker(own.sandbox())
    own.kill()
    browser = {"accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    status, headers, body = worker.loop.run_until_complete(
        worker.exchange("GET", "/_mock/ui", browser)
    )
    op = next(o for o in control_spec().operations.values() if o.operation_id == "mockDashboard")
    assert status == 503
    check_response(op, status, headers, body, "text/html")
    sent = dict(headers)
    assert sent[b"content-type"] == b"text/html; charset=utf-8"
    assert sent[b"retry-after"] == b"1"

    async def stand_in() -> httpx.Response:
        transport = httpx.ASGITransport(app=Waiting("redis: down", None))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            return await client.get("/_mock/ui", headers=browser)

    waiting = asyncio.run(stand_in())
    assert (waiting.status_code, waiting.content) == (503, body)
    status, _, body = worker.loop.run_until_complete(worker.exchange("GET", "/_mock/ui", {}))
    assert status == 503 and orjson.loads(body)["error"]["code"] == "STORAGE_UNAVAILABLE"
    worker.close()


def test_a_browsers_head_of_the_dashboard_while_redis_is_down_is_the_stand_ins_and_its_get(
    own: RedisServer,
) -> None:
    """HEAD is GET without the body (RFC 9110 §9.3.2). A browser's HEAD of the dashboard, Redis
    gone: the stand-in (http/waiting.py) answered with the page's headers, a running worker
    with the JSON 503's (application/json, another length). Both now answer the page's
    headers, those of the GET, and no body."""
    worker = Worker(own.sandbox())
    own.kill()
    browser = {"accept": "text/html,application/xhtml+xml,*/*;q=0.8"}

    def kept(headers: Any) -> dict[str, str]:  # all but the request id, each answer's own
        found = {k.decode() if isinstance(k, bytes) else k: v for k, v in headers}
        found.pop("x-request-id")
        return {k: v.decode() if isinstance(v, bytes) else v for k, v in found.items()}

    def running(method: str) -> tuple[int, dict[str, str], bytes]:
        status, headers, body = worker.loop.run_until_complete(
            worker.exchange(method, "/_mock/ui", browser)
        )
        return status, kept(headers), body

    async def stand_in(method: str) -> tuple[int, dict[str, str], bytes]:
        transport = httpx.ASGITransport(app=Waiting("redis: down", None))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            answer = await client.request(method, "/_mock/ui", headers=browser)
        return answer.status_code, kept(answer.headers.raw), answer.content

    get = running("GET")
    assert get[1]["content-type"] == "text/html; charset=utf-8"
    head = running("HEAD")
    assert head == (get[0], get[1], b"")
    assert asyncio.run(stand_in("HEAD")) == head
    assert asyncio.run(stand_in("GET"))[:2] == get[:2]
    partner = worker.loop.run_until_complete(worker.exchange("HEAD", "/v1/whoami", auth(FULL)))
    assert (partner[0], partner[2]) == (503, b"")  # any HEAD: no body after the headers
    worker.close()
