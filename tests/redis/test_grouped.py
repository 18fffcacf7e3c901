"""Round trips shared by the requests of one worker on Redis (http/shared.py): reads that
arrive together wait for one catch-up that started after all of them arrived; writes waiting
for the turn are committed together, under one lease, with their answers held until then.

The requests here are driven straight into each worker's ASGI app (tests/grouped.py), so
that "arrived together" is exact.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from grouped import CREATE, Turn, Worker, influencers
from redisd import RedisServer
from support import FULL, STANDARD, auth

from layers_mock_server.core.store import StoreUnavailable
from layers_mock_server.http import shared

HELD_MS = 4000  # a liveness bound: the test lets the writes go a few loop turns later


def hold_writes(worker: Worker) -> None:
    """Redis holds every write back (CLIENT PAUSE) until `release_writes`: a commit's answer
    cannot come back meanwhile, however slowly the machine runs the worker's next groups."""
    worker.store._client.execute_command("CLIENT", "PAUSE", str(HELD_MS), "WRITE")


def release_writes(worker: Worker) -> None:
    worker.store._client.execute_command("CLIENT", "UNPAUSE")


def test_reads_that_arrive_together_share_one_round_trip_that_sees_every_earlier_commit(
    two: tuple[Worker, Worker],
) -> None:
    first, second = two
    [(status, made)] = second.together(("POST", CREATE, auth(FULL), {"gender": "male"}))
    assert status == 202
    first.trips.clear()
    answers = first.together(*[("GET", CREATE, auth(FULL), None)] * 12)
    assert first.trips == ["changes"]  # twelve reads, one catch-up
    for status, listed in answers:  # each saw the commit made before it arrived
        assert status == 200
        assert [i["influencerId"] for i in listed["items"]] == [made["influencerId"]]


def test_a_shared_round_trip_numbers_each_read_in_its_window_exactly(
    two: tuple[Worker, Worker],
) -> None:
    first, second = two
    whoami = ("GET", "/v1/whoami", auth(STANDARD), None)
    mixed = [whoami] * 70 + [("GET", "/v1/whoami", auth(FULL), None)] * 5 + [whoami] * 60
    answers = first.together(*mixed)
    assert first.trips == ["changes"]
    standard = [status for status, _ in answers[:70] + answers[75:]]
    assert standard == [200] * 120 + [429] * 10  # `read-light`: 120 a minute, in arrival order
    assert [status for status, _ in answers[70:75]] == [200] * 5  # another key's own window
    # the window is counted in Redis: the other worker's next read is the 131st
    [(status, body)] = second.together(whoami)
    assert status == 429 and body["error"]["code"] == "RATE_LIMITED"


def test_a_shared_round_trip_that_fails_answers_every_waiting_read_with_503(
    two: tuple[Worker, Worker],
) -> None:
    first, _ = two
    real = first.store.send_changes
    failures: list[int] = []

    def unreachable(lease: bool, buckets: Any = (), listed: bool = False) -> Any:
        failures.append(len(buckets))
        raise StoreUnavailable("redis://127.0.0.1:1/0: Connection refused")

    first.store.send_changes = unreachable
    answers = first.together(*[("GET", "/v1/whoami", auth(STANDARD), None)] * 6)
    assert failures == [6]  # one round trip for all six, and it failed
    for status, body in answers:
        assert status == 503
        assert body["error"]["code"] == "STORAGE_UNAVAILABLE"
        assert body["error"]["details"]["reason"].endswith("Connection refused")
    first.store.send_changes = real
    # the journal has the six 503s the clients got, with their request ids
    [(status, page)] = first.together(("GET", "/_mock/requests", {}, None))
    assert status == 200
    failed = [i for i in page["items"] if i["status"] == 503]
    assert sorted(i["requestId"] for i in failed) == sorted(
        body["error"]["requestId"] for _, body in answers
    )
    assert {(i["method"], i["path"], i["operationId"]) for i in failed} == {
        ("GET", "/v1/whoami", "whoami")
    }
    answers = first.together(*[("GET", "/v1/whoami", auth(STANDARD), None)] * 121)
    # nothing of the failed reads was counted: the window still holds 120 reads
    assert [status for status, _ in answers] == [200] * 120 + [429]


def test_writes_waiting_for_the_turn_share_one_lease_and_one_commit(
    two: tuple[Worker, Worker], patient: None
) -> None:
    first, second = two
    answers = first.together(*[("POST", CREATE, auth(FULL), {"gender": "male"})] * 5)
    assert [status for status, _ in answers] == [202] * 5
    assert first.trips == ["lock", "write"]  # two round trips for five creates
    made = [body["influencerId"] for _, body in answers]
    assert len(set(made)) == 5
    assert sorted(influencers(second)) == sorted(made)  # all of them committed
    assert first.store._client.get(first.store.keys["lease"]) is None  # given back


def test_sixteen_creates_waiting_together_go_to_redis_in_one_commit(
    two: tuple[Worker, Worker], patient: None
) -> None:
    """A group holds up to GROUP_WRITES = 16 requests: 17 waiting together make two commits
    (16, then the 17th), and the other worker reads every one (groups of 32 cost Redis less
    a create but made fewer creates a second: bench/README.md, create17)."""
    first, second = two
    answers = first.together(*[("POST", CREATE, auth(FULL), {})] * 17)
    assert [status for status, _ in answers] == [202] * 17
    assert first.trips == ["lock", "write", "write"]  # 16, then the 17th
    assert first.store._client.get(first.store.keys["lease"]) is None  # given back
    rows = second.store._client.hkeys(second.store.keys["rows"])  # what Redis holds
    made = {b"influencers\0" + body["influencerId"].encode() for _, body in answers}
    assert made <= set(rows) and len(made) == 17
    assert len(influencers(second)) == 17  # the other worker reads them


def test_a_group_that_changes_a_record_several_times_reaches_other_workers_as_written(
    two: tuple[Worker, Worker], patient: None
) -> None:
    """A group is one commit (its batches merged): creates, a rename twice, a delete and a key
    used twice in one group; the other worker, applying it from the log, and a worker that
    joins after and reads everything, agree with the worker that wrote it."""
    first, second = two
    made = first.together(*[("POST", CREATE, auth(FULL), {"gender": "male"})] * 2)
    [one, two_] = [f"/v1/influencers/{body['influencerId']}" for _, body in made]
    assert second.together(("GET", CREATE, auth(FULL), None))[0][0] == 200  # caught up
    first.trips.clear()
    keyed = auth(FULL, **{"Idempotency-Key": "k1"})
    answers = first.together(
        ("PATCH", one, auth(FULL), {"name": "First"}),
        ("POST", CREATE, keyed, {}),
        ("DELETE", two_, auth(FULL), None),
        ("POST", CREATE, keyed, {}),
        ("PATCH", one, auth(FULL), {"name": "Second"}),
        ("POST", CREATE, auth(FULL), {"gender": "female"}),
    )
    assert [status for status, _ in answers] == [200, 202, 200, 202, 200, 202]
    assert answers[1][1] == answers[3][1]  # the key's answer, replayed
    assert first.trips == ["lock", "write"]  # one commit
    late = Worker(first.store.url + "?sandbox=" + first.store.name)
    try:
        views = []
        for worker in (first, second, late):
            [(status, state)] = worker.together(("GET", "/_mock/state", {}, None))
            assert status == 200
            del state["requests"]  # request numbers are each worker's own
            [(status, listed)] = worker.together(("GET", CREATE, auth(FULL), None))
            assert status == 200
            views.append((state, listed["items"]))
        assert views[0] == views[1] == views[2]
    finally:
        late.close()


def test_a_group_holds_group_writes_requests_and_the_lease_goes_back_after_chain_s(
    two: tuple[Worker, Worker], patient: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = two
    monkeypatch.setattr(shared, "GROUP_WRITES", 3)
    monkeypatch.setattr(shared, "CHAIN_S", 3600.0)
    answers = first.together(*[("POST", CREATE, auth(FULL), {})] * 7)
    assert [status for status, _ in answers] == [202] * 7
    # 3 + 3 + 1 in three commits, each sent while the next group ran, under one lease, kept
    # by the last for LINGER_S in case another write came, then given back
    assert first.trips == ["lock", "write", "write", "write"]
    assert first.kept == [True, True, True]
    assert first.store._client.get(first.store.keys["lease"]) is None
    assert len(influencers(second)) == 7
    monkeypatch.setattr(shared, "CHAIN_S", 0.0)  # no time to keep it: other workers' turn
    first.trips.clear()
    first.kept.clear()
    answers = first.together(*[("POST", CREATE, auth(FULL), {})] * 7)
    assert [status for status, _ in answers] == [202] * 7
    assert first.trips == ["lock", "write"] * 3
    assert first.kept == [False] * 3
    assert len(influencers(second)) == 14


def _ticking(worker: Worker, step_s: float) -> None:
    """The worker's loop clock stands still, and moves `step_s` at each commit it sends (a
    loaded worker's groups, each `step_s` apart): the chain's age is the test's, not the
    machine's."""
    now = [worker.loop.time()]
    worker.loop.time = lambda: now[0]  # type: ignore[method-assign]
    write = worker.store.send_write

    def ticked(batches: Any, keep: bool) -> Any:
        sent = write(batches, keep)
        now[0] += step_s
        return sent

    worker.store.send_write = ticked


def test_a_worker_writing_without_pause_keeps_the_lease_for_its_next_groups_past_50_ms(
    two: tuple[Worker, Worker], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Groups 200 ms apart on the worker's clock: every commit keeps the lease for the next
    (CHAIN_S, 1 s). At 50 ms the second commit gave it back and the third group took it
    again: a worker writing alone did so 20 times a second, each take waiting for every
    commit in flight, every request of the worker queued behind it."""
    first, _ = two
    monkeypatch.setattr(shared, "GROUP_WRITES", 3)
    monkeypatch.setattr(shared, "GROUP_S", 3600.0)
    _ticking(first, 0.2)
    answers = first.together(*[("POST", CREATE, auth(FULL), {})] * 7)
    assert [status for status, _ in answers] == [202] * 7
    assert first.trips == ["lock", "write", "write", "write"]
    assert first.kept == [True, True, True]


def test_a_chain_never_outlives_half_the_lease(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`lease=200`: the lease runs out 200 ms after it was taken, so a worker keeps it for its
    next groups 100 ms at most, whatever CHAIN_S says; groups 60 ms apart: the third commit
    (120 ms into the chain) gives it back, and the next group takes it again."""
    worker = Worker(redis_server.sandbox() + "&lease=200")
    try:
        monkeypatch.setattr(shared, "GROUP_WRITES", 2)
        monkeypatch.setattr(shared, "GROUP_S", 3600.0)
        monkeypatch.setattr(shared, "CHAIN_S", 3600.0)
        _ticking(worker, 0.06)
        answers = worker.together(*[("POST", CREATE, auth(FULL), {})] * 8)
        assert [status for status, _ in answers] == [202] * 8
        assert worker.trips == ["lock", "write", "write", "write", "lock", "write"]
        assert worker.kept == [True, True, False, True]
    finally:
        worker.close()


def test_a_worker_keeping_the_lease_for_its_next_groups_gives_it_back_to_one_in_line(
    two: tuple[Worker, Worker], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No time cap would end the chain (CHAIN_S, LINGER_S and IDLE_S without end): another
    worker asks for the lease as the first commit goes, and is in line; that commit's answer
    says so, and the next commit (a write whose body came after that answer) gives the lease
    back, whereupon the other's try takes it."""
    first, second = two
    for name in ("GROUP_S", "CHAIN_S", "LINGER_S", "IDLE_S"):
        monkeypatch.setattr(shared, name, 3600.0)
    monkeypatch.setattr(shared, "GROUP_WRITES", 1)
    write = first.store.send_write
    refused: list[bool] = []
    answered: asyncio.Future[None] = first.loop.create_future()

    def asked_first(batches: Any, keep: bool) -> Any:
        if not refused:  # under the first's lease: the other worker asks, and is refused
            refused.append(second.store.lock() is None)
        sent = write(batches, keep)
        if not answered.done():
            sent.add_done_callback(lambda _: answered.set_result(None))
        return sent

    first.store.send_write = asked_first
    create = ("POST", CREATE, auth(FULL), {})

    async def run() -> list[tuple[int, Any]]:
        calls = first.call(*create), first.call(*create, sent_after=answered)
        answers = await asyncio.gather(*calls)
        await first.deps.shared.settled()  # the lease went back: no timer would do it here
        return list(answers)

    answers = first.loop.run_until_complete(asyncio.wait_for(run(), 30))
    assert [status for status, _ in answers] == [202, 202]
    assert refused == [True]
    assert first.trips == ["lock", "write", "write"]
    assert first.kept == [True, False]
    assert second.store.lock() is not None  # it was in line: its try takes the lease
    second.store.unlock()


def test_a_worker_holds_no_copy_of_the_journal_but_its_last_entry(
    redis_server: RedisServer,
) -> None:
    """The journal lives in Redis, and every read of it reads it there: a worker kept each
    entry a second time (up to 1,000 an organization, and their bodies with
    `--journal-bodies`), bounded, dropped and counted a request, for nothing but the request
    log's last one (`last()`)."""
    worker = Worker(redis_server.sandbox(), bodies=True)
    try:
        answers = worker.together(*[("POST", CREATE, auth(FULL), {})] * 20)
        assert [status for status, _ in answers] == [202] * 20
        [(status, _)] = worker.together(("GET", CREATE, auth(FULL), None))
        assert status == 200
        journal = worker.deps.journal
        assert (len(journal), journal.bytes) == (0, 0)
        last = journal.last()
        assert last is not None and (last.method, last.status) == ("GET", 200)
        [(status, read)] = worker.together(("GET", "/_mock/requests", {}, None))
        assert status == 200
        assert [e["status"] for e in read["items"]] == [200] + [202] * 20
    finally:
        worker.close()


def test_the_next_group_runs_while_the_commits_before_it_are_on_their_way(
    two: tuple[Worker, Worker], patient: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis holds the first commit back (CLIENT PAUSE) until the third is sent: the worker
    does not wait for it, the next groups run and their commits follow it; every answer
    waits for its own commit."""
    first, second = two
    monkeypatch.setattr(shared, "GROUP_WRITES", 2)
    real = first.store.send_write
    sent: list[asyncio.Future[Any]] = []
    behind: list[int] = []

    def watching(batches: Any, keep: bool) -> Any:
        if not sent:  # the lease is taken: Redis now holds every write back
            hold_writes(first)
        behind.append(sum(not f.done() for f in sent))
        sent.append(real(batches, keep))
        if len(sent) == 3:
            release_writes(first)
        return sent[-1]

    first.store.send_write = watching
    answers = first.together(*[("POST", CREATE, auth(FULL), {})] * 6)
    assert [status for status, _ in answers] == [202] * 6
    assert behind == [0, 1, 2]  # three commits on their way at once
    assert first.trips == ["lock", "write", "write", "write"]
    assert sorted(influencers(second)) == sorted(body["influencerId"] for _, body in answers)


def test_a_refused_commit_takes_down_the_ones_sent_behind_it_and_nothing_is_kept(
    two: tuple[Worker, Worker], patient: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first of three commits in flight is refused (the worker missed a commit): the two
    behind it counted on it and are refused too; all six requests answer 503, none is
    kept anywhere, the journal says 503 for each, and the worker reads its copy again."""
    first, second = two
    monkeypatch.setattr(shared, "GROUP_WRITES", 2)
    real = first.store.send_write
    sent: list[asyncio.Future[Any]] = []

    def refused_first(batches: Any, keep: bool) -> Any:
        if not sent:  # held in Redis until the third is sent, then refused
            hold_writes(first)
            first.store.seen += 1  # compare-and-append refuses it, and so all behind it
        sent.append(real(batches, keep))
        if len(sent) == 3:
            release_writes(first)
        return sent[-1]

    first.store.send_write = refused_first
    answers = first.together(*[("POST", CREATE, auth(FULL), {})] * 6)
    first.store.send_write = real
    assert len(sent) == 3
    assert [status for status, _ in answers] == [503] * 6
    assert {body["error"]["code"] for _, body in answers} == {"STORAGE_UNAVAILABLE"}
    assert influencers(second) == [] and influencers(first) == []
    [(status, page)] = second.together(("GET", "/_mock/requests", {}, None))
    posts = [i["status"] for i in page["items"] if i["method"] == "POST"]
    assert posts == [503] * 6
    [(status, made)] = first.together(("POST", CREATE, auth(FULL), {}))
    assert status == 202 and influencers(second) == [made["influencerId"]]


def test_commits_refused_after_a_script_flush_say_nothing_was_done_and_a_retry_makes_each(
    two: tuple[Worker, Worker], patient: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SCRIPT FLUSH while three commits are on their way (held by CLIENT PAUSE): Redis answers
    each NOSCRIPT, and none ran. The two behind the first were answered "may have been kept",
    as if their answers had been lost; each has its own reply, which says it was not."""
    first, second = two
    monkeypatch.setattr(shared, "GROUP_WRITES", 2)
    real = first.store.send_write
    sent: list[asyncio.Future[Any]] = []
    operator = first.store._client

    def flushed_under_them(batches: Any, keep: bool) -> Any:
        if not sent:
            operator.execute_command("CLIENT", "PAUSE", "10000", "WRITE")
        sent.append(real(batches, keep))
        if len(sent) == 3:
            operator.script_flush()
            operator.execute_command("CLIENT", "UNPAUSE")
        return sent[-1]

    first.store.send_write = flushed_under_them
    keys = [auth(FULL, **{"Idempotency-Key": f"flushed-{n}"}) for n in range(6)]
    answers = first.together(*[("POST", CREATE, key, {}) for key in keys])
    first.store.send_write = real
    assert len(sent) == 3
    for status, body in answers:
        assert status == 503 and body["error"]["code"] == "STORAGE_UNAVAILABLE"
        assert body["error"]["message"].endswith("nothing of this request was done."), body
        assert "NOSCRIPT" in body["error"]["details"]["reason"]
    assert influencers(second) == [] and influencers(first) == []
    again = first.together(*[("POST", CREATE, key, {}) for key in keys])  # a retry is safe
    assert [status for status, _ in again] == [202] * 6
    made = {body["influencerId"] for _, body in again}
    assert len(made) == 6 and set(influencers(second)) == made


def test_a_commit_whose_answer_is_lost_says_it_may_have_been_kept_and_a_retry_finds_out(
    two: tuple[Worker, Worker], patient: None
) -> None:
    """The connection to Redis closes after the commit went out: Redis ran it, the worker
    cannot know. Its clients get 503 saying the write may have been kept (not "nothing was
    done"), and a retry with the same Idempotency-Key answers the create that was kept."""
    first, second = two
    real = first.store.send_write

    def then_the_connection_closes(batches: Any, keep: bool) -> Any:
        sent = real(batches, keep)
        first.store.pipe.close()  # the command went whole; its answer will not come
        return sent

    first.store.send_write = then_the_connection_closes
    key = auth(FULL, **{"Idempotency-Key": "lost-1"})
    [(status, body)] = first.together(("POST", CREATE, key, {"gender": "male"}))
    first.store.send_write = real
    assert status == 503 and body["error"]["code"] == "STORAGE_UNAVAILABLE"
    assert body["error"]["message"].startswith("The mock lost its shared state's answer")
    assert "may have been kept" in body["error"]["message"]
    kept = influencers(second)
    assert len(kept) == 1  # it was
    [(status, again)] = first.together(("POST", CREATE, key, {"gender": "male"}))
    assert status == 202 and again["influencerId"] == kept[0]  # the retry says so
    assert influencers(first) == kept


def test_a_write_cancelled_while_its_lease_is_taken_does_not_keep_the_lease(
    two: tuple[Worker, Worker],
) -> None:
    """The client goes away while the worker's lease request is on its way: Redis grants it
    all the same; the worker applies what came with it and gives it back, so the other
    worker's write is not held up until the lease runs out (10 s)."""
    first, second = two

    async def run() -> None:
        task = asyncio.ensure_future(first.call("POST", CREATE, auth(FULL), {}))
        while "lock" not in first.trips:  # the lease request went out
            await Turn()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await first.deps.shared.settled()

    first.loop.run_until_complete(run())
    assert first.store._client.get(first.store.keys["lease"]) is None
    [(status, _)] = second.together(("POST", CREATE, auth(FULL), {}))
    assert status == 202
    assert len(influencers(first)) == 1  # the first's copy took in what came with its lease


def test_an_idle_worker_follows_what_the_others_commit(
    two: tuple[Worker, Worker], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No request comes to the first worker while the second writes: every FOLLOW_S it
    catches up all the same, so it never falls so far behind that it must read everything."""
    first, second = two
    monkeypatch.setattr(shared, "FOLLOW_S", 0.0)  # every turn of its loop, when idle
    assert first.together(("GET", "/v1/whoami", auth(FULL), None))[0][0] == 200  # it runs
    made = [
        body["influencerId"] for _, body in second.together(*[("POST", CREATE, auth(FULL), {})] * 3)
    ]
    first.trips.clear()

    async def idle() -> None:
        while first.store.seen != second.store.seen:
            await Turn()

    first.loop.run_until_complete(asyncio.wait_for(idle(), 10))
    assert first.trips[:1] == ["changes"]  # a catch-up no request asked for
    assert sorted(first.deps.sim.state.influencers) == sorted(made)


def test_a_failed_group_commit_answers_every_request_of_the_group_503_and_keeps_none(
    two: tuple[Worker, Worker], patient: None
) -> None:
    first, second = two
    real = first.store.send_write
    calls: list[int] = []

    def refused(batches: Any, keep: bool) -> None:
        calls.append(len(batches))
        raise StoreUnavailable("redis://127.0.0.1:1/0: Connection reset by peer")

    first.store.send_write = refused
    before = len(first.request_ids)
    answers = first.together(
        *[("POST", CREATE, auth(FULL), {"gender": "female"})] * 4,
        ("GET", CREATE, auth(FULL), None),  # arrives while the group is open
    )
    assert calls == [1]  # one commit for the group: one batch (its marks, with the meta row)
    for status, body in answers[:4]:
        assert status == 503
        assert body["error"]["code"] == "STORAGE_UNAVAILABLE"
        assert body["error"]["details"]["reason"].endswith("Connection reset by peer")
    ids = set(first.request_ids[before : before + 5])  # the four and the read's
    assert len(ids) == 5 and "" not in ids  # each its own request id, as in its envelope
    assert {body["error"]["requestId"] for _, body in answers[:4]} < ids
    # the read waited for the group's commit: it never saw the creates that were not kept
    assert answers[4] == (200, answers[4][1]) and answers[4][1]["items"] == []
    assert influencers(second) == []
    first.store.send_write = real
    [(status, made)] = first.together(("POST", CREATE, auth(FULL), {}))
    assert status == 202
    assert influencers(first) == influencers(second) == [made["influencerId"]]
    [(status, page)] = second.together(("GET", "/_mock/requests", {}, None))  # no bodies kept
    posts = [(i["status"], i["requestId"]) for i in page["items"] if i["method"] == "POST"]
    assert posts[1:] == [(503, body["error"]["requestId"]) for _, body in reversed(answers[:4])]


def test_a_write_still_sending_its_body_does_not_hold_the_group_past_its_deadline(
    two: tuple[Worker, Worker], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bodies are read before the turn; a group waits for a request still reading its body
    only until GROUP_S after it took the lease, then commits without it."""
    first, second = two
    monkeypatch.setattr(shared, "GROUP_S", 0.01)
    monkeypatch.setattr(shared, "CHAIN_S", 3600.0)
    monkeypatch.setattr(shared, "LINGER_S", 3600.0)  # the slow body comes within it, here

    async def run() -> list[tuple[int, Any]]:
        body_sent: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        slow = asyncio.ensure_future(
            first.call("POST", CREATE, auth(FULL), {"gender": "male"}, sent_after=body_sent)
        )
        fast_call = first.call("POST", CREATE, auth(FULL), {"gender": "female"})
        fast = await asyncio.wait_for(fast_call, 10)  # without the deadline: never
        assert first.trips == ["lock", "write"]  # committed alone, at the group's deadline
        assert not slow.done()
        body_sent.set_result(None)
        answers = [fast, await slow]
        first.deps.shared._let_go(first.deps.shared.began)
        return answers

    fast, slow = first.loop.run_until_complete(run())
    assert fast[0] == slow[0] == 202
    assert first.trips == ["lock", "write", "write"]  # the lease was kept for the slow one
    assert sorted(influencers(second)) == sorted([fast[1]["influencerId"], slow[1]["influencerId"]])


@pytest.mark.parametrize("how", ["unreachable", "refused by the write script"])
def test_the_journal_records_the_503_each_request_of_a_failed_group_received(
    redis_server: RedisServer, patient: None, how: str
) -> None:
    """A group's journal entries wait for its commit: a commit that fails (Redis cannot be
    reached, or its script refuses a worker that is behind, the entries in hand) leaves a 503
    with the client's request id for each request of the group, never the answer it did not
    get; the answers that were kept stay as they were."""
    first = Worker(redis_server.sandbox(), bodies=True)
    try:
        real = first.store.send_write

        def failing(batches: Any, keep: bool) -> Any:
            if how == "unreachable":
                raise StoreUnavailable("redis://127.0.0.1:1/0: Connection reset by peer")
            first.store.seen += 1  # another worker wrote since: the script refuses it all
            return real(batches, keep)

        [(status, kept)] = first.together(("POST", CREATE, auth(FULL), {}))
        assert status == 202
        first.store.send_write = failing
        answers = first.together(*[("POST", CREATE, auth(FULL), {"gender": "female"})] * 3)
        assert [status for status, _ in answers] == [503] * 3
        sent = [body["error"]["requestId"] for _, body in answers]
        first.store.send_write = real
        [(status, page)] = first.together(("GET", "/_mock/requests", {}, None))
        assert status == 200
        posts = [i for i in page["items"] if i["method"] == "POST"]
        assert [(i["status"], i["requestId"]) for i in posts] == [
            *[(503, r) for r in reversed(sent)],
            (202, first.request_ids[0]),
        ]
        for entry, (_, body) in zip(reversed(posts[:3]), answers, strict=True):
            assert orjson.loads(entry["response"]["body"]) == body  # the body the client got
            assert entry["response"]["headers"]["x-request-id"] == entry["requestId"]
        assert orjson.loads(posts[3]["response"]["body"]) == kept
    finally:
        first.close()


def refuse_commits(worker: Worker) -> Callable[[], None]:
    """The worker's commits fail (Redis unreachable) until the returned function is called."""
    real = worker.store.send_write

    def refused(batches: Any, keep: bool) -> None:
        raise StoreUnavailable("redis://127.0.0.1:1/0: Connection reset by peer")

    worker.store.send_write = refused
    return lambda: setattr(worker.store, "send_write", real)


def test_a_read_woken_before_a_failed_group_commit_never_answers_from_its_changes(
    two: tuple[Worker, Worker],
) -> None:
    """The read's catch-up returns, and the write is ready to run in the same loop iteration:
    the write waits until the read has answered (a writer never changes the copy under a read
    that was woken), so the read lists what was committed, never the create whose commit then
    fails; the next catch-up reads the copy again."""
    first, second = two
    restore = refuse_commits(first)
    read, write = first.together(
        ("GET", CREATE, auth(FULL), None), ("POST", CREATE, auth(FULL), {"gender": "male"})
    )
    assert write[0] == 503
    assert read == (200, read[1]) and read[1]["items"] == []
    restore()
    assert influencers(first) == influencers(second) == []


def test_a_read_that_slept_through_a_failed_commit_does_not_answer_from_its_changes(
    two: tuple[Worker, Worker], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A latency fault on a read: while it sleeps, a write of the same worker fails its
    commit. The read, resumed, answers 503 instead of listing the create that was not kept."""
    first, second = two
    restore = refuse_commits(first)
    slept: list[float] = []

    async def nap(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 1:  # the first read's sleep: a write fails meanwhile
            assert (await first.call("POST", CREATE, auth(FULL), {}))[0] == 503

    monkeypatch.setattr(first.deps.shared, "nap", nap)
    [(status, body)] = first.together(("GET", CREATE, auth(FULL, Prefer="latency=200"), None))
    assert status == 503 and body["error"]["code"] == "STORAGE_UNAVAILABLE"
    restore()
    [(status, body)] = first.together(("GET", CREATE, auth(FULL, Prefer="latency=200"), None))
    assert status == 200 and body["items"] == []  # the next catch-up read the copy again
    assert slept == [0.2, 0.2]
    assert influencers(second) == []


def test_a_write_that_comes_a_loop_iteration_after_the_last_of_a_group_joins_its_commit(
    two: tuple[Worker, Worker], patient: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last request of a group ran with no other waiting for the turn: the group waits a
    loop iteration for the requests that come in it (the answers of a commit that came back
    are sent, and their clients' next requests ready, within a few), so one commit carries
    both; its answers wait for that commit, and both are kept."""
    first, second = two
    monkeypatch.setattr(shared, "LINGER_S", 3600.0)  # the lease stays (the workers close)

    async def run() -> list[tuple[int, Any]]:
        await first.call("POST", CREATE, auth(FULL), {})  # the lease, kept for the next
        first.trips.clear()
        early = asyncio.ensure_future(first.call("POST", CREATE, auth(FULL), {}))
        await Turn()  # `early` reads its body; next iteration it runs, alone, to its end
        late = asyncio.ensure_future(first.call("POST", CREATE, auth(FULL), {}))
        return list(await asyncio.gather(early, late))

    answers = first.loop.run_until_complete(run())
    assert [status for status, _ in answers] == [202, 202]
    assert first.trips == ["write"]  # one commit for both
    made = sorted(body["influencerId"] for _, body in answers)
    first.store.close()  # gives the lease back
    assert all(i in influencers(second) for i in made)


def test_a_write_that_goes_away_while_its_group_commit_is_on_its_way_leaves_the_others_answered(
    two: tuple[Worker, Worker], patient: None
) -> None:
    """Its client goes away after the group's commit was sent: the other requests of the group
    get their answers, and the commit (its create too) is kept."""
    first, second = two

    async def run() -> list[tuple[int, Any]]:
        calls = [first.call("POST", CREATE, auth(FULL), {}) for _ in range(3)]
        tasks = [asyncio.ensure_future(call) for call in calls]
        while "write" not in first.trips:  # the group's commit went out
            await Turn()
        tasks[1].cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await tasks[1]
        return [await tasks[0], await tasks[2]]

    answers = first.loop.run_until_complete(run())
    assert [status for status, _ in answers] == [202, 202]
    assert first.trips == ["lock", "write"]
    assert len(influencers(second)) == 3  # the one whose client went away was kept


def test_a_write_that_comes_in_the_groups_last_iteration_but_sends_its_body_late_does_not_hold_it(
    two: tuple[Worker, Worker], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The group waits a loop iteration after its last request; one that comes in it but is
    still sending its body holds the group only until GROUP_S, then the group commits."""
    first, second = two
    monkeypatch.setattr(shared, "GROUP_S", 0.01)
    monkeypatch.setattr(shared, "CHAIN_S", 3600.0)
    monkeypatch.setattr(shared, "LINGER_S", 3600.0)  # the lease stays (the workers close)

    async def run() -> tuple[tuple[int, Any], tuple[int, Any]]:
        await first.call("POST", CREATE, auth(FULL), {})  # the lease, kept for the next
        first.trips.clear()
        fast = asyncio.ensure_future(first.call("POST", CREATE, auth(FULL), {}))
        await Turn()  # `fast` reads its body; next iteration it runs, alone, to its end
        body_sent: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        slow = asyncio.ensure_future(
            first.call("POST", CREATE, auth(FULL), {}, sent_after=body_sent)
        )
        answered = await asyncio.wait_for(fast, 10)  # without the deadline: never
        assert first.trips == ["write"] and not slow.done()
        body_sent.set_result(None)
        return answered, await slow

    fast, slow = first.loop.run_until_complete(run())
    assert fast[0] == slow[0] == 202
    assert first.trips == ["write", "write"]
    first.store.close()  # gives the lease back
    made = {fast[1]["influencerId"], slow[1]["influencerId"]}
    assert made <= set(influencers(second))
