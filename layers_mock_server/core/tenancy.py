"""Which organization a request acts in: the key's own, or a child named by the header.

A parent key holding `org:admin` sends `X-Layers-Organization: org_<child>` to act inside that
child (one level deep). The header is never ignored: a client configured for a child must not
silently act in the parent. A key without `org:admin` is 403 `FORBIDDEN_SCOPE` and an
organization that is not a direct child is 404 `NOT_FOUND`, as on the Layers organization
endpoints. A value that is not an organization id is an unknown organization (404), as every
malformed id is in this mock: the Layers organization endpoints answer 422 there, but a header
pattern that made it 422 would put the rule where fuzzers cannot follow it (Schemathesis only
generates alphanumeric header values, and an org id has `_` and `-`).
"""

from __future__ import annotations

from dataclasses import replace

from .errors import ApiError, not_found
from .records import ApiKey, Organization, canonical_id

HEADER = "X-Layers-Organization"
ADMIN_SCOPE = "org:admin"


def acting_key(key: ApiKey, header: str | None, orgs: dict[str, Organization]) -> ApiKey:
    """`key` itself, or a copy of it whose organization is the child the header names."""
    if header is None:
        return key
    if not key.allows(ADMIN_SCOPE):
        raise ApiError(
            "FORBIDDEN_SCOPE",
            f"{HEADER} needs a key with the {ADMIN_SCOPE} scope.",
            {"requiredScope": ADMIN_SCOPE},
        )
    org_id = header if header in orgs else canonical_id("org_", header)
    if org_id == key.org_id:
        return key
    org = orgs.get(org_id) if org_id else None
    if org is None or org.parent_id != key.org_id:
        raise not_found("Organization")  # unknown, or not a direct child of the key's
    return replace(key, org_id=org.organization_id)
