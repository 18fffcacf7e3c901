"""A worker on Redis Cluster waits for its shard as one on a single Redis does: its round trips
go through a pipe (stores/redis_thread.py), never on its event loop, and a worker refused the
lease hears it given back on the sandbox's shard channel (stores/redis_handoff.py), on the
shard that owns the slot, following it when it moves, instead of polling every DEAF_S.

Before, every round trip of a cluster worker ran on its event loop: the ~0.4 s redis-py's
cluster client spends trying a TRYAGAIN again (a reshard half-way) stalled every request of
the worker, /_mock/health too; and a refused worker tried again every 2 ms.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from clusterd import RedisClusterServers, slot_of, started_cluster
from clustered import CREATE, keys_on, workers
from grouped import serves_off_the_loop
from handoffs import ANSWER_S, Waiter, dropped, failed_over, handed_over, listening, served
from support import FULL, HTTP_TIMEOUT_S, auth

from layers_mock_server.stores.redis import RedisStore


def test_a_worker_answers_health_while_its_shard_says_tryagain(
    redis_cluster: RedisClusterServers, paused: list[Callable[[], None]]
) -> None:
    """A create meets a reshard half-way and the cluster client tries it again; at its pause
    (the create still pending) the same worker answers /_mock/health, which needs nothing of
    Redis. Then the reshard ends and the create is answered 202."""
    url, name = redis_cluster.sandbox(on=1)
    with workers(url, count=1) as bases:
        base = bases[0]
        assert (
            httpx.post(
                base + CREATE, headers=auth(FULL), json={}, timeout=HTTP_TIMEOUT_S
            ).status_code
            == 202
        )
        slot = slot_of(name)
        source = redis_cluster.owner(slot)
        redis_cluster.move(slot, to=2, keys=keys_on(redis_cluster, source, name)[::2])
        health: list[Any] = []

        def during() -> None:
            try:  # a bound for a stalled worker to fail on, not a wait for state
                health.append(httpx.get(base + "/_mock/health", timeout=5).status_code)
            except httpx.TimeoutException as exc:
                health.append(repr(exc))
            redis_cluster.finish_move(slot, source, to=2)

        paused.append(during)
        created = httpx.post(base + CREATE, headers=auth(FULL), json={}, timeout=30)
        assert not paused
        assert health == [200]
        assert created.status_code == 202, created.text


def test_no_round_trip_of_a_serving_cluster_worker_runs_on_its_loop(
    redis_cluster: RedisClusterServers, on_the_loop: list[bytes]
) -> None:
    """Creates, reads, the journal and the lease given back: none is a synchronous round trip
    on the event loop (each would hold every other request of the worker)."""
    url, _ = redis_cluster.sandbox(on=0)
    serves_off_the_loop(url, on_the_loop)


@pytest.fixture
def holder(redis_cluster: RedisClusterServers) -> Iterator[Callable[[str], RedisStore]]:
    stores: list[RedisStore] = []

    def make(url: str) -> RedisStore:
        stores.append(RedisStore(url))
        return stores[-1]

    yield make
    for store in stores:
        store.close()


def test_a_cluster_worker_hears_the_lease_given_back_and_follows_its_shard(
    redis_cluster: RedisClusterServers,
    holder: Callable[[str], RedisStore],
    no_poll: None,
) -> None:
    """The waiter listens on the shard that owns the sandbox's slot and takes the lease one
    try after it is given back; the slot then moves to another shard (its subscription ends
    there) and the waiter's listener follows it: the next handoff is heard as well."""
    url, name = redis_cluster.sandbox(on=0)
    waiter = Waiter(url)
    with served(waiter) as (host, port):
        base = f"http://{host}:{port}"
        listening(waiter, base)
        first = holder(url)
        assert first.open() is not None
        handed_over(waiter, base, first)

        slot = slot_of(name)
        subscribed = threading.Event()
        handoff = waiter.store.handoff
        readable = handoff._readable

        def read() -> None:
            was = handoff.listening
            readable()
            if handoff.listening and not was:
                subscribed.set()

        handoff._readable = read
        ended = dropped(waiter)
        redis_cluster.move(slot, to=1)
        assert ended.wait(ANSWER_S)  # the old shard ended the subscription
        # the listener connects again at once, and finds the slot's new owner (the old one
        # says MOVED); meanwhile a create takes the lease unopposed
        assert (
            httpx.post(
                base + CREATE, headers=auth(FULL), json={}, timeout=HTTP_TIMEOUT_S
            ).status_code
            == 202
        )
        assert subscribed.wait(ANSWER_S)
        waiter.tries.clear()
        second = holder(url)
        assert second.open() is not None
        handed_over(waiter, base, second)
    assert redis_cluster.owner(slot) == 1


@pytest.fixture(scope="module")
def replicated() -> Iterator[RedisClusterServers]:
    """A cluster of its own whose first master has a replica (node 3)."""
    with started_cluster(replicas=1) as cluster:
        yield cluster


def test_a_cluster_worker_listens_on_the_replica_that_took_over(
    replicated: RedisClusterServers, holder: Callable[[str], RedisStore], no_poll: None
) -> None:
    """The master of the sandbox's slot dies and its replica takes over: the listener's
    connection ends, and the waiter's next try connects it again, to the replica (the dead
    address refuses, the cluster is asked who owns the slot now); the next handoff is heard
    there. Without it, the waiter would poll (here: never wake)."""
    url, name = replicated.sandbox(on=0)
    waiter = Waiter(url)
    with served(waiter) as (host, port):
        base = f"http://{host}:{port}"
        listening(waiter, base)
        replica = failed_over(waiter, base, replicated)
        lease_holder = holder(f"{replicated.url}?sandbox={name}")  # (node 0's URL is dead)
        assert lease_holder.open() is not None
        handed_over(waiter, base, lease_holder)
    assert replicated.owner(slot_of(name)) == replica
