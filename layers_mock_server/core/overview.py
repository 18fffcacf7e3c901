"""Read-only views over every organization's jobs and projects, for the control plane.

A partner sees one job at a time through its own key; QA watching the mock wants all of them,
each with where it stands in its stages and how it is planned to end. Everything here is
derived from facts and an instant, like the partner views, and nothing here writes: reading a
job in `poll` progression through these views does not count as a poll.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .clock import MAX_MS
from .errors import not_found
from .influencers import influencer_view
from .jobs import DONE, STAGES, JobFacts, JobState, boundary_ms, influencer_status, job_envelope
from .jobs import job_state as state_of
from .state import State

Fmt = Callable[[int], str]
# A status filter examines at most this many of the newest jobs in scope, so that one
# dashboard refresh over a million jobs stays a bounded piece of work.
MAX_SCAN = 10_000


def _stage_progress(job: JobFacts, state: JobState, now_ms: int) -> float:
    """How far through its current stage the job is (at its end, for a finished job)."""
    if state.status == "completed":
        return 1.0
    start = boundary_ms(job, state.stage)
    end = boundary_ms(job, state.stage + 1)
    if start is None or end is None or end <= start:
        return 0.0  # poll progression: a stage lasts until the next poll, not for a time
    at = state.finished_ms if state.finished_ms is not None else now_ms
    return round(min(max((at - start) / (end - start), 0.0), 1.0), 3)


def _next_boundary(job: JobFacts, state: JobState) -> int | None:
    """When the running job next changes stage (or ends); None when time will not move it."""
    if state.status != "running" or job.progression == "poll":
        return None
    return boundary_ms(job, min(state.stage + 1, DONE))


def job_summary(state: State, job: JobFacts, now_ms: int, fmt: Fmt) -> dict[str, Any]:
    current = state_of(job, now_ms)
    inf = state.influencers.get(job.influencer_id)
    if inf is None:
        name, inf_status = None, None
    else:
        name = inf.name_override or inf.generated_name
        inf_status = "deleted" if inf.deleted_ms is not None else influencer_status(current)
    boundary = _next_boundary(job, current)
    return {
        "jobId": job.job_id,
        "organizationId": job.org_id,
        "projectId": job.project_id,
        "influencerId": job.influencer_id,
        "influencerName": name,
        "influencerStatus": inf_status,
        "status": current.status,
        "stage": STAGES[current.stage],
        "stageIndex": current.stage,
        "stageProgress": _stage_progress(job, current, now_ms),
        "progress": current.progress,
        "startedAt": fmt(job.started_ms),
        "finishedAt": None if current.finished_ms is None else fmt(current.finished_ms),
        # A boundary past the last instant a clock can show is never reached: null, not a 500.
        "nextBoundaryAt": None if boundary is None or boundary > MAX_MS else fmt(boundary),
        "plan": {
            "outcome": job.outcome,
            "endStage": None if job.outcome == "completed" else STAGES[job.end_stage],
            "progression": job.progression,
        },
    }


def job_detail(state: State, job_id: str, now_ms: int, fmt: Fmt) -> dict[str, Any]:
    """The summary plus exactly what the partner's GET /v1/jobs and /v1/influencers show."""
    job = state.jobs.get(job_id)
    if job is None:
        raise not_found("Job")
    inf = state.influencers.get(job.influencer_id)
    visible = inf is not None and inf.deleted_ms is None
    now_ms = state.clocks.now(job.org_id, now_ms)  # its organization may have its own clock
    return {
        "summary": job_summary(state, job, now_ms, fmt),
        "job": job_envelope(job, state_of(job, now_ms), fmt),
        "influencer": influencer_view(inf, job, now_ms, fmt) if visible and inf else None,
    }


def _project_jobs(state: State, project_id: str) -> Iterator[JobFacts]:
    project = state.projects[project_id]
    for influencer_id in reversed(project.influencer_ids):
        inf = state.influencers.get(influencer_id)
        job = state.jobs.get(inf.job_id) if inf is not None else None
        if job is not None:
            yield job


def _newest_first(
    state: State, organization_id: str | None, project_id: str | None
) -> Iterable[JobFacts]:
    if project_id is not None:
        project = state.projects.get(project_id)
        if project is None:
            raise not_found("Project")
        if organization_id is not None and project.org_id != organization_id:
            return ()  # filters combine with AND: a project of another organization has none
        return _project_jobs(state, project_id)
    if organization_id is not None:
        # Each project's list is newest first; merging them costs O(limit log projects).
        per_project = [
            _project_jobs(state, p.project_id)
            for p in state.projects.values()
            if p.org_id == organization_id
        ]
        return heapq.merge(*per_project, key=lambda job: -job.started_ms)
    return reversed(state.jobs.values())


def jobs_overview(
    state: State,
    now_ms: int,
    fmt: Fmt,
    *,
    organization_id: str | None = None,
    project_id: str | None = None,
    status: str | None = None,
    limit: int = 50,
) -> dict[str, Any]:
    """The newest `limit` jobs matching every given filter, newest first."""
    if organization_id is not None and organization_id not in state.organizations:
        raise not_found("Organization")
    items: list[dict[str, Any]] = []
    truncated = False
    for examined, job in enumerate(_newest_first(state, organization_id, project_id)):
        if len(items) == limit:
            break
        if status is not None and examined >= MAX_SCAN:
            truncated = True
            break
        summary = job_summary(state, job, state.clocks.now(job.org_id, now_ms), fmt)
        if status is None or summary["status"] == status:
            items.append(summary)
    now_ms = state.clocks.now(organization_id, now_ms)  # the server's, or the one asked about
    return {"now": fmt(now_ms), "items": items, "truncated": truncated}


def projects_overview(
    state: State, fmt: Fmt, *, organization_id: str | None = None, limit: int = 200
) -> dict[str, Any]:
    """Every project the mock knows (fixtures first, then by creation), up to `limit`."""
    if organization_id is not None and organization_id not in state.organizations:
        raise not_found("Organization")
    items: list[dict[str, Any]] = []
    truncated = False
    for project in state.projects.values():
        if organization_id is not None and project.org_id != organization_id:
            continue
        if len(items) == limit:
            truncated = True
            break
        items.append(
            {
                "projectId": project.project_id,
                "organizationId": project.org_id,
                "name": project.name,
                "influencers": len(project.influencer_ids),
                "createdAt": fmt(project.created_ms),
            }
        )
    return {"items": items, "truncated": truncated}
