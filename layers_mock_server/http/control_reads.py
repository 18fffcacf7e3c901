"""Read-only control routes: every job and project across organizations, and the chaos profile.

The dashboard is built on these (and the older /_mock/ routes), never on the state directly,
so a script sees exactly what the page shows. None of them writes: they are safe to poll.
"""

from __future__ import annotations

from typing import Any

from ..core.clock import format_ms
from ..core.errors import not_found
from ..core.overview import job_detail, jobs_overview, projects_overview
from ..deps import Deps
from .access import Principal
from .pipeline import Reply


def _narrowed(deps: Deps, who: Principal, organization_id: str | None) -> str | None:
    """The organization a list is filtered to: a tenant's own when it names none; another
    tenant's is 404, as an unknown organization is."""
    if who.organization_id is None:
        return organization_id
    if organization_id is not None and organization_id != who.organization_id:
        raise not_found("Organization")
    return who.organization_id


def list_jobs(
    deps: Deps,
    body: dict[str, Any],
    query: dict[str, Any],
    path: dict[str, str],
    who: Principal,
) -> Reply:
    project = deps.sim.state.projects.get(query.get("projectId") or "")
    if project is not None and not who.sees(project.org_id):
        raise not_found("Project")  # another tenant's: exactly as if it did not exist
    overview = jobs_overview(
        deps.sim.state,
        deps.sim.now(),
        format_ms,
        organization_id=_narrowed(deps, who, query.get("organizationId")),
        project_id=query.get("projectId"),
        status=query.get("status"),
        limit=query.get("limit", 50),
    )
    return Reply(200, overview)


def get_job(
    deps: Deps,
    body: dict[str, Any],
    query: dict[str, Any],
    path: dict[str, str],
    who: Principal,
) -> Reply:
    job = deps.sim.state.jobs.get(path["jobId"])
    if job is not None and not who.sees(job.org_id):
        raise not_found("Job")  # another tenant's: exactly as if it did not exist
    return Reply(200, job_detail(deps.sim.state, path["jobId"], deps.sim.now(), format_ms))


def list_projects(
    deps: Deps,
    body: dict[str, Any],
    query: dict[str, Any],
    path: dict[str, str],
    who: Principal,
) -> Reply:
    overview = projects_overview(
        deps.sim.state,
        format_ms,
        organization_id=_narrowed(deps, who, query.get("organizationId")),
        limit=query.get("limit", 200),
    )
    return Reply(200, overview)


def get_chaos(
    deps: Deps,
    body: dict[str, Any],
    query: dict[str, Any],
    path: dict[str, str],
    who: Principal,
) -> Reply:
    chaos = deps.chaos
    if chaos is None:
        return Reply(200, {"profile": None})
    latency = {"probability": chaos.latency_probability, "ms": chaos.latency_ms}
    return Reply(200, {"profile": {"faults": dict(chaos.faults), "latency": latency}})


READ_HANDLERS = {
    "mockListJobs": list_jobs,
    "mockGetJob": get_job,
    "mockListProjects": list_projects,
    "mockGetChaos": get_chaos,
}
