"""The hot path's memos (issue 14) stay small whatever paths a client sends: a path, a
project id or a job id is only remembered when it could be a real one."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
from typing import Any

from support import FULL, http_scope

from layers_mock_server.http.app import build_app
from layers_mock_server.settings import Settings, make_deps

LONG = 60 * 1024  # a path segment of 60 KiB: servers take URLs this long (granian, uvicorn)


def test_long_unknown_ids_leave_no_memory_behind() -> None:
    """250 requests whose ids are 60 KiB each (404s), straight into the ASGI app (a client
    library keeps URLs of its own): before, the dispatch's remembered paths (up to 1,024)
    and the canonical ids kept ~240 KiB per path, 59 MB here; now only the journal's bounded
    bytes (4 MiB) stay."""
    app = build_app(make_deps(Settings(clock="virtual")))
    statuses: list[int] = []

    async def get(path: str) -> None:
        scope = http_scope("GET", path, [(b"authorization", f"Bearer {FULL}".encode())])

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        await app(scope, receive, send)

    async def run() -> int:
        await get("/v1/whoami")  # whatever is built on first use is built
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for n in range(250):
            await get(f"/v1/projects/{n:05d}{'a' * LONG}/influencers")
            await get(f"/v1/jobs/{n:05d}{'j' * LONG}")
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        return grown

    grown = asyncio.run(run())
    assert statuses == [200] + [404] * 500
    assert grown < 8 * 1024 * 1024, f"{grown / 2**20:.1f} MiB kept"
