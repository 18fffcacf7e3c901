"""Two workers on one Redis behave as one mock (issue 12): the same answers, limits and ids as
one process, whichever worker a request reaches.

Each "worker" here is a whole server (its own app, store connection, event loop and thread)
on its own port, all on one sandbox of the session's redis-server: what two processes of
`--workers 2`, or two hosts, are to each other. tests/redis/test_served.py runs the real
`serve --workers 2` and kills processes.
"""

from __future__ import annotations

import asyncio
import random
import re
import socket
import sys
import threading
from datetime import datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from clustered import workers
from starlette.testclient import TestClient
from support import FULL, GLOBEX, HTTP_TIMEOUT_S, PROJECT, SEED, STANDARD, auth

from layers_mock_server import serving
from layers_mock_server.core.clock import Clock
from layers_mock_server.core.store import Batch
from layers_mock_server.http import shared
from layers_mock_server.http.app import build_app
from layers_mock_server.settings import Settings, make_deps
from layers_mock_server.stores import make_store
from layers_mock_server.stores.redis import RedisStore

CREATE = f"/v1/projects/{PROJECT}/influencers"
LIVENESS_S = 60  # a wait only a worker that does not follow reaches


def spread(bases: list[str], requests: list[tuple[str, str, dict[str, str], Any]]) -> list[Any]:
    """Send every request at once, the n-th to worker n mod len(bases); (status, body) each."""

    async def run() -> list[Any]:
        async with httpx.AsyncClient(timeout=30) as client:
            sent = [
                client.request(method, bases[n % len(bases)] + path, headers=headers, json=body)
                for n, (method, path, headers, body) in enumerate(requests)
            ]
            return [(r.status_code, r.json()) for r in await asyncio.gather(*sent)]

    return asyncio.run(run())


def test_twenty_concurrent_creates_with_one_key_over_two_workers_make_one_influencer(
    sandbox: str,
) -> None:
    with workers(sandbox) as bases:
        headers = auth(FULL, **{"Idempotency-Key": "same-key-20"})
        answers = spread(bases, [("POST", CREATE, headers, {"gender": "male"})] * 20)
        assert {status for status, _ in answers} == {202}, [a for a in answers if a[0] != 202][:2]
        assert all(body == answers[0][1] for _, body in answers)  # 20 identical answers
        for base in bases:  # and both workers list exactly one influencer
            listed = httpx.get(base + CREATE, headers=auth(FULL), timeout=HTTP_TIMEOUT_S).json()[
                "items"
            ]
            assert [i["influencerId"] for i in listed] == [answers[0][1]["influencerId"]]


def test_the_standard_tiers_limit_holds_exactly_across_workers(sandbox: str) -> None:
    with workers(sandbox) as bases:
        answers = spread(bases, [("POST", CREATE, auth(STANDARD), {"gender": "female"})] * 26)
        statuses = sorted(status for status, _ in answers)
        assert statuses == [202] * 20 + [429] * 6  # `long-running`: 20 a minute, both workers
        limited = [body for status, body in answers if status == 429]
        assert all(b["error"]["code"] == "RATE_LIMITED" for b in limited)


def test_the_standard_tiers_read_limit_holds_exactly_across_workers(sandbox: str) -> None:
    with workers(sandbox) as bases:
        answers = spread(bases, [("GET", "/v1/whoami", auth(STANDARD), None)] * 130)
        assert sorted(status for status, _ in answers) == [200] * 120 + [429] * 10
        # a write in between carries windows in its commit: the count still holds after it
        assert (
            httpx.post(
                bases[0] + CREATE, headers=auth(STANDARD), json={}, timeout=HTTP_TIMEOUT_S
            ).status_code
            == 202
        )
        again = httpx.get(bases[1] + "/v1/whoami", headers=auth(STANDARD), timeout=HTTP_TIMEOUT_S)
        assert again.status_code == 429
        assert httpx.post(
            bases[1] + "/_mock/clock/advance", json={"seconds": 60}, timeout=HTTP_TIMEOUT_S
        ).is_success
        assert (
            httpx.get(
                bases[0] + "/v1/whoami", headers=auth(STANDARD), timeout=HTTP_TIMEOUT_S
            ).status_code
            == 200
        )


def test_a_rule_with_a_count_fires_exactly_that_often_across_workers(sandbox: str) -> None:
    with workers(sandbox) as bases:
        rule = {"match": {"operationId": "createInfluencer"}, "fault": "500", "count": 2}
        assert (
            httpx.post(bases[1] + "/_mock/rules", json=rule, timeout=HTTP_TIMEOUT_S).status_code
            == 201
        )
        answers = spread(bases, [("POST", CREATE, auth(FULL), {})] * 8)
        assert sorted(status for status, _ in answers) == [202] * 6 + [500] * 2
        rules = httpx.get(bases[0] + "/_mock/rules", timeout=HTTP_TIMEOUT_S).json()["items"]
        assert rules == []  # used up, everywhere


def test_ids_follow_the_order_of_requests_as_in_one_process(sandbox: str) -> None:
    """The same requests in the same order, alternating over two workers, mint the same ids as
    one in-memory server with the same seed."""
    bodies = [{"gender": g} for g in ("female", "male", "female", "male")]
    with workers(sandbox) as bases:
        shared = [
            httpx.post(
                bases[n % 2] + CREATE, headers=auth(FULL), json=body, timeout=HTTP_TIMEOUT_S
            ).json()
            for n, body in enumerate(bodies)
        ]
    with workers("memory", count=1) as (base,):
        alone = [
            httpx.post(base + CREATE, headers=auth(FULL), json=body, timeout=HTTP_TIMEOUT_S).json()
            for body in bodies
        ]
    assert [a["influencerId"] for a in shared] == [a["influencerId"] for a in alone]
    assert [a["jobId"] for a in shared] == [a["jobId"] for a in alone]


def test_lists_read_on_one_worker_follow_what_another_changed(sandbox: str) -> None:
    """Creates, a cancel, a delete and poll steps on one worker; every list and status filter
    read on the other (whose list index was built before) answers as the writer does."""
    with workers(sandbox) as (reader, writer):
        made = [
            httpx.post(writer + CREATE, headers=auth(FULL), json={}, timeout=HTTP_TIMEOUT_S).json()
            for _ in range(2)
        ]

        def lists(base: str) -> list[Any]:
            return [
                httpx.get(
                    base + CREATE, headers=auth(FULL), params=params, timeout=HTTP_TIMEOUT_S
                ).json()
                for params in [{}, {"status": "pending"}, {"status": "failed"}, {"limit": 1}]
            ]

        lists(reader)  # the reader builds its index now, before the changes below
        poll = auth(FULL, Prefer="progression=poll")
        made += [
            httpx.post(writer + CREATE, headers=poll, json={}, timeout=HTTP_TIMEOUT_S).json()
            for _ in range(3)
        ]
        cancel = httpx.post(
            f"{writer}/v1/jobs/{made[0]['jobId']}/cancel",
            headers=auth(FULL),
            timeout=HTTP_TIMEOUT_S,
        )
        assert cancel.status_code == 202
        gone = httpx.delete(
            f"{writer}/v1/influencers/{made[1]['influencerId']}",
            headers=auth(FULL),
            timeout=HTTP_TIMEOUT_S,
        )
        assert gone.status_code == 200
        for _ in range(3):  # poll steps move a job between statuses
            assert httpx.get(
                f"{writer}/v1/jobs/{made[2]['jobId']}", headers=auth(FULL), timeout=HTTP_TIMEOUT_S
            ).is_success
        assert httpx.post(
            writer + "/_mock/clock/advance", json={"seconds": 5}, timeout=HTTP_TIMEOUT_S
        ).is_success
        assert lists(reader) == lists(writer)
        assert len(lists(reader)[0]["items"]) == 4


def test_the_clock_moved_on_one_worker_moves_every_workers_jobs(sandbox: str) -> None:
    with workers(sandbox) as (first, second):
        job = httpx.post(
            first + CREATE, headers=auth(FULL), json={}, timeout=HTTP_TIMEOUT_S
        ).json()["jobId"]
        assert httpx.get(
            f"{second}/v1/jobs/{job}", headers=auth(FULL), timeout=HTTP_TIMEOUT_S
        ).json()["status"] == ("running")
        assert httpx.post(
            first + "/_mock/clock/advance", json={"seconds": 3600}, timeout=HTTP_TIMEOUT_S
        ).is_success
        done = httpx.get(
            f"{second}/v1/jobs/{job}", headers=auth(FULL), timeout=HTTP_TIMEOUT_S
        ).json()
        assert done["status"] == "completed"
        assert (
            httpx.get(second + "/_mock/clock", timeout=HTTP_TIMEOUT_S).json()
            == httpx.get(first + "/_mock/clock", timeout=HTTP_TIMEOUT_S).json()
        )


def test_a_worker_joining_a_wall_clock_sandbox_keeps_its_time(
    sandbox: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a wall clock the sandbox's time runs while any worker runs: a worker that joins an
    hour after the last commit (by Redis's clock) starts an hour on, not at that commit's
    instant; and the first worker, behind, catches up with the next commit it sees.

    The workers' host clocks stand still (a fake monotonic ticker): the only time that passes
    is Redis's, which the test reads too, so the bounds are exact, not minutes of slack a
    stalled machine could still outrun."""
    monkeypatch.setitem(Clock.__init__.__kwdefaults__, "ticker", lambda: 0)

    def now(base: str) -> datetime:
        return datetime.fromisoformat(
            httpx.get(base + "/_mock/clock", timeout=HTTP_TIMEOUT_S).json()["now"]
        )

    store = RedisStore(sandbox)
    with workers(sandbox, count=1, clock="wall") as (first,):
        httpx.post(
            first + CREATE, headers=auth(FULL), json={}, timeout=HTTP_TIMEOUT_S
        ).raise_for_status()
        store.open()
        client = store._client
        committed = int(client.get(store.keys["at"]))  # Redis's clock at that commit, in ms
        client.set(store.keys["at"], committed - 3_600_000)
        with workers(sandbox, count=1, clock="wall") as (late,):
            ahead = now(late) - now(first)
            seconds, micros = client.time()
            since = timedelta(milliseconds=seconds * 1000 + micros // 1000 - committed)
            assert timedelta(hours=1) <= ahead <= timedelta(hours=1) + since
            httpx.post(
                late + CREATE, headers=auth(FULL), json={}, timeout=HTTP_TIMEOUT_S
            ).raise_for_status()
            assert now(first) == now(late)
    store.close()


def test_a_reset_or_an_import_on_one_worker_reaches_every_worker(sandbox: str) -> None:
    with workers(sandbox) as (first, second):
        made = httpx.post(
            second + CREATE, headers=auth(FULL), json={}, timeout=HTTP_TIMEOUT_S
        ).json()
        exported = httpx.get(second + "/_mock/state", timeout=HTTP_TIMEOUT_S).content
        assert httpx.post(first + "/_mock/reset", json={}, timeout=HTTP_TIMEOUT_S).is_success
        assert (
            httpx.get(second + CREATE, headers=auth(FULL), timeout=HTTP_TIMEOUT_S).json()["items"]
            == []
        )
        put = httpx.put(
            first + "/_mock/state",
            content=exported,
            headers={"content-type": "application/json"},
            timeout=HTTP_TIMEOUT_S,
        )
        assert put.status_code == 200, put.text
        listed = httpx.get(second + CREATE, headers=auth(FULL), timeout=HTTP_TIMEOUT_S).json()[
            "items"
        ]
        assert [i["influencerId"] for i in listed] == [made["influencerId"]]
        with workers(sandbox, count=1) as (late,):  # and a worker that starts afterwards
            now = orjson.loads(httpx.get(late + "/_mock/state", timeout=HTTP_TIMEOUT_S).content)
            before = orjson.loads(exported)
            for document in (now, before):
                del document["requests"]  # request numbers only move forward, per worker
            assert now == before


def test_a_new_worker_starts_from_what_the_others_wrote(sandbox: str) -> None:
    with workers(sandbox, count=1) as (first,):
        made = httpx.post(
            first + CREATE,
            headers=auth(GLOBEX.replace("globex", "acme")),
            json={},
            timeout=HTTP_TIMEOUT_S,
        )
        assert made.status_code == 401  # a key that does not exist, to be sure of the next line
        made = httpx.post(
            first + CREATE, headers=auth(FULL), json={}, timeout=HTTP_TIMEOUT_S
        ).json()
        with workers(sandbox, count=1) as (late,):
            listed = httpx.get(late + CREATE, headers=auth(FULL), timeout=HTTP_TIMEOUT_S).json()[
                "items"
            ]
            assert [i["influencerId"] for i in listed] == [made["influencerId"]]
            again = httpx.post(
                late + CREATE, headers=auth(FULL), json={}, timeout=HTTP_TIMEOUT_S
            ).json()
            assert again["influencerId"] != made["influencerId"]
        assert (
            len(
                httpx.get(first + CREATE, headers=auth(FULL), timeout=HTTP_TIMEOUT_S).json()[
                    "items"
                ]
            )
            == 2
        )


def test_a_latency_fault_gives_the_lease_up_while_it_sleeps(sandbox: str) -> None:
    """A slow answer does not hold every other worker's writes: while it sleeps, another
    worker can take the lease (and after it, the slow request still lands its create)."""
    deps = make_deps(Settings(state=sandbox, clock="virtual", seed=SEED, strict=True))
    app = build_app(deps)
    other = RedisStore(sandbox)
    other.open()
    free_while_asleep: list[bool] = []

    async def nap(seconds: float) -> None:
        assert seconds == 1.5
        free_while_asleep.append(other.lock() is not None)
        other.write(Batch(meta=None))  # another worker's write lands in the meantime

    deps.shared.nap = nap
    with TestClient(app) as client:
        slow = client.post(CREATE, headers=auth(FULL, Prefer="latency=1500"), json={})
        assert slow.status_code == 202
        assert free_while_asleep == [True]
        assert len(client.get(CREATE, headers=auth(FULL)).json()["items"]) == 1
    other.close()


def test_bad_redis_urls_are_refused_in_one_sentence() -> None:
    for url, says in [
        ("redis://", "use redis://HOST:PORT/DB"),
        ("redis://h:1/x", "DB a number"),
        ("redis://h:1/0?sandbox=", "sandbox="),
        ("redis://h:1/0?sandbox=a%20b", "sandbox="),
        ("redis://h:1/0?sandbox=" + "a" * 65, "sandbox="),
        ("redis://h:1/0?lease=0", "lease="),
        ("redis://h:1/0?lease=-5", "lease="),
        ("redis://h:1/0?lease=1e9", "lease="),
        ("redis://h:1/0?password=x", "unknown option 'password'"),
        ("redis://h:99999/0", "use redis://"),
    ]:
        with pytest.raises(ValueError, match=re.escape(says)):
            make_store(url)


def test_a_redis_that_cannot_be_reached_is_one_sentence_at_start() -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]  # bound, never listening: the connection is refused
    with pytest.raises(ValueError, match=f"--state redis://127.0.0.1:{port}/0: .*") as refused:
        make_deps(Settings(state=f"redis://127.0.0.1:{port}/0"))
    assert "\n" not in str(refused.value)
    with pytest.raises(ValueError) as refused:  # a password is never shown
        make_deps(Settings(state=f"redis://me:s3cret@127.0.0.1:{port}/0"))
    assert "s3cret" not in str(refused.value)
    assert f"redis://me:***@127.0.0.1:{port}/0" in str(refused.value)
    closed.close()


def test_every_worker_reads_one_journal(sandbox: str) -> None:
    """/_mock/requests on any worker shows what every worker answered, once each, newest first
    (in the order the entries reached Redis). A worker sends its entries with its next round
    trip to Redis, or within 10 ms: `flush()` stands for that here (no waiting in a test)."""
    settings = Settings(state=sandbox, clock="virtual", seed=SEED, strict=True, journal_bodies=True)
    one, two = make_deps(settings), make_deps(settings)
    with TestClient(build_app(one)) as first, TestClient(build_app(two)) as second:
        made = first.post(CREATE, headers=auth(FULL), json={"gender": "male"})
        one.journal.flush()  # type: ignore[attr-defined]
        job = second.get(f"/v1/jobs/{made.json()['jobId']}", headers=auth(FULL))
        two.journal.flush()  # type: ignore[attr-defined]
        assert first.get("/v1/jobs/job_nope", headers=auth(FULL)).status_code == 404
        one.journal.flush()  # type: ignore[attr-defined]
        for reader in (first, second):
            items = reader.get("/_mock/requests").json()["items"]
            assert [(i["method"], i["path"], i["status"]) for i in items] == [
                ("GET", "/v1/jobs/job_nope", 404),
                ("GET", f"/v1/jobs/{made.json()['jobId']}", 200),
                ("POST", CREATE, 202),
            ]
            assert [i["requestId"] for i in items[1:]] == [
                job.headers["x-request-id"],
                made.headers["x-request-id"],
            ]
            assert items[2]["request"]["body"] == '{"gender":"male"}'
            assert items[2]["request"]["headers"]["authorization"] == "Bearer lp_test_acmefull_***"
            assert items[0]["sequence"] > items[1]["sequence"] > items[2]["sequence"]
        assert second.post("/_mock/reset", json={}).is_success
        assert first.get("/_mock/requests").json()["items"] == []


def test_a_workers_journal_entries_go_with_its_next_round_trip(sandbox: str) -> None:
    settings = Settings(state=sandbox, clock="virtual", seed=SEED, strict=True)
    with (
        TestClient(build_app(make_deps(settings))) as first,
        TestClient(build_app(make_deps(settings))) as second,
    ):
        first.get("/v1/whoami", headers=auth(FULL))
        first.get("/v1/credits", headers=auth(FULL))  # its catch-up carries the whoami entry
        paths = [i["path"] for i in second.get("/_mock/requests").json()["items"]]
        assert "/v1/whoami" in paths


def test_a_concurrent_mix_on_two_workers_leaves_them_agreeing(sandbox: str) -> None:
    """Creates (some with one key, some moved by polls), polls, cancels, deletes, renames,
    clock moves and counted rules from six clients at once over two workers: nothing is
    refused for the store's sake, and both workers end with the same state and lists."""
    projects = [(FULL, PROJECT), (GLOBEX, "prj_7b3e9d21-4a5c-4f6e-8d9b-0c1a2e3f4b5d")]
    refused: list[str] = []

    def client(bases: list[str], seed: int) -> None:
        rng = random.Random(seed)
        made: list[tuple[str, dict[str, Any]]] = []
        with httpx.Client(timeout=30) as http:
            for n in range(25):
                base, (key, project) = rng.choice(bases), rng.choice(projects)
                listing, pick = f"{base}/v1/projects/{project}/influencers", rng.random()
                if pick < 0.35 or not made:
                    headers = auth(key, Prefer=rng.choice(["progression=poll", "outcome=failed"]))
                    if rng.random() < 0.3:
                        headers["Idempotency-Key"] = f"k{rng.randrange(4)}"
                    answer = http.post(listing, headers=headers, json={})
                    if answer.status_code == 202:
                        made.append((key, answer.json()))
                    continue
                key, job = rng.choice(made)
                influencer = f"{base}/v1/influencers/{job['influencerId']}"
                if pick < 0.55:
                    answer = http.get(f"{base}/v1/jobs/{job['jobId']}", headers=auth(key))
                elif pick < 0.65:
                    answer = http.post(f"{base}/v1/jobs/{job['jobId']}/cancel", headers=auth(key))
                elif pick < 0.72:
                    answer = http.delete(influencer, headers=auth(key))
                elif pick < 0.8:
                    body = {"name": f"n{seed}-{n}"}
                    answer = http.patch(influencer, headers=auth(key), json=body)
                elif pick < 0.88:
                    answer = http.post(base + "/_mock/clock/advance", json={"seconds": 7})
                elif pick < 0.92:
                    rule = {"match": {"operationId": "getJob"}, "fault": "503", "count": 2}
                    answer = http.post(base + "/_mock/rules", json=rule)
                else:
                    answer = http.get(listing, headers=auth(key))
                if answer.status_code == 503 and answer.json()["error"]["code"] != "KILL_SWITCH":
                    refused.append(answer.text)

    with workers(sandbox) as bases:
        clients = [threading.Thread(target=client, args=(bases, n)) for n in range(6)]
        for c in clients:
            c.start()
        for c in clients:
            c.join()
        assert refused == []
        states = [
            orjson.loads(httpx.get(base + "/_mock/state", timeout=HTTP_TIMEOUT_S).content)
            for base in bases
        ]
        for state in states:
            del state["requests"]  # request numbers are each worker's own
        assert states[0] == states[1]
        for key, project in projects:
            for status in (None, "pending", "training", "ready", "failed"):
                params = {"limit": 100, **({"status": status} if status else {})}
                path = f"/v1/projects/{project}/influencers"
                pages = [
                    httpx.get(
                        b + path, headers=auth(key), params=params, timeout=HTTP_TIMEOUT_S
                    ).json()
                    for b in bases
                ]
                assert pages[0] == pages[1]


def test_without_the_redis_client_the_error_names_the_extra(
    sandbox: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)  # as if `[redis]` was not installed
    with pytest.raises(ValueError, match=r"install the \[redis\] extra"):
        make_deps(Settings(state=sandbox))


def test_an_organizations_own_clock_moved_on_one_worker_is_its_clock_on_every_worker(
    sandbox: str,
) -> None:
    globex = "org_8d1e5f3a-6c2b-4e7d-a9f0-1b3c5d7e9f02"
    foreign_project = "prj_7b3e9d21-4a5c-4f6e-8d9b-0c1a2e3f4b5d"
    with workers(sandbox) as (first, second):
        ours = httpx.post(
            first + CREATE, headers=auth(FULL), json={}, timeout=HTTP_TIMEOUT_S
        ).json()["jobId"]
        theirs = httpx.post(
            f"{first}/v1/projects/{foreign_project}/influencers",
            headers=auth(GLOBEX),
            json={},
            timeout=HTTP_TIMEOUT_S,
        ).json()["jobId"]
        moved = httpx.post(
            f"{second}/_mock/organizations/{globex}/clock/advance",
            json={"seconds": 86400},
            timeout=HTTP_TIMEOUT_S,
        )
        assert moved.status_code == 200, moved.text
        assert httpx.get(
            f"{first}/v1/jobs/{theirs}", headers=auth(GLOBEX), timeout=HTTP_TIMEOUT_S
        ).json()["status"] == ("completed")
        assert httpx.get(
            f"{first}/v1/jobs/{ours}", headers=auth(FULL), timeout=HTTP_TIMEOUT_S
        ).json()["status"] == ("running")


def test_a_store_that_went_back_is_read_again_whole(sandbox: str) -> None:
    """Redis restored from an older copy (or its AOF cut short) holds fewer commits than a
    worker has seen: the worker reads everything again instead of failing on the log."""
    first, second = RedisStore(sandbox), RedisStore(sandbox)
    assert first.open() is None
    first.write(Batch([("jobs", "job_1", b"{}")], (), b"1", wipe=True))
    client, pattern = first._client, first.keys["rows"].replace(":rows", ":*")
    copy = {k: client.dump(k) for k in client.scan_iter(pattern)}  # the copy, at commit 1
    assert second.open() is not None
    for n in (2, 3):
        assert first.lock() is not None
        first.write(Batch([("jobs", f"job_{n}", b"{}")], (), str(n).encode()))
    found = [[i for _, i, _ in b.upserts] for b in second.changes().batches]
    assert found == [["job_2"], ["job_3"]]
    client.delete(*client.scan_iter(pattern))  # Redis restored from it: back to commit 1
    for key, dumped in copy.items():
        client.restore(key, 0, dumped)
    found = second.changes()
    assert found.everything is not None and found.everything.meta == b"1"
    assert second.changes().batches == []
    first.close()
    second.close()


def test_a_sandbox_an_older_version_logged_is_caught_up_with_and_written_on(sandbox: str) -> None:
    """Versions before logged each batch as an entry of its own (no count, under an ID Redis
    gave it): a worker of this version applies such an entry, and writes on after it."""
    first, second = RedisStore(sandbox), RedisStore(sandbox)
    assert first.open() is None
    first.write(Batch([("jobs", "job_1", b"{}")], (), b"1", wipe=True))
    first._client.delete(first.keys["whole"])  # the sandbox an older version wrote: no census
    assert second.open() is not None
    keys, client = first.keys, first._client
    # commit 2, as an older version wrote it (stores/redis.py's WRITE before group commits)
    logged = {"u": [["jobs", "job_2", '{"n":2}']], "d": [["jobs", "job_1"]], "m": "2", "w": False}
    client.hdel(keys["rows"], "jobs\x00job_1")
    client.zrem(keys["order"], "jobs\x00job_1")
    client.hset(keys["rows"], "jobs\x00job_2", b'{"n":2}')
    client.zadd(keys["order"], {"jobs\x00job_2": 2})
    client.set(keys["meta"], b"2")
    client.xadd(keys["log"], {"n": client.incr(keys["commits"]), "b": orjson.dumps(logged)})
    found = second.changes()
    assert found.everything is None
    assert [(list(b.upserts), list(b.deletes), b.meta) for b in found.batches] == [
        ([("jobs", "job_2", b'{"n":2}')], [("jobs", "job_1")], b"2")
    ]
    assert first.lock() is not None  # caught up the same way, then writes on
    first.write(Batch([("jobs", "job_3", b"{}")], (), b"3"))
    found = second.changes()
    assert found.everything is None and [b.meta for b in found.batches] == [b"3"]
    second.forget()  # a copy no longer trusted reads everything
    found = second.changes()
    assert found.everything is not None
    assert [r[1] for r in found.everything.rows] == ["job_2", "job_3"]
    first.close()
    second.close()


def test_a_worker_refused_the_lease_is_next_in_line(sandbox: str, unhurried: None) -> None:
    """A worker that writes without pause cannot starve another: once refused, the other is
    next, and the first gets the lease again only after it (whatever the machine's speed:
    `unhurried`, else a step more than 50 ms after a release found the place gone)."""
    first, second = RedisStore(sandbox), RedisStore(sandbox)
    assert first.open() is None
    first.write(Batch([], (), b"1", wipe=True))
    assert second.open() is not None
    assert first.lock() is not None
    assert second.lock() is None  # held: the second is next in line
    first.write(Batch([], (), b"2"))  # the lease is free again ...
    assert first.lock() is None  # ... but not for the first: the second waits for it
    taken = second.lock()
    assert taken is not None and [b.meta for b in taken.batches] == [b"2"]
    assert first.lock() is None  # now the first is next
    second.write(Batch([], (), b"3"))
    assert second.lock() is None
    assert first.lock() is not None
    first.unlock()
    assert second.lock() is not None  # no one else waits: whoever asks takes it
    second.unlock()
    first.close()
    second.close()


def test_a_worker_no_request_reached_follows_what_the_others_write(
    sandbox: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection lands on whichever worker accepts it, so a worker can go without a
    request while the others write. Started as `serve` starts it, it follows them all the
    same, and its first request is not the one that reads the whole sandbox again (it took
    2.7 s after 49,000 creates, and every request on that worker waited for it)."""
    monkeypatch.setattr(shared, "FOLLOW_S", 0.0)  # every turn of its loop, when idle
    settings = Settings(state=sandbox, clock="virtual", seed=SEED, strict=True)
    idle = make_deps(settings)
    assert idle.shared is None  # (the gate is made with the app)
    app = build_app(idle)
    background = serving.Background(app, serving.bind("127.0.0.1", 0), started=idle.shared.follow)
    try:
        with workers(sandbox, count=1) as [base]:
            made = sorted(
                httpx.post(
                    base + CREATE, headers=auth(FULL), json={}, timeout=HTTP_TIMEOUT_S
                ).json()["influencerId"]
                for _ in range(3)
            )

            # woken at each catch-up of the idle worker's (event-driven, not polled)
            caught_up = idle.shared._until(lambda: sorted(idle.sim.state.influencers) == made)
            waiting = asyncio.wait_for(caught_up, LIVENESS_S)
            asyncio.run_coroutine_threadsafe(waiting, background.loop).result()
    finally:
        background.stop()
