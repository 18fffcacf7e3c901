"""A read's rate window, counted in Redis, lives as long as the mock minute it counts.

Each window's counter expired 180 s of real time after its first read, whatever the clock. On
a virtual clock, or an organization's own clock (which stands still until it is moved), a
`standard` key whose 120 reads were spent got them all back 3 minutes later without any mock
time passing (seen on a 2-worker sandbox after 185 s); at `--speed 0.1` a mock minute lasts
10 real minutes, and its window refilled after 3.
"""

from __future__ import annotations

import pytest
import redis
from grouped import Worker
from redisd import RedisServer
from support import STANDARD, auth

from layers_mock_server.http.shared import STILL_WINDOW_MS, read_window_ms

ACME_ORG = "org_3f6c2a8e-1b7d-4c59-9e0a-5d4b8c7f1a23"


def _window_ttls(redis_server: RedisServer, url: str) -> list[int]:
    client = redis.Redis.from_url(redis_server.url)
    sandbox = url.rsplit("sandbox=", 1)[1]
    keys = client.keys(f"{{lm:{sandbox}}}:rates:*:read-light:*")
    assert keys
    return [int(client.pttl(key)) for key in keys]


@pytest.mark.parametrize("own_clock", [False, True], ids=["server clock", "its own clock"])
def test_a_read_window_of_a_clock_that_stands_still_is_kept_a_day(
    redis_server: RedisServer, own_clock: bool
) -> None:
    url = redis_server.sandbox()
    worker = Worker(url)  # a virtual server clock
    try:
        if own_clock:
            [(moved, _)] = worker.together(
                ("POST", f"/_mock/organizations/{ACME_ORG}/clock/advance", {}, {"seconds": 1})
            )
            assert moved == 200
        [(status, _)] = worker.together(("GET", "/v1/whoami", auth(STANDARD), None))
        assert status == 200
        ttls = _window_ttls(redis_server, url)
    finally:
        worker.close()
    assert all(STILL_WINDOW_MS - 60_000 < ttl <= STILL_WINDOW_MS for ttl in ttls), ttls


@pytest.mark.parametrize(
    ("mode", "speed", "detached", "kept_ms"),
    [
        ("virtual", 1.0, False, STILL_WINDOW_MS),
        ("wall", 1.0, True, STILL_WINDOW_MS),  # an organization's own clock stands still
        ("wall", 1.0, False, 180_000),  # three real minutes for a minute of mock time
        ("wall", 60.0, False, 180_000),  # never less
        ("wall", 0.1, False, 1_800_000),  # a mock minute lasts ten real ones
        ("wall", 1e-6, False, STILL_WINDOW_MS),  # never more than a clock that stands still
    ],
)
def test_a_read_window_lasts_three_of_its_minutes_in_real_time(
    mode: str, speed: float, detached: bool, kept_ms: int
) -> None:
    assert read_window_ms(mode, speed, detached) == kept_ms
