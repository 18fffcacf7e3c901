"""The session's redis-server (tests/redisd.py), for the tests here."""

import asyncio
import contextlib
import time
import types
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from grouped import Worker
from redisd import RedisServer, redis_server  # noqa: F401 - a fixture

from layers_mock_server.http import shared
from layers_mock_server.stores import redis_handoff


@pytest.fixture(autouse=True)
def unfollowed(monkeypatch: pytest.MonkeyPatch) -> None:
    """An idle worker's periodic catch-up (http/shared.py `_follow`) would add round trips
    at moments the tests here do not choose; test_grouped.py tests it on its own."""
    monkeypatch.setattr(shared, "FOLLOW_S", 3600.0)
    # A kept lease goes back on the loop's next turn, not 2 ms of real time later: a test
    # waits for it (`Worker.together` ends with `settled()`) without waiting on a clock.
    monkeypatch.setattr(shared, "LINGER_S", 0.0)
    monkeypatch.setattr(shared, "IDLE_S", 0.0)  # (the same, when it would hear a worker ask)


@pytest.fixture
def sandbox(redis_server: RedisServer) -> str:  # noqa: F811
    """A fresh sandbox on the session's redis-server (a test file may define its own)."""
    return redis_server.sandbox()


@pytest.fixture
def two(redis_server: RedisServer) -> Iterator[tuple[Worker, Worker]]:  # noqa: F811
    """Two workers (tests/grouped.py) on one fresh sandbox."""
    url = redis_server.sandbox()
    first, second = Worker(url), Worker(url)
    yield first, second
    first.close()
    second.close()


@pytest.fixture
def patient(monkeypatch: pytest.MonkeyPatch) -> None:
    """No time cap on a group or a chain: a loaded machine cannot split what a test expects."""
    monkeypatch.setattr(shared, "GROUP_S", 3600.0)
    monkeypatch.setattr(shared, "CHAIN_S", 3600.0)


@pytest.fixture
def unhurried(monkeypatch: pytest.MonkeyPatch) -> None:
    """The lease protocol's windows on Redis's clock at ten minutes: a refused worker's place
    in line (WANTS_MS) and what is left of it once the lease is given back (GRACE_MS, an
    argument of the scripts that release). A test driving the protocol step by step then
    sees the same on any machine: none of its steps races a 50 ms grace (flake16)."""
    monkeypatch.setattr(redis_handoff, "WANTS_MS", 600_000)
    monkeypatch.setattr(redis_handoff, "GRACE_MS", 600_000)


@pytest.fixture
def on_the_loop(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The commands redis-py sends synchronously from a thread whose event loop runs (a
    serving worker's): each a round trip that every request of the worker waits for."""
    sent: list[bytes] = []
    real = redis.connection.AbstractConnection.send_packed_command

    def watched(self: Any, command: Any, check_health: bool = True) -> None:
        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop()
            packed = command if isinstance(command, bytes) else b"".join(command)
            sent.append(packed[:80])
        real(self, command, check_health)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", watched)
    return sent


@pytest.fixture
def no_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    """No try comes from a timer: a waiter tries again only when it hears the release."""
    monkeypatch.setattr(redis_handoff, "WAKE_S", 3600.0)
    monkeypatch.setattr(redis_handoff, "DEAF_S", 3600.0)


@pytest.fixture
def paused(monkeypatch: pytest.MonkeyPatch) -> list[Callable[[], None]]:
    """The steps to take, one each time redis-py's cluster client pauses before trying a
    TRYAGAIN again (`RedisCluster._execute_command` sleeps 50 ms from the ninth try on):
    the reshard moves on at that exact point of the request, not after a time."""
    import redis.cluster

    steps: list[Callable[[], None]] = []

    def pause(_: float) -> None:
        if steps:
            steps.pop(0)()

    clock = types.SimpleNamespace(sleep=pause, monotonic=time.monotonic, time=time.time)
    monkeypatch.setattr(redis.cluster, "time", clock)
    return steps
