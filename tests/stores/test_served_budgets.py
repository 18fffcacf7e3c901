"""Rate-limit budgets as a client sees them, the same on every store: a server in memory, on a
SQLite file, and on Redis (one worker, or two taking turns). Memory is the reference: a reset
gives back every window of the keys it resets, and only theirs.

On Redis the reads are counted in Redis itself (http/shared.py), not in the committed state,
so a reset has to drop those counters too: before it did not, and as a reset returns the clock
to its start the minute numbers repeat, so a `standard` key spent before a reset was still 429
(remaining 0) after it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from grouped import Worker
from redisd import RedisServer
from support import BAKERY, CHILD_ORG, FULL, PROJECT, STANDARD, auth

from layers_mock_server.http import shared

ACME_ORG = "org_3f6c2a8e-1b7d-4c59-9e0a-5d4b8c7f1a23"
READS = 120  # a `standard` key's read-light budget a minute (core/ratelimit.py)
CREATES = 20  # ... and its long-running one
Answer = tuple[int, dict[str, str], Any]


class Servers:
    """One sandbox and the workers serving it, each request on the next worker in turn."""

    def __init__(self, workers: list[Worker]) -> None:
        self.workers = workers
        self.turn = 0

    def __call__(self, method: str, path: str, key: str | None = None, body: Any = None) -> Answer:
        worker = self.workers[self.turn % len(self.workers)]
        self.turn += 1

        async def run() -> tuple[int, list[tuple[bytes, bytes]], bytes]:
            answer = await worker.exchange(method, path, auth(key) if key else {}, body)
            if worker.deps.shared is not None:
                await worker.deps.shared.settled()
            return answer

        status, headers, payload = worker.loop.run_until_complete(run())
        found = {k.decode(): v.decode() for k, v in headers}
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
    # as in tests/redis: no idle worker's catch-up, a kept lease back on the loop's next turn
    monkeypatch.setattr(shared, "FOLLOW_S", 3600.0)
    monkeypatch.setattr(shared, "LINGER_S", 0.0)
    state, count = STORES[request.param](request, tmp_path)
    workers = [Worker(state) for _ in range(count)]
    yield Servers(workers)
    for worker in workers:
        worker.close()
    asyncio.set_event_loop(None)


def test_a_global_reset_gives_back_a_spent_read_budget(served: Servers) -> None:
    served.spend_reads(STANDARD)
    status, _, _ = served("POST", "/_mock/reset")
    assert status == 200
    assert served.remaining_reads(STANDARD) == (200, str(READS - 1))


def test_an_organizations_reset_gives_back_its_read_budgets_and_no_others(
    served: Servers,
) -> None:
    served.spend_reads(STANDARD)
    served.spend_reads(BAKERY)
    status, _, _ = served("POST", "/_mock/reset", STANDARD, {"organizationId": ACME_ORG})
    assert status == 200
    assert served.remaining_reads(STANDARD) == (200, str(READS - 1))
    assert served.remaining_reads(BAKERY) == (429, "0")  # another organization's: still spent
    status, _, _ = served("POST", "/_mock/reset", BAKERY, {"organizationId": CHILD_ORG})
    assert status == 200
    assert served.remaining_reads(BAKERY) == (200, str(READS - 1))


def test_a_reset_gives_back_an_organizations_own_clock_budget(served: Servers) -> None:
    """An organization on a clock of its own, ten minutes ahead, spends its reads there; its
    reset returns it to the server clock (minute 0): its budget is whole again, as it is after
    a global reset that returns every clock to its start."""
    moved = served("POST", f"/_mock/organizations/{ACME_ORG}/clock/advance", None, {"seconds": 600})
    assert moved[0] == 200
    served.spend_reads(STANDARD)
    status, _, _ = served("POST", "/_mock/reset", None, {"organizationId": ACME_ORG})
    assert status == 200
    assert served.remaining_reads(STANDARD) == (200, str(READS - 1))
    moved = served("POST", "/_mock/clock/advance", None, {"seconds": 600})
    assert moved[0] == 200  # the server clock at the minute spent on the organization's own
    assert served.remaining_reads(STANDARD) == (200, str(READS - 1))


def test_a_read_budget_follows_the_clock(served: Servers) -> None:
    """Spent, it stays spent while the clock stands still or moves within the minute, and is
    whole in the next minute."""
    served.spend_reads(STANDARD)
    assert served("POST", "/_mock/clock/advance", None, {"seconds": 59})[0] == 200
    assert served.remaining_reads(STANDARD) == (429, "0")
    assert served("POST", "/_mock/clock/advance", None, {"seconds": 1})[0] == 200
    assert served.remaining_reads(STANDARD) == (200, str(READS - 1))


@pytest.mark.parametrize("organization", [False, True], ids=["global", "organization"])
def test_a_reset_gives_back_a_spent_write_budget(served: Servers, organization: bool) -> None:
    body = {"gender": "female"}
    path = f"/v1/projects/{PROJECT}/influencers"
    for n in range(CREATES):
        status, headers, _ = served("POST", path, STANDARD, body)
        assert (status, headers["x-ratelimit-remaining"]) == (202, str(CREATES - n - 1))
    assert served("POST", path, STANDARD, body)[0] == 429
    reset = {"organizationId": ACME_ORG} if organization else None
    assert served("POST", "/_mock/reset", FULL if organization else None, reset)[0] == 200
    status, headers, _ = served("POST", path, STANDARD, body)
    assert (status, headers["x-ratelimit-remaining"]) == (202, str(CREATES - 1))


def test_an_import_brings_back_the_read_budgets_it_exported(served: Servers) -> None:
    """An export holds each key's windows; importing it after a reset puts them back, with
    the clock: the spent key is spent again, in the same minute."""
    served.spend_reads(STANDARD)
    status, _, exported = served("GET", "/_mock/state")
    assert status == 200
    assert served("POST", "/_mock/reset")[0] == 200
    assert served.remaining_reads(STANDARD) == (200, str(READS - 1))
    status, _, _ = served("PUT", "/_mock/state", None, exported)
    assert status == 200
    assert served.remaining_reads(STANDARD) == (429, "0")
