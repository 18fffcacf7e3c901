"""Serving helpers for the conformance tests: the mock (or a broken wrapper) on 127.0.0.1.

The socket is bound and listening before the server thread starts, so connections queue
instead of failing: no sleep, no readiness polling.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from mockserver.settings import Settings, make_app


def mock_app(seed: int = 0) -> Any:
    return make_app(Settings(clock="virtual", seed=seed))


@contextmanager
def serve(app: Any) -> Iterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
