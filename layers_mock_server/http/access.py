"""Who may use the control plane, decided in one place for the JSON routes and the dashboard.

Three ways in. Without an admin token the server is bound to loopback and the control plane is
open to whoever can reach it, whatever Authorization a request carries (a test's client that
sends its partner key on every request keeps working, as it always did). With an admin token:
the token in `Authorization: Bearer` is the admin, and one of an organization's own partner API
keys (`Authorization: Bearer lp_…`) is a tenant steering only its own organization on a shared
sandbox. Any key of the organization whose kill switch is off will do, with no scope needed:
the control plane is a test harness, not the partner API.

What each kind may do, route by route, is decided in control.py (`TENANT_ROUTES`).
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qsl, urlsplit

from ..core.errors import ApiError
from ..core.records import canonical_id
from ..deps import Deps


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking. `organization_id` None means every organization is visible."""

    kind: Literal["open", "admin", "tenant"]
    organization_id: str | None = None

    def sees(self, organization_id: str) -> bool:
        return self.organization_id is None or self.organization_id == organization_id


TENANT_PREFIX = "lp_"  # every partner key; an admin token may be anything else
OPEN = Principal("open")
ADMIN = Principal("admin")


def token_matches(given: str | None, token: str) -> bool:
    """Whether `given` is the admin token (here and in the stand-in, http/waiting.py).

    compare_digest: the time taken must not tell an attacker how much of the token matched.
    An empty token never matches, so an empty --admin-token locks rather than opens."""
    if not given:
        return False
    return hmac.compare_digest(given.encode(), token.encode())


def token_in_query(query_string: bytes) -> str | None:
    """The `?token=` a dashboard page URL carries (the first, blank kept as blank), or None.

    A browser following a link cannot add an Authorization header, so a page's URL may carry
    the admin token or a tenant's key instead: read here, for `control_principal`, by the
    dashboard's pipeline (ui/pipeline.py) and a worker waiting for Redis (http/waiting.py) alike.
    """
    pairs = parse_qsl(query_string.decode("utf-8", "replace"), keep_blank_values=True)
    return next((value for name, value in pairs if name == "token"), None)


def control_principal(
    deps: Deps,
    authorization: str | None,
    query_token: str | None = None,
    acting_in: str | None = None,
) -> Principal:
    """The caller of a control route, or UNAUTHENTICATED.

    `query_token` is only passed by the dashboard's page routes: a browser opening a link
    cannot add an Authorization header, so the page URL may carry `?token=` instead (the admin
    token, or a tenant's API key; the request log masks either).

    `acting_in` is the request's `X-Layers-Organization`. On the partner API it moves an
    org:admin key into a child; here a key steers its own organization only, so a tenant
    naming any other is refused: served as if the header were absent, a reset meant for the
    child would wipe the parent.
    """
    token = deps.admin_token
    if token is None:
        return OPEN
    scheme, _, given = (authorization or "").partition(" ")
    bearer = given if scheme.lower() == "bearer" else ""
    if token_matches(bearer, token) or token_matches(query_token, token):
        return ADMIN
    # as the partner API reads a key (Simulator.authenticate); a page URL may carry the
    # tenant's key as it carries the admin token, or a tenant could not open its dashboard
    bearer = bearer.strip() or (query_token or "").strip()
    key = deps.sim.state.keys.get(bearer) if bearer.startswith(TENANT_PREFIX) else None
    if key is not None and not key.killed:
        if acting_in is not None and canonical_id("org_", acting_in.strip()) != key.org_id:
            raise ApiError(
                "FORBIDDEN_SCOPE",
                "On the control plane an API key steers its own organization only: "
                "X-Layers-Organization is not honoured here. Steer a child organization "
                "with its own key, or ask the operator (admin token).",
            )
        return Principal("tenant", key.org_id)
    raise ApiError(
        "UNAUTHENTICATED",
        # not "a live key": lp_live_ is a kind of key, and lp_test_ keys are tenants too
        "The control plane needs the admin token, or an API key of your organization that "
        "is not killed.",
    )


def check_site(
    deps: Deps, headers: Mapping[str, str], server: Sequence[object] | None = None
) -> None:
    """Refuse a control request a web page made, before it can reset or read the mock.

    A page on any site may POST to http://127.0.0.1:4010/_mock/reset (a "simple" request needs
    no CORS preflight), and a page whose DNS name is rebound to 127.0.0.1 is, to the browser,
    same-origin with the mock. The browser names the page in `Origin` and the name it resolved
    in `Host`; curl, SDKs and test clients send no Origin and a loopback Host, so they pass.
    In open mode (no admin token) Host must name loopback or the address the connection came
    in on (`server`, the ASGI scope's: the bound address, or an in-process client's host).
    """
    check_origin(deps.admin_token, headers, server)


def check_origin(
    admin_token: str | None, headers: Mapping[str, str], server: Sequence[object] | None = None
) -> None:
    """`check_site` with the one setting it reads: what a worker waiting for Redis checks
    too (http/waiting.py), as it needs no state."""
    bound_host = str(server[0]) if server else None
    host = headers.get("host")
    origin = headers.get("origin")
    if origin is not None and not _same_or_local_origin(origin, host, bound_host):
        raise ApiError(
            "FORBIDDEN_SCOPE",
            "The control plane refuses requests from another site's page (Origin is neither "
            "this server nor a loopback address).",
        )
    if admin_token is None and host is not None:
        name = _hostname(host)
        if name is None or not _local(name, bound_host):
            raise ApiError(
                "FORBIDDEN_SCOPE",
                "Without an admin token the control plane answers only to a loopback Host "
                "(localhost, 127.0.0.1, [::1]) or the address it is bound to.",
            )


def _hostname(netloc: str) -> str | None:
    """The host part of a Host header or an origin's authority, lower case; None if malformed."""
    try:
        parts = urlsplit("//" + netloc)
        name, _ = parts.hostname, parts.port  # .port raises on a port that is not a number
    except ValueError:
        return None
    if not name or parts.username is not None or parts.path or parts.query or parts.fragment:
        return None
    return name


def _local(name: str, bound_host: str | None) -> bool:
    if name == "localhost" or (bound_host is not None and name == bound_host.lower()):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _same_or_local_origin(origin: str, host: str | None, bound_host: str | None) -> bool:
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or parts.path or parts.query or parts.fragment:
        return False  # "null" (a sandboxed frame, a file:// page) and anything malformed
    name = _hostname(parts.netloc)
    if name is None:
        return False
    if host is not None and parts.netloc.lower() == host.lower():
        return True  # the dashboard's own fetches
    return _local(name, bound_host)
