"""Mock time: virtual moves only when told; wall follows a speed factor; never backwards."""

from __future__ import annotations

import pytest

from mockserver.core.clock import Clock, ClockError, format_ms, parse_timestamp


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
