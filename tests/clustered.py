"""Workers on a sandbox of the session's Redis Cluster (tests/clusterd.py), for the tests of
tests/redis/test_cluster.py and test_reshard.py (and, on one Redis, test_workers.py): servers in
threads of this process, and what a test reads of them and of the shards."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import httpx
from clusterd import RedisClusterServers, slot_of
from support import FULL, HTTP_TIMEOUT_S, PROJECT, SEED, auth

from layers_mock import connect
from layers_mock_server import serving
from layers_mock_server.http.app import build_app
from layers_mock_server.settings import Settings, make_deps

CREATE = f"/v1/projects/{PROJECT}/influencers"


@contextlib.contextmanager
def workers(url: str, count: int = 2, **options: Any) -> Iterator[list[str]]:
    """`count` servers (app, store connection, loop, thread) on one sandbox: what the
    processes of `--workers N`, or hosts, are to each other. Yields their base URLs.
    `options` are Settings' own (a wall clock, ...)."""
    settings = Settings(
        **{"state": url, "clock": "virtual", "seed": SEED, "strict": True, **options}
    )
    with contextlib.ExitStack() as stack:
        bases = []
        for _ in range(count):
            host, port = stack.enter_context(serving.running(build_app(make_deps(settings))))
            bases.append(f"http://{host}:{port}")
        yield bases


def counted_across(url: str, tries: int = 5) -> None:
    """A read answered by one worker is counted by the journal read asked of another just
    after (the flush barrier, stores/redis_journal.py): the test holds each worker's entries
    until its next round trip (`FLUSH_S`), so without the barrier every try misses it."""
    token = "operator-secret"
    with (
        workers(url, admin_token=token) as (a, b),
        httpx.Client(base_url=a, headers=auth(FULL), timeout=30) as on_a,
        connect(b, key=FULL) as tenant,
    ):
        for _ in range(tries):
            tenant.reset()  # on B
            assert on_a.get("/v1/whoami").status_code == 200  # answered by A
            tenant.assert_called("GET", "/v1/whoami", times=1)  # asked of B


def burst(bases: list[str], key: str, count: int = 10) -> list[tuple[int, Any]]:
    """`count` concurrent creates with one Idempotency-Key, spread over the workers."""

    async def run() -> list[tuple[int, Any]]:
        headers = auth(FULL, **{"Idempotency-Key": key})
        async with httpx.AsyncClient(timeout=30) as client:
            sent = [
                client.post(bases[n % len(bases)] + CREATE, headers=headers, json={})
                for n in range(count)
            ]
            return [(r.status_code, r.json()) for r in await asyncio.gather(*sent)]

    return asyncio.run(run())


def influencers(base: str) -> list[str]:
    page = httpx.get(
        base + CREATE, headers=auth(FULL), params={"limit": 100}, timeout=HTTP_TIMEOUT_S
    ).json()
    assert page["nextCursor"] is None
    return [item["influencerId"] for item in page["items"]]


def keys_on(cluster: RedisClusterServers, node: int, name: str) -> list[str]:
    with cluster.client(node) as client:
        return sorted(client.execute_command("CLUSTER GETKEYSINSLOT", slot_of(name), 100))
