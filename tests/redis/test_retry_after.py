"""Retry-After on a 503 that a retry can cure (CONTRACT.md "Changes": Retry-After speaks the
client's time; a store outage passes in the client's real time, so it is 1 real second on a
virtual clock too): Redis unreachable, a reshard half-way (TRYAGAIN/ASK), a commit refused
because another worker wrote first after this one's lease ran out. A 503 that waiting does not
cure carries none: Redis full (OOM), a read-only replica, a key of the sandbox overwritten
(WRONGTYPE/DAMAGED), and the readiness probe. The journal records the header as it was sent.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
import redis
from clusterd import RedisClusterServers, slot_of
from clustered import CREATE, keys_on, workers
from grouped import Worker
from redisd import RedisServer, full, replica, started
from support import FULL, HTTP_TIMEOUT_S, auth

from layers_mock_server.core.store import StoreUnavailable

CREATE_ONE = ("POST", CREATE, auth(FULL), {"gender": "male"})
LIST = ("GET", CREATE, auth(FULL), None)
READY = ("GET", "/_mock/ready", {}, None)
WHOAMI = ("GET", "/v1/whoami", auth(FULL), None)


@pytest.fixture
def own() -> Iterator[RedisServer]:
    """A redis-server of the test's own (killed and started again, or made to refuse)."""
    with started() as server:
        yield server


def answer(worker: Worker, request: tuple[str, str, dict[str, str], Any]) -> tuple[int, Any, Any]:
    """(status, its Retry-After or None, parsed body) of one request, as the client got it."""

    async def run() -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        sent = await worker.exchange(*request)
        await worker.deps.shared.settled()
        return sent

    status, headers, payload = worker.loop.run_until_complete(run())
    retry = dict(headers).get(b"retry-after")
    return status, None if retry is None else retry.decode(), orjson.loads(payload)


def create(base: str, key: str) -> httpx.Response:
    return httpx.post(
        base + CREATE, headers=auth(FULL, **{"Idempotency-Key": key}), json={}, timeout=30
    )


def half_way(cluster: RedisClusterServers, name: str, to: int) -> tuple[int, int]:
    """Start moving the sandbox's slot to node `to`, half of its keys moved (test_reshard.py):
    (slot, source)."""
    slot = slot_of(name)
    source = cluster.owner(slot)
    return slot, cluster.move(slot, to=to, keys=keys_on(cluster, source, name)[::2])


def journaled(entries: list[dict[str, Any]], request_id: str) -> str | None:
    """The Retry-After the journal recorded for the answer with this request id."""
    [entry] = [e for e in entries if e["requestId"] == request_id]
    return entry["response"]["headers"].get("retry-after")


def test_a_reshard_half_way_answers_503_with_retry_after_one_second(
    redis_cluster: RedisClusterServers,
) -> None:
    """TRYAGAIN/ASK: the slot answers again once the move ends, so the 503 of a create and of a
    read says when to try again, in real seconds (the clock is virtual); ready says not ready
    with no Retry-After (a probe, not a retry); the journal holds the header as sent (ready,
    a control call, is not journaled)."""
    url, name = redis_cluster.sandbox(on=2)
    with workers(url, count=1, journal_bodies=True) as [base]:
        create(base, "kept")
        slot, source = half_way(redis_cluster, name, to=0)
        refused = create(base, "mid")
        read = httpx.get(base + CREATE, headers=auth(FULL), timeout=30)
        ready = httpx.get(base + "/_mock/ready", timeout=30)
        redis_cluster.finish_move(slot, source, to=0)
        for response in (refused, read):
            assert response.status_code == 503, response.text
            assert response.json()["error"]["code"] == "STORAGE_UNAVAILABLE"
            assert response.headers.get("retry-after") == "1", response.headers
        assert ready.status_code == 503 and "retry-after" not in ready.headers
        entries = httpx.get(
            base + "/_mock/requests", params={"limit": 100}, timeout=HTTP_TIMEOUT_S
        ).json()["items"]
        assert journaled(entries, refused.headers["x-request-id"]) == "1"
        assert journaled(entries, read.headers["x-request-id"]) == "1"
        # ready's 503 is a control call's: not journaled, as on one server
        assert ready.headers["x-request-id"] not in {e["requestId"] for e in entries}


def test_an_unreachable_redis_answers_503_with_retry_after_one_second(own: RedisServer) -> None:
    """Redis killed: a create (its lease cannot be taken) and a read (its catch-up cannot be
    made) are 503 with `Retry-After: 1`; ready is 503 without one; once Redis is back the
    journal holds each operation's answer with the header it was sent with."""
    worker = Worker(own.sandbox(), bodies=True)
    try:
        assert answer(worker, CREATE_ONE)[0] == 202
        own.kill()
        during = []
        for request, retry in ((CREATE_ONE, "1"), (LIST, "1"), (READY, None)):
            status, header, body = answer(worker, request)
            assert status == 503, body
            assert body["error"]["code"] == "STORAGE_UNAVAILABLE"
            assert header == retry, (request, header)
            during.append((body["error"]["requestId"], retry))
        own.start()
        [(status, page)] = worker.together(("GET", "/_mock/requests", {}, None))
        assert status == 200, page
        for request_id, retry in during[:2]:
            assert journaled(page["items"], request_id) == retry
        # ready's 503 is a control call's: not journaled, as on one server
        assert during[2][0] not in {e["requestId"] for e in page["items"]}
    finally:
        worker.close()


@pytest.mark.parametrize("how", ["unreachable", "another worker wrote first"])
def test_a_group_whose_commit_failed_answers_each_request_with_retry_after(
    redis_server: RedisServer, patient: None, how: str
) -> None:
    """A group's commit fails: not sent (Redis unreachable), or refused by the write script
    because another worker wrote after this one's lease ran out. Each request of the group gets
    a 503 with `Retry-After: 1` (a retry takes the lease afresh), and the journal's copy of
    each 503 carries it too."""
    worker = Worker(redis_server.sandbox(), bodies=True)
    try:
        real = worker.store.send_write

        def failing(batches: Any, keep: bool) -> Any:
            if how == "unreachable":
                raise StoreUnavailable("redis://127.0.0.1:1/0: Connection reset by peer")
            worker.store.seen += 1  # another worker wrote since: the script refuses it all
            return real(batches, keep)

        worker.store.send_write = failing

        async def group() -> list[tuple[int, list[tuple[bytes, bytes]], bytes]]:
            sent = [worker.exchange(*CREATE_ONE) for _ in range(3)]
            answers = list(await asyncio.gather(*sent))
            await worker.deps.shared.settled()
            return answers

        answers = worker.loop.run_until_complete(group())
        worker.store.send_write = real
        assert [status for status, _, _ in answers] == [503] * 3
        assert [dict(headers).get(b"retry-after") for _, headers, _ in answers] == [b"1"] * 3
        [(status, page)] = worker.together(("GET", "/_mock/requests", {}, None))
        assert status == 200, page
        for _, headers, _ in answers:
            assert journaled(page["items"], dict(headers)[b"x-request-id"].decode()) == "1"
    finally:
        worker.close()


def denied(operator: redis.Redis) -> Iterator[None]:
    """Scripts taken from the mock's user (an ACL its operator tightened): Redis answers an
    error the mock has no name for (NOPERM), and it stays so until the operator acts."""
    operator.acl_setuser("default", enabled=True, nopass=True, commands=["-@scripting"])
    yield
    operator.acl_setuser("default", enabled=True, nopass=True, commands=["+@all"])


@pytest.mark.parametrize(
    ("refusing", "code"), [(full, "OOM"), (replica, "READONLY"), (denied, "NOPERM")]
)
def test_a_redis_that_refuses_until_someone_acts_answers_503_without_retry_after(
    own: RedisServer, refusing: Any, code: str
) -> None:
    """Redis full, or a replica: it refuses writes until its operator acts, so a retry a
    second later fails the same way, and the 503 says nothing of when to retry."""
    worker = Worker(own.sandbox())
    operator = redis.Redis.from_url(own.url)
    try:
        with contextlib.contextmanager(refusing)(operator):
            status, header, body = answer(worker, CREATE_ONE)
        assert status == 503 and f": {code} " in body["error"]["details"]["reason"], body
        assert header is None
    finally:
        operator.close()
        worker.close()


def test_a_damaged_key_answers_503_without_retry_after(two: tuple[Worker, Worker]) -> None:
    """A key of the sandbox overwritten by someone else (WRONGTYPE): it stays so until it is
    deleted and the sandbox reset, so the 503 carries no Retry-After."""
    first, second = two
    assert answer(first, WHOAMI)[0] == 200
    client = first.store._client
    client.delete(first.store.keys["rows"])
    client.set(first.store.keys["rows"], "garbage")
    second.store.forget()  # its next catch-up reads everything, `rows` too
    status, header, body = answer(second, WHOAMI)
    assert status == 503 and "a key of the sandbox" in body["error"]["message"], body
    assert header is None
