"""Attacks on the pipelined gate (http/shared.py over stores/redis_pipe.py): a group that ran
while the commit before it was on its way, a lease kept for a client that never finishes, a
request that goes away while its lease is on its way. Driven straight into the workers' ASGI
apps with test_grouped.py's harness; where two workers meet, both run on one event loop (each
store's pipe connects on the loop it is first used on), so "meanwhile" is exact."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from typing import Any

import pytest
import redis
from grouped import CREATE, Turn, Worker, influencers
from redisd import RedisServer, started
from support import FULL, PROJECT, auth

from layers_mock_server.cli import stopped
from layers_mock_server.core.store import OutcomeUnknown
from layers_mock_server.http import shared
from layers_mock_server.stores.redis_pipe import Pipe


def refuse_first_commit(worker: Any) -> list[asyncio.Future[Any]]:
    """The worker's first commit is held in Redis (CLIENT PAUSE, until `unpause`) and then
    refused (as if the worker had missed another's commit: compare-and-append); the sent
    futures, in order."""
    real = worker.store.send_write
    sent: list[asyncio.Future[Any]] = []

    def refused_first(batches: Any, keep: bool) -> Any:
        if not sent:
            worker.store._client.execute_command("CLIENT", "PAUSE", "4000", "WRITE")
            worker.store.seen += 1
        sent.append(real(batches, keep))
        return sent[-1]

    worker.store.send_write = refused_first
    return sent


def unpause(worker: Any) -> None:
    worker.store._client.execute_command("CLIENT", "UNPAUSE")


@pytest.mark.parametrize("body", [{"gender": "male"}, {"gender": "female"}], ids=["replay", "409"])
def test_a_group_that_ran_on_a_commit_which_then_failed_answers_503_not_what_it_saw(
    two: tuple[Any, Any], patient: None, monkeypatch: pytest.MonkeyPatch, body: Any
) -> None:
    """Commit N (a create with Idempotency-Key k) is on its way; the next group runs on the copy
    that holds it: a retry of k replays its 202 (or, with another body, is refused 409). That
    group writes nothing of its own, and stays open for a client still sending its body.
    Commit N is refused, so the create was never kept: the retry's answer must not be the
    replay of it (an influencer no one can find) nor a conflict with it."""
    first, second = two
    sent = refuse_first_commit(first)
    linger = shared.LINGER_S
    monkeypatch.setattr(shared, "LINGER_S", 3600.0)  # the lease waits for the next group
    key = auth(FULL, **{"Idempotency-Key": "k-refused"})

    async def run() -> list[tuple[int, Any]]:
        created = asyncio.ensure_future(first.call("POST", CREATE, key, {"gender": "male"}))
        while not sent:  # commit N is on its way (held by Redis)
            await Turn()
        body_sent: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        slow = asyncio.ensure_future(
            first.call("POST", CREATE, auth(FULL), {"gender": "female"}, sent_after=body_sent)
        )
        retried = asyncio.ensure_future(first.call("POST", CREATE, key, body))
        gate = first.deps.shared
        while gate.group is None or gate.group.size < 1 or gate.turn.locked():
            await Turn()  # the retry ran (on the copy holding commit N) and waits for its group
        unpause(first)
        made = await created  # commit N came back: refused
        body_sent.set_result(None)
        answers = [made, await retried, await slow]
        first.deps.shared._let_go(first.deps.shared.began)
        await first.deps.shared.settled()
        return answers

    made, retried, slow = first.loop.run_until_complete(run())
    monkeypatch.setattr(shared, "LINGER_S", linger)
    assert made[0] == 503 and made[1]["error"]["code"] == "STORAGE_UNAVAILABLE"
    kept = influencers(second)
    assert slow[0] == 202 and kept == [slow[1]["influencerId"]]  # the create was not kept
    assert retried[0] == 503, retried  # not a replay or a conflict of what was not kept
    assert retried[1]["error"]["code"] == "STORAGE_UNAVAILABLE"
    [(_, page)] = second.together(("GET", "/_mock/requests", {}, None))
    logged = {i["requestId"]: i["status"] for i in page["items"]}
    assert logged[retried[1]["error"]["requestId"]] == 503  # the journal says what it got
    [(status, again)] = first.together(("POST", CREATE, key, body))  # the retry creates it
    assert status == 202
    assert set(influencers(first)) == set(influencers(second)) == {*kept, again["influencerId"]}


def test_a_client_still_sending_its_body_does_not_keep_the_lease_from_the_other_workers(
    two: tuple[Any, Any],
) -> None:
    """A write whose client sends its body slowly is waiting when the group before it commits:
    that commit kept the lease for it, with no end (no LINGER_S), so every write of the other
    worker waited until the lease ran out (LEASE_MS, 10 s), and the slow write, on a lease
    that was no longer its worker's, was then refused (503)."""
    first, second = two

    async def run() -> list[tuple[int, Any]]:
        body_sent: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        slow = asyncio.ensure_future(
            first.call("POST", CREATE, auth(FULL), {"gender": "male"}, sent_after=body_sent)
        )
        fast = await first.call("POST", CREATE, auth(FULL), {"gender": "female"})
        there = await asyncio.wait_for(second.call("POST", CREATE, auth(FULL), {}), 5)
        body_sent.set_result(None)
        answers = [fast, there, await slow]
        await first.deps.shared.settled()
        await second.deps.shared.settled()
        return answers

    answers = first.loop.run_until_complete(run())  # both workers on one loop
    assert [status for status, _ in answers] == [202] * 3
    made = {body["influencerId"] for _, body in answers}
    assert set(influencers(first)) == set(influencers(second)) == made


def test_a_write_that_goes_away_while_its_lease_is_on_its_way_leaves_the_copy_whole(
    two: tuple[Any, Any],
) -> None:
    """The lease's round trip brings the other worker's commits; the request that asked for it
    is cancelled before it came back (Redis holds it: CLIENT PAUSE). The store counted those
    commits as seen, but no one applied them: the copy lost them for good (every later
    catch-up starts after them), and the lease stayed held until it ran out."""
    first, second = two
    [(status, made)] = second.together(("POST", CREATE, auth(FULL), {"gender": "male"}))
    assert status == 202

    async def run() -> tuple[Any, Any]:
        first.store._client.execute_command("CLIENT", "PAUSE", "4000", "WRITE")
        gone = asyncio.ensure_future(first.call("POST", CREATE, auth(FULL), {}))
        while "lock" not in first.trips:
            await Turn()
        gone.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await gone
        unpause(first)
        listed = await first.call("GET", CREATE, auth(FULL), None)
        there = await asyncio.wait_for(second.call("POST", CREATE, auth(FULL), {}), 5)
        await first.deps.shared.settled()
        await second.deps.shared.settled()
        return listed, there

    (status, listed), there = first.loop.run_until_complete(run())  # both workers on one loop
    assert status == 200
    assert [i["influencerId"] for i in listed["items"]] == [made["influencerId"]]
    assert there[0] == 202
    both = {made["influencerId"], there[1]["influencerId"]}
    assert set(influencers(first)) == set(influencers(second)) == both


def test_a_lease_that_could_not_be_given_back_while_redis_was_down_goes_back_when_it_returns(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Redis dies (kill -9) with a worker's commit on its way: the commit fails, and so does
    giving the lease back (nothing listens). Redis comes back from its AOF with the lease in
    it, held by no one who knows: every write of the sandbox, on every worker, waited until
    it ran out (LEASE_MS, 10 s)."""
    monkeypatch.setattr(shared, "GROUP_S", 3600.0)
    with started(fsync="always") as server:
        url = server.sandbox()
        first, second = Worker(url), Worker(url)
        real = first.store.send_write

        def held(batches: Any, keep: bool) -> Any:  # the lease is taken: writes wait in Redis
            first.store._client.execute_command("CLIENT", "PAUSE", "4000", "WRITE")
            return real(batches, keep)

        first.store.send_write = held

        async def run() -> tuple[Any, Any]:
            lost = asyncio.ensure_future(first.call("POST", CREATE, auth(FULL), {}))
            while "write" not in first.trips:
                await Turn()
            server.kill()
            answer = await lost
            server.start()  # the same port and directory: the AOF brings the lease back
            first.store.send_write = real
            there = await asyncio.wait_for(second.call("POST", CREATE, auth(FULL), {}), 5)
            await second.deps.shared.settled()
            return answer, there

        try:
            (status, body), there = first.loop.run_until_complete(run())
            assert status == 503 and "may have been kept" in body["error"]["message"]
            assert there[0] == 202
            assert there[1]["influencerId"] in influencers(first)
        finally:
            first.close()
            second.close()


def test_a_worker_that_stops_gives_the_lease_back_and_sends_its_last_journal_entries(
    two: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch, patient: None
) -> None:
    """SIGTERM stops a worker's event loop at once (granian does not wait for its timers): the
    lease it kept for a next group (LINGER_S) stayed held, and the other workers' writes
    waited for it to run out (10 s; seen in 1 of 6 SIGTERMs under load), and the journal
    entries its flush timer had not sent yet (FLUSH_S) never reached /_mock/requests.

    `patient`: a commit keeps the lease only within CHAIN_S (50 ms) of taking it, so a create
    that took longer on a loaded machine gave it back, and the lease this test stops with was
    not held (flake16: failed with CHAIN_S at 0, a machine slow enough)."""
    first, second = two
    linger = shared.LINGER_S
    monkeypatch.setattr(shared, "LINGER_S", 3600.0)  # the lease is surely kept at the stop

    async def served() -> tuple[Any, Any]:
        return (
            await first.call("POST", CREATE, auth(FULL), {}),
            await first.call("GET", "/v1/whoami", auth(FULL), None),
        )

    made, read = first.loop.run_until_complete(served())  # then the loop runs no more
    assert made[0] == 202 and read[0] == 200 and first.deps.sim.holds_lease()
    stopped(first.deps)  # what `serve` does once its server stopped
    monkeypatch.setattr(shared, "LINGER_S", linger)

    async def after() -> Any:
        return await asyncio.wait_for(second.call("POST", CREATE, auth(FULL), {}), 5)

    there = second.loop.run_until_complete(after())
    assert there[0] == 202
    [(status, page)] = second.together(("GET", "/_mock/requests", {}, None))
    assert status == 200
    assert first.request_ids[1] in {i["requestId"] for i in page["items"]}  # the read's


def test_a_connection_lost_while_its_scripts_load_leaves_nothing_on_stderr(
    redis_server: RedisServer,
) -> None:
    """The pipe loads its scripts ahead of the first command on each new connection; when the
    connection goes right away, nothing awaits those loads, and asyncio printed "Future
    exception was never retrieved" with the exception, a traceback-like report on the
    worker's stderr for an outage it already answered 503."""
    client = redis.Redis.from_url(redis_server.url)
    pipe = Pipe(client.connection_pool.make_connection, ["return 1"], "redis://test", 5.0)
    loop = asyncio.new_event_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: reported.append(context))

    async def go() -> None:
        sent = pipe.call("PING")
        pipe.close()  # before any answer came
        with pytest.raises(OutcomeUnknown):
            await sent

    loop.run_until_complete(go())
    loop.close()
    gc.collect()
    assert reported == []
    client.close()


def test_a_rule_used_up_by_a_request_whose_commit_failed_while_it_slept_fires_once(
    two: tuple[Any, Any],
) -> None:
    """A `count: 1` rule with a latency: the request uses it up, and its worker commits that
    before the request sleeps (so that the others may write meanwhile). That commit is
    refused; the copy is read again (the rule unused), yet the request went on and answered
    the rule's fault: the next request answered it too, a `count: 1` rule fired twice."""
    first, second = two
    rule = {"match": {"operationId": "createInfluencer"}, "fault": "500", "latencyMs": 10}
    assert first.together(("POST", "/_mock/rules", {}, {**rule, "count": 1}))[0][0] == 201
    real = first.store.send_write

    def refused(batches: Any, keep: bool) -> Any:
        first.store.send_write = real
        first.store.seen += 1  # as if it had missed a commit: compare-and-append refuses it
        return real(batches, keep)

    async def nap(seconds: float) -> None:  # the mock's real-time wait, skipped
        assert seconds == 0.01

    first.store.send_write = refused
    first.deps.shared.nap = nap
    answers = [first.together(("POST", CREATE, auth(FULL), {}))[0] for _ in range(2)]
    answers += second.together(("POST", CREATE, auth(FULL), {}))
    # the first request's use of the rule was not kept: it says so (503), and the rule fires
    # on the next request, once; then it is used up, on both workers
    assert [status for status, _ in answers] == [503, 500, 202]
    assert answers[0][1]["error"]["code"] == "STORAGE_UNAVAILABLE"
    assert answers[1][1]["error"]["details"] == {"injected": True}
    assert second.together(("GET", "/_mock/rules", {}, None))[0][1]["items"] == []


def test_a_tenant_sending_a_control_body_slowly_does_not_hold_the_sandbox_from_the_others(
    two: tuple[Any, Any],
) -> None:
    """A tenant's own control request (a rule, with its API key) took the sandbox's lease and
    then waited for its body: one slow client held every write of every tenant, on every
    worker, until the lease ran out (10 s), and its own rule was then refused (503)."""
    first, second = two
    rule = {"match": {"operationId": "cancelJob"}, "fault": "500"}

    async def run() -> list[tuple[int, Any]]:
        body_sent: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        slow = asyncio.ensure_future(
            first.call("POST", "/_mock/rules", auth(FULL), rule, sent_after=body_sent)
        )
        for _ in range(3):
            await Turn()  # the control request is waiting for its body
        there = await asyncio.wait_for(second.call("POST", CREATE, auth(FULL), {}), 5)
        body_sent.set_result(None)
        answers = [there, await slow]
        await first.deps.shared.settled()
        await second.deps.shared.settled()
        return answers

    there, added = first.loop.run_until_complete(run())  # both workers on one loop
    assert there[0] == 202 and added[0] == 201, added
    assert influencers(first) == [there[1]["influencerId"]]
    [(status, rules)] = second.together(("GET", "/_mock/rules", auth(FULL), None))
    assert status == 200 and [r["ruleId"] for r in rules["items"]] == [added[1]["ruleId"]]


def test_a_sandbox_flushed_from_redis_starts_afresh_on_every_worker_alike() -> None:
    """FLUSHALL (or a Redis restarted without its data) under running workers. A worker that
    caught up kept its copy of what was gone; a write then committed its own rows and the
    meta row onto nothing, a state the other workers could not read back (every request
    after: a bare 500 and a traceback). Now the sandbox starts afresh from the fixtures, as
    on a first start, on every worker alike, and the first write stores it whole."""
    with started() as server:
        url = server.sandbox()
        first, second = Worker(url), Worker(url)
        workers = [first, second]
        try:
            [(status, _)] = first.together(("POST", CREATE, auth(FULL), {}))
            assert status == 202 and len(influencers(second)) == 1
            first.store._client.flushall()
            assert influencers(first) == []  # gone from Redis: gone here too
            [(status, made)] = second.together(("POST", CREATE, auth(FULL), {}))
            assert status == 202
            workers.append(Worker(url))  # a worker that starts now
            for worker in workers:
                assert influencers(worker) == [made["influencerId"]]
                [(status, project)] = worker.together(
                    ("GET", f"/v1/projects/{PROJECT}", auth(FULL), None)
                )
                assert status == 200 and project["id"] == PROJECT  # the fixtures' own
        finally:
            for worker in workers:
                worker.close()


@pytest.mark.parametrize("meta", [b"{", b'{"version": 999}'], ids=["not JSON", "not a state"])
def test_a_sandbox_state_this_version_cannot_read_answers_503_and_holds_no_lease(
    two: tuple[Any, Any], meta: bytes
) -> None:
    """What Redis holds for the sandbox is not a state this worker can read (tampered with, or
    written by another version of layers-mock during a rolling upgrade). Reads and writes
    answered a bare 500 with a traceback on stderr, and a write kept the lease it took
    until it ran out. They answer 503 in the envelope, saying so; deleting the sandbox's
    keys starts it afresh."""
    first, second = two
    [(status, _)] = first.together(("POST", CREATE, auth(FULL), {}))
    assert status == 202
    client, keys = first.store._client, first.store.keys
    client.set(keys["meta"], meta)
    client.delete(keys["log"])  # the log no longer reaches back: everything is read
    client.incr(keys["commits"])
    client.delete(keys["whole"])  # another version keeps no census (else: DAMAGED, test_damaged)
    answers = second.together(("GET", CREATE, auth(FULL), None), ("POST", CREATE, auth(FULL), {}))
    for status, body in answers:
        assert status == 503 and body["error"]["code"] == "STORAGE_UNAVAILABLE"
        assert "cannot read" in body["error"]["details"]["reason"]
    assert client.get(keys["lease"]) is None
    client.delete(*keys.values())
    [(status, made)] = second.together(("POST", CREATE, auth(FULL), {}))
    assert status == 202 and influencers(first) == [made["influencerId"]]
