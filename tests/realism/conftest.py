"""A real HTTP server (on the engine `serve` uses) in a thread, for what an in-process client
cannot show: a request that waits without blocking the others, and a connection that is really
closed."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from support import SEED, running_server

from layers_mock_server.core.clock import Clock
from layers_mock_server.core.fixtures import load_fixtures
from layers_mock_server.core.simulator import Simulator
from layers_mock_server.deps import Deps
from layers_mock_server.http.app import build_app


@dataclass
class LiveServer:
    url: str
    deps: Deps
    # Set when a request carrying a `latency` preference has reached the app.
    slow_arrived: threading.Event = field(default_factory=threading.Event)


class _ArrivalSignal:
    """ASGI wrapper that tells the test when a slow request is inside the server."""

    def __init__(self, app: Any, live: LiveServer) -> None:
        self.app = app
        self.live = live

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and any(
            k == b"prefer" and b"latency" in v for k, v in scope["headers"]
        ):
            self.live.slow_arrived.set()
        await self.app(scope, receive, send)


@pytest.fixture
def live() -> Iterator[LiveServer]:
    deps = Deps(sim=Simulator(load_fixtures(), Clock("virtual"), SEED), strict=True)
    server_live = LiveServer("", deps)
    with running_server(_ArrivalSignal(build_app(deps), server_live)) as base:
        server_live.url = base
        yield server_live
