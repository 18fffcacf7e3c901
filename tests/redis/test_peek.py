"""A read's catch-up with nothing to count or carry goes as the light PEEK script
(redis_scripts.py), not CHANGES: it still sees every other worker's commit (no stale read),
still refuses a key of the sandbox spoiled by hand between two catch-ups (DAMAGED naming it),
answers on a full Redis (as CHANGES_FULL), and is loaded again after a SCRIPT FLUSH. A read
that counts a window (a `standard` key) or carries entries goes as CHANGES, as before."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from grouped import CREATE, Worker
from redisd import RedisServer, started
from support import FULL, STANDARD, auth

WHOAMI = ("GET", "/v1/whoami", auth(FULL), None)
CATCH_UPS = frozenset({"peek", "changes", "changes-full"})
RESET = ("POST", "/_mock/reset", {"content-type": "application/json"}, {})


def scripts(worker: Worker) -> list[str]:
    """The catch-up scripts `worker` sends from now on, by name, in order (not the journal's
    flushes, nor the flush barrier's words)."""
    sent: list[str] = []
    real = worker.store._send

    def watched(script: str, keys: list[str], args: list[Any]) -> Any:
        if script in CATCH_UPS:
            sent.append(script)
        return real(script, keys, args)

    worker.store._send = watched
    return sent


def job_of(worker: Worker, job: str, key: str = FULL) -> tuple[int, Any]:
    [answer] = worker.together(("GET", f"/v1/jobs/{job}", auth(key), None))
    return answer


def said(body: Any) -> str:
    error = body["error"]
    assert error["code"] == "STORAGE_UNAVAILABLE"
    return f"{error['message']} {error['details']['reason']}"


def test_a_light_catch_up_sees_every_commit_of_another_worker(
    two: tuple[Worker, Worker],
) -> None:
    """Each read of the second worker follows the first's commits made since its last look:
    the job it made, then the job cancelled (no read answers from a stale copy)."""
    first, second = two
    sent = scripts(second)
    [(status, made)] = first.together(("POST", CREATE, auth(FULL), {}))
    assert status == 202
    status, job = job_of(second, made["jobId"])
    assert status == 200 and job["jobId"] == made["jobId"], job
    assert sent == ["peek"]
    [(status, cancelled)] = first.together(
        ("POST", f"/v1/jobs/{made['jobId']}/cancel", auth(FULL), None)
    )
    assert status == 202, cancelled
    status, after = job_of(second, made["jobId"])
    assert status == 200 and after["status"] != job["status"], (job, after)
    assert after == job_of(first, made["jobId"])[1]
    assert sent == ["peek", "peek"]


def test_a_read_that_counts_its_window_is_still_a_full_catch_up(
    two: tuple[Worker, Worker],
) -> None:
    """A `standard` key's read is counted in Redis (exact across workers): CHANGES, not PEEK."""
    first, second = two
    [(status, made)] = first.together(("POST", CREATE, auth(FULL), {}))
    assert status == 202
    sent = scripts(second)
    assert job_of(second, made["jobId"], STANDARD)[0] == 200
    assert sent == ["changes"]


@pytest.mark.parametrize(
    ("key", "how"),
    [
        ("rows", "a field deleted"),
        ("order", "deleted"),
        ("meta", "garbage"),
        ("commits", "garbage"),
        ("whole", "garbage"),
        ("reset-mark", "a hash"),
        ("journal-floor", "a hash"),
        ("reset-mark", "garbage"),
    ],
)
def test_a_key_spoiled_between_two_light_catch_ups_is_refused_naming_it(
    two: tuple[Worker, Worker], key: str, how: str
) -> None:
    """The worker's copy was read, then someone changes a key of what it is read from: the
    next light catch-up answers the 503 naming the key (its copy is never answered from), and
    a reset mends it."""
    first, second = two
    [(status, made)] = first.together(("POST", CREATE, auth(FULL), {}))
    assert status == 202
    assert job_of(second, made["jobId"])[0] == 200
    client, name = second.store._client, second.store.keys[key]
    if how == "a field deleted":
        client.hdel(name, client.hkeys(name)[0])
    elif how == "deleted":
        client.delete(name)
    elif how == "a hash":
        client.delete(name)
        client.hset(name, "by", "hand")
    else:
        client.set(name, "garbage")
    sent = scripts(second)
    status, body = job_of(second, made["jobId"])
    assert status == 503, body
    assert sent[:1] == ["peek"]
    text = said(body)
    assert "a key of the sandbox" in text and name in text, text
    if how == "a hash" or key in ("commits", "whole", "reset-mark"):
        client.delete(name)  # (what the message says to do before the reset)
    [(status, body)] = second.together(RESET)
    assert status == 200, body
    for worker in two:
        assert worker.together(WHOAMI)[0][0] == 200


@pytest.fixture
def own() -> Iterator[RedisServer]:
    with started() as server:
        yield server


def test_a_full_redis_answers_a_light_catch_ups_read_and_sends_the_journal_once_it_has_room(
    own: RedisServer,
) -> None:
    """PEEK may write (no `no-writes` flag), so a full Redis refuses it as it refused CHANGES:
    the read is answered by CHANGES_FULL, health says full, and the entries of the reads
    answered meanwhile reach the journal with the first catch-up Redis takes again."""
    worker = Worker(own.sandbox())
    [(status, made)] = worker.together(("POST", CREATE, auth(FULL), {}))
    assert status == 202
    operator = redis.Redis.from_url(own.url)
    operator.config_set("maxmemory-policy", "noeviction")
    sent = scripts(worker)
    operator.config_set("maxmemory", "1")
    try:
        for _ in range(2):
            assert job_of(worker, made["jobId"])[0] == 200
        full_ids = worker.request_ids[-2:]
        [(status, health)] = worker.together(("GET", "/_mock/health", {}, None))
        assert status == 200 and health["sharedStore"]["full"] is True
        assert sent[:2] == ["peek", "changes-full"]
    finally:
        operator.config_set("maxmemory", "0")
    assert job_of(worker, made["jobId"])[0] == 200
    [(status, health)] = worker.together(("GET", "/_mock/health", {}, None))
    assert health["sharedStore"]["full"] is False
    [(status, page)] = worker.together(("GET", "/_mock/requests", {}, None))
    assert status == 200
    journaled = {item["requestId"] for item in page["items"]}
    assert set(full_ids) <= journaled
    del sent[:]
    assert job_of(worker, made["jobId"])[0] == 200
    assert sent == ["peek"]  # room again: light again
    operator.close()
    worker.close()


def test_a_light_catch_up_after_a_script_flush_is_refused_then_loaded_again(
    two: tuple[Worker, Worker],
) -> None:
    """SCRIPT FLUSH: the read whose PEEK meets NOSCRIPT answers 503 saying nothing was done,
    and the worker loads its scripts again ahead of its next command: the next read is 200."""
    first, second = two
    [(status, made)] = first.together(("POST", CREATE, auth(FULL), {}))
    assert status == 202
    assert job_of(second, made["jobId"])[0] == 200
    second.store._client.script_flush()
    sent = scripts(second)
    status, body = job_of(second, made["jobId"])
    assert status == 503, body
    assert "NOSCRIPT" in said(body) and "nothing of this request was done" in said(body)
    assert sent == ["peek"]
    assert job_of(second, made["jobId"])[0] == 200  # (with the 503's entry: CHANGES carries it)
    assert job_of(second, made["jobId"])[0] == 200
    assert sent[-1] == "peek"


def test_a_census_an_older_versions_commits_ran_past_is_adopted_through_changes(
    two: tuple[Worker, Worker],
) -> None:
    """PEEK writes nothing: a census behind the commit count whose commits are honest (an
    earlier version's, test_damaged.py) is answered MORE, and the read goes again as CHANGES,
    which takes the census again; the read answers from everything read again, as before."""
    first, second = two
    [(status, made)] = first.together(("POST", CREATE, auth(FULL), {}))
    assert status == 202
    assert job_of(second, made["jobId"])[0] == 200
    client, whole = first.store._client, first.store.keys["whole"]
    kept = client.get(whole)
    [(status, later)] = first.together(("POST", CREATE, auth(FULL), {}))
    assert status == 202
    client.set(whole, kept)  # as a worker before the census would have left it
    sent = scripts(second)
    status, job = job_of(second, later["jobId"])
    assert status == 200, job
    assert sent == ["peek", "changes"]
    assert client.get(whole) != kept  # taken again
    assert job_of(second, later["jobId"])[0] == 200
    assert sent[-1] == "peek"
