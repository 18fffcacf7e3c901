"""Project updates and archive (spec: patchProject, deleteProject). Only the run's own project
is ever changed (see projects.own_project), so against a URL these need `--max-projects`.

PATCH is partial and `metadata` is replaced whole; read-only system fields are refused; DELETE
is a soft archive, reversible with PATCH {"status": "active"}; an archived project starts no job.
"""

from __future__ import annotations

import contextlib
from typing import Any

from .. import contract as c
from ..clause import Needs, Section
from ..exchange import Exchange
from ..report import NotChecked, Violation
from ..session import Session, body_of, expect_error, field_errors, items_of
from .projects import own_project

SECTION = Section("project-changes", "Project updates and archive")
JSON = dict[str, Any]


def _patch(s: Session, project: JSON, body: JSON) -> Exchange:
    return s.call("PATCH", c.project_path(str(project.get("id"))), body)


def _read(s: Session, clause: str, project: JSON) -> JSON:
    ex = s.get(c.project_path(str(project.get("id"))))
    if ex.status != 200:
        raise Violation(clause, f"GET of the run's own project answered {ex.status}", ex)
    return body_of(ex)


@SECTION.clause("projects.patch-partial", needs=Needs(projects=1))
def patch_partial(s: Session) -> None:
    """PATCH sets the fields sent and leaves the others as they were; metadata is replaced
    whole (never merged); updatedAt moves forward; GET returns the PATCH's answer."""
    clause = "projects.patch-partial"
    before = own_project(s)
    if s.clock:
        s.target.advance(2)  # so that updatedAt must move to a new instant
    sent = {
        "tagline": f"Conformance patch {s.target.seed}",
        "metadata": {"replaced": True},  # none of the keys it had: a merge shows
    }
    ex = _patch(s, before, sent)
    got = body_of(ex)
    if ex.status != 200:
        raise Violation(clause, f"PATCH answered {ex.status}", ex)
    wrong = sorted(k for k, v in sent.items() if got.get(k) != v)
    kept = set(before) - set(sent) - {"updatedAt"}
    changed = sorted(k for k in kept if got.get(k) != before.get(k))
    if wrong or changed:
        raise Violation(clause, f"not applied: {wrong}; changed although omitted: {changed}", ex)
    was, now = c.parse_time(before.get("updatedAt")), c.parse_time(got.get("updatedAt"))
    if was is None or now is None or now < was or (s.clock and now <= was):
        raise Violation(clause, "updatedAt did not move forward", ex)
    if _read(s, clause, before) != got:
        raise Violation(clause, "GET after the PATCH differs from the PATCH's answer", ex)


@SECTION.clause("projects.patch-readonly-422", needs=Needs(projects=1))
def patch_readonly_422(s: Session) -> None:
    """PATCH of a read-only system field (id, organizationId, createdAt, ingestState,
    brandContext) is 422 VALIDATION naming each one, and nothing of the body is applied (400
    passes too where it is not the mock: the docs' PATCH page says 400)."""
    clause = "projects.patch-readonly-422"
    before = own_project(s)
    status = 422 if s.mock else (400, 422)
    readonly: JSON = {
        "id": "prj_00000000-0000-4000-8000-00000000e0e0",
        "organizationId": "org_00000000-0000-4000-8000-00000000e0e0",
        "createdAt": "2020-01-01T00:00:00.000Z",
        "ingestState": {"github": None},
        "brandContext": {"appName": "Conformance"},
    }
    ex = _patch(s, before, readonly)
    fields = field_errors(clause, ex, status=status)
    unnamed = [k for k in c.PROJECT_READ_ONLY if not fields.get(k)]
    if unnamed:
        raise Violation(clause, f"read-only fields not named: {unnamed}", ex)
    for name in ("id", "createdAt"):  # each alone, beside a field that could be applied
        one = _patch(s, before, {name: readonly[name], "tagline": "Conformance read-only"})
        if not field_errors(clause, one, status=status).get(name):
            raise Violation(clause, f"{name} beside a valid field: {name} not named", one)
    after = _read(s, clause, before)
    if after != before:
        changed = sorted(k for k in set(after) | set(before) if after.get(k) != before.get(k))
        raise Violation(clause, f"a refused PATCH changed the project: {changed}", ex)


def _archive(s: Session, clause: str, project: JSON) -> Exchange:
    ex = s.call("DELETE", c.project_path(str(project.get("id"))))
    if ex.status != 200:
        raise Violation(clause, f"DELETE (archive) answered {ex.status}", ex)
    return ex


def _restore(s: Session, clause: str, project: JSON) -> Exchange:
    ex = _patch(s, project, {"status": "active"})
    if ex.status != 200 or body_of(ex).get("status") != "active":
        got = body_of(ex).get("status")
        raise Violation(clause, f"PATCH status=active answered {ex.status}, status {got!r}", ex)
    return ex


def _listed(s: Session, project: JSON, status: str) -> tuple[Exchange, bool | None]:
    """Is the project on GET /v1/projects?status=…? None when the page cannot say."""
    ex = s.get(f"{c.PROJECTS}?limit={c.PROJECT_LIMIT_MAX}&status={status}")
    ids = {i.get("id") for i in items_of(ex)}
    if project.get("id") in ids:
        return ex, True
    return ex, None if body_of(ex).get("nextCursor") is not None else False


@SECTION.clause("projects.archive-reversible", needs=Needs(projects=1))
def archive_reversible(s: Session) -> None:
    """DELETE archives the project: it stays readable with status archived and is listed
    under status=archived; PATCH {"status": "active"} restores it."""
    clause = "projects.archive-reversible"
    project = own_project(s)
    _archive(s, clause, project)
    read = _read(s, clause, project)
    if read.get("status") != "archived":
        raise Violation(clause, f"after DELETE the project is {read.get('status')!r}", None)
    ex, listed = _listed(s, project, "archived")
    if listed is False:
        raise Violation(clause, "the archived project is not listed under status=archived", ex)
    _restore(s, clause, project)
    read = _read(s, clause, project)
    if read.get("status") != "active":
        raise Violation(clause, f"after the restore the project is {read.get('status')!r}", None)
    ex, listed = _listed(s, project, "active")
    if listed is False:
        raise Violation(clause, "the restored project is not listed under status=active", ex)


@SECTION.clause("projects.archived-refuses-jobs", needs=Needs(projects=1, jobs=1))
def archived_refuses_jobs(s: Session) -> None:
    """A new job in an archived project is refused and nothing starts (the docs: archiving
    stops generation); on the mock, 409 CONFLICT with details.subcode PROJECT_ARCHIVED."""
    clause = "projects.archived-refuses-jobs"
    project = own_project(s)
    path = c.create_path(str(project.get("id")))
    before = {i.get("influencerId") for i in items_of(s.get(path + f"?limit={c.LIMIT_MAX}"))}
    _archive(s, clause, project)
    try:
        s.spend_job()  # a deployment that ignores the archive starts a job here
        ex = s.create({"prompt": "conformance archived"}, project=str(project.get("id")))
        error = expect_error(clause, ex, 409 if s.mock else None, "CONFLICT" if s.mock else None)
        if s.mock and (error.get("details") or {}).get("subcode") != c.ARCHIVED_SUBCODE:
            raise Violation(clause, f"details.subcode is not {c.ARCHIVED_SUBCODE}", ex)
        listed = s.get(path + f"?limit={c.LIMIT_MAX}")
        if {i.get("influencerId") for i in items_of(listed)} != before:
            raise Violation(clause, "the refused create left an influencer behind", listed)
    finally:
        with contextlib.suppress(Violation, NotChecked):  # archive-reversible judges restores
            _restore(s, clause, project)
