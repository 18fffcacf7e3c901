"""Rate limits (CONTRACT.md: Rate limits, Order of checks step 2, Changes: Retry-After in the
client's time and "a replay counts against the rate limit").

The headers are judged on every response of the run; exhausting a bucket is done only with a
key given for that purpose (`--throttle-key`), never with the partner's production key.
"""

from __future__ import annotations

import math

from .. import contract as c
from ..clause import Needs, Section
from ..exchange import Exchange
from ..observe import Transcript
from ..report import NotChecked, Violation
from ..session import Session, error_of, expect_error

SECTION = Section("ratelimits", "Rate limits")
UNKNOWN_INFLUENCER = "inf_00000000-0000-4000-8000-0000000a7e11"


def _charged(t: Transcript) -> list[tuple[Exchange, str]]:
    """Responses that must carry the rate-limit headers (a key was resolved and charged), with
    the class each request belongs to: not 401 or 405, not a killed key's 503, not a 5xx."""
    out = []
    for ex in t.partner:
        rate_class = c.rate_class_of(ex.method, ex.path, ex.request_body)
        if rate_class is None or ex.status in (401, 405) or ex.status >= 500:
            continue
        out.append((ex, rate_class))
    return out


def _int(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None


EVERY_CLASS = ("tenancy.unknown-ids-404", "jobs.accepted-envelope")
# Reset is rounded up to whole seconds: a window said to end in Reset seconds surely lasts
# more than Reset - 1 after the server answered. When it answered is known only to lie
# between the request's sending and its answer's arrival, so two requests surely share a
# window when the second's answer came within Reset - 1 of the first's sending.
ROUNDING_S = 1.0


@SECTION.observer("ratelimits.headers-present", producers=EVERY_CLASS)
def headers_present(t: Transcript) -> None:
    """Every response after authentication, errors and 304s included, carries
    X-RateLimit-Endpoint-Class, -Limit, -Remaining and -Reset (integers)."""
    charged = _charged(t)
    for ex, _ in charged:
        missing = [h for h in c.RATE_HEADERS if ex.header(h) is None]
        bad = [
            h for h in c.RATE_HEADERS[1:] if ex.header(h) is not None and _int(ex.header(h)) is None
        ]
        if missing or bad:
            raise Violation(
                "ratelimits.headers-present", f"missing {missing}, not integers {bad}", ex
            )
    t.need(bool(charged), "no request reached the rate limiter")


@SECTION.observer("ratelimits.endpoint-class", producers=EVERY_CLASS)
def endpoint_class(t: Transcript) -> None:
    """X-RateLimit-Endpoint-Class names the request's class: every GET read-light; PATCH,
    DELETE and cancel write-light; create influencer (and a project with appDescription)
    long-running."""
    charged = _charged(t)
    for ex, rate_class in charged:
        got = ex.header("X-RateLimit-Endpoint-Class")
        if got is not None and got != rate_class:
            raise Violation("ratelimits.endpoint-class", f"{got!r}, expected {rate_class}", ex)
    t.need(bool(charged), "no request reached the rate limiter")


@SECTION.observer("ratelimits.limit-matches-tier", producers=("ratelimits.429-retry-after",))
def limit_matches_tier(t: Transcript) -> None:
    """X-RateLimit-Limit is the key's tier limit for the class (standard 120/60/20, pilot
    1,200/600/60, partner 6,000/3,000/300 per minute)."""
    judged = False
    for ex, rate_class in _charged(t):
        tier = t.tier_of(ex)
        if tier not in c.TIER_LIMITS or ex.header("X-RateLimit-Limit") is None:
            continue
        judged = True
        want = c.TIER_LIMITS[tier][rate_class]
        if _int(ex.header("X-RateLimit-Limit")) != want:
            raise Violation(
                "ratelimits.limit-matches-tier",
                f"limit {ex.header('X-RateLimit-Limit')} for {tier} {rate_class}, expected {want}",
                ex,
            )
    t.need(judged, "no key of a known tier (standard, pilot, partner) was used")


@SECTION.observer("ratelimits.remaining-counts-down", producers=("ratelimits.429-retry-after",))
def remaining_counts_down(t: Transcript) -> None:
    """Within one window every request of a key and class (replays too) takes one from
    X-RateLimit-Remaining; a 429 leaves it at 0.

    Two requests are in one window when the mock's clock was not moved between them, the
    reset did not move later (as seconds to wait it counts down), and, on a clock that does
    not stand still, the second's answer came sooner than the first's Reset said the window
    ends, counted from when the first was sent (however long its answer took to come back):
    Reset is rounded up, so only Reset - 1 client seconds are sure. On a mock sped up so much
    that Reset is always 1, no pair is sure. Two requests sent together (the second left
    before the first's answer came back) may have been answered in either order: not judged."""
    clause = "ratelimits.remaining-counts-down"
    last: dict[tuple[str, str], tuple[Exchange, int, int]] = {}
    moves = t.clock_moves
    judged = False
    for ex, rate_class in _charged(t):
        if t.tier_of(ex) not in c.TIER_LIMITS:
            continue
        remaining, reset = (
            _int(ex.header("X-RateLimit-Remaining")),
            _int(ex.header("X-RateLimit-Reset")),
        )
        if remaining is None or reset is None:
            continue
        if "fault=" in (ex.request_header("Prefer") or ""):
            continue  # a fault the run asked for (steering.injected-faults): no window's answer
        if ex.status == 429:
            if remaining != 0:
                raise Violation(clause, f"a 429 with {remaining} remaining", ex)
            continue
        bucket = (str(t.identity_of(ex)), rate_class)
        if bucket in last:
            before, was_remaining, was_reset = last[bucket]
            moved = any(before.seq < m < ex.seq for m in moves)
            elapsed = 0.0 if t.session.still else ex.at - before.sent
            # sent before the other's answer came back (sent together): answered in either order
            crossed = ex.sent < before.at
            if not (moved or crossed) and reset <= was_reset and elapsed < was_reset - ROUNDING_S:
                judged = True
                if remaining >= was_remaining:
                    raise Violation(clause, f"remaining {was_remaining} then {remaining}", ex)
        last[bucket] = (ex, remaining, reset)
    t.need(judged, "no two requests of a limited key in one window")


@SECTION.clause("ratelimits.429-retry-after", needs=Needs(identities=("throttle_key",)), weight=3)
def retry_after_429(s: Session) -> None:
    """Past its limit a key gets 429 RATE_LIMITED with Retry-After (whole seconds, at least 1)
    and Remaining 0, counted before the scope and the 404; after waiting Retry-After (client
    time) it is served again."""
    clause = "ratelimits.429-retry-after"
    key = s.require("throttle_key", "a limited-tier key the run may exhaust")
    tier = s.whoami.get("throttle_key", {}).get("rateLimitTier")
    if tier not in c.TIER_LIMITS:
        raise NotChecked(f"--throttle-key has tier {tier!r}, which has no limit to reach")
    limit = c.TIER_LIMITS[str(tier)][c.WRITE]
    path = c.influencer_path(UNKNOWN_INFLUENCER)
    throttled: Exchange | None = None
    first: Exchange | None = None
    served, left = 0, None
    for _ in range(limit + 5):
        ex = s.call("PATCH", path, {"name": "Conformance"}, key=key, retry_429=False)
        first = first or ex
        if ex.status == 429:
            throttled = ex
            break
        served += 1
        now_left = _int(ex.header("X-RateLimit-Remaining"))
        if left is not None and now_left is not None and now_left > left:
            raise NotChecked(
                f"the window rolled over after {served} requests: at this pace (a sped-up "
                "clock, --rate-limit) the key cannot reach its limit within one window"
            )
        left = now_left
    if throttled is None or served > limit:
        _in_one_window(s, first, throttled or ex, served)
    if throttled is None:
        raise Violation(clause, f"{limit + 5} write-light requests, no 429", None)
    if served > limit:
        raise Violation(clause, f"{served} requests served, the limit is {limit}", throttled)
    expect_error(clause, throttled, 429, "RATE_LIMITED")
    wait = _int(throttled.header("Retry-After"))
    if wait is None or not 1 <= wait <= 60:  # windows are a minute: never more to wait
        raise Violation(clause, f"Retry-After {throttled.header('Retry-After')!r}", throttled)
    _wait(s, key, wait)
    again = s.call("PATCH", path, {"name": "Conformance"}, key=key, retry_429=False)
    if again.status == 429:
        raise Violation(clause, f"still 429 after waiting Retry-After {wait}s", again)
    if error_of(again).get("code") not in ("NOT_FOUND", "FORBIDDEN_SCOPE"):
        raise Violation(clause, f"after the wait: {again.status}", again)


def _in_one_window(s: Session, first: Exchange | None, last: Exchange, served: int) -> None:
    """Too many requests served is a violation only when they surely fell in one window: on
    a clock that stands still, or, from the first's sending to the last's answer, sooner than
    the first's Reset said the window ends (Reset is rounded up, as in remaining-counts-down).
    Remaining going up is not the only sign of a new window: a window that held one request
    starts the next at the same Remaining, which a wall clock sped up to 0.1 s windows does
    often."""
    if s.still or first is None:
        return
    reset = _int(first.header("X-RateLimit-Reset"))
    took = last.at - first.sent
    if reset is None or took >= reset - ROUNDING_S:
        raise NotChecked(
            f"{served} requests took {took:.2f}s, longer than the window is surely open "
            f"(X-RateLimit-Reset {reset}): they may have spanned two windows"
        )


def _wait(s: Session, key: str, seconds: int) -> None:
    """Retry-After is in the client's time: on a virtual clock that is the mock's seconds, of
    the clock `key`'s windows follow. With --tenant-key the run moves only its organization's
    clock: a key of another organization would still be throttled after that move (a FAIL of a
    correct sandbox), and sleeping moves no virtual clock, so that is NOT CHECKED."""
    control = s.target.control
    if control is not None and control.clock().get("mode") == "virtual":
        if not control.moves_jobs_of(key, None):
            raise NotChecked(
                "--tenant-key moves only its organization's clock; --throttle-key is a key of "
                "another organization, whose windows a virtual clock moves only when that "
                "organization's clock moves"
            )
        s.target.advance(seconds)
        return
    left = s.target.budget.remaining_time()
    if left is not None and left < seconds:
        raise NotChecked(f"Retry-After {seconds}s is longer than the time left")
    s.target.wait(seconds)


@SECTION.clause(
    "ratelimits.client-time",
    needs=Needs(identities=("throttle_key",), clock=True),
    black_box=False,
)
def client_time(s: Session) -> None:
    """X-RateLimit-Reset and Retry-After are seconds of the client's time: on a virtual clock
    mock seconds (Reset of them later the window is new, a second sooner it is not); on a wall
    clock real ones, at most 60 / --speed rounded up (mock only: the clock shows the speed)."""
    clause = "ratelimits.client-time"
    key = s.require("throttle_key", "a limited-tier key")
    tier = s.whoami.get("throttle_key", {}).get("rateLimitTier")
    if tier not in c.TIER_LIMITS:
        raise NotChecked(f"--throttle-key has tier {tier!r}, which has no window to reset")
    assert s.target.control is not None
    clock = s.target.control.clock()
    virtual = clock.get("mode") == "virtual"
    speed = 1.0 if virtual else float(clock.get("speed") or 1)
    most = max(1, math.ceil(60 / speed))  # a window is a minute of mock time
    for ex in s.target.exchanges:  # the 429s of the key (ratelimits.429-retry-after's)
        if ex.status != 429 or ex.request_header("Authorization") != f"Bearer {key}":
            continue
        wait = _int(ex.header("Retry-After"))
        if wait is None or not 1 <= wait <= most:
            raise Violation(clause, f"Retry-After {ex.header('Retry-After')!r}, most {most}", ex)
    first = s.get(c.WHOAMI, key)
    reset, remaining = (
        _int(first.header("X-RateLimit-Reset")),
        _int(first.header("X-RateLimit-Remaining")),
    )
    if reset is None or remaining is None or not 1 <= reset <= most:
        raise Violation(clause, f"X-RateLimit-Reset {reset!r}: at most {most} s", first)
    if not virtual:
        return  # on a wall clock the bound is what can be judged without waiting a window out
    if reset > 1:
        s.target.advance(reset - 1)
        same = s.get(c.WHOAMI, key)
        if _int(same.header("X-RateLimit-Remaining")) != remaining - 1:
            raise Violation(
                clause, f"{reset - 1} s on, the window said to end in {reset} s was new", same
            )
    s.target.advance(1)
    fresh = s.get(c.WHOAMI, key)
    limit = c.TIER_LIMITS[str(tier)][c.READ]
    if _int(fresh.header("X-RateLimit-Remaining")) != limit - 1:
        raise Violation(
            clause, f"{reset} s on, the window said to end in {reset} s was not new", fresh
        )
