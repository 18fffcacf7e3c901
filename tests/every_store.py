"""One sandbox served on each store, driven in process (tests/grouped.py), for the tests that
hold every store to the same answers a client sees: a server in memory, on a SQLite file, and
on Redis (one worker, or two taking turns). Memory is the reference."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from grouped import Worker
from redisd import RedisServer
from support import auth

from layers_mock_server.http import shared

OPERATOR = "operator-secret-for-tenants"  # the admin token of `tenanted`
READS = 120  # a `standard` key's read-light budget a minute (core/ratelimit.py)
Answer = tuple[int, dict[str, str], Any]


class Servers:
    """One sandbox and the workers serving it, each request on the next worker in turn."""

    def __init__(self, workers: list[Worker], operator: str | None = None) -> None:
        self.workers = workers
        self.turn = 0
        self.operator = operator  # the admin token: a request with no key is the operator's

    def __call__(
        self,
        method: str,
        path: str,
        key: str | None = None,
        body: Any = None,
        query: str = "",
        headers: dict[str, str] | None = None,
        text: bool = False,
    ) -> Answer:
        """`headers`: more of the request's (X-Layers-Organization, Idempotency-Key, ...);
        `text`: the body as text (a dashboard page), not JSON."""
        worker = self.workers[self.turn % len(self.workers)]
        self.turn += 1

        async def run() -> tuple[int, list[tuple[bytes, bytes]], bytes]:
            token = key or self.operator
            sent = {**(auth(token) if token else {}), **(headers or {})}
            answer = await worker.exchange(method, path, sent, body, query=query)
            if worker.deps.shared is not None:
                await worker.deps.shared.settled()
            return answer

        status, headers, payload = worker.loop.run_until_complete(run())
        # the worker's journal entries reach Redis now, as its FLUSH_S timer sends them on a
        # running server (its loop runs only for a request here): another worker reads them
        flush = getattr(worker.deps.journal, "flush", None)
        if flush is not None:
            flush()
        found = {k.decode(): v.decode() for k, v in headers}
        if text:
            return status, found, payload.decode()
        return status, found, orjson.loads(payload) if payload else None

    def spend_reads(self, key: str) -> None:
        """Every read of the key's minute, and the one after them refused."""
        for n in range(READS):
            status, headers, _ = self("GET", "/v1/whoami", key)
            assert status == 200, (n, status)
            assert headers["x-ratelimit-remaining"] == str(READS - n - 1)
        status, headers, _ = self("GET", "/v1/whoami", key)
        assert (status, headers["x-ratelimit-remaining"]) == (429, "0")

    def remaining_reads(self, key: str) -> tuple[int, str]:
        status, headers, _ = self("GET", "/v1/whoami", key)
        return status, headers["x-ratelimit-remaining"]


STORES: dict[str, Callable[[pytest.FixtureRequest, Path], tuple[str, int]]] = {
    "memory": lambda request, tmp_path: ("memory", 1),
    "sqlite": lambda request, tmp_path: (f"sqlite:{tmp_path / 'state.sqlite'}", 1),
    "redis": lambda request, tmp_path: (_sandbox(request), 1),
    "redis, two workers": lambda request, tmp_path: (_sandbox(request), 2),
}


def _sandbox(request: pytest.FixtureRequest) -> str:
    server: RedisServer = request.getfixturevalue("redis_server")
    return server.sandbox()


@pytest.fixture(params=list(STORES))
def served(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Servers]:
    yield from _served(request, tmp_path, monkeypatch, None)


@pytest.fixture(params=list(STORES))
def tenanted(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Servers]:
    """`served` with an admin token: each organization's own key is a tenant on /_mock/, and
    a request with no key is the operator's (Bearer OPERATOR)."""
    yield from _served(request, tmp_path, monkeypatch, OPERATOR)


@pytest.fixture(params=list(STORES))
def tenanted_bodies(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Servers]:
    """`tenanted` whose journal keeps bodies (`serve --journal-bodies`)."""
    yield from _served(request, tmp_path, monkeypatch, OPERATOR, bodies=True)


def _served(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    operator: str | None,
    bodies: bool = False,
) -> Iterator[Servers]:
    # as in tests/redis: no idle worker's catch-up, a kept lease back on the loop's next turn
    monkeypatch.setattr(shared, "FOLLOW_S", 3600.0)
    monkeypatch.setattr(shared, "LINGER_S", 0.0)
    monkeypatch.setattr(shared, "IDLE_S", 0.0)
    state, count = STORES[request.param](request, tmp_path)
    workers = [Worker(state, admin_token=operator, bodies=bodies) for _ in range(count)]
    yield Servers(workers, operator)
    for worker in workers:
        worker.close()
    asyncio.set_event_loop(None)
