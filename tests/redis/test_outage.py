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
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from blackhole import Blackhole
from grouped import CREATE, Turn, Worker
from redisd import RedisServer, started
from support import FULL, auth

from layers_mock_server.stores import redis_journal

HEALTH = "/_mock/health"
JOURNAL = ("GET", "/_mock/requests", {}, None)
NEVER_S = 3600.0  # a pipe timeout no test reaches: its waits end when the test says


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


def timed_out(worker: Worker) -> None:
    """The pipe's timeout passes now, at the test's word (as in test_reconnect.py)."""
    pipe = worker.store.pipe
    if pipe.watch is not None:
        pipe.watch.cancel()
    pipe.timeout = 0.0
    pipe._watch()
    pipe.timeout = NEVER_S


CREATE_ONE = ("POST", CREATE, auth(FULL), {"gender": "male"})
LIST = ("GET", CREATE, auth(FULL), None)


def test_the_503s_of_a_redis_restart_and_what_was_queued_before_reach_the_journal(
    own: RedisServer,
) -> None:
    """kill -9 of redis-server (its AOF fsynced on every write), requests answered 503 while
    it is down, started again: the journal shows what was answered before (the last read's
    entry still waited in the worker when Redis went) and every 503, in order, with the
    request ids the clients got."""
    worker = Worker(own.sandbox())
    before = answered(worker, CREATE_ONE, LIST)
    assert [a[2] for a in before] == [202, 200]
    assert worker.store.outbox  # the read's entry had not gone yet
    own.kill()
    during = answered(worker, CREATE_ONE, LIST, CREATE_ONE)
    assert [a[2] for a in during] == [503, 503, 503]
    own.start()
    assert journal(worker) == before + during
    worker.close()


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
            while not worker.store.pipe.waiting:  # its round trip is on its way
                await Turn()
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
    """A catch-up carries the worker's waiting entries; Redis runs it (they are appended) and
    its answer is lost on the way back: the request answers 503 (it cannot know), its
    entries go again with the next round trip, and Redis appends them only once."""
    with Blackhole(redis_server.port) as hole:
        worker = Worker(through(hole, redis_server))
        worker.store.pipe.timeout = NEVER_S
        before = answered(worker, CREATE_ONE, LIST)
        assert worker.store.outbox  # the read's entry waits for the next round trip
        stream = worker.store.keys["journal"]
        operator = redis.Redis.from_url(redis_server.url)
        [(last, _)] = operator.xrevrange(stream, count=1)
        hole.deafen()

        async def sent(request: Any) -> asyncio.Future[Any]:
            started = asyncio.ensure_future(worker.call(*request))
            while not worker.store.pipe.waiting:  # its catch-up is on its way
                await Turn()
            return started

        listed = worker.loop.run_until_complete(sent(LIST))
        assert operator.xread({stream: last}, block=30_000)  # Redis appended what it carried
        timed_out(worker)
        status, _ = worker.loop.run_until_complete(listed)
        assert status == 503
        during = [("GET", CREATE, 503, worker.request_ids[-1])]
        hole.restore()
        assert journal(worker) == before + during
        operator.close()
    worker.close()
