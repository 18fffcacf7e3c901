"""A Redis at its `maxmemory` (noeviction) keeps the sandbox readable: reads answer from the
committed state, charged in their rate windows, with request ids unique across workers; every
write answers 503 saying Redis is full, nothing of it kept; the journal holds the answers
given meanwhile once Redis has room; and with room again everything works, with no restart.

The workers are driven in-process (tests/grouped.py) on a redis-server of this module's own,
whose memory the tests take away and give back (`CONFIG SET maxmemory`, or by deleting an
unrelated key).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from grouped import CREATE, Turn, Worker, influencers
from redisd import RedisServer, started
from support import FULL, PROJECT, STANDARD, auth

from layers_mock_server.core import lifecycle, requestids
from layers_mock_server.http import shared

BALLAST = "unrelated:ballast"  # another application's data in the same Redis


@pytest.fixture(scope="module")
def own() -> Iterator[RedisServer]:
    with started() as server:
        yield server


@pytest.fixture
def client(own: RedisServer) -> Iterator[redis.Redis]:
    """An operator's client on the module's server, which has room again after the test."""
    client = redis.Redis.from_url(own.url)
    client.config_set("maxmemory-policy", "noeviction")
    yield client
    client.config_set("maxmemory", "0")
    client.delete(BALLAST)
    client.close()


def fill(client: redis.Redis) -> None:
    """Redis is at its maxmemory: it refuses every command that may take memory."""
    client.config_set("maxmemory", "1")


def make_room(client: redis.Redis) -> None:
    client.config_set("maxmemory", "0")


def fill_with_ballast(client: redis.Redis) -> None:
    """Full because of someone else's 4 MB: deleting them makes 2 MB of room. (Made by a
    short SETRANGE: sending the 4 MB would hold as much again in Redis's query buffer and
    AOF buffer until its next cron, so deleting the key would not make room at once.)"""
    used = int(client.info("memory")["used_memory"])
    client.setrange(BALLAST, 4_000_000, "x")
    client.config_set("maxmemory", str(used + 2_000_000))


def delete_ballast(client: redis.Redis) -> None:
    client.delete(BALLAST)  # DEL takes no memory: Redis runs it while full


@pytest.fixture
def workers(own: RedisServer, request: pytest.FixtureRequest) -> Iterator[list[Worker]]:
    """`request.param` workers (default 2) on one fresh sandbox of the module's server."""
    url = own.sandbox()
    made = [Worker(url) for _ in range(getattr(request, "param", 2))]
    yield made
    for worker in made:
        worker.close()


def reads(made: dict[str, Any]) -> list[tuple[str, str, dict[str, str], Any]]:
    return [
        ("GET", f"/v1/jobs/{made['jobId']}", auth(FULL), None),
        ("GET", f"/v1/influencers/{made['influencerId']}", auth(FULL), None),
        ("GET", CREATE, auth(FULL), None),
        ("GET", "/v1/projects", auth(FULL), None),
        ("GET", f"/v1/projects/{PROJECT}", auth(FULL), None),
        ("GET", "/v1/whoami", auth(FULL), None),
        ("GET", "/v1/credits", auth(FULL), None),
        ("GET", "/_mock/clock", {}, None),
        ("GET", "/_mock/jobs", {}, None),
        ("GET", "/_mock/health", {}, None),
    ]


def full_503(answer: tuple[int, Any]) -> None:
    """The contract's 503, saying Redis is full and that nothing was done."""
    status, body = answer
    assert status == 503, answer
    error = body["error"]
    assert error["code"] == "STORAGE_UNAVAILABLE"
    assert "is full" in error["message"] and "nothing of this request was done" in error["message"]
    assert "maxmemory" in error["details"]["reason"]


def journal(worker: Worker) -> dict[str, int]:
    """request id -> the status the journal recorded."""
    [(status, page)] = worker.together(("GET", "/_mock/requests", {}, None))
    assert status == 200
    return {item["requestId"]: item["status"] for item in page["items"]}


@pytest.mark.parametrize("workers", [1, 2], indirect=True, ids=["one-worker", "two-workers"])
def test_a_full_redis_answers_every_read_from_the_committed_state(
    workers: list[Worker], client: redis.Redis
) -> None:
    [(status, made)] = workers[0].together(("POST", CREATE, auth(FULL), {"gender": "male"}))
    assert status == 202
    before = [workers[-1].together(read)[0] for read in reads(made)]
    assert [status for status, _ in before] == [200] * len(before)
    fill(client)
    for worker in workers:
        during = [worker.together(read)[0] for read in reads(made)]
        assert during[:-1] == before[:-1]
        assert during[-1][1]["sharedStore"]["full"] is True  # health says why writes fail
        assert before[-1][1]["sharedStore"]["full"] is False
        [(status, page)] = worker.together(("GET", "/_mock/requests", {}, None))
        assert status == 200  # what was recorded before Redis filled up
        assert any(i["path"] == CREATE and i["status"] == 202 for i in page["items"])


@pytest.mark.parametrize(
    ("full", "freed"),
    [(fill, make_room), (fill_with_ballast, delete_ballast)],
    ids=["maxmemory-raised", "unrelated-key-deleted"],
)
def test_a_write_to_a_full_redis_is_refused_whole_and_works_again_once_there_is_room(
    workers: list[Worker],
    client: redis.Redis,
    full: Callable[[redis.Redis], None],
    freed: Callable[[redis.Redis], None],
) -> None:
    first, second = workers
    [(status, made)] = first.together(("POST", CREATE, auth(FULL), {"gender": "male"}))
    assert status == 202
    [(_, clock)] = second.together(("GET", "/_mock/clock", {}, None))
    full(client)
    key = auth(FULL, **{"Idempotency-Key": "full-1"})
    refused = [
        first.together(("POST", CREATE, key, {"gender": "female"}))[0],
        second.together(("POST", CREATE, key, {"gender": "female"}))[0],
        second.together(("POST", f"/v1/jobs/{made['jobId']}/cancel", auth(FULL), None))[0],
        first.together(("POST", "/_mock/clock/advance", {}, {"seconds": 60}))[0],
        second.together(("POST", "/_mock/reset", {}, None))[0],
    ]
    for answer in refused:
        full_503(answer)
    answered = [first.together(read)[0] for read in reads(made)[:-1]]  # reads go on meanwhile
    assert all(status == 200 for status, _ in answered)
    read_ids = first.request_ids[-len(answered) :][:7]  # the partner API's
    for worker in workers:  # nothing of the writes was kept
        assert influencers(worker) == [made["influencerId"]]
        assert worker.together(("GET", "/_mock/clock", {}, None))[0] == (200, clock)
        [(status, job)] = worker.together(("GET", f"/v1/jobs/{made['jobId']}", auth(FULL), None))
        assert job["status"] == "running"
    health = ("GET", "/_mock/health", {}, None)
    assert [w.together(health)[0][1]["sharedStore"]["full"] for w in workers] == [True, True]
    freed(client)
    [(status, again)] = second.together(("POST", CREATE, key, {"gender": "female"}))
    assert status == 202  # the retry creates it: the refused create left nothing behind
    assert second.together(health)[0][1]["sharedStore"]["full"] is False  # room again
    both = [made["influencerId"], again["influencerId"]]
    assert influencers(first) == influencers(second) == both[::-1]
    # The journal has the answers given while Redis was full, once it had room for them.
    logged = journal(second)
    for _, body in refused[:3]:  # the partner API's (the control plane is not journaled)
        assert logged[body["error"]["requestId"]] == 503
    assert [logged.get(rid) for rid in read_ids] == [200] * len(read_ids)


def test_reads_on_a_full_redis_are_charged_in_their_window_exactly(
    workers: list[Worker], client: redis.Redis
) -> None:
    """A `standard` key reads 120 times a minute whichever worker answers, full or not: the
    counter of a window is the one thing written while Redis is full."""
    first, second = workers
    whoami = ("GET", "/v1/whoami", auth(STANDARD), None)
    assert first.together(whoami)[0][0] == 200  # the window exists before Redis fills up
    fill(client)
    answers = first.together(*[whoami] * 70) + second.together(*[whoami] * 60)
    assert [status for status, _ in answers] == [200] * 119 + [429] * 11
    make_room(client)
    [(status, body)] = first.together(whoami)  # the 131st read of the window
    assert status == 429 and body["error"]["code"] == "RATE_LIMITED"


def test_request_ids_stay_unique_across_workers_on_a_full_redis(
    own: RedisServer, client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each worker hands out request numbers from blocks it reserves in Redis; a worker whose
    block ran out while Redis was full went on with numbers no one had reserved, and the two
    workers answered with the same request ids. (The workers start once blocks are of 4: a
    worker reserves its first block as it starts.)"""
    monkeypatch.setattr(requestids, "BLOCK", 4)
    monkeypatch.setattr(lifecycle, "BLOCK", 4)
    url = own.sandbox()
    first, second = Worker(url), Worker(url)
    try:
        whoami = ("GET", "/v1/whoami", auth(FULL), None)
        first.together(whoami)
        second.together(whoami)
        fill(client)
        for _ in range(3):
            first.together(*[whoami] * 5)
            second.together(*[whoami] * 5)
        given = [rid for rid in first.request_ids + second.request_ids if rid]
        assert len(given) == 32
        assert len(set(given)) == len(given)
    finally:
        first.close()
        second.close()


def test_request_ids_on_a_full_redis_are_the_ones_the_same_requests_get_with_room(
    own: RedisServer, client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request id is reproducible (the seed and the request's number) while its number is in
    a block the worker reserved. The next block is reserved through the pipe while half of
    the current one is left; a full Redis refused that HINCRBY (it may take memory), so past
    the block the ids were minted with the worker's name, as while Redis is unreachable:
    unique, but not the ones the same requests got on a Redis with room."""
    monkeypatch.setattr(requestids, "BLOCK", 4)
    monkeypatch.setattr(lifecycle, "BLOCK", 4)
    whoami = ("GET", "/v1/whoami", auth(FULL), None)
    given: list[list[str]] = []
    for full in (False, True):
        worker = Worker(own.sandbox())  # the same fixtures and seed, a sandbox of its own
        try:
            if full:
                fill(client)
            for _ in range(10):  # past two blocks, one at a time
                assert worker.together(whoami)[0][0] == 200
            given.append(worker.request_ids)
        finally:
            make_room(client)
            worker.close()
    assert given[1] == given[0]


def test_no_round_trip_to_a_full_redis_blocks_a_serving_workers_event_loop(
    own: RedisServer,
    client: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
    on_the_loop: list[bytes],
) -> None:
    """What a full Redis adds goes through the pipe too: a read's catch-up sent again as
    CHANGES_FULL, journal reads, the blocks of request ids past the end of one, refused
    writes and control writes (the lease going back), and once there is room the journal's
    entries that waited for it."""
    monkeypatch.setattr(requestids, "BLOCK", 4)
    monkeypatch.setattr(lifecycle, "BLOCK", 4)
    url = own.sandbox()
    first, second = Worker(url), Worker(url)
    try:
        create = ("POST", CREATE, auth(FULL), {"gender": "male"})
        listed = ("GET", CREATE, auth(FULL), None)
        journal = ("GET", "/_mock/requests", {}, None)
        assert first.together(create)[0][0] == 202
        fill(client)
        answers = [
            *first.together(listed, journal),
            *second.together(listed, create),
            *first.together(("POST", "/_mock/clock/advance", {}, {"seconds": 5})),
            *second.together(("POST", "/_mock/reset", {}, {})),
            *first.together(*[listed] * 6),
        ]
        make_room(client)
        answers += [*second.together(listed, journal), *first.together(create)]
        assert [s for s, _ in answers] == [200, 200, 200, 503, 503, 503, *[200] * 6, 200, 200, 202]
        assert on_the_loop == [], [c.split(b"\r\n")[2:7] for c in on_the_loop]
    finally:
        first.close()
        second.close()


@pytest.mark.parametrize(
    "control",
    [
        ("POST", "/_mock/reset", {}, None),
        ("POST", "/_mock/clock/advance", {}, {"seconds": 60}),
        ("PUT", "/_mock/state", {}, "export"),
    ],
    ids=["reset", "clock", "import"],
)
def test_redis_full_during_a_control_write_keeps_nothing_and_gives_the_lease_back(
    workers: list[Worker], client: redis.Redis, control: tuple[str, str, dict[str, str], Any]
) -> None:
    """Redis fills up after a control request took the lease, before it writes: it answers
    503, the state is as it was, and the lease goes back at once (a lease held by no one who
    knows would hold every worker's writes until it ran out, LEASE_MS: 10 s)."""
    first, second = workers
    [(status, export)] = first.together(("GET", "/_mock/state", {}, None))
    assert status == 200
    [(status, made)] = first.together(("POST", CREATE, auth(FULL), {"gender": "male"}))
    assert status == 202
    method, path, headers, body = control
    if body == "export":
        body = export  # the state before the create: it would remove the influencer
    real = first.store.send_write

    def filled_first(batches: Any, keep: bool) -> Any:
        fill(client)
        return real(batches, keep)

    first.store.send_write = filled_first
    [answer] = first.together((method, path, headers, body))
    first.store.send_write = real
    full_503(answer)
    assert influencers(first) == influencers(second) == [made["influencerId"]]
    [(status, job)] = second.together(("GET", f"/v1/jobs/{made['jobId']}", auth(FULL), None))
    assert (status, job["stage"]) == (200, "queued")  # the clock did not move
    make_room(client)

    async def write() -> tuple[int, Any]:
        return await asyncio.wait_for(second.call("POST", CREATE, auth(FULL), {}), 5)

    status, there = second.loop.run_until_complete(write())
    assert status == 202
    assert set(influencers(first)) == {made["influencerId"], there["influencerId"]}


def test_a_worker_that_starts_while_redis_is_full_answers_reads_and_refuses_writes(
    own: RedisServer, client: redis.Redis
) -> None:
    """A worker (re)started while Redis is full (a `--workers` process that died, a deploy)
    reads the sandbox without its lease, which it cannot take; a sandbox that is not in
    Redis yet cannot be started until Redis has room, and `serve` says so."""
    url = own.sandbox()
    first = Worker(url)
    try:
        [(status, made)] = first.together(("POST", CREATE, auth(FULL), {"gender": "male"}))
        assert status == 202
        job = ("GET", f"/v1/jobs/{made['jobId']}", auth(FULL), None)
        [before] = first.together(job)
        fill(client)
        late = Worker(url)
        try:
            assert late.together(job) == [before]
            assert influencers(late) == [made["influencerId"]]
            full_503(late.together(("POST", CREATE, auth(FULL), {}))[0])
        finally:
            late.close()
        with pytest.raises(ValueError, match=r"is full: .* is not there yet"):
            Worker(own.sandbox())
    finally:
        first.close()


def test_redis_full_in_the_middle_of_a_burst_of_creates_from_two_workers(
    workers: list[Worker], client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two workers create at once, in groups of three; Redis fills up as the third commit
    goes out. Every answer is a 202 that is kept or a 503 that says nothing was done (none
    "may have been kept", no 500); the journal has what each client got; once Redis has
    room, a retry of each 503 with its key creates it, and a retry of each 202 replays it."""
    monkeypatch.setattr(shared, "GROUP_WRITES", 3)
    first, second = workers
    commits: list[int] = []
    for worker in workers:
        real = worker.store.send_write

        def filling(batches: Any, keep: bool, real: Any = real) -> Any:
            commits.append(len(batches))
            if len(commits) == 3:
                fill(client)
            return real(batches, keep)

        worker.store.send_write = filling
    keys = [auth(FULL, **{"Idempotency-Key": f"burst-{n}"}) for n in range(24)]

    async def burst() -> list[tuple[int, Any]]:
        calls = [workers[n % 2].call("POST", CREATE, key, {}) for n, key in enumerate(keys)]
        answers = list(await asyncio.gather(*calls))
        for worker in workers:
            await worker.deps.shared.settled()
        return answers

    answers = first.loop.run_until_complete(burst())  # both workers on one loop
    assert len(commits) >= 3
    assert client.get(first.store.keys["lease"]) is None  # no one's: none left behind
    made = {body["influencerId"] for status, body in answers if status == 202}
    assert {status for status, _ in answers} == {202, 503} and made
    for status, body in answers:
        if status == 503:
            full_503((status, body))
    assert set(influencers(first)) == set(influencers(second)) == made
    make_room(client)
    assert set(influencers(first)) == made  # its next round trip takes what waited for room
    [(_, page)] = second.together(("GET", "/_mock/requests", {}, None))
    logged = [i["status"] for i in page["items"] if i["method"] == "POST"]
    assert sorted(logged) == sorted(status for status, _ in answers)
    again = [workers[n % 2].together(("POST", CREATE, key, {}))[0] for n, key in enumerate(keys)]
    assert [status for status, _ in again] == [202] * len(keys)
    for (status, body), (_, retried) in zip(answers, again, strict=True):
        if status == 202:
            assert retried == body  # the replay of what was kept
    everyone = {body["influencerId"] for _, body in again}
    assert len(everyone) == len(keys)
    assert set(influencers(first)) == set(influencers(second)) == everyone


def test_a_group_open_when_the_commit_before_it_is_refused_is_answered_after_it(
    workers: list[Worker], client: redis.Redis, patient: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A commit is on its way (held by CLIENT PAUSE) with the next group open behind it (its
    request ran on the copy; the group waits for a client still sending its body). Redis,
    full, refuses the commit: the lease goes back at once, and the slow request, taking the
    turn before the gate had seen the refusal, closed the open group, which was never sent,
    ahead of the commit still on its way: an AssertionError (a 500) for that request, and the
    group stayed in flight for good: its requests, and every later write of the worker
    (which waits for the commits in flight before it takes the lease), never answered."""
    monkeypatch.setattr(shared, "GROUP_WRITES", 2)
    first, _ = workers
    gate = first.deps.shared
    real, lost = first.store.send_write, first.store._lost
    body_sent: list[asyncio.Future[None]] = []

    def held(batches: Any, keep: bool) -> Any:
        if not first.kept:  # (the harness counts the commits in `kept`)
            first.store._client.execute_command("CLIENT", "PAUSE", "10000", "WRITE")
            fill(client)
        return real(batches, keep)

    def refused(*args: Any) -> None:  # the client's last bytes arrive with the refusal
        lost(*args)
        body_sent[0].set_result(None)

    first.store.send_write, first.store._lost = held, refused

    async def run() -> list[tuple[int, Any]]:
        body_sent.append(asyncio.get_running_loop().create_future())
        calls = [first.call("POST", CREATE, auth(FULL), {}) for _ in range(3)]
        slow = first.call("POST", CREATE, auth(FULL), {}, sent_after=body_sent[0])
        answers = asyncio.gather(*calls, slow)
        while gate.group is None or gate.group.size < 1 or not gate.flying:
            await Turn()  # commit of the first two on its way, the third's group open
        client.execute_command("CLIENT", "UNPAUSE")
        return list(await answers)

    answers = first.loop.run_until_complete(run())
    for answer in answers:
        full_503(answer)
    make_room(client)
    assert influencers(first) == []
    [(status, _)] = first.together(("POST", CREATE, auth(FULL), {}))
    assert status == 202


def test_a_read_that_may_write_is_refused_as_a_write_is_while_redis_is_full(
    workers: list[Worker], client: redis.Redis
) -> None:
    """While rules are set every request may use one up (a count), so a read takes the lease
    and commits as a write does: on a full Redis it answers the same 503 (README)."""
    first, second = workers
    rule = {"match": {"operationId": "cancelJob"}, "fault": "500"}
    assert first.together(("POST", "/_mock/rules", {}, rule))[0][0] == 201
    fill(client)
    for worker in workers:
        full_503(worker.together(("GET", "/v1/whoami", auth(FULL), None))[0])
    make_room(client)
    assert second.together(("GET", "/v1/whoami", auth(FULL), None))[0][0] == 200
