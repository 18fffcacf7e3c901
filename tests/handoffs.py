"""A served worker on Redis whose lease tries are counted (tests/redis/test_handoff.py on one
Redis, test_cluster_pipe.py on Redis Cluster): the waiting worker is a whole server (app, store,
event loop, thread); the one holding the lease is a bare store the test drives."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx
from support import FULL, HTTP_TIMEOUT_S, PROJECT, SEED, auth

from layers_mock_server import serving
from layers_mock_server.http.app import build_app
from layers_mock_server.settings import Settings, make_deps
from layers_mock_server.stores.redis import RedisStore

CREATE = f"/v1/projects/{PROJECT}/influencers"
ANSWER_S = 30  # how long a create may take before the test calls it stuck


class Waiter:
    """A served worker whose lease tries are counted, and which says when it waits for one."""

    def __init__(self, url: str) -> None:
        deps = make_deps(Settings(state=url, clock="virtual", seed=SEED, strict=True))
        self.app = build_app(deps)
        self.store: Any = deps.sim.shared
        self.tries: list[bool] = []  # each lease try, and whether it took the lease
        self.waiting = threading.Event()  # set when a try was refused and it waits
        send_changes, handed = self.store.send_changes, self.store.handed

        def counted(lease: bool, buckets: Any = (), listed: bool = False, **options: Any) -> Any:
            sent = send_changes(lease, buckets, listed, **options)
            if lease:
                index = len(self.tries)
                self.tries.append(False)
                sent.add_done_callback(lambda done: self._answered(index, done))
            return sent

        async def waits(heard: Any) -> None:
            self.waiting.set()
            await handed(heard)

        self.store.send_changes, self.store.handed = counted, waits

    def _answered(self, index: int, done: asyncio.Future[Any]) -> None:
        taken = not done.cancelled() and done.exception() is None
        self.tries[index] = taken and done.result() is not None

    def create(self, base: str, made: list[Any]) -> threading.Thread:
        """A create sent in a thread of its own: it waits for the lease while the test goes on."""

        def run() -> None:
            made.append(httpx.post(base + CREATE, headers=auth(FULL), json={}, timeout=ANSWER_S))

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread


def served(waiter: Waiter) -> Any:
    return serving.running(waiter.app)


def listening(waiter: Waiter, base: str) -> None:
    """A first create takes the lease unopposed and starts the worker's listener; the test
    goes on once it is subscribed (the listener's own read says so, not a timer)."""
    handoff = waiter.store.handoff
    subscribed = threading.Event()
    readable = handoff._readable

    def read() -> None:
        readable()
        if handoff.listening:
            subscribed.set()

    handoff._readable = read
    assert (
        httpx.post(base + CREATE, headers=auth(FULL), json={}, timeout=HTTP_TIMEOUT_S).status_code
        == 202
    )
    assert subscribed.wait(ANSWER_S)
    waiter.tries.clear()


def dropped(waiter: Waiter) -> threading.Event:
    """Set when the waiter's handoff listener loses its connection (`Handoff._drop`)."""
    handoff = waiter.store.handoff
    ended = threading.Event()
    drop = handoff._drop

    def dropping() -> None:
        drop()
        ended.set()

    handoff._drop = dropping
    return ended


def failed_over(waiter: Waiter, base: str, cluster: Any) -> int:
    """The master of the sandbox's slot (node 0 of a tests/clustered.py cluster) dies once its
    replica has every write, and the replica takes over: the listener's connection ends, and
    a create (its catch-up sent again to the replica) connects it again, to the replica.
    Returns the replica's node."""
    ended = dropped(waiter)
    with cluster.client(0) as master:
        assert master.execute_command("WAIT", 1, 10_000) == 1
    replica: int = cluster.fail_over(0)
    assert ended.wait(ANSWER_S)  # the dead master's connection ended
    listening(waiter, base)
    return replica


def handed_over(waiter: Waiter, base: str, holder: RedisStore) -> None:
    """The holder takes the lease, the waiter's create is refused and waits; the holder gives
    the lease back and the waiter's next try takes it (no timer would wake it: no_poll)."""
    assert holder.lock() is not None
    made: list[httpx.Response] = []
    waiter.waiting.clear()
    thread = waiter.create(base, made)
    assert waiter.waiting.wait(ANSWER_S)
    assert waiter.tries == [False]
    holder.unlock()
    thread.join(ANSWER_S)
    assert [r.status_code for r in made] == [202]
    assert waiter.tries == [False, True]
