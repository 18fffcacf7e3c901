"""Mock time: virtual moves only when told; wall follows a speed factor; never backwards."""

from __future__ import annotations

import pytest

from layers_mock_server.core.clock import Clock, ClockError, format_ms, parse_timestamp


def test_virtual_clock_moves_only_when_told() -> None:
    clock = Clock("virtual")
    start = clock.now_ms()
    assert clock.now_ms() == start
    assert clock.advance(1.5) == start + 1500


def test_wall_clock_speed_sixty_plays_a_minute_per_second() -> None:
    ticks = [0]
    clock = Clock("wall", speed=60, ticker=lambda: ticks[0])
    start = clock.now_ms()
    ticks[0] = 1_000_000_000  # one host second
    assert clock.now_ms() - start == 60_000


def test_clock_refuses_to_go_backwards() -> None:
    clock = Clock("virtual")
    with pytest.raises(ClockError):
        clock.advance(-1)
    clock.advance(10)
    with pytest.raises(ClockError):
        clock.set(clock.now_ms() - 1)
    clock.reset()
    assert clock.now_ms() == clock.start_ms


def test_timestamps_are_millisecond_utc_with_z() -> None:
    assert format_ms(1_767_225_602_005) == "2026-01-01T00:00:02.005Z"
    assert parse_timestamp("2026-01-01T00:00:02.005Z") == 1_767_225_602_005


def test_the_clock_stops_at_the_last_instant_a_timestamp_can_name() -> None:
    """Issue 9, D7: 1e300 s (or 1 s past 9999-12-31T23:59:59.999Z) broke every later read."""
    from layers_mock_server.core.clock import MAX_MS

    clock = Clock("virtual")
    start = clock.now_ms()
    for seconds in (1e300, float("inf"), float("nan"), (MAX_MS - start) / 1000 + 0.001):
        with pytest.raises(ClockError):
            clock.advance(seconds)
    assert clock.now_ms() == start  # a refused move changes nothing
    assert clock.set(MAX_MS) == MAX_MS
    with pytest.raises(ClockError):
        clock.advance(0.001)
    assert format_ms(clock.now_ms()) == "9999-12-31T23:59:59.999Z"
    ticks = [0]
    wall = Clock("wall", speed=1_000_000, ticker=lambda: ticks[0])
    ticks[0] = 10**18  # eight host years at a million times speed: a wall clock runs out too
    assert wall.now_ms() == MAX_MS
    for speed in (0, -1, float("inf"), float("nan"), 1e7):
        with pytest.raises(ClockError):
            Clock("wall", speed=speed)
