"""The shared store's gate (http/shared.py) treats a request as the path it routes to: a raw
path with an encoded slash is not the path the server decoded it to, for the gate's own choices
(which requests need no round trip, which group, mend or export) as for the app's."""

from __future__ import annotations

from typing import Any

from grouped import Worker
from redisd import RedisServer
from support import http_scope


def answer(worker: Worker, path: str, raw: bytes) -> tuple[int, list[str]]:
    """GET `path` as a server hands it over (decoded), sent as `raw`: the status, and the
    round trips the worker made for it."""
    scope = http_scope("GET", path, [])
    scope["raw_path"] = raw
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def run() -> None:
        await worker.app(scope, receive, send)
        await worker.deps.shared.settled()

    before = len(worker.trips)
    worker.loop.run_until_complete(run())
    return sent[0]["status"], worker.trips[before:]


def test_an_encoded_slash_is_no_health_probe_to_the_gate(redis_server: RedisServer) -> None:
    worker = Worker(redis_server.sandbox())
    try:
        assert answer(worker, "/_mock/health", b"/_mock/health") == (200, [])
        for raw in (b"/_mock%2Fhealth", b"/_mock%2fhealth", b"/%5Fmock%2Fhealth"):
            # routed, it names no route: a read like any other (its catch-up), then a 404
            assert answer(worker, "/_mock/health", raw) == (404, ["changes"]), raw
        # a percent sign elsewhere routes where it was decoded to
        assert answer(worker, "/_mock/health", b"/%5Fmock/health") == (200, [])
    finally:
        worker.close()
