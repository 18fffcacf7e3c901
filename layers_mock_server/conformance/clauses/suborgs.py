"""Sub-organizations (spec: the Organization parameter, whoami; the Layers sub-organizations
guide): a parent key with org:admin acts inside a direct child with `X-Layers-Organization`,
one level deep, and the header is never ignored: a client configured for a child must never
silently act in the parent. Reads only: nothing of the child or the parent is changed.
"""

from __future__ import annotations

from .. import contract as c
from ..clause import Needs, Section
from ..report import NotChecked, Violation
from ..session import Session, body_of, expect_error, items_of

SECTION = Section("suborgs", "Sub-organizations")
UNKNOWN_ORG = "org_00000000-0000-4000-8000-0000000c41d0"
# Keys of the run that may lack org:admin, in the order they are tried.
PLAIN_KEYS = ("api_key", "scopeless_key", "second_key", "foreign_key", "throttle_key")


def _org_id(raw: str) -> str:
    """`org_<uuid>` and the bare uuid name the same organization; answers use the prefix."""
    return raw if raw.startswith("org_") else f"org_{raw}"


@SECTION.clause(
    "tenancy.suborg-acts-in-child",
    needs=Needs(identities=("org_admin_key", "child_organization_id")),
)
def suborg_acts_in_child(s: Session) -> None:
    """With X-Layers-Organization naming a direct child, an org:admin key acts inside it:
    whoami reports the child with parentOrganizationId, the wallet and the project list are
    the child's, and without the header the parent's list holds none of the child's."""
    clause = "tenancy.suborg-acts-in-child"
    key = s.require("org_admin_key", "a key with org:admin")
    child = s.require("child_organization_id", "a child of --org-admin-key's organization")
    child_id, inside = _org_id(child), {c.ORG_HEADER: child}
    parent = s.whoami.get("org_admin_key", {}).get("organizationId")
    ex = s.get(c.WHOAMI, key, **inside)
    me = body_of(ex)
    want = {"organizationId": child_id, "workspaceId": child_id, "parentOrganizationId": parent}
    wrong = {k: me.get(k) for k, v in want.items() if me.get(k) != v}
    if ex.status != 200 or wrong:
        raise Violation(clause, f"whoami in the child: {wrong or ex.status}, expected {want}", ex)
    wallet = s.wallet(key, child)
    if wallet.get("organizationId") != child_id:
        raise Violation(clause, f"the wallet is {wallet.get('organizationId')}'s", None)
    if not c.grants(s.scopes("org_admin_key"), c.PROJECTS_READ):
        s.note("--org-admin-key lacks projects:read: the project lists were not compared")
        return
    listing = f"{c.PROJECTS}?limit={c.PROJECT_LIMIT_MAX}"
    theirs = s.get(listing, key, **inside)
    strangers = [
        p.get("organizationId") for p in items_of(theirs) if p.get("organizationId") != child_id
    ]
    if theirs.status != 200 or strangers:
        raise Violation(
            clause, f"the child's project list: {strangers[:2] or theirs.status}", theirs
        )
    ours = s.get(listing, key)
    leaked = [p.get("id") for p in items_of(ours) if p.get("organizationId") == child_id]
    if leaked:
        raise Violation(clause, f"without the header the parent lists the child's {leaked}", ours)
    first = next(iter(items_of(theirs)), None)
    if first is not None:
        read = s.get(c.project_path(str(first.get("id"))), key, **inside)
        if read.status != 200 or body_of(read).get("organizationId") != child_id:
            raise Violation(clause, f"the child's project read in the child: {read.status}", read)


@SECTION.clause(
    "tenancy.suborg-needs-org-admin", needs=Needs(identities=("child_organization_id",))
)
def suborg_needs_org_admin(s: Session) -> None:
    """A key without org:admin that sends X-Layers-Organization is refused on whoami, credits
    and the project list, never served as if the header were not there; on the mock, 403
    FORBIDDEN_SCOPE with requiredScope org:admin (the header's errors are its decision)."""
    clause = "tenancy.suborg-needs-org-admin"
    child = s.require("child_organization_id", "a child organization to name")
    plain = next(
        (
            i
            for i in PLAIN_KEYS
            if getattr(s.target.ids, i) and i in s.whoami and not c.grants(s.scopes(i), c.ORG_ADMIN)
        ),
        None,
    )
    if plain is None:
        raise NotChecked("every key of the run has org:admin (whoami): give one without it")
    key = getattr(s.target.ids, plain)
    for path in (c.WHOAMI, c.CREDITS, f"{c.PROJECTS}?limit=1"):
        ex = s.get(path, key, **{c.ORG_HEADER: child})
        code = "FORBIDDEN_SCOPE" if s.mock else None
        error = expect_error(clause, ex, 403 if s.mock else None, code)
        if s.mock and (error.get("details") or {}).get("requiredScope") != c.ORG_ADMIN:
            raise Violation(clause, f"details.requiredScope is not {c.ORG_ADMIN}", ex)


@SECTION.clause("tenancy.suborg-non-child-404", needs=Needs(identities=("org_admin_key",)))
def suborg_non_child_404(s: Session) -> None:
    """With an org:admin key, X-Layers-Organization naming an organization that is not a
    direct child (unknown, another organization's) is refused, never served in the key's
    own; on the mock, 404 NOT_FOUND."""
    clause = "tenancy.suborg-non-child-404"
    key = s.require("org_admin_key", "a key with org:admin")
    own = s.whoami.get("org_admin_key", {}).get("organizationId")
    child = _org_id(s.target.ids.child_organization_id or UNKNOWN_ORG)
    others = [UNKNOWN_ORG]
    for identity in ("api_key", "foreign_key", "scopeless_key"):
        org = s.whoami.get(identity, {}).get("organizationId")
        if isinstance(org, str) and org not in (own, child, *others):
            others.append(org)  # another organization that exists
    if s.mock:
        others.append("not-an-org")  # mock decision: a malformed value is an unknown one (404)
    for org in others:
        for path in (c.WHOAMI, c.CREDITS):
            ex = s.get(path, key, **{c.ORG_HEADER: org})
            expect_error(clause, ex, 404 if s.mock else None, "NOT_FOUND" if s.mock else None)
