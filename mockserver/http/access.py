"""Who may use the control plane, decided in one place for the JSON routes and the dashboard.

Today there are two ways in: the server runs without an admin token (it is bound to loopback),
or the request carries the token. A tenant key (an organization steering only its own data on a
shared sandbox) is the third way still to come: it becomes one more branch here returning a
Principal with `organization_id` set, and every caller already receives that Principal.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Literal

from ..core.errors import ApiError
from ..deps import Deps


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking. `organization_id` None means every organization is visible."""

    kind: Literal["open", "admin"]
    organization_id: str | None = None

    def sees(self, organization_id: str) -> bool:
        return self.organization_id is None or self.organization_id == organization_id


OPEN = Principal("open")
ADMIN = Principal("admin")


def _matches(given: str | None, token: str) -> bool:
    # compare_digest: the time taken must not tell an attacker how much of the token matched.
    # An empty token never matches, so an empty --admin-token locks rather than opens.
    if not given:
        return False
    return hmac.compare_digest(given.encode(), token.encode())


def control_principal(
    deps: Deps, authorization: str | None, query_token: str | None = None
) -> Principal:
    """The caller of a control route, or UNAUTHENTICATED.

    `query_token` is only passed by the dashboard's page routes: a browser opening a link
    cannot add an Authorization header, so the page URL may carry `?token=` instead.
    """
    token = deps.admin_token
    if token is None:
        return OPEN
    scheme, _, given = (authorization or "").partition(" ")
    if (scheme.lower() == "bearer" and _matches(given, token)) or _matches(query_token, token):
        return ADMIN
    raise ApiError("UNAUTHENTICATED", "The control plane needs the admin token.")
