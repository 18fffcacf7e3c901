"""Retry-After and X-RateLimit-Reset speak the client's time (CONTRACT, Changes)."""

from __future__ import annotations

from layers_mock_server.core.clock import Clock
from layers_mock_server.core.ratelimit import RateLimiter, client_seconds


def test_a_wall_clock_at_speed_60_asks_for_real_seconds() -> None:
    clock = Clock("wall", speed=60, ticker=lambda: 0)
    limiter = RateLimiter()
    now = clock.now_ms() + 32_000  # 28 mock seconds before the window resets
    for _ in range(20):
        limiter.take("key", "standard", "long-running", now, clock.client_speed)
    refused = limiter.take("key", "standard", "long-running", now, clock.client_speed)
    assert refused.retry_after_s == 1  # 28 mock seconds are 0.47 real seconds: rounded up
    assert refused.reset_s == 1


def test_a_virtual_clock_asks_for_mock_seconds_whatever_its_speed() -> None:
    clock = Clock("virtual", speed=60)
    assert clock.client_speed == 1.0
    limiter = RateLimiter()
    now = clock.now_ms() + 32_000
    quota = limiter.take("key", "standard", "read-light", now, clock.client_speed)
    assert quota.reset_s == 28


def test_client_seconds_round_up_and_are_never_zero() -> None:
    assert client_seconds(0, 1.0) == 1
    assert client_seconds(1, 1.0) == 1
    assert client_seconds(60_000, 1.0) == 60
    assert client_seconds(60_000, 60.0) == 1
    assert client_seconds(60_000, 7.0) == 9  # 8.57 real seconds
    assert client_seconds(60_000, 0.5) == 120  # a slowed-down clock asks for more
