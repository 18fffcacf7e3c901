"""The in-process harness of the tests of a worker on Redis (tests/redis): workers whose ASGI
app is driven straight, on an event loop of each worker's own, so that "arrived together" is
exact: every request's first step runs before the loop's next callback, which is where the
shared round trip is scheduled. Reading a request's body yields to the loop once (as a
server's does), so the requests that arrived meanwhile queue for the turn. The fixtures `two`
and `patient` are in tests/redis/conftest.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import orjson
from support import FULL, PROJECT, SEED, auth, http_scope

from layers_mock_server.deps import Deps
from layers_mock_server.http.app import build_app
from layers_mock_server.settings import Settings, make_deps

CREATE = f"/v1/projects/{PROJECT}/influencers"


class Turn:
    """One trip through the event loop (a bare yield: the task runs again next iteration)."""

    def __await__(self) -> Iterator[None]:
        yield


class Worker:
    """One worker (its app, its copy, its store) on a sandbox, and its round trips."""

    def __init__(
        self,
        url: str,
        *,
        bodies: bool = False,
        admin_token: str | None = None,
        clock: str = "virtual",
    ) -> None:
        settings = Settings(
            state=url,
            clock=clock,
            seed=SEED,
            strict=True,
            journal_bodies=bodies,
            admin_token=admin_token,
        )
        self.deps: Deps = make_deps(settings)
        self.app = build_app(self.deps)
        self.store: Any = self.deps.sim.shared
        self.loop = asyncio.new_event_loop()  # one loop, as a worker has
        self.trips: list[str] = []
        self.request_ids: list[str] = []
        self.kept: list[bool] = []  # whether each commit kept the lease for the next group
        if self.store is None:  # memory or SQLite: one server, no round trips to count
            return
        changes, write = self.store.send_changes, self.store.send_write

        def counted_changes(
            lease: bool, buckets: Any = (), listed: bool = False, **options: Any
        ) -> Any:
            self.trips.append("lock" if lease else "changes")
            return changes(lease, buckets, listed, **options)

        def counted_write(batches: Any, keep: bool) -> Any:
            self.trips.append("write")
            self.kept.append(keep)
            return write(batches, keep)

        self.store.send_changes, self.store.send_write = counted_changes, counted_write

    async def call(self, *request: Any, **options: Any) -> tuple[int, Any]:
        """One request (`exchange`'s arguments): (status, parsed body)."""
        status, _, payload = await self.exchange(*request, **options)
        return status, orjson.loads(payload) if payload else None

    async def exchange(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        body: Any = None,
        sent_after: asyncio.Future[None] | None = None,
        query: str = "",
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """One request through the worker's ASGI app, its answer as sent: (status, headers,
        body). `sent_after`: the client sends the body only once that is done (a slow
        client)."""
        raw = b"" if body is None else orjson.dumps(body)
        sent: list[dict[str, Any]] = []
        listed = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        if raw:
            listed.append((b"content-type", b"application/json"))
            listed.append((b"content-length", str(len(raw)).encode()))
        scope = http_scope(method, path, listed)
        scope["query_string"] = query.encode()

        async def receive() -> dict[str, Any]:
            await Turn()
            if sent_after is not None:
                await sent_after
            return {"type": "http.request", "body": raw, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await self.app(scope, receive, send)
        payload = b"".join(m.get("body", b"") for m in sent[1:])
        found = dict(sent[0]["headers"])
        self.request_ids.append(found.get(b"x-request-id", b"").decode())
        return sent[0]["status"], list(sent[0]["headers"]), payload

    def together(self, *requests: tuple[str, str, dict[str, str], Any]) -> list[tuple[int, Any]]:
        """Every request arrives in the same loop tick; their answers in order."""

        async def run() -> list[tuple[int, Any]]:
            answers = list(await asyncio.gather(*(self.call(*r) for r in requests)))
            if self.deps.shared is not None:
                await self.deps.shared.settled()  # the lease back, for the next worker's turn
            return answers

        return self.loop.run_until_complete(run())

    def listening(self) -> Worker:
        """This worker once its handoff listener subscribed, before any request. Its
        confirmation sends whatever the worker holds then (`_flush_told`): a test that
        counts the journal entries still waiting in the worker must not meet it half-way
        (a loaded CI run confirmed it during a test's third read, which then found 3 of 5)."""
        handoff = self.store.handoff
        assert self.loop.run_until_complete(handoff.listened(self.loop.time() + 30.0))
        return self

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
        elif self.deps.sim.store is not None:
            self.deps.sim.store.close()
        self.loop.close()


def influencers(worker: Worker) -> list[str]:
    [(status, listed)] = worker.together(("GET", CREATE, auth(FULL), None))
    assert status == 200
    return [i["influencerId"] for i in listed["items"]]


NEVER_S = 3600.0  # a pipe timeout no test reaches: its waits end when the test says


def timed_out(worker: Worker) -> None:
    """The pipe's timeout passes now, at the test's word: the commands waiting for Redis fail
    as they do once they waited `timeout`. (A real 1 s timeout raced the requests a test
    makes meanwhile: a machine that ran something else for a second timed the create out
    before the test had seen it wait.)"""
    pipe = worker.store.pipe
    assert pipe is not None
    if pipe.watch is not None:
        pipe.watch.cancel()
    pipe.timeout = 0.0
    pipe._watch()
    pipe.timeout = NEVER_S


def serves_off_the_loop(url: str, on_the_loop: list[bytes]) -> None:
    """A worker on `url` answers a create, a read and the journal with no synchronous round
    trip on its event loop (`on_the_loop`, tests/redis/conftest.py): each would hold every
    other request of the worker."""
    worker = Worker(url)
    try:
        on_the_loop.clear()  # (opening it ran before any loop)
        answers = worker.together(
            ("POST", CREATE, auth(FULL), {}),
            ("GET", CREATE, auth(FULL), None),
            ("GET", "/_mock/requests", {}, None),
        )
        assert [status for status, _ in answers] == [202, 200, 200], answers
        assert on_the_loop == [], [c.split(b"\r\n")[2:7] for c in on_the_loop]
    finally:
        worker.close()
