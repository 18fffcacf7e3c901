"""A sandbox's slot moving between the shards of a Redis Cluster while it serves (issue:
"ASK is not followed on Redis Cluster"). The test drives the reshard itself, step by step, as
`redis-cli --cluster reshard` would (tests/clusterd.py `move`, `finish_move`), between
requests, or at the one point the cluster client pauses before trying again.

Redis checks a script's keys before it runs it: on the migrating shard, keys split between
the shards are TRYAGAIN and keys all gone are ASK; on the importing shard (after ASKING) a
script naming any key it does not hold is TRYAGAIN. The mock's scripts name keys that may
not exist (the lease, the rate windows, ...), so while the slot is half-way most of them are
TRYAGAIN, and only the end of the reshard lets them run.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from clusterd import RedisClusterServers, slot_of, started_cluster
from clustered import CREATE, influencers, keys_on, workers
from grouped import Worker
from grouped import influencers as grouped_influencers
from support import FULL, HTTP_TIMEOUT_S, auth

from layers_mock_server.stores.redis import RedisStore
from layers_mock_server.stores.redis_url import LEASE_MS


def create(base: str, key: str) -> httpx.Response:
    return httpx.post(
        base + CREATE, headers=auth(FULL, **{"Idempotency-Key": key}), json={}, timeout=30
    )


def half_way(cluster: RedisClusterServers, name: str, to: int) -> tuple[int, int]:
    """Start moving the sandbox's slot to node `to` and migrate half of its keys: (slot,
    source)."""
    slot = slot_of(name)
    source = cluster.owner(slot)
    half = keys_on(cluster, source, name)[::2]
    assert half
    return slot, cluster.move(slot, to=to, keys=half)


def test_a_request_during_a_half_done_reshard_answers_503_and_loses_nothing(
    redis_cluster: RedisClusterServers,
) -> None:
    """Half-way through a reshard (some of the sandbox's keys moved, some not) a create and a
    read are refused before anything ran: 503 STORAGE_UNAVAILABLE in the envelope, saying
    the slot is being moved and that a retry is safe; health says Redis answers (refusing),
    not that it is unreachable, and ready says not ready. Once the reshard is done the same
    create is answered as if it were new, and the refused one left nothing."""
    url, name = redis_cluster.sandbox(on=2)
    with workers(url, count=1) as bases:
        kept = create(bases[0], "kept").json()["influencerId"]
        slot, source = half_way(redis_cluster, name, to=0)
        refused = create(bases[0], "mid")
        assert refused.status_code == 503, refused.text
        error = refused.json()["error"]
        assert error["code"] == "STORAGE_UNAVAILABLE"
        assert "being moved to another node" in error["message"], error
        assert "nothing of this request was done" in error["message"], error
        assert error["details"]["reason"].split(": ", 1)[1].startswith(("TRYAGAIN", "ASK")), error
        read = httpx.get(bases[0] + CREATE, headers=auth(FULL), timeout=30)
        assert read.status_code == 503 and "being moved" in read.json()["error"]["message"]
        shared = httpx.get(bases[0] + "/_mock/health", timeout=HTTP_TIMEOUT_S).json()["sharedStore"]
        assert shared["reachable"] is True and "reason" not in shared, shared
        assert shared["refused"].split(": ", 1)[1].startswith(("TRYAGAIN", "ASK")), shared
        assert httpx.get(bases[0] + "/_mock/ready", timeout=HTTP_TIMEOUT_S).status_code == 503

        redis_cluster.finish_move(slot, source, to=0)
        assert influencers(bases[0]) == [kept]  # the refused create left nothing
        again = create(bases[0], "mid")
        assert again.status_code == 202, again.text
        assert influencers(bases[0]) == [again.json()["influencerId"], kept]
        assert httpx.get(bases[0] + "/_mock/ready", timeout=HTTP_TIMEOUT_S).status_code == 200
    assert keys_on(redis_cluster, 0, name) and not keys_on(redis_cluster, source, name)


def test_a_reshard_that_ends_while_the_cluster_client_tries_again_is_not_seen(
    redis_cluster: RedisClusterServers, paused: list[Callable[[], None]]
) -> None:
    """A create that meets the reshard half-way (TRYAGAIN) is handed to redis-py's cluster
    client, which tries it again; the reshard ends before its next try (driven at the
    client's pause), and the create is answered 202 as if nothing happened: kept once, on
    the new shard, and two workers (one of which still points at the old shard) agree."""
    url, name = redis_cluster.sandbox(on=1)
    with workers(url) as bases:
        first = create(bases[1], "first").json()["influencerId"]
        slot, source = half_way(redis_cluster, name, to=2)
        paused.append(lambda: redis_cluster.finish_move(slot, source, to=2))
        created = create(bases[0], "during")
        assert created.status_code == 202, created.text
        assert not paused  # the reshard ended inside the request, at the client's pause
        again = create(bases[1], "during")  # a retry on the other worker: MOVED, then kept
        assert again.status_code == 202 and again.json() == created.json()
        assert influencers(bases[1]) == influencers(bases[0])
        assert influencers(bases[0]) == [created.json()["influencerId"], first]
    assert redis_cluster.owner(slot) == 2
    assert keys_on(redis_cluster, 2, name) and not keys_on(redis_cluster, source, name)


def test_a_lease_given_back_while_its_key_is_on_the_importing_shard_is_given_back(
    redis_cluster: RedisClusterServers,
) -> None:
    """A worker holds the sandbox's write lease when the reshard moves the lease's key: its
    release meets ASK on the old shard, and is sent (ASKING) to the new one. Before, the
    ASK was dropped and the lease stayed held until it ran out (`lease=`, here ten
    minutes): every other worker's write waited that long after the reshard."""
    url, name = redis_cluster.sandbox(on=0)
    url += "&lease=600000"
    holder = RedisStore(url)
    assert holder.open() is None and holder.holds()  # a fresh sandbox: the lease is kept
    other = RedisStore(url)
    try:
        lease = f"{{lm:{name}}}:lease"
        assert lease in keys_on(redis_cluster, 0, name)
        slot, source = slot_of(name), 0
        redis_cluster.move(slot, to=1, keys=[lease])
        holder.unlock()
        assert not holder.holds()
        redis_cluster.finish_move(slot, source, to=1)
        assert lease not in keys_on(redis_cluster, 1, name)
        assert other.open() is None  # it took the lease at once (it would wait 10 min)
        assert other.holds()
    finally:
        holder.close()
        other.close()


@pytest.fixture(scope="module")
def replicated() -> Iterator[RedisClusterServers]:
    """A cluster of its own whose first two masters have a replica each (nodes 3 and 4): a
    test fails one master over, the next test the other."""
    with started_cluster(replicas=2) as cluster:
        yield cluster


def test_a_worker_whose_shard_dies_finds_the_replica_that_took_over(
    replicated: RedisClusterServers,
) -> None:
    """The master of the sandbox's slot dies (here the node of the `--state` URL too) and its
    replica takes over. Each worker's next request finds the dead address, looks the slot up
    again and sends its catch-up (safe twice) to the replica: answered as if nothing
    happened, and nothing acknowledged before is lost (the replica had it: WAIT). Before, a
    worker kept calling the dead address, and answered 503 until it was restarted."""
    url, name = replicated.sandbox(on=0)
    with workers(url) as bases:
        acknowledged = [create(bases[n % 2], f"k{n}").json()["influencerId"] for n in range(3)]
        with replicated.client(0) as master:
            assert master.execute_command("WAIT", 1, 10_000) == 1  # the replica has it all
        replica = replicated.fail_over(0)
        answers = [create(base, "after") for base in bases]
        assert {a.status_code for a in answers} == {202}, [a.text for a in answers]
        assert answers[0].json() == answers[1].json()
        assert influencers(bases[0]) == influencers(bases[1])
        assert influencers(bases[1]) == [answers[0].json()["influencerId"], *acknowledged[::-1]]
    assert replicated.owner(slot_of(name)) == replica


def test_a_write_whose_master_dies_before_answering_says_it_may_have_been_kept(
    replicated: RedisClusterServers,
) -> None:
    """The master dies as a create's write goes out: no answer came, so the write may have
    been kept (on the master's AOF, on the replica), and the 503
    says so, and that a retry with the same Idempotency-Key finds out; the retry, once the
    replica took over, is answered at once. Before, the 503 said nothing of the request was
    done, and the retry waited for the write's lease to run out (the replica had it)."""
    url, _ = replicated.sandbox(on=1)
    worker = Worker(url)
    try:
        headers = auth(FULL, **{"Idempotency-Key": "dying"})
        [(status, body)] = worker.together(("POST", CREATE, auth(FULL), {}))
        assert status == 202, body
        with replicated.client(1) as master:  # else the replica may lack it (asynchronous)
            assert master.execute_command("WAIT", 1, 10_000) == 1
        write = worker.store.send_write

        def dying(batches: Any, keep: bool) -> Any:
            worker.store.send_write = write  # once
            # (killed before it is sent, the dead socket is seen first: nothing is sent)
            conn = worker.store._lane_conn
            send = conn.send_command

            def sent_then_killed(*args: Any, **kwargs: Any) -> None:
                del conn.send_command  # once
                # stopped first, so that it cannot answer between the send and the kill (it
                # did, about once in ten runs: a 202); the write waits unread in its socket
                master = replicated.nodes[1].process
                assert master is not None
                master.send_signal(signal.SIGSTOP)
                send(*args, **kwargs)
                replicated.nodes[1].kill()

            conn.send_command = sent_then_killed
            return write(batches, keep)

        worker.store.send_write = dying
        [(status, body)] = worker.together(("POST", CREATE, headers, {}))
        assert status == 503, body
        assert "may have been kept" in body["error"]["message"], body
        assert "same Idempotency-Key" in body["error"]["message"], body
        replicated.fail_over(1)
        worker.trips.clear()
        began = time.monotonic()
        [(status, again)] = worker.together(("POST", CREATE, headers, {}))
        took = time.monotonic() - began
        assert status == 202, again
        # The lease the failed write held went to the replica with the rest: the worker gave
        # it back first, and took it at once, not after it ran out (LEASE_MS, 10 s). Mostly
        # in one try; under two busy loops, 1 run in 3 (on main too) tried twice, the first
        # refused while the give-back was on its way, and the second taken at its release.
        assert worker.trips[-1] == "write", worker.trips
        assert set(worker.trips[:-1]) == {"lock"} and len(worker.trips) <= 3, worker.trips
        assert took < LEASE_MS / 1000 / 2, took
        assert len(grouped_influencers(worker)) == 2
    finally:
        worker.close()
