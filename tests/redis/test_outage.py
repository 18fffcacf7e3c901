"""A Redis outage, as a user debugging it with `/_mock/requests` sees it: the journal holds
every answer the clients got while Redis could not be reached (the 503s, with their request
ids, in order) and what was answered before it, once Redis is back; and Redis's own refusals
(BUSY, LOADING, MISCONF, READONLY) are told as what Redis said, with whether anything of the
request was done.

Driven in-process (tests/grouped.py) against real redis-servers: killed and started again,
reached through a proxy the test makes silent (tests/blackhole.py), or made to refuse by the
test (a replica, a failing disk, a script that runs on).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from blackhole import Blackhole
from grouped import CREATE, NEVER_S, Turn, Worker, timed_out
from redisd import RedisServer, full, replica, started
from support import ACME_ORG, FULL, auth

from layers_mock_server.stores import redis_journal

HEALTH = "/_mock/health"
JOURNAL = ("GET", "/_mock/requests", {}, None)
READY = ("GET", "/_mock/ready", {}, None)


@pytest.fixture(autouse=True)
def with_round_trips(monkeypatch: pytest.MonkeyPatch) -> None:
    """The journal's entries go with the worker's round trips only (none on a timer of its
    own), so that the test knows which round trip carries them."""
    monkeypatch.setattr(redis_journal, "FLUSH_S", 3600.0)


@pytest.fixture
def own() -> Iterator[RedisServer]:
    """A redis-server of the test's own (killed and started again, or made to refuse)."""
    with started(fsync="always") as server:
        yield server


def journal(worker: Worker) -> list[tuple[str, str, int, str]]:
    """(method, path, status, request id) of every journal entry, oldest first."""
    [(status, page)] = worker.together(JOURNAL)
    assert status == 200, page
    return [(i["method"], i["path"], i["status"], i["requestId"]) for i in reversed(page["items"])]


def answered(worker: Worker, *requests: tuple[str, str, dict[str, str], Any]) -> list[Any]:
    """(method, path, status, request id) of each answer, in the order they were given."""
    out = []
    for request in requests:
        [(status, _)] = worker.together(request)
        out.append((request[0], request[1], status, worker.request_ids[-1]))
    return out


CREATE_ONE = ("POST", CREATE, auth(FULL), {"gender": "male"})
LIST = ("GET", CREATE, auth(FULL), None)


def test_the_503s_of_a_redis_restart_and_what_was_queued_before_reach_the_journal(
    own: RedisServer,
) -> None:
    """kill -9 of redis-server (its AOF fsynced on every write), requests answered 503 while
    it is down, started again: the journal shows what was answered before (the last read's
    entry still waited in the worker when Redis went) and every 503, in order, with the
    request ids the clients got."""
    worker = Worker(own.sandbox()).listening()
    before = answered(worker, CREATE_ONE, LIST)
    assert [a[2] for a in before] == [202, 200]
    assert worker.store.outbox  # the read's entry had not gone yet
    own.kill()
    during = answered(worker, CREATE_ONE, LIST, CREATE_ONE)
    assert [a[2] for a in during] == [503, 503, 503]
    own.start()
    assert journal(worker) == before + during
    worker.close()


def test_a_tenant_finds_the_503s_its_own_key_got_while_redis_was_down_in_its_journal(
    own: RedisServer,
) -> None:
    """On a shared sandbox a tenant reads only its own keys' entries (`/_mock/requests` with
    its key, the testing API's assert_called): the 503s its requests got while Redis was down
    are its own too, resolved to its key as the app would, or its CI's journal would show no
    trace of the failures it is debugging. A request with no known key stays anonymous."""
    worker = Worker(own.sandbox())
    worker.deps.admin_token = "s3cret-admin"
    answered(worker, CREATE_ONE)
    own.kill()
    during = answered(worker, CREATE_ONE, LIST, ("GET", CREATE, auth("lp_test_nope"), None))
    assert [a[2] for a in during] == [503, 503, 503]
    own.start()
    [(status, page)] = worker.together(("GET", "/_mock/requests", auth(FULL), None))
    assert status == 200, page
    seen = [(i["method"], i["path"], i["status"], i["requestId"]) for i in page["items"]]
    assert seen[:2] == [during[1], during[0]]  # newest first; the unknown key's is not its
    assert during[2] not in seen
    worker.close()


async def its_round_trip(worker: Worker) -> None:
    """Until the request just started has sent its round trip (`Worker.trips` counts each as
    it goes), so that the test may stop the loop. Waiting for `pipe.waiting` to fill instead
    (as before) raced a command the worker sent without waiting for it (a block of request
    numbers reserved ahead, a lease given back) whose answer the stopped loop had not read
    yet: the wait ended before the request ran, its catch-up was never sent, and the test
    waited 30 s for Redis to append what it never got (flake16: CI-like run on a loaded
    machine, test_entries_whose_round_trip_ran_but_whose_answer_was_lost_are_journaled_once)."""
    trips = len(worker.trips)
    while len(worker.trips) == trips:
        await Turn()


def through(hole: Blackhole, server: RedisServer) -> str:
    """A fresh sandbox of `server`, reached through the proxy."""
    return server.sandbox().replace(f":{server.port}/", f":{hole.port}/")


def test_the_503s_of_a_blackholed_redis_reach_the_journal_once_it_is_back(
    redis_server: RedisServer,
) -> None:
    """Redis's host falls off the network (nothing comes back, nothing closes): the requests
    time out (503), the connection is made again into the hole and times out too (503);
    once Redis can be reached, the journal has every answer, each once."""
    with Blackhole(redis_server.port) as hole:
        worker = Worker(through(hole, redis_server))
        worker.store.pipe.timeout = NEVER_S
        before = answered(worker, CREATE_ONE, LIST)
        hole.swallow()

        async def waits_then_times_out(request: Any) -> None:
            sent = asyncio.ensure_future(worker.call(*request))
            await its_round_trip(worker)
            timed_out(worker)
            await sent

        during = []
        for request in (CREATE_ONE, LIST, CREATE_ONE):
            worker.loop.run_until_complete(waits_then_times_out(request))
            during.append((request[0], request[1], 503, worker.request_ids[-1]))
        hole.restore()
        assert journal(worker) == before + during
    worker.close()


def test_entries_whose_round_trip_ran_but_whose_answer_was_lost_are_journaled_once(
    redis_server: RedisServer,
) -> None:
    """A create's round trip carries the worker's waiting entries (a read's catch-up carries
    none); Redis runs it (they are appended) and its answer is lost on the way back: the
    request answers 503 (it cannot know), its entries go again with the next round trip, and
    Redis appends them only once."""
    with Blackhole(redis_server.port) as hole:
        worker = Worker(through(hole, redis_server)).listening()
        worker.store.pipe.timeout = NEVER_S
        before = answered(worker, CREATE_ONE, LIST)
        assert worker.store.outbox  # the read's entry waits for the next round trip
        stream = worker.store._stream(ACME_ORG.encode())  # the key's organization's
        operator = redis.Redis.from_url(redis_server.url)
        [(last, _)] = operator.xrevrange(stream, count=1)
        hole.deafen()

        async def sent(request: Any) -> asyncio.Future[Any]:
            started = asyncio.ensure_future(worker.call(*request))
            await its_round_trip(worker)  # its catch-up is on its way ...
            assert not worker.store.pipe.unsent  # ... whole: it reaches Redis, the loop stopped
            return started

        created = worker.loop.run_until_complete(sent(CREATE_ONE))
        assert operator.xread({stream: last}, block=30_000)  # Redis appended what it carried
        timed_out(worker)
        status, _ = worker.loop.run_until_complete(created)
        assert status == 503
        during = [("POST", CREATE, 503, worker.request_ids[-1])]
        hole.restore()
        assert journal(worker) == before + during
        operator.close()
    worker.close()


def refused(answer: tuple[int, Any], code: str, said: str) -> None:
    """The contract's 503 for a request Redis refused before running any of it: the message
    says why in plain words (`said`) and that nothing was done; the reason is Redis's own."""
    status, body = answer
    assert status == 503, answer
    error = body["error"]
    assert error["code"] == "STORAGE_UNAVAILABLE"
    assert said in error["message"], error
    assert "nothing of this request was done" in error["message"], error
    assert error["details"]["reason"].startswith("redis://127.0.0.1:"), error
    assert f": {code} " in error["details"]["reason"], error


def refusing(worker: Worker, code: str, said: str) -> list[tuple[str, str, int, str]]:
    """A create and a read while Redis refuses (both 503: a read's catch-up writes too),
    health saying what Redis said, and ready saying not ready; (method, path, status, request
    id) of each answer the journal keeps (not ready's: a control call, never journaled)."""
    during = []
    for request in (CREATE_ONE, LIST):
        [answer] = worker.together(request)
        refused(answer, code, said)
        during.append((request[0], request[1], 503, worker.request_ids[-1]))
    [(status, health)] = worker.together(("GET", HEALTH, {}, None))
    assert status == 200
    store = health["sharedStore"]
    assert store["reachable"] is True and store["full"] is False
    assert f": {code} " in store["refused"], store
    [(status, body)] = worker.together(READY)  # not ready
    assert status == 503 and f": {code} " in body["error"]["details"]["reason"], body
    return during


def works_again(worker: Worker, before: list[Any], during: list[Any]) -> None:
    """Nothing of the refused create was kept, the next one is, health says nothing of the
    refusal, and the journal has every answer the client got."""
    after = answered(worker, CREATE_ONE, LIST)
    assert [a[2] for a in after] == [202, 200]
    [(_, listed)] = worker.together(LIST)
    assert len(listed["items"]) == 2  # the one before, the one after
    [(_, health)] = worker.together(("GET", HEALTH, {}, None))
    assert "refused" not in health["sharedStore"]
    assert journal(worker)[: len(before + during + after)] == before + during + after


def test_a_redis_demoted_to_a_replica_refuses_every_request_saying_so(own: RedisServer) -> None:
    """READONLY (Redis made a replica, as a failover does to the old primary): it refuses
    every script that may write before running it; the worker says so, and goes on once
    Redis is a primary again."""
    worker = Worker(own.sandbox())
    before = answered(worker, CREATE_ONE)
    operator = redis.Redis.from_url(own.url)
    with socket.socket() as nowhere:  # its primary: bound, never listening (never synced)
        nowhere.bind(("127.0.0.1", 0))
        operator.replicaof("127.0.0.1", nowhere.getsockname()[1])
        try:
            during = refusing(worker, "READONLY", "read-only replica")
        finally:
            operator.replicaof("NO", "ONE")
    works_again(worker, before, during)
    operator.close()
    worker.close()


@pytest.fixture
def movable() -> Iterator[RedisServer]:
    """A redis-server whose directory the test may move (`dir` is a protected config)."""
    with started(options=("--enable-protected-configs", "yes")) as server:
        yield server


def test_a_redis_that_cannot_save_refuses_writes_saying_so(movable: RedisServer) -> None:
    """MISCONF: Redis's last snapshot failed (its directory is gone) and it is configured to
    stop writes then (`stop-writes-on-bgsave-error yes`, the default): it refuses every
    script that may write before running it, until a snapshot works again."""
    own = movable
    worker = Worker(own.sandbox())
    before = answered(worker, CREATE_ONE)
    operator = redis.Redis.from_url(own.url)
    gone = own.directory / "gone"
    gone.mkdir()
    operator.config_set("save", "3600 1")
    operator.config_set("dir", str(gone))
    gone.rmdir()
    operator.bgsave()
    assert own.wait_for_log("Background saving error", 30)
    try:
        during = refusing(worker, "MISCONF", "cannot save")
    finally:
        operator.config_set("dir", str(own.directory))
        operator.bgsave()
        assert own.wait_for_log("Background saving terminated with success", 30)
    works_again(worker, before, during)
    operator.close()
    worker.close()


def test_a_redis_busy_running_a_script_refuses_requests_saying_so(own: RedisServer) -> None:
    """BUSY: another client's script runs past `busy-reply-threshold`; Redis refuses every
    other command until it ends (here: SCRIPT KILL), without running it, the loads of the
    worker's scripts on a new connection too (Redis restarted without them: here flushed):
    they are loaded again with its next command."""
    worker = Worker(own.sandbox())
    before = answered(worker, CREATE_ONE)
    operator = redis.Redis.from_url(own.url)
    operator.config_set("busy-reply-threshold", "10")
    operator.script_flush()
    worker.store.pipe.close()  # its next command connects again, and loads them first
    runner = redis.Redis.from_url(own.url)
    ended: list[BaseException] = []

    def run_on() -> None:
        try:
            runner.eval("while true do end", 0)
        except redis.RedisError as exc:  # killed
            ended.append(exc)

    looping = threading.Thread(target=run_on, daemon=True)
    looping.start()
    assert own.wait_for_log("Slow script detected", 30)
    try:
        during = refusing(worker, "BUSY", "busy running a script")
    finally:
        operator.script_kill()
        looping.join(30)
    assert ended and "SCRIPT KILL" in str(ended[0])
    works_again(worker, before, during)
    runner.close()
    operator.close()
    worker.close()


def test_a_redis_loading_its_dataset_after_a_restart_refuses_requests_saying_so(
    own: RedisServer,
) -> None:
    """LOADING: redis-server restarted, and still loading its dataset (made slow here: 1 ms
    a key for 100,000 keys, answering other clients between keys); every command is refused
    until it is done, the worker's handshake included. Started again without the delay, it
    answers at once, and the journal has the answers given meanwhile."""
    worker = Worker(own.sandbox())
    before = answered(worker, CREATE_ONE)
    operator = redis.Redis.from_url(own.url)
    operator.eval("for i = 1, 100000 do redis.call('SET', 'ballast:' .. i, 'x') end", 0)
    operator.bgrewriteaof()  # a snapshot as the AOF's base: the load the delay applies to
    assert own.wait_for_log("Background AOF rewrite finished successfully", 30)
    operator.close()
    own.kill()
    slow = ("--key-load-delay", "1000", "--loading-process-events-interval-bytes", "1024")
    own.options = slow
    own.start(ready=False)
    assert own.wait_for_log("Loading RDB produced by", 30)
    during = []
    for request in (CREATE_ONE, LIST):
        [answer] = worker.together(request)
        refused(answer, "LOADING", "loading its dataset")
        during.append((request[0], request[1], 503, worker.request_ids[-1]))
    [(status, health)] = worker.together(("GET", HEALTH, {}, None))
    assert status == 200 and ": LOADING " in health["sharedStore"]["refused"], health
    own.kill()
    own.options = ()
    own.start()
    works_again(worker, before, during)
    worker.close()


def no_replica_in_sync(operator: redis.Redis) -> Iterator[None]:
    operator.config_set("min-replicas-to-write", "1")  # and it has none
    yield
    operator.config_set("min-replicas-to-write", "0")


@pytest.mark.parametrize(
    ("refusing_writes", "code"),
    [(full, "OOM"), (replica, "READONLY"), (no_replica_in_sync, "NOREPLICAS")],
)
def test_ready_is_503_while_redis_refuses_writes_and_health_stays_200(
    own: RedisServer, refusing_writes: Any, code: str
) -> None:
    """A readiness probe says "not ready" while the worker would answer every write 503:
    Redis full (reads still answer), a replica, or short of replicas in sync; health (the
    liveness probe) stays 200, and ready is 200 again once Redis takes writes."""
    worker = Worker(own.sandbox())
    [(status, _)] = worker.together(READY)
    assert status == 200
    operator = redis.Redis.from_url(own.url)
    with contextlib.contextmanager(refusing_writes)(operator):
        [(status, body)] = worker.together(READY)
        assert status == 503, body
        assert body["error"]["code"] == "STORAGE_UNAVAILABLE"
        assert f": {code} " in body["error"]["details"]["reason"], body
        [(status, _)] = worker.together(CREATE_ONE)
        assert status == 503
        [(status, health)] = worker.together(("GET", HEALTH, {}, None))
        assert status == 200
        assert f": {code} " in health["sharedStore"]["refused"], health
    [(status, body)] = worker.together(READY)
    assert (status, body) == (200, {"status": "ready"})
    operator.close()
    worker.close()


def test_a_503_of_the_gate_is_journaled_only_for_what_one_server_journals(
    own: RedisServer,
) -> None:
    """edges14: the journal lists the operations the mock answered (partner and not-simulated
    ones), never control-plane calls, unknown paths or 405s (openapi/control.yaml). On Redis
    the gate's own 503 was journaled for every request, so a control call (a clock advance,
    a reset), a typo of a path or a 405 showed in `/_mock/requests` exactly when it had
    failed. The same requests, on memory and on Redis while it is down."""
    requests = [
        CREATE_ONE,
        ("POST", "/_mock/clock/advance", {}, {"seconds": 1}),
        ("GET", "/v1/nope", auth(FULL), None),
        ("DELETE", "/v1/whoami", auth(FULL), None),
        ("GET", "/v1/audit-log", auth(FULL), None),  # not simulated: a 501, journaled
    ]
    alone = Worker("memory")
    by_one = answered(alone, *requests)
    assert [(method, path) for method, path, _, _ in journal(alone)] == [
        by_one[0][:2],
        by_one[4][:2],
    ]
    alone.close()
    worker = Worker(own.sandbox())
    own.kill()
    during = answered(worker, *requests)
    assert [a[2] for a in during] == [503] * 4 + [501]  # a 501 needs nothing of Redis
    own.start()
    assert journal(worker) == [during[0], during[4]]
    worker.close()


NOT_SIMULATED = [  # with a key, with an Idempotency-Key, with an unknown key, with none
    ("GET", "/v1/audit-log", auth(FULL), None),
    ("POST", "/v1/organizations", auth(FULL, **{"Idempotency-Key": "org-1"}), {"name": "x"}),
    ("POST", "/v1/api-keys/key_1/kill", auth("lp_test_unknown_0000000000000000"), None),
    ("DELETE", "/v1/api-keys/key_1", {}, None),
]


def test_a_not_simulated_operation_answers_501_while_redis_is_down_as_memory_does(
    own: RedisServer,
) -> None:
    """cluster15: a Layers operation the mock does not simulate answers 501 NOT_SIMULATED
    whatever the key and whatever the state (CONTRACT.md "Changes"): on memory at once. On
    Redis a request with a bearer key (or to a path no partner route knows, with or without
    one) waited for a catch-up or the write lease first, so while Redis was down it answered
    503 where memory answered 501. Now it needs no round trip (none is counted), and its
    journal entry reaches Redis once it is back."""
    alone = Worker("memory")
    by_memory = [alone.together(request)[0] for request in NOT_SIMULATED]
    alone.close()
    assert [status for status, _ in by_memory] == [501] * len(NOT_SIMULATED)
    worker = Worker(own.sandbox())
    own.kill()
    trips = len(worker.trips)
    during, by_redis = [], []
    for request in NOT_SIMULATED:
        by_redis += worker.together(request)
        during.append((request[0], request[1], by_redis[-1][0], worker.request_ids[-1]))
    assert worker.trips[trips:] == []
    for (status, body), (got, answer) in zip(by_memory, by_redis, strict=True):
        assert got == status, answer
        assert answer["error"]["details"] == body["error"]["details"]
    own.start()
    assert journal(worker) == during
    worker.close()


def test_what_a_worker_stopping_after_a_redis_restart_still_held_reaches_the_journal(
    own: RedisServer,
) -> None:
    """A worker that lived through a Redis restart and answers again stops: the entries no
    round trip took along yet go at once on its own synchronous connection, idle since the
    worker opened and so still on the socket the dead Redis closed. Sent there, the append
    was lost (its answer never came, and an append is not tried twice): the last answers a
    client got were missing from the journal."""
    url = own.sandbox()
    worker = Worker(url).listening()
    before = answered(worker, CREATE_ONE)
    own.kill()
    own.start()
    after = answered(worker, CREATE_ONE, LIST)
    assert [a[2] for a in after] == [202, 200]
    assert worker.store.outbox  # the read's entry had not gone yet
    worker.close()  # a stopping server: no loop to run the pipe, the synchronous connection
    reader = Worker(url)
    assert journal(reader)[: len(before + after)] == before + after
    reader.close()
