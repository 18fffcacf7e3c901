"""The control routes of an organization's own clock: /_mock/organizations/{organizationId}/clock.

The admin (or an open loopback server) may address any organization; a tenant only its own,
and another organization is 404 exactly as an unknown one is, so a tenant cannot learn which
organizations share the sandbox. The rules of the clock itself are core/orgclocks.py's.
"""

from __future__ import annotations

from typing import Any

from ..core.clock import ClockError, format_ms, parse_timestamp
from ..core.errors import ApiError, not_found, validation
from ..core.orgclocks import WHAT_TO_DO
from ..deps import Deps
from .access import Principal
from .pipeline import Reply

# A tenant may not move the server clock (403): what it can do instead of WHAT_TO_DO.
TENANT_WHAT_TO_DO = (
    "ask the sandbox's operator to advance the server clock, or reset your organization "
    "(POST /_mock/reset with this key: its data and clock return to the start)"
)


def server_wide() -> ApiError:
    return ApiError(
        "FORBIDDEN_SCOPE",
        "This control route acts on the whole server: it needs the admin token, not an API key.",
    )


def _organization(deps: Deps, path: dict[str, str], who: Principal) -> str:
    org_id = deps.sim.organization(path["organizationId"])
    if not who.sees(org_id):
        raise not_found("Organization")  # another tenant's: exactly as if it did not exist
    return org_id


def _view(deps: Deps, org_id: str) -> Reply:
    now, detached = deps.sim.organization_clock(org_id)
    return Reply(200, {"organizationId": org_id, "now": format_ms(now), "detached": detached})


def clock_error(exc: ClockError, message: str = "Invalid body.") -> ApiError:
    """A refused move's 422: under the body's field it names, else (no body) a form error."""
    if exc.field is None:
        return validation(message, [str(exc)])
    return validation(message, field_errors={exc.field: [str(exc)]})


def _moved(deps: Deps, org_id: str, move: Any, refused: str = "Invalid body.") -> Reply:
    try:
        move()
    except ClockError as exc:
        raise clock_error(exc, refused) from None
    return _view(deps, org_id)


def get_clock(
    deps: Deps,
    body: dict[str, Any],
    query: dict[str, Any],
    path: dict[str, str],
    who: Principal,
) -> Reply:
    return _view(deps, _organization(deps, path, who))


def advance_clock(
    deps: Deps,
    body: dict[str, Any],
    query: dict[str, Any],
    path: dict[str, str],
    who: Principal,
) -> Reply:
    org_id = _organization(deps, path, who)
    return _moved(deps, org_id, lambda: deps.sim.advance_organization(org_id, body["seconds"]))


def set_clock(
    deps: Deps,
    body: dict[str, Any],
    query: dict[str, Any],
    path: dict[str, str],
    who: Principal,
) -> Reply:
    org_id = _organization(deps, path, who)
    try:
        instant = parse_timestamp(body["now"])
    except ValueError:
        raise validation(
            "Invalid body.", field_errors={"now": ["Must be an ISO-8601 instant."]}
        ) from None
    return _moved(deps, org_id, lambda: deps.sim.set_organization(org_id, instant))


def follow_clock(
    deps: Deps,
    body: dict[str, Any],
    query: dict[str, Any],
    path: dict[str, str],
    who: Principal,
) -> Reply:
    org_id = _organization(deps, path, who)
    # it takes no body, so "Invalid body." would send a partner looking for one
    refused = "The organization's clock cannot follow the server clock yet."
    try:
        deps.sim.follow_server_clock(org_id)
    except ClockError as exc:
        if who.kind == "tenant":
            exc = ClockError(str(exc).replace(WHAT_TO_DO, TENANT_WHAT_TO_DO), exc.field)
        raise clock_error(exc, refused) from None
    return _view(deps, org_id)


CLOCK_HANDLERS = {
    "mockGetOrganizationClock": get_clock,
    "mockAdvanceOrganizationClock": advance_clock,
    "mockSetOrganizationClock": set_clock,
    "mockResetOrganizationClock": follow_clock,
}
