"""Projects (CONTRACT.md: Projects; spec: createProject, getProject).

Creating a project cannot be undone through the API (DELETE only archives), so against a URL
the create clauses run only with `--max-projects N`; reading the given project costs nothing.
The project the run creates is its own: the next two sections list, patch and archive it.
"""

from __future__ import annotations

from typing import Any

from .. import contract as c
from ..clause import Needs, Section
from ..exchange import Exchange
from ..report import NotChecked, Violation
from ..session import Session, body_of, expect_error, field_errors, items_of

SECTION = Section("projects", "Projects")

APP_DESCRIPTION = (
    "Conformance check of the Layers contract: this project exists only to prove that a project "
    "created with an app description starts its first influencer by itself."
)


def need_scope(s: Session, scope: str) -> None:
    if not c.grants(s.scopes(), scope):
        raise NotChecked(f"the key lacks {scope} (whoami)")


@SECTION.clause("projects.get-row")
def get_row(s: Session) -> None:
    """GET /v1/projects/{id} returns the row: the prefixed id, the caller's organization,
    status active, createdAt not after updatedAt."""
    need_scope(s, c.PROJECTS_READ)
    ex = s.get(c.project_path(s.project))
    row = body_of(ex)
    me = s.whoami.get("api_key", {})
    problems = []
    if ex.status != 200:
        raise Violation("projects.get-row", f"GET project answered {ex.status}", ex)
    if row.get("id") != "prj_" + c.bare(s.project):
        problems.append(f"id {row.get('id')!r}")
    if me.get("organizationId") and row.get("organizationId") != me.get("organizationId"):
        problems.append("organizationId is not the caller's")
    if row.get("status") != "active":
        problems.append(f"status {row.get('status')!r}")
    created, updated = c.parse_time(row.get("createdAt")), c.parse_time(row.get("updatedAt"))
    if created is None or updated is None or updated < created:
        problems.append("createdAt/updatedAt")
    if problems:
        raise Violation("projects.get-row", "; ".join(problems), ex)


def create_project(s: Session, body: Any, key: str | None = None) -> Exchange:
    """POST /v1/projects with a fresh Idempotency-Key (or `key`, to retry one)."""
    if s.clock and key is None:
        s.target.advance(1)  # distinct createdAt, so the order is the list's to get right
    headers = {"Idempotency-Key": key or s.target.idempotency_key()}
    return s.call("POST", c.PROJECTS, body, headers=headers)


def own_project(s: Session) -> dict[str, Any]:
    """The run's own project (the one create-returns-row made, or a new one), as GET reads
    it: the project the list, patch and archive clauses may change."""
    need_scope(s, c.PROJECTS_WRITE)
    if s.created_project is None:
        ex = create_project(s, default_project_body(s))
        if ex.status != 201:
            raise NotChecked(f"could not create a project: the create answered {ex.status}")
        s.created_project = ex
    project_id = str(body_of(s.created_project).get("id"))
    read = s.get(c.project_path(project_id))
    if read.status != 200:
        raise Violation(s.clause, f"GET of the run's own project answered {read.status}", read)
    return body_of(read)


def default_project_body(s: Session) -> dict[str, object]:
    return {
        "name": f"Conformance {s.target.seed}",
        "timezone": "Europe/Paris",
        "customerExternalId": f"conformance-{s.target.seed}",
        "metadata": {"conformance": True, "seed": s.target.seed},
    }


@SECTION.clause("projects.create-returns-row", needs=Needs(projects=1))
def create_returns_row(s: Session) -> None:
    """POST /v1/projects is 201 with the full row: what was sent, the defaults (primaryLanguage
    en, brandVoice authentic, targetGender all), the caller's organization; GET returns it."""
    need_scope(s, c.PROJECTS_WRITE)
    clause = "projects.create-returns-row"
    body = default_project_body(s)
    ex = create_project(s, body)
    row = body_of(ex)
    if ex.status != 201:
        raise Violation(clause, f"create project answered {ex.status}", ex)
    s.created_project = ex
    want = {**body, **c.PROJECT_DEFAULTS, "status": "active", "appName": None}
    want |= {
        "appDescription": None,
        "organizationId": s.whoami.get("api_key", {}).get("organizationId"),
    }
    wrong = {k: row.get(k) for k, v in want.items() if row.get(k) != v}
    if wrong or not c.PROJECT_ID.match(str(row.get("id"))):
        raise Violation(clause, f"row differs: {wrong or row.get('id')}", ex)
    if row.get("createdAt") != row.get("updatedAt"):
        raise Violation(clause, "a new row has createdAt != updatedAt", ex)
    if c.grants(s.scopes(), c.PROJECTS_READ):
        read = s.get(c.project_path(str(row.get("id"))))
        if read.status != 200 or body_of(read) != row:
            raise Violation(clause, "GET differs from the create's answer", read)
    listed = s.get(c.create_path(str(row.get("id"))))
    if listed.status != 200 or body_of(listed).get("items") != []:
        raise Violation(clause, "a new project without appDescription lists influencers", listed)


@SECTION.clause("projects.create-idempotent", needs=Needs(projects=1))
def create_idempotent(s: Session) -> None:
    """A project create retried with its Idempotency-Key replays the same row (no second
    project); another body with that key is 409 IDEMPOTENCY_CONFLICT."""
    need_scope(s, c.PROJECTS_WRITE)
    clause = "projects.create-idempotent"
    first = s.created_project or create_project(s, default_project_body(s))
    if first.status != 201:
        raise NotChecked(f"the create answered {first.status}")
    s.created_project = first
    key = first.request_header("Idempotency-Key") or ""
    again = create_project(s, first.request_json(), key)
    if again.status != 201 or again.json() != first.json():
        raise Violation(clause, f"the retry answered {again.status} with another row", again)
    other = create_project(s, {**first.request_json(), "name": "Conformance Other"}, key)
    expect_error(clause, other, 409, "IDEMPOTENCY_CONFLICT")


@SECTION.clause("projects.first-influencer", needs=Needs(projects=1, jobs=1))
def first_influencer(s: Session) -> None:
    """With appDescription the project's first influencer starts by itself: listed at once,
    pending, with the project's targetGender, brandVoice and primaryLanguage."""
    need_scope(s, c.PROJECTS_WRITE)
    clause = "projects.first-influencer"
    body = {
        "name": f"Conformance App {s.target.seed}",
        "timezone": "UTC",
        "appDescription": APP_DESCRIPTION,
        "targetGender": "male",
        "brandVoice": "witty",
        "primaryLanguage": "de",
    }
    ex = create_project(s, body)
    if ex.status != 201:
        raise Violation(clause, f"create project answered {ex.status}", ex)
    listed = s.get(c.create_path(str(body_of(ex).get("id"))))
    items = items_of(listed)
    if listed.status != 200 or len(items) != 1:
        raise Violation(clause, f"the new project lists {len(items)} influencers", listed)
    got = items[0]
    want = {"status": "pending", "gender": "male", "brandVoice": "witty", "language": "de"}
    if not s.clock and got.get("status") == "training":
        want["status"] = "training"  # on a wall clock the job may have moved on already
    wrong = {k: got.get(k) for k, v in want.items() if got.get(k) != v}
    if wrong:
        raise Violation(clause, f"first influencer {wrong}, expected {want}", listed)


ROUND_TRIP_METADATA: dict[str, Any] = {
    "crm": {"id": "conformance-4412", "tags": ["tea", "subscription"], "score": 4.5},
    "flags": {"beta": True, "legacy": None},
    "note": "Thé, café ☕ and 日本茶: metadata is opaque JSON, returned as sent.",
    "list": [1, "two", {"three": [3]}, []],
}


@SECTION.clause("projects.create-round-trips", needs=Needs(projects=1))
def create_round_trips(s: Session) -> None:
    """A project created with ownerEmail, tagline (at most 80) and metadata (opaque JSON, at
    most 8 KB) returns them as sent, on create and on GET; metadata over 8 KB is 422 naming it
    (and creates nothing)."""
    need_scope(s, c.PROJECTS_WRITE)
    clause = "projects.create-round-trips"
    base = {"name": f"Conformance RT {s.target.seed}", "timezone": "UTC"}
    oversized = {**base, "metadata": {"blob": "x" * (c.METADATA_MAX_BYTES + 4096)}}
    too_big = create_project(s, oversized)
    fields = field_errors(clause, too_big)
    if not fields.get("metadata"):
        raise Violation(clause, "metadata over 8 KB: metadata not named", too_big)
    body = {
        **base,
        "ownerEmail": f"conformance+{s.target.seed}@example.com",
        "tagline": ("Conformance: every field comes back as it was sent. " * 2)[: c.TAGLINE_MAX],
        "metadata": ROUND_TRIP_METADATA,
    }
    ex = create_project(s, body)
    if ex.status != 201:
        raise Violation(clause, f"create project answered {ex.status}", ex)
    if s.created_project is None:
        s.created_project = ex
    row = body_of(ex)
    wrong = {k: row.get(k) for k in ("ownerEmail", "tagline", "metadata") if row.get(k) != body[k]}
    if wrong:
        raise Violation(clause, f"not returned as sent: {sorted(wrong)}", ex)
    if c.grants(s.scopes(), c.PROJECTS_READ):
        read = s.get(c.project_path(str(row.get("id"))))
        got = body_of(read)
        if read.status != 200 or any(got.get(k) != v for k, v in body.items()):
            raise Violation(clause, "GET does not return what was sent", read)
