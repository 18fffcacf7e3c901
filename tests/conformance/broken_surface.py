"""Broken deployments: the surface around the flow (project lists, updates and archive, clone,
sub-organizations, credits, the not-simulated routes, cursors, rate limits in client time)."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl, urlencode

from conformance.broken_deployments import breaks
from conformance.broken_jobs import edit
from conformance.rewrite import Ctx, Req, Resp, error
from support import CHILD_ORG

PROJECT_ROW = re.compile(r"^/v1/projects/[^/]+$")
CLONE = re.compile(r"^/v1/influencers/([^/]+)/clone$")
ORG = "x-layers-organization"
READ_ONLY = ("id", "organizationId", "createdAt", "ingestState", "brandContext")


def sim(ctx: Ctx) -> Any:
    return ctx.app.state.deps.sim


def is_project_create(req: Req) -> bool:
    return req.method == "POST" and req.path == "/v1/projects" and isinstance(req.json(), dict)


def is_project_patch(req: Req) -> bool:
    return req.method == "PATCH" and bool(PROJECT_ROW.match(req.path))


def query(req: Req) -> dict[str, str]:
    return dict(parse_qsl(req.query, keep_blank_values=True))


# -- project create, lists, updates and archive ---------------------------------------------------
@breaks("projects.create-round-trips", on="request")
def owner_email_ignored(req: Req, ctx: Ctx) -> None:
    """ownerEmail is not read on create: every project gets the key's owner."""
    body = req.json()
    if is_project_create(req) and "ownerEmail" in body:
        del body["ownerEmail"]
        req.set_json(body)


@breaks("projects.create-round-trips", on="request")
def oversized_metadata_dropped(req: Req, ctx: Ctx) -> None:
    """metadata over 8 KB is silently dropped instead of refused."""
    body = req.json()
    if is_project_create(req) and len(json.dumps(body.get("metadata", {}))) > 8192:
        body["metadata"] = {}
        req.set_json(body)


@breaks("projects.list-newest-first")
def projects_oldest_first(req: Req, resp: Resp, ctx: Ctx) -> None:
    """GET /v1/projects lists the oldest first (ORDER BY created_at, the default)."""
    if req.method == "GET" and req.path == "/v1/projects" and resp.status == 200:
        edit(resp, items=list(reversed(resp.json()["items"])))


@breaks("projects.list-filters")
def project_search_case_sensitive(req: Req, resp: Resp, ctx: Ctx) -> None:
    """search= matches the name case-sensitively (LIKE instead of ILIKE)."""
    needle = query(req).get("search")
    if req.method == "GET" and req.path == "/v1/projects" and needle and resp.status == 200:
        edit(resp, items=[p for p in resp.json()["items"] if needle in p["name"]])


@breaks("projects.patch-partial", on="request")
def project_patch_replaces_row(req: Req, ctx: Ctx) -> None:
    """PATCH behaves as PUT: the optional text fields omitted from the body are cleared."""
    body = req.json()
    if is_project_patch(req) and isinstance(body, dict) and "status" not in body:
        for name in ("customerExternalId", "appName", "appDescription", "tagline"):
            body.setdefault(name, None)
        req.set_json(body)


@breaks("projects.patch-partial", on="request")
def project_metadata_merged(req: Req, ctx: Ctx) -> None:
    """PATCH merges metadata into the stored one instead of replacing it."""
    body = req.json()
    if is_project_patch(req) and isinstance(body, dict) and isinstance(body.get("metadata"), dict):
        project = sim(ctx).state.projects.get(req.path.rsplit("/", 1)[1])
        if project is not None:
            body["metadata"] = {**project.metadata, **body["metadata"]}
            req.set_json(body)


@breaks("projects.patch-readonly-422", on="request")
def project_readonly_dropped(req: Req, ctx: Ctx) -> None:
    """Read-only fields in a project PATCH are silently dropped."""
    body = req.json()
    if is_project_patch(req) and isinstance(body, dict):
        req.set_json({k: v for k, v in body.items() if k not in READ_ONLY})


@breaks("projects.archive-reversible", on="request")
def project_restore_ignored(req: Req, ctx: Ctx) -> None:
    """PATCH {"status": "active"} on an archived project leaves it archived."""
    body = req.json()
    if is_project_patch(req) and isinstance(body, dict) and body.get("status") == "active":
        body["status"] = "archived"
        req.set_json(body)


@breaks("projects.archived-refuses-jobs")
def archived_project_hidden(req: Req, resp: Resp, ctx: Ctx) -> None:
    """A create in an archived project answers 404 (archived projects are hidden)."""
    body = resp.json()
    details = (body or {}).get("error", {}).get("details") or {}
    if resp.status == 409 and details.get("subcode") == "PROJECT_ARCHIVED":
        error(resp, 404, "NOT_FOUND")


# -- clone ---------------------------------------------------------------------------------------
@breaks("influencers.clone-accepted", on="request")
def clone_ignores_overrides(req: Req, ctx: Ctx) -> None:
    """A clone copies the source and ignores its overrides."""
    body = req.json()
    if req.method == "POST" and CLONE.match(req.path) and isinstance(body, dict) and body:
        body.pop("overrides", None)
        req.set_json(body)


@breaks("influencers.clone-accepted", on="request")
def clone_ignores_idempotency_key(req: Req, ctx: Ctx) -> None:
    """Clones ignore Idempotency-Key: a retry clones a second time."""
    if req.method == "POST" and CLONE.match(req.path):
        req.headers.pop("idempotency-key", None)


@breaks("influencers.clone-404")
def clone_of_deleted_is_409(req: Req, resp: Resp, ctx: Ctx) -> None:
    """Cloning a deleted influencer answers 409 CONFLICT (it exists, archived) instead of 404."""
    found = CLONE.match(req.path)
    if req.method == "POST" and found and resp.status == 404:
        source = sim(ctx).state.influencers.get(found.group(1))
        if source is not None and source.deleted_ms is not None:
            error(resp, 409, "CONFLICT")


@breaks("influencers.clone-strict-body", on="request")
def clone_unknown_overrides_dropped(req: Req, ctx: Ctx) -> None:
    """Unknown override fields are dropped instead of refused."""
    body = req.json()
    known = {"gender", "ageRange", "brandVoice", "language"}
    if req.method == "POST" and CLONE.match(req.path) and isinstance(body, dict):
        overrides = body.get("overrides")
        if isinstance(overrides, dict) and set(overrides) - known:
            body["overrides"] = {k: v for k, v in overrides.items() if k in known}
            req.set_json(body)


# -- sub-organizations ----------------------------------------------------------------------------
@breaks("tenancy.suborg-acts-in-child")
def whoami_ignores_organization(req: Req, resp: Resp, ctx: Ctx) -> None:
    """whoami ignores X-Layers-Organization and reports the key's own organization."""
    if req.path == "/v1/whoami" and ORG in req.headers and resp.status == 200:
        body = resp.json()
        parent = body["parentOrganizationId"]
        body.update(organizationId=parent, workspaceId=parent, parentOrganizationId=None)
        resp.set_json(body)


@breaks("tenancy.suborg-needs-org-admin", on="request")
def org_header_ignored_without_admin(req: Req, ctx: Ctx) -> None:
    """X-Layers-Organization is ignored (not refused) when the key lacks org:admin."""
    key = sim(ctx).state.keys.get(req.key)
    if ORG in req.headers and key is not None and not key.allows("org:admin"):
        del req.headers[ORG]


@breaks("tenancy.suborg-non-child-404", on="request")
def non_child_organization_ignored(req: Req, ctx: Ctx) -> None:
    """An organization that is not a child is ignored: the key acts in its own."""
    if ORG in req.headers and req.headers[ORG] not in (CHILD_ORG, CHILD_ORG[4:]):
        del req.headers[ORG]


# -- credits --------------------------------------------------------------------------------------
@breaks("credits.whoami-matches-wallet")
def credit_balance_is_available(req: Req, resp: Resp, ctx: Ctx) -> None:
    """whoami's creditBalance is the wallet's available credits, not its balance."""
    if req.path == "/v1/whoami" and resp.status == 200:
        body = resp.json()
        edit(resp, creditBalance=sim(ctx).wallet(body["organizationId"]).available)


@breaks("credits.reserve-then-settle")
def reservations_hidden(req: Req, resp: Resp, ctx: Ctx) -> None:
    """GET /v1/credits leaves reservations out: a running job costs nothing until it ends."""
    if req.path == "/v1/credits" and resp.status == 200:
        edit(resp, reservedCredits=0, available=resp.json()["balance"])


@breaks("credits.exhausted-402")
def billing_code_renamed(req: Req, resp: Resp, ctx: Ctx) -> None:
    """An exhausted wallet answers 402 with the code PAYMENT_REQUIRED."""
    if resp.status == 402:
        error(resp, 402, "PAYMENT_REQUIRED", {"requiredCredits": 10, "availableCredits": 0})


# -- errors, cursors, rate limits -----------------------------------------------------------------
@breaks("errors.not-simulated-501")
def not_simulated_is_404(req: Req, resp: Resp, ctx: Ctx) -> None:
    """A Layers operation the mock does not simulate answers 404 "No route"."""
    if resp.status == 501:
        error(resp, 404, "NOT_FOUND")


@breaks("lists.any-wellformed-cursor", on="request")
def long_cursor_overflows(req: Req, ctx: Ctx) -> None:
    """Cursors are decoded into 32 bits: one of more than 6 digits is "Malformed cursor"."""
    params = query(req)
    if req.method == "GET" and len(params.get("cursor", "")) > 6:
        params["cursor"] = "!"
        req.query = urlencode(params)


@breaks("ratelimits.client-time")
def reset_in_milliseconds(req: Req, resp: Resp, ctx: Ctx) -> None:
    """X-RateLimit-Reset is sent in milliseconds."""
    reset = resp.headers.get("x-ratelimit-reset", "")
    if reset.isdigit():
        resp.headers["x-ratelimit-reset"] = str(int(reset) * 1000)
