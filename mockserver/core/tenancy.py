"""Which organization a request acts in: the key's own, or a child named by the header.

A parent key holding `org:admin` sends `X-Layers-Organization: org_<child>` to act inside that
child (one level deep). The header is never ignored: a client configured for a child must not
silently act in the parent. The answers follow the Layers organization endpoints, which take an
org id the same way: a key without `org:admin` is 403 `FORBIDDEN_SCOPE`, an id that is not an
org id is 422 `VALIDATION`, and an organization that is not a direct child is 404 `NOT_FOUND`.
"""

from __future__ import annotations

from dataclasses import replace

from .errors import ApiError, not_found, validation
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
    if org_id is None:
        raise validation(
            "Invalid header.",
            field_errors={HEADER: ["Must be an organization id, org_<uuid> or the bare uuid."]},
        )
    if org_id == key.org_id:
        return key
    org = orgs.get(org_id)
    if org is None or org.parent_id != key.org_id:
        raise not_found("Organization")  # unknown, or not a direct child of the key's
    return replace(key, org_id=org_id)
