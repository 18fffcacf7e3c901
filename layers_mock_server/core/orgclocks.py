"""A clock per organization, in the spirit of Stripe's test clocks.

By default every organization follows the server clock (clock.py), exactly as when there was
only one. An organization can be given its own clock ("detached"): it then stands at an instant
of its own and moves only when that organization's clock is advanced or set, never when the
server clock moves. Everything time-based of the organization reads `now(org)`: job
progression, rate-limit windows of its keys, idempotency expiry, createdAt/updatedAt.

A detached clock is virtual even on a server whose clock follows the wall: a test that detaches
an organization wants its jobs to stand still until it moves them. It obeys the server clock's
rules: never backwards, never past 9999-12-31T23:59:59.999Z (ClockError, a 422 at the edge).
Returning to the server clock (`follow`) is a jump to the server's instant, so it is refused
while the server clock is behind the organization's: its jobs would un-finish. Resetting the
organization's data (State.without_organization) drops its clock with the rest.

The detached instants are plain data (org id -> epoch ms), kept in the state's meta row, so a
durable store keeps them and an export carries them.
"""

from __future__ import annotations

from .clock import ClockError, advanced, check_instant, format_ms, set_to

# What the operator can do about a refused `follow`; a tenant is told its own
# (http/control_clocks.py: it may not move the server clock).
WHAT_TO_DO = (
    "advance the server clock, or reset the organization (its data and clock return to the start)"
)


class OrgClocks:
    """The detached clocks; an organization not in `detached` follows the server clock.
    `changed` names the organizations whose clock changed since the state was last stored
    (an ordered set): a durable store keeps a row each and writes only these (persist.py)."""

    __slots__ = ("changed", "detached")

    def __init__(self, detached: dict[str, int] | None = None) -> None:
        self.detached: dict[str, int] = dict(detached or {})
        self.changed: dict[str, None] = {}

    def now(self, org_id: str | None, server_ms: int) -> int:
        if org_id is None or not self.detached:
            return server_ms
        return self.detached.get(org_id, server_ms)

    def is_detached(self, org_id: str) -> bool:
        return org_id in self.detached

    def advance(self, org_id: str, seconds: float, server_ms: int) -> int:
        """Detach (at the instant the organization sees now) and move forward."""
        self.detached[org_id] = moved = advanced(self.now(org_id, server_ms), seconds)
        self.changed[org_id] = None
        return moved

    def set(self, org_id: str, instant_ms: int, server_ms: int) -> int:
        self.detached[org_id] = moved = set_to(self.now(org_id, server_ms), instant_ms)
        self.changed[org_id] = None
        return moved

    def follow(self, org_id: str, server_ms: int) -> int:
        """Back to the server clock; a ClockError if that would run the organization's time
        backwards (then nothing changes)."""
        own = self.detached.get(org_id)
        if own is not None and server_ms < own:
            raise ClockError(
                f"cannot follow the server clock: it is at {format_ms(server_ms)}, behind this "
                f"organization's {format_ms(own)}; {WHAT_TO_DO}"
            )
        if self.detached.pop(org_id, None) is not None:
            self.changed[org_id] = None
        return server_ms

    def without(self, org_id: str) -> OrgClocks:
        kept = OrgClocks({o: t for o, t in self.detached.items() if o != org_id})
        kept.changed = {**self.changed, **({org_id: None} if org_id in self.detached else {})}
        return kept

    def put(self, org_id: str, instant_ms: int | None) -> None:
        """A clock as another worker stored it (None: it follows the server's), not marked."""
        if instant_ms is None:
            self.detached.pop(org_id, None)
        else:
            self.detached[org_id] = instant_ms

    def snapshot(self) -> dict[str, int]:
        return dict(self.detached)

    @classmethod
    def restore(cls, detached: dict[str, int]) -> OrgClocks:
        return cls({org: check_instant(int(ms)) for org, ms in detached.items()})
