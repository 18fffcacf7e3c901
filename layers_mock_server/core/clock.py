"""The mock's one clock. Every timestamp the mock emits is read here, never from the wall."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Literal

ClockMode = Literal["wall", "virtual"]

# 2026-01-01T00:00:00.000Z: a fixed start keeps transcripts stable
DEFAULT_START_MS = 1_767_225_600_000
# The instants a timestamp can name: 1970-01-01T00:00:00.000Z to 9999-12-31T23:59:59.999Z. Past
# the last one no timestamp can be written, so every way of moving the clock stops there.
MIN_MS = 0
MAX_MS = 253_402_300_799_999
MAX_SPEED = 1_000_000.0  # a wall clock this fast still takes 70 host hours to reach MAX_MS


class ClockError(ValueError):
    """Raised when a caller asks time to run backwards (jobs would un-finish) or past the last
    instant a timestamp can name (every later read of the clock would fail). `field`: the
    request body's field the move came in (`seconds`, `now`), which the 422 names."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def check_instant(ms: int, what: str = "instant") -> int:
    """`ms` if a timestamp can name it; a ClockError otherwise."""
    if isinstance(ms, bool) or not isinstance(ms, int) or not MIN_MS <= ms <= MAX_MS:
        raise ClockError(f"the {what} must lie between {format_ms(MIN_MS)} and {format_ms(MAX_MS)}")
    return ms


def advanced(now: int, seconds: float) -> int:
    """`now` moved forward by `seconds`; a ClockError for a move that is negative, not finite,
    below a whole millisecond or past MAX_MS. Shared by the server clock and every
    organization's own (orgclocks.py). The number is quoted as it was sent (a float's repr is
    the shortest decimal that reads back as it), not rounded to six digits."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise ClockError("Must be a number.", "seconds")
    if not math.isfinite(seconds):
        raise ClockError("Must be a finite number.", "seconds")
    if seconds < 0:
        raise ClockError(
            "The clock never moves backwards; use reset to return to the start.", "seconds"
        )
    exact = seconds * 1000
    ms = round(exact)
    # A move below the clock's millisecond moved nothing yet answered 200: refused instead.
    # A decimal that names whole milliseconds is rarely exact in binary (1.001 * 1000 is
    # 1000.9999999999999): within a few units of the last place it is taken as written.
    if abs(exact - ms) > max(1e-6, 4 * math.ulp(exact)):
        raise ClockError(
            f"The clock moves in whole milliseconds: {seconds} s is not a multiple of 0.001 s.",
            "seconds",
        )
    if ms > MAX_MS - now:
        raise ClockError(
            f"Cannot advance {seconds} s from {format_ms(now)}: the clock ends at "
            f"{format_ms(MAX_MS)}, {_seconds(MAX_MS - now)} s later.",
            "seconds",
        )
    return now + ms


def _seconds(ms: int) -> str:
    """Milliseconds as exact decimal seconds: 1500 -> 1.5, 2000 -> 2."""
    whole, part = divmod(ms, 1000)
    return f"{whole}.{part:03d}".rstrip("0").rstrip(".")


def set_to(now: int, instant_ms: int) -> int:
    """`instant_ms`, if a clock at `now` may jump there (never backwards, never past MAX_MS)."""
    if not MIN_MS <= instant_ms <= MAX_MS:
        raise ClockError(f"The clock runs from {format_ms(MIN_MS)} to {format_ms(MAX_MS)}.", "now")
    if instant_ms < now:
        raise ClockError(
            f"Cannot set the clock to {format_ms(instant_ms)}: it is already {format_ms(now)}.",
            "now",
        )
    return instant_ms


class Clock:
    """Mock time in integer milliseconds since the Unix epoch.

    `virtual` moves only when told (advance/set). `wall` follows the host's monotonic
    clock multiplied by `speed`, so `--speed 60` plays the 60-second job flow in one second;
    it can be pushed forward too. Integer milliseconds keep arithmetic exact, so two runs
    with the same requests produce the same bytes.
    """

    __slots__ = ("_anchor_ns", "_offset_ms", "_ticker", "mode", "speed", "start_ms")

    def __init__(
        self,
        mode: ClockMode = "virtual",
        *,
        speed: float = 1.0,
        start_ms: int = DEFAULT_START_MS,
        ticker: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        if not (math.isfinite(speed) and 0 < speed <= MAX_SPEED):
            raise ClockError(f"speed must be a number above 0 and at most {MAX_SPEED:g}")
        self.mode: ClockMode = mode
        self.speed = speed
        self.start_ms = check_instant(start_ms, "start")
        self._ticker = ticker  # the host's monotonic clock; tests pass a fake one
        self._offset_ms = 0
        self._anchor_ns = ticker()

    def now_ms(self) -> int:
        if self.mode == "virtual":
            return self.start_ms + self._offset_ms
        elapsed_ns = self._ticker() - self._anchor_ns
        if self.speed == 1.0:
            # The default, read four times per request: integer maths (0.55 -> 0.34 µs), the
            # same instant as the float path for any elapsed time under 2**53 ns (104 days).
            elapsed_ms = elapsed_ns // 1_000_000
        else:
            elapsed_ms = int(elapsed_ns * self.speed / 1_000_000)
        now = self.start_ms + self._offset_ms + elapsed_ms
        return now if now < MAX_MS else MAX_MS  # a wall clock stops at the end of time

    @property
    def client_speed(self) -> float:
        """How many mock seconds pass per second the client waits: `speed` on a wall clock; on a
        virtual clock the client's time is the mock's (a test advances it), so 1."""
        return self.speed if self.mode == "wall" else 1.0

    def advance(self, seconds: float) -> int:
        """Move forward; a move that is negative, not finite or past MAX_MS changes nothing."""
        now = self.now_ms()
        self._offset_ms += advanced(now, seconds) - now
        return self.now_ms()

    def set(self, instant_ms: int) -> int:
        now = self.now_ms()
        self._offset_ms += set_to(now, instant_ms) - now
        return self.now_ms()

    def reset(self) -> None:
        self._offset_ms = 0
        self._anchor_ns = self._ticker()

    def snapshot(self) -> dict[str, int | float | str]:
        """What a state export needs to resume at the same instant."""
        return {
            "mode": self.mode,
            "speed": self.speed,
            "startMs": self.start_ms,
            "nowMs": self.now_ms(),
        }

    def restore(self, now_ms: int) -> None:
        check_instant(now_ms)
        self._anchor_ns = self._ticker()
        self._offset_ms = now_ms - self.start_ms


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECONDS: dict[int, str] = {}  # whole second -> "YYYY-MM-DDTHH:MM:SS", a small bounded memo
_SECONDS_MAX = 4096
_MILLIS = tuple(f".{millis:03d}Z" for millis in range(1000))  # the tail, without formatting


def format_ms(ms: int) -> str:
    """ISO-8601 UTC with millisecond precision and a Z, the form the Layers job docs show."""
    seconds, millis = divmod(ms, 1000)
    stamp = _SECONDS.get(seconds)
    if stamp is None:
        stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        if len(_SECONDS) >= _SECONDS_MAX:
            _SECONDS.clear()
        _SECONDS[seconds] = stamp
    return stamp + _MILLIS[millis]


def parse_timestamp(text: str) -> int:
    """Inverse of format_ms; accepts any ISO-8601 instant with an offset or Z."""
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError("timestamp needs a UTC offset or Z")
    # Integer arithmetic: a float timestamp * 1000 can round .999 down to .998.
    return (parsed - EPOCH) // timedelta(milliseconds=1)
