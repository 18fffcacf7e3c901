"""Shared test helpers: the mock in-process, strict, on a virtual clock and a fixed seed.

Strict mode is on for every test, so any response the spec does not describe fails the test
that provoked it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import httpx
from starlette.testclient import TestClient

from layers_mock_server import serving
from layers_mock_server.core.clock import Clock
from layers_mock_server.core.fixtures import load_fixtures
from layers_mock_server.core.simulator import Simulator
from layers_mock_server.deps import Deps
from layers_mock_server.http.app import build_app

FULL = "lp_test_acmefull_Zx81Qm4TnR7vKp2W"
STANDARD = "lp_test_acmestd_Bq5Hs8Ty1Uw3Xz6C"
NO_INFLUENCERS = "lp_test_acmenoinf_H3kV9sLq2MwP8dYt"
NO_JOBS = "lp_test_acmenojobs_R6tY2uI8oP4aS1dF"
KILLED = "lp_live_acmekilled_G7hJ3kL9zX5cV2bN"
GLOBEX = "lp_test_globexfull_M4nB7vC1xZ9lK6jH"
# A parent organization and its child (sub-organization), both with lp_live_ keys (they spend).
NORTH_ADMIN = "lp_live_northadmin_T5yU8iO2pA4sD7fG"  # org:admin and the influencer scopes
NORTH_PLAIN = "lp_live_northplain_H2jK5lZ8xC1vB4nM"  # the same scopes without org:admin
BAKERY = "lp_live_bakery_Q9wE3rT6yU1iO4pA"  # the child's own key, 20 credits in its wallet
NORTH_ORG = "org_9b8a7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
CHILD_ORG = "org_c4d5e6f7-0a1b-4c2d-9e3f-5a6b7c8d9e0f"
ACME_ORG = "org_3f6c2a8e-1b7d-4c59-9e0a-5d4b8c7f1a23"
GLOBEX_ORG = "org_8d1e5f3a-6c2b-4e7d-a9f0-1b3c5d7e9f02"
NORTH_PROJECT = "prj_1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f"
CHILD_PROJECT = "prj_8e9f0a1b-2c3d-4e5f-9a6b-7c8d9e0f1a2b"
PROJECT = "prj_254a4ce1-f4ca-42b1-9e36-17ca45ef3d39"  # Acme, targetGender female
GLOBEX_PROJECT = "prj_7b3e9d21-4a5c-4f6e-8d9b-0c1a2e3f4b5d"  # Globex, targetGender all
SEED = 7
# How long a test waits for a real server's answer (one served on a socket, in a thread or a
# process) before calling it stuck: httpx's default 5 s is a slow answer, not a hang, on a loaded
# 2-core CI machine. The browser tests' page fixture waits as long (tests/ui/conftest.py).
HTTP_TIMEOUT_S = 15.0
# A partner's pytest session (pytester's, in a process of its own) with the plugins a partner's
# `layers-mock[pytest]` install has: not the dev environment's Schemathesis and Hypothesis
# plugins, whose imports were 1.5 s of each session's 2.
PARTNER_PYTEST = ("-p", "no:cacheprovider", "-p", "no:schemathesis", "-p", "no:hypothesispytest")


def auth(key: str = FULL, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", **extra}


class Mock:
    """The in-process mock plus the handles a test steers it with."""

    def __init__(self, deps: Deps, client: TestClient) -> None:
        self.deps = deps
        self.client = client

    def advance(self, seconds: float) -> None:
        response = self.client.post("/_mock/clock/advance", json={"seconds": seconds})
        assert response.status_code == 200, response.text

    def create(self, key: str = FULL, project: str = PROJECT, **kwargs: Any) -> httpx.Response:
        headers = auth(key, **kwargs.pop("headers", {}))
        return self.client.post(f"/v1/projects/{project}/influencers", headers=headers, **kwargs)

    def job(self, job_id: str, key: str = FULL, **headers: str) -> httpx.Response:
        return self.client.get(f"/v1/jobs/{job_id}", headers=auth(key, **headers))

    def influencer(self, influencer_id: str, key: str = FULL) -> httpx.Response:
        return self.client.get(f"/v1/influencers/{influencer_id}", headers=auth(key))


def make_mock(seed: int = SEED, progression: str = "time", fixtures: Any = None) -> Mock:
    sim = Simulator(fixtures or load_fixtures(), Clock("virtual"), seed)
    deps = Deps(sim=sim, strict=True, progression=progression)  # type: ignore[arg-type]
    return Mock(deps, TestClient(build_app(deps)))


@contextlib.contextmanager
def running_server(app: Any) -> Iterator[str]:
    """Serve `app` on an ephemeral 127.0.0.1 port in a thread, on the engine `serve` uses.

    The socket is bound and listening before the thread starts, so the first request queues
    in the backlog instead of racing the start-up: no readiness polling, no sleeping.
    """
    with serving.running(app) as (host, port):
        yield f"http://{host}:{port}"


def bulk(app: Any, requests: list[tuple[str, str, dict[str, str], Any]]) -> list[httpx.Response]:
    """Many requests through the app in one event loop, one after the other: TestClient hands
    each request to another thread, which costs more than the mock itself when a test needs
    hundreds of requests to build its state."""
    import asyncio

    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            return [
                await client.request(method, path, headers=headers, json=body)
                for method, path, headers, body in requests
            ]

    return asyncio.run(run())


def http_scope(method: str, path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    """The ASGI scope of one HTTP request, for tests that drive the app without a client
    (to control when the body arrives, or to send what no client library would)."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 80),
    }
