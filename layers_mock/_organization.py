"""One organization's own controls: its clock, its reset, its journal (`mock.organization(...)`).

Built on the tenant routes of the control plane (openapi/control.yaml, "Tenants"): given a key,
every call carries it as a tenant would on a shared sandbox, so a test exercises exactly what a
tenant may do; given an organization id, the calls go as the operator's.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from ._views import carried, parse_instant, wire_instant

Control = Callable[..., Any]


class Organization:
    """An organization's clock and data. Its clock follows the mock's until `advance` or
    `set_clock` gives it one of its own; no other organization moves with it."""

    def __init__(self, control: Control, organization_id: str, key: str | None) -> None:
        self.id = organization_id
        self._key = key  # None: the operator's calls (in-process, the control plane is open)
        self._control = control
        self._path = f"/_mock/organizations/{quote(organization_id, safe='')}/clock"
        self._carry_ns = 0  # below the clock's millisecond, carried (as LayersMock.advance)

    def __repr__(self) -> str:
        return f"Organization({self.id!r})"

    def _call(self, method: str, path: str, body: Any = None, query: str = "") -> Any:
        return self._control(method, path, body, query, key=self._key)

    @property
    def now(self) -> datetime:
        """The organization's current time (UTC)."""
        return parse_instant(self._call("GET", self._path)["now"])

    @property
    def detached(self) -> bool:
        """True while the organization has a clock of its own."""
        return bool(self._call("GET", self._path)["detached"])

    def advance(self, seconds: float | timedelta) -> datetime:
        """Move this organization's clock forward (it gets its own if it had none). The
        mock's clocks move in whole milliseconds (it refuses less); what is left below one is
        carried to the next advance, as in `LayersMock.advance`."""
        wire, self._carry_ns = carried(seconds, self._carry_ns)
        return self.now if wire is None else self._advance(wire)

    def _advance(self, seconds: Any) -> datetime:
        return parse_instant(
            self._call("POST", self._path + "/advance", {"seconds": seconds})["now"]
        )

    def set_clock(self, instant: datetime | str) -> datetime:
        """Jump this organization's clock to `instant` (never backwards)."""
        wire = wire_instant(instant)
        moved = parse_instant(self._call("POST", self._path + "/set", {"now": wire})["now"])
        self._carry_ns = 0
        return moved

    def follow_server_clock(self) -> datetime:
        """Drop its own clock and follow the mock's again (refused while the mock's is behind)."""
        return parse_instant(self._call("POST", self._path + "/reset")["now"])

    def reset(self) -> None:
        """This organization back to its fixtures, its clock following the mock's again;
        every other organization keeps everything."""
        self._call("POST", "/_mock/reset", {"organizationId": self.id})
