"""Request ids across a sandbox lost from Redis (FLUSHALL, or a Redis restored from an older
copy) under running workers: the counter of request numbers went back with it."""

from __future__ import annotations

import pytest
from grouped import Worker
from redisd import started
from support import FULL, auth

from layers_mock_server.core import lifecycle, requestids

WHOAMI = ("GET", "/v1/whoami", auth(FULL), None)


def test_request_ids_stay_unique_when_redis_loses_the_sandbox_under_running_workers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each worker hands out numbers from blocks Redis grants it (HINCRBY of a counter kept
    beside the state). FLUSHALL dropped the counter, so the blocks granted after it were the
    ones granted before: a worker that had used few numbers went on with numbers the other
    had answered with (474 repeated X-Request-Ids in 4,500 requests on `serve --workers 2`
    and a second serve). Blocks of 4, so that a few requests use several."""
    monkeypatch.setattr(requestids, "BLOCK", 4)
    monkeypatch.setattr(lifecycle, "BLOCK", 4)
    with started() as server:
        url = server.sandbox()
        idle = Worker(url)  # the first: its first block made the count
        busy = Worker(url)
        late: Worker | None = None
        try:
            for _ in range(24):  # the busy worker goes through six blocks
                assert busy.together(WHOAMI)[0][0] == 200
            assert idle.together(WHOAMI)[0][0] == 200
            busy.store._client.flushall()
            for _ in range(6):
                assert idle.together(WHOAMI)[0][0] == 200
            for _ in range(3):
                assert busy.together(WHOAMI)[0][0] == 200
            # a worker started after: the counter came back past every block granted before
            late = Worker(url)
            for _ in range(8):
                assert late.together(WHOAMI)[0][0] == 200
            given = busy.request_ids + idle.request_ids + late.request_ids
            assert len(given) == 42 and all(given)
            assert sorted(r for r in given if given.count(r) > 1) == []
        finally:
            for worker in (busy, idle, late):
                if worker is not None:
                    worker.close()
