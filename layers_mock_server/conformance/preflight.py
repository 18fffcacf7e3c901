"""Check the run's inputs against the target before any clause: wrong inputs are exit 2 with
one sentence, never a table of contract violations.

A wrong key used to come out as "8 passed, 13 failed" with a curl to `/v1/jobs/None`. Here the
key is tried on whoami, the project on its influencer list, the scopeless key on whoami and on
the API, the foreign project on its owner, the org:admin key and its child on whoami, the
wallet's key and project on the project's list, and the control plane on its clock (a tenant key
on --api-key's own organization, whose clock the run's jobs follow). What can
only be the deployment's fault (whoami listing scopes the API does not enforce, a foreign
project that answers 200, a child header that is ignored) is left to the clauses, which report
it as a FAIL.
"""

from __future__ import annotations

from . import contract as c
from .session import Session, body_of, error_of
from .target import Identities, TargetUnreachable

INVALID_BODY = {"gender": "__conformance_probe__"}


class InputError(Exception):
    """The run's inputs do not fit the target (exit code 2, one sentence)."""


def _whoami(s: Session, identity: str, flag: str) -> dict[str, object]:
    key = getattr(s.target.ids, identity)
    ex = s.get("/v1/whoami", key=key)
    if identity == "killed_key":  # what it answers is for auth.killed-key-503 to judge
        return body_of(ex)
    if ex.status == 401:
        raise InputError(f"{flag} was refused by GET /v1/whoami (401 UNAUTHENTICATED): check it")
    if ex.status == 503 and identity != "killed_key":
        raise InputError(f"{flag} is killed (GET /v1/whoami answered 503 KILL_SWITCH)")
    if ex.status != 200 and identity != "killed_key":
        raise InputError(
            f"GET /v1/whoami answered {ex.status} to {flag}: is --base-url the Layers API?"
        )
    body = body_of(ex)
    if ex.status == 200:
        s.whoami[identity] = body
    return body


def preflight(s: Session, control_plane: bool = False) -> None:
    """Raises InputError with one sentence when an input does not fit the target."""
    t, ids = s.target, s.target.ids
    s.clause = t.clause = "preflight"
    _sendable(ids)
    me = _whoami(s, "api_key", "--api-key")
    org = me.get("organizationId")
    listed = s.get(c.create_path(s.project) + "?limit=1")
    if listed.status == 404:
        raise InputError(
            f"--project-id {s.project} is not a project of the key's organization "
            "(its influencer list answered 404)"
        )
    if listed.status == 403:
        raise InputError("--api-key lacks influencers:write: the runner needs a full-scope key")
    if c.grants(s.scopes(), c.PROJECTS_READ):
        row = s.get(c.project_path(s.project))
        if row.status == 200:
            s.project_row = body_of(row)
    if ids.scopeless_key:
        _whoami(s, "scopeless_key", "--scopeless-key")
        # the probe is a create (meant to be refused): with --max-creates 0 whoami alone says
        refused = False
        if s.target.budget.can_create():
            probe = s.create(INVALID_BODY, key=ids.scopeless_key)
            refused = probe.status == 403 and error_of(probe).get("code") == "FORBIDDEN_SCOPE"
        if not refused and c.grants(s.scopes("scopeless_key"), c.INFLUENCERS_WRITE):
            raise InputError(
                "--scopeless-key has influencers:write (whoami lists it and the API accepts it); "
                "give a key without that scope"
            )
    if ids.foreign_project_id and c.grants(s.scopes(), c.PROJECTS_READ):
        row = s.get(c.project_path(ids.foreign_project_id))
        if row.status == 200 and org and body_of(row).get("organizationId") == org:  # ours
            raise InputError(
                f"--foreign-project-id {ids.foreign_project_id} belongs to the key's own "
                "organization; give a project of another organization"
            )
    for identity, flag, same_org in (
        ("second_key", "--second-key", True),
        ("foreign_key", "--foreign-key", False),
    ):
        if getattr(ids, identity):
            other = _whoami(s, identity, flag)
            if not (org and other.get("organizationId") and me.get("apiKeyId")):
                continue  # whoami does not say (identity.whoami-describes-key will FAIL)
            if getattr(ids, identity) == ids.api_key or (
                same_org and other.get("apiKeyId") == me.get("apiKeyId")
            ):
                raise InputError(f"{flag} is the same key as --api-key; give another one")
            if (other.get("organizationId") == org) != same_org:
                where = "the same organization as" if same_org else "another organization than"
                raise InputError(f"{flag} must be a key of {where} --api-key")
    _suborganization(s)
    _wallet(s, org)
    if ids.throttle_key:
        _whoami(s, "throttle_key", "--throttle-key")
    if ids.killed_key:
        _whoami(s, "killed_key", "--killed-key")
    if t.control is not None:
        try:
            t.control.clock()
        except TargetUnreachable as exc:
            raise InputError(_unreadable_clock(s, exc)) from exc
        own = t.control.own_keys
        if t.control.tenant_key and own is not None and ids.api_key not in own:
            raise InputError(
                f"--tenant-key is a key of organization {t.control.organization_id} and "
                f"--api-key is not (its organization is {org}): the run's jobs follow "
                "--api-key's organization's clock, which that key cannot move; give a key of "
                "--api-key's organization as --tenant-key"
            )


def _unreadable_clock(s: Session, exc: TargetUnreachable) -> str:
    """Why --control-plane cannot work: the target is no mock, the mock wants a credential
    the run did not give, or the one given is wrong."""
    control = s.target.control
    assert control is not None
    if exc.status == 404:
        return (
            f"--control-plane: {s.target.base_url} has no layers-mock control plane ({exc}); "
            "a deployment that is not a layers-mock is checked without --control-plane"
        )
    if exc.status == 401 and not control.headers:
        return (
            f"--control-plane: the mock's control plane wants a credential ({exc}): give "
            "its --admin-token, or a key of --api-key's organization as --tenant-key"
        )
    flag = "--tenant-key" if control.tenant_key else "--admin-token"
    return f"--control-plane: the mock's clock cannot be read ({exc}); is {flag} right?"


def _suborganization(s: Session) -> None:
    """--org-admin-key has org:admin; --child-organization-id is a child it may act in."""
    ids = s.target.ids
    if ids.org_admin_key:
        admin = _whoami(s, "org_admin_key", "--org-admin-key")
        listed = isinstance(admin.get("scopes"), list)  # else whoami-describes-key judges it
        if listed and not c.grants(s.scopes("org_admin_key"), c.ORG_ADMIN):
            raise InputError(
                f"--org-admin-key lacks {c.ORG_ADMIN} (whoami lists {s.scopes('org_admin_key')})"
            )
        if ids.child_organization_id:
            headers = {c.ORG_HEADER: ids.child_organization_id}
            ex = s.get(c.WHOAMI, ids.org_admin_key, **headers)
            if ex.status in (403, 404):
                raise InputError(
                    f"--child-organization-id {ids.child_organization_id} is not a child of "
                    f"--org-admin-key's organization {admin.get('organizationId')} "
                    f"(whoami with {c.ORG_HEADER} answered {ex.status})"
                )


def _wallet(s: Session, org: object) -> None:
    """--wallet-key is a key of another organization, --wallet-project-id one of its projects."""
    ids = s.target.ids
    if not ids.wallet_key:
        return
    if not ids.wallet_project_id:
        raise InputError("--wallet-key needs --wallet-project-id (its jobs need a project)")
    theirs = _whoami(s, "wallet_key", "--wallet-key").get("organizationId")
    if ids.wallet_key == ids.api_key or (org and theirs == org):
        raise InputError(
            "--wallet-key must be a key of another organization than --api-key: running its "
            "wallet dry would refuse the run's own jobs"
        )
    listed = s.get(c.create_path(ids.wallet_project_id) + "?limit=1", ids.wallet_key)
    if listed.status == 404:
        raise InputError(
            f"--wallet-project-id {ids.wallet_project_id} is not a project of --wallet-key's "
            "organization (its influencer list answered 404)"
        )
    if listed.status == 403:
        raise InputError("--wallet-key lacks influencers:write: its jobs cannot be started")


HEADER_INPUTS = (*Identities.ENV, "child_organization_id")  # every input sent in a header


def _sendable(ids: Identities) -> None:
    """Keys and the child organization travel in headers: printable ASCII, no spaces."""
    for attr in HEADER_INPUTS:
        value = getattr(ids, attr)
        if value and not (
            value.isascii() and value.isprintable() and not any(ch.isspace() for ch in value)
        ):
            flag = "--" + attr.replace("_", "-")
            raise InputError(
                f"{flag} must be printable ASCII without spaces (it is sent in a header)"
            )
