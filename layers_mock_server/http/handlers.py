"""One small function per operationId: translate the call, ask the simulator, shape the reply."""

from __future__ import annotations

from hashlib import blake2b
from typing import Any

from ..core.clock import format_ms
from ..core.errors import ApiError
from ..core.jobs import STAGES, JobFacts, JobState, job_envelope
from ..core.records import ApiKey, InfluencerFacts, Project
from ..core.simulator import JobPlan
from ..deps import Deps
from . import inputs
from .pipeline import Call, Handler, Reply, Resolver
from .render import dumps

# An unkeyed BLAKE2b of the ETag's size, copied per response: the same digest as
# blake2b(payload, digest_size=10), without parsing the constructor's arguments (~0.8 µs).
_ETAG_HASH = blake2b(digest_size=10)
# job id -> (the job's record, its state, the body and ETag rendered for them). The body is a
# function of the record's fixed fields and the state, so a read whose state is equal (a poll
# within the same 60 ms of progress, any poll of a finished job, every poll on a virtual clock
# that has not moved) reuses the bytes and their tag: ~3 µs of a ~40 µs get job. The record is
# compared by identity, so a reset or an import that mints the same id never matches.
_RENDERED: dict[str, tuple[JobFacts, JobState, bytes, str]] = {}
RENDERED_MAX = 1024  # jobs; ~0.7 KB each


def plan_for(call: Call, project: Project | None) -> JobPlan:
    """Prefer header first, then the project's fixture outcome, then the server's defaults."""
    prefs = call.prefs
    outcome = prefs.outcome or (project.outcome if project else None) or "completed"
    end_stage = STAGES.index(prefs.stage) if prefs.stage else len(STAGES) - 1
    progression = prefs.progression or call.deps.progression
    return JobPlan(outcome, end_stage, progression)  # type: ignore[arg-type]


def create_influencer(call: Call) -> Reply:
    project: Project = call.resources["projectId"]
    sim = call.deps.sim
    body = sim.create_influencer(
        project,
        call.body,
        plan_for(call, project),
        call.idempotency_scope,
        sim.job_credits(call.key),
    )
    return Reply(202, body, [("location", body["locationUrl"])])


def clone_influencer(call: Call) -> Reply:
    source: InfluencerFacts = call.resources["influencerId"]
    sim = call.deps.sim
    project = sim.state.projects[source.project_id]
    body = sim.clone_influencer(
        source,
        call.body,
        plan_for(call, project),
        call.idempotency_scope,
        sim.job_credits(call.key),
    )
    return Reply(202, body, [("location", body["locationUrl"])])


def get_job(call: Call) -> Reply:
    job: JobFacts = call.resources["jobId"]
    state = call.deps.sim.read_job(job)
    rendered = _RENDERED.get(job.job_id)
    if rendered is not None and rendered[0] is job and rendered[1] == state:
        payload, etag = rendered[2], rendered[3]
    else:
        # a right-sized copy: the bytes orjson hands over keep its 4 KiB buffer (tracemalloc)
        payload = memoryview(dumps(job_envelope(job, state, format_ms))).tobytes()
        hasher = _ETAG_HASH.copy()
        hasher.update(payload)
        etag = '"' + hasher.hexdigest() + '"'
        if len(_RENDERED) >= RENDERED_MAX:
            _RENDERED.clear()
        _RENDERED[job.job_id] = (job, state, payload, etag)
    if not_modified(call.headers.get("if-none-match"), etag):
        return Reply(304, None, [("etag", etag)])
    return Reply(200, payload, [("etag", etag)])  # encoded once: the tag is of these bytes


def not_modified(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 section 13.1.2: `*`, or a list of tags of which one matches (weakly: W/ or
    not). A cache holding two versions sends both; two lines of the header are one list."""
    if if_none_match is None:
        return False
    if if_none_match in (etag, "W/" + etag, "*"):  # the usual one tag, at no cost
        return True
    return any(t.strip().removeprefix("W/") == etag for t in if_none_match.split(","))


def cancel_job(call: Call) -> Reply:
    status, body = call.deps.sim.cancel_job(call.resources["jobId"])
    return Reply(status, body)


def get_influencer(call: Call) -> Reply:
    return Reply(200, call.deps.sim.influencer_body(call.resources["influencerId"]))


def list_influencers(call: Call) -> Reply:
    q = call.query
    body = call.deps.sim.list_influencers(
        call.resources["projectId"], q["limit"], q.get("cursor"), q.get("status")
    )
    return Reply(200, body)


def patch_influencer(call: Call) -> Reply:
    return Reply(200, call.deps.sim.patch_influencer(call.resources["influencerId"], call.body))


def delete_influencer(call: Call) -> Reply:
    return Reply(200, call.deps.sim.delete_influencer(call.resources["influencerId"]))


def whoami(call: Call) -> Reply:
    return Reply(200, call.deps.sim.whoami(call.key))


def create_project(call: Call) -> Reply:
    sim = call.deps.sim
    plan = plan_for(call, None)
    return Reply(201, sim.create_project(call.key, call.body, plan, call.idempotency_scope))


def get_project(call: Call) -> Reply:
    return Reply(200, call.deps.sim.project_body(call.resources["projectId"]))


def list_projects(call: Call) -> Reply:
    return Reply(200, call.deps.sim.list_projects(call.key, call.query))


def patch_project(call: Call) -> Reply:
    return Reply(200, call.deps.sim.patch_project(call.resources["projectId"], call.body))


def delete_project(call: Call) -> Reply:
    return Reply(200, call.deps.sim.archive_project(call.resources["projectId"]))


def get_credits(call: Call) -> Reply:
    return Reply(200, call.deps.sim.credits(call.key))


def project_rate_class(body: inputs.Body) -> str:
    """Creating a project is long-running only when appDescription starts an influencer."""
    try:
        _, parsed = inputs.parse_json(body)
    except ApiError:  # a bad body is reported at step 5, after auth, rate limit and scope
        return "write-light"
    return (
        "long-running" if isinstance(parsed, dict) and "appDescription" in parsed else "write-light"
    )


HANDLERS: dict[str, Handler] = {
    "createInfluencer": create_influencer,
    "getJob": get_job,
    "cancelJob": cancel_job,
    "getInfluencer": get_influencer,
    "listInfluencers": list_influencers,
    "patchInfluencer": patch_influencer,
    "deleteInfluencer": delete_influencer,
    "whoami": whoami,
    "createProject": create_project,
    "getProject": get_project,
    "listProjects": list_projects,
    "patchProject": patch_project,
    "deleteProject": delete_project,
    "cloneInfluencer": clone_influencer,
    "getCredits": get_credits,
}

RATE_CLASS_OF = {"createProject": project_rate_class}


def _project(deps: Deps, key: ApiKey, raw: str) -> Project:
    return deps.sim.project_for(key, raw)


def _influencer(deps: Deps, key: ApiKey, raw: str) -> Any:
    return deps.sim.influencer_for(key, raw)


def _job(deps: Deps, key: ApiKey, raw: str) -> JobFacts:
    return deps.sim.job_for(key, raw)


RESOLVERS: dict[str, Resolver] = {
    "projectId": _project,
    "influencerId": _influencer,
    "jobId": _job,
}
