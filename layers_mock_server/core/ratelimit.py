"""Per-key, per-endpoint-class request budgets, counted in minutes of mock time.

Fixed windows aligned on the mock clock's minutes: a test exhausts a bucket, advances the
clock sixty seconds, and finds it full again, without sleeping.
"""

from __future__ import annotations

import math
from typing import NamedTuple

WINDOW_MS = 60_000
# every partner GET's x-rate-class (openapi/layers.yaml): the class a shared store counts
# itself (http/shared.py), in the round trip that brings a worker up to date
READ_CLASS = "read-light"
LIMITS: dict[str, dict[str, int]] = {
    "standard": {"read-light": 120, "write-light": 60, "long-running": 20},
    "pilot": {"read-light": 1_200, "write-light": 600, "long-running": 60},
    "partner": {"read-light": 6_000, "write-light": 3_000, "long-running": 300},
}
UNLIMITED = 1_000_000  # what the mock-only `unlimited` tier reports; it never runs out
_ENCODED: dict[Quota, tuple[tuple[bytes, bytes], ...]] = {}  # bounded memo for header_bytes
_ENCODED_MAX = 1024
_UNLIMITED_QUOTAS: dict[tuple[str, int], Quota] = {}  # (class, reset_s) -> the same answer


class Quota(NamedTuple):
    """A NamedTuple, not a frozen dataclass: one is built or looked up on every request, and
    header_bytes' memo hashes it (a tuple hashes in C, a dataclass through a Python __hash__)."""

    endpoint_class: str
    limit: int
    remaining: int
    reset_s: int  # seconds until the window resets, in the client's time (at least 1)
    retry_after_s: int | None  # set when this request is refused; client seconds too

    def headers(self) -> list[tuple[str, str]]:
        return [
            ("x-ratelimit-endpoint-class", self.endpoint_class),
            ("x-ratelimit-limit", str(self.limit)),
            ("x-ratelimit-remaining", str(self.remaining)),
            ("x-ratelimit-reset", str(self.reset_s)),
        ]

    def header_bytes(self) -> tuple[tuple[bytes, bytes], ...]:
        """`headers()` as the (lower-case name, value) bytes pairs the ASGI server sends."""
        encoded = _ENCODED.get(self)
        if encoded is None:
            encoded = tuple((k.encode("latin-1"), v.encode("latin-1")) for k, v in self.headers())
            if len(_ENCODED) >= _ENCODED_MAX:
                _ENCODED.clear()
            _ENCODED[self] = encoded
        return encoded


def client_seconds(mock_ms: int, speed: float) -> int:
    """Whole seconds the client waits for `mock_ms` of mock time: rounded up, never 0."""
    if speed == 1.0:  # every request at the default speed: ceil in integers, no float
        return max(1, -(-mock_ms // 1000))
    return max(1, math.ceil(mock_ms / (1000 * speed)))


class RateLimiter:
    """Each (API key, class) window: (minute, requests used in it). `changed` names the windows
    changed since the state was last stored (a dict as an ordered set, in the order changed):
    a durable store keeps one row a window and writes only these (core/persist.py)."""

    __slots__ = ("_windows", "changed")

    def __init__(self) -> None:
        self._windows: dict[tuple[str, str], tuple[int, int]] = {}
        self.changed: dict[tuple[str, str], None] = {}

    def take(
        self, api_key_id: str, tier: str, endpoint_class: str, now_ms: int, speed: float = 1.0
    ) -> Quota:
        """`speed` is mock seconds per client second (Clock.client_speed): a client on a wall
        clock at --speed 60 that honours Retry-After must wait real seconds, not mock ones."""
        window = now_ms // WINDOW_MS
        reset_ms = (window + 1) * WINDOW_MS
        reset_s = client_seconds(reset_ms - now_ms, speed)
        limits = LIMITS.get(tier)
        if limits is None:
            quota = _UNLIMITED_QUOTAS.get((endpoint_class, reset_s))
            if quota is None:
                if len(_UNLIMITED_QUOTAS) >= _ENCODED_MAX:
                    _UNLIMITED_QUOTAS.clear()
                quota = Quota(endpoint_class, UNLIMITED, UNLIMITED, reset_s, None)
                _UNLIMITED_QUOTAS[(endpoint_class, reset_s)] = quota
            return quota
        limit = limits[endpoint_class]
        bucket = (api_key_id, endpoint_class)
        seen_window, used = self._windows.get(bucket, (window, 0))
        if seen_window != window:
            used = 0
        if used >= limit:
            return Quota(endpoint_class, limit, 0, reset_s, reset_s)
        self._windows[bucket] = (window, used + 1)
        self.changed[bucket] = None
        return Quota(endpoint_class, limit, limit - used - 1, reset_s, None)

    def seed(self, api_key_id: str, endpoint_class: str, window: int, used: int) -> None:
        """What other workers already used of a window (a shared store counts reads there):
        the next `take` in that window is the `used + 1`-th."""
        self._windows[(api_key_id, endpoint_class)] = (window, used)
        self.changed[(api_key_id, endpoint_class)] = None

    def clear(self) -> None:
        self.changed.update(dict.fromkeys(self._windows))
        self._windows.clear()

    def buckets(self) -> list[tuple[str, str]]:
        """(API key, class) of every window, in the order first counted."""
        return list(self._windows)

    def window(self, bucket: tuple[str, str]) -> tuple[int, int] | None:
        """A window's (minute, used), or None when the key has none of that class."""
        return self._windows.get(bucket)

    def put(self, bucket: tuple[str, str], window: tuple[int, int] | None) -> None:
        """A window as another worker stored it (None: gone), not marked changed."""
        if window is None:
            self._windows.pop(bucket, None)
        else:
            self._windows[bucket] = window

    def replace_class(self, endpoint_class: str, rows: list[tuple[str, str, int, int]]) -> None:
        """One class's windows as a shared store counted them (`rows` as `snapshot` writes
        them, of that class), in place of what this copy saw of them."""
        kept = {b: w for b, w in self._windows.items() if b[1] != endpoint_class}
        kept.update({(k, c): (w, n) for k, c, w, n in rows})
        old = self._windows
        self.changed.update((b, None) for b in (*old, *kept) if old.get(b) != kept.get(b))
        self._windows = kept

    def without_keys(self, api_key_ids: set[str]) -> RateLimiter:
        """A copy without the windows of these API keys (a reset of one organization)."""
        kept = RateLimiter()
        kept._windows = {b: w for b, w in self._windows.items() if b[0] not in api_key_ids}
        kept.changed = dict(self.changed)
        kept.changed.update((b, None) for b in self._windows if b[0] in api_key_ids)
        return kept

    def snapshot(self) -> list[tuple[str, str, int, int]]:
        return [(k, c, w, n) for (k, c), (w, n) in self._windows.items()]

    def restore(self, rows: list[tuple[str, str, int, int]]) -> None:
        """Rows as `snapshot` wrote them, already checked (snapshot.py validates imports);
        nothing is marked changed (what replaces the state writes it whole)."""
        self._windows = {(k, c): (w, n) for k, c, w, n in rows}
