"""The simulated Layers API: operations on State, given a clock. No HTTP in here.

Handlers (http/handlers.py) translate a request into one of these calls and the answer back
into a response; everything a partner can observe is decided here.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

import orjson

from .clock import Clock, format_ms
from .errors import ApiError, not_found, validation
from .fixtures import Fixtures
from .ids import persona_name
from .influencers import default_gender, influencer_view
from .jobs import (
    DONE,
    KIND,
    NOT_CANCELABLE,
    STAGES,
    JobFacts,
    Outcome,
    Progression,
    job_envelope,
    job_state,
    record_poll,
)
from .records import ApiKey, InfluencerFacts, Project, canonical_id
from .state import State

ALREADY = {
    "completed": "ALREADY_COMPLETED",
    "failed": "ALREADY_FAILED",
    "canceled": "ALREADY_CANCELED",
}


@dataclass(frozen=True, slots=True)
class JobPlan:
    """How a new job will end: chosen by Prefer, a rule, the project's fixture, or the default."""

    outcome: Outcome = "completed"
    end_stage: int = DONE - 1
    progression: Progression = "time"


class Simulator:
    def __init__(self, fixtures: Fixtures, clock: Clock, seed: int = 0) -> None:
        self.fixtures = fixtures
        self.clock = clock
        self.state = State.from_fixtures(fixtures, seed)

    # -- lifecycle -------------------------------------------------------------------------

    def reset(self, seed: int | None = None, organization_id: str | None = None) -> None:
        if organization_id is not None:
            if organization_id not in self.fixtures.organizations:
                raise not_found("Organization")
            self.state.drop_organization(organization_id, self.fixtures)
            return
        self.state = State.from_fixtures(self.fixtures, self.state.seed if seed is None else seed)
        self.clock.reset()

    def replace_state(self, state: State) -> None:
        self.state = state

    def now(self) -> int:
        return self.clock.now_ms()

    # -- identity and lookups (steps 1 and 4 of the order of checks) ------------------------

    def authenticate(self, authorization: str | None) -> ApiKey:
        if not authorization:
            raise ApiError("UNAUTHENTICATED", "Missing API key: send Authorization: Bearer <key>.")
        scheme, _, token = authorization.partition(" ")
        key = self.state.keys.get(token.strip()) if scheme.lower() == "bearer" else None
        if key is None:
            raise ApiError("UNAUTHENTICATED", "Missing, malformed, or wrong API key.")
        if key.killed:
            raise ApiError(
                "KILL_SWITCH",
                "This API key has been disabled by its kill switch.",
                {"scope": "key"},
            )
        return key

    def project_for(self, key: ApiKey, raw: str) -> Project:
        project_id = canonical_id("prj_", raw)
        project = self.state.projects.get(project_id) if project_id else None
        if project is None or project.org_id != key.org_id:
            raise not_found("Project")
        return project

    def influencer_for(self, key: ApiKey, raw: str) -> InfluencerFacts:
        influencer_id = canonical_id("inf_", raw)
        inf = self.state.influencers.get(influencer_id) if influencer_id else None
        if inf is None or inf.org_id != key.org_id or inf.deleted_ms is not None:
            raise not_found("Influencer")
        return inf

    def job_for(self, key: ApiKey, raw: str) -> JobFacts:
        job = self.state.jobs.get(raw)
        if job is None or job.org_id != key.org_id:
            raise not_found("Job")
        return job

    # -- influencers ------------------------------------------------------------------------

    def create_influencer(
        self, project: Project, body: dict[str, Any], plan: JobPlan, scope: str | None = None
    ) -> dict[str, Any]:
        """Start an influencer_create job; the influencer exists, pending, at once."""
        now = self.now()
        mint = self.state.mint
        influencer_id = "inf_" + mint.uuid("inf", scope)
        job_id = "job_" + mint.ulid("job", now, scope)
        gender = body.get("gender") or default_gender(project.target_gender)
        inf = InfluencerFacts(
            influencer_id=influencer_id,
            org_id=project.org_id,
            project_id=project.project_id,
            job_id=job_id,
            created_ms=now,
            gender=gender,
            age_range=body.get("ageRange", "young_adult"),
            brand_voice=project.brand_voice,
            language=project.primary_language,
            generated_name=persona_name(self.state.seed, influencer_id, gender),
            prompt=body.get("prompt"),
            position=len(project.influencer_ids),
        )
        job = JobFacts(
            job_id=job_id,
            org_id=project.org_id,
            project_id=project.project_id,
            influencer_id=influencer_id,
            started_ms=now,
            outcome=plan.outcome,
            end_stage=plan.end_stage,
            progression=plan.progression,
        )
        self.state.influencers[influencer_id] = inf
        self.state.jobs[job_id] = job
        project.influencer_ids.append(influencer_id)
        self.state.dirty.update(
            (("influencers", influencer_id), ("jobs", job_id), ("projects", project.project_id))
        )
        return {
            "jobId": job_id,
            "kind": KIND,
            "status": "running",
            "stage": STAGES[0],
            "projectId": project.project_id,
            "influencerId": influencer_id,
            "locationUrl": "/v1/jobs/" + job_id,
            "startedAt": format_ms(now),
        }

    def influencer_body(self, inf: InfluencerFacts) -> dict[str, Any]:
        return influencer_view(inf, self.state.jobs[inf.job_id], self.now(), format_ms)

    def list_influencers(
        self, project: Project, limit: int, cursor: str | None, status: str | None
    ) -> dict[str, Any]:
        """Newest first. The cursor is a position, so a page costs the same at any list size."""
        ids = project.influencer_ids
        start = decode_cursor(cursor, len(ids)) if cursor else len(ids)
        items: list[dict[str, Any]] = []
        next_cursor = None
        position = start
        while position > 0:
            position -= 1
            inf = self.state.influencers[ids[position]]
            if inf.deleted_ms is not None:
                continue
            view = self.influencer_body(inf)
            if status is not None and view["status"] != status:
                continue
            if len(items) == limit:
                next_cursor = encode_cursor(position + 1)
                break
            items.append(view)
        return {"items": items, "nextCursor": next_cursor}

    def patch_influencer(self, inf: InfluencerFacts, body: dict[str, Any]) -> dict[str, Any]:
        if "name" in body:
            inf.name_override = body["name"]
        if "gender" in body:
            inf.gender = body["gender"]
        if "ageRange" in body:
            inf.age_range = body["ageRange"]
        if "brandVoice" in body:
            inf.brand_voice = body["brandVoice"]
        if "language" in body:
            inf.language = body["language"]
        inf.patched_ms = self.now()
        self.state.dirty.add(("influencers", inf.influencer_id))
        return self.influencer_body(inf)

    def delete_influencer(self, inf: InfluencerFacts) -> dict[str, Any]:
        """Soft delete: the row stays (its job is still readable) but the influencer is gone."""
        inf.deleted_ms = self.now()
        self.state.dirty.add(("influencers", inf.influencer_id))
        return {
            "influencerId": inf.influencer_id,
            "status": "deleted",
            "deletedAt": format_ms(inf.deleted_ms),
        }

    # -- jobs -------------------------------------------------------------------------------

    def job_body(self, job: JobFacts) -> dict[str, Any]:
        now = self.now()
        if record_poll(job, now):
            self.state.dirty.add(("jobs", job.job_id))
        return job_envelope(job, job_state(job, now), format_ms)

    def cancel_job(self, job: JobFacts) -> tuple[int, dict[str, Any]]:
        now = self.now()
        state = job_state(job, now)
        if state.status != "running":
            return 200, {"jobId": job.job_id, "accepted": False, "reason": ALREADY[state.status]}
        stage = STAGES[state.stage]
        if stage in NOT_CANCELABLE:
            raise ApiError(
                "CONFLICT",
                "Job cannot be canceled during this stage.",
                {"subcode": "JOB_CANCEL_UNAVAILABLE", "jobId": job.job_id, "stage": stage},
            )
        job.cancel_ms = now
        self.state.dirty.add(("jobs", job.job_id))
        return 202, {"jobId": job.job_id, "accepted": True}

    # -- organization and projects ----------------------------------------------------------

    def whoami(self, key: ApiKey) -> dict[str, Any]:
        org = self.state.organizations[key.org_id]
        return {
            "organizationId": org.organization_id,
            "workspaceId": org.organization_id,
            "organizationName": org.name,
            "parentOrganizationId": None,
            "scopes": list(key.scopes),
            "rateLimitTier": key.tier,
            "apiKeyId": key.api_key_id,
            "creditBalance": org.credit_balance,
        }

    def create_project(
        self, key: ApiKey, body: dict[str, Any], plan: JobPlan, scope: str | None = None
    ) -> dict[str, Any]:
        now = self.now()
        project = Project(
            project_id="prj_" + self.state.mint.uuid("prj", scope),
            org_id=key.org_id,
            name=body["name"],
            timezone=body["timezone"],
            target_gender=body.get("targetGender", "all"),
            brand_voice=body.get("brandVoice", "authentic"),
            primary_language=body.get("primaryLanguage", "en"),
            customer_external_id=body.get("customerExternalId"),
            app_name=body.get("appName"),
            app_description=body.get("appDescription"),
            metadata=body.get("metadata", {}),
            created_ms=now,
        )
        self.state.projects[project.project_id] = project
        self.state.dirty.add(("projects", project.project_id))
        if project.app_description:
            # The documented background workflow: the first influencer starts by itself.
            self.create_influencer(project, {}, plan, None if scope is None else scope + ":first")
        return project_body(project)


def project_body(project: Project) -> dict[str, Any]:
    stamp = format_ms(project.created_ms)
    return {
        "id": project.project_id,
        "organizationId": project.org_id,
        "name": project.name,
        "status": "active",
        "timezone": project.timezone,
        "customerExternalId": project.customer_external_id,
        "primaryLanguage": project.primary_language,
        "appName": project.app_name,
        "appDescription": project.app_description,
        "brandVoice": project.brand_voice,
        "targetGender": project.target_gender,
        "metadata": project.metadata,
        "createdAt": stamp,
        "updatedAt": stamp,
    }


def encode_cursor(position: int) -> str:
    return base64.urlsafe_b64encode(orjson.dumps({"before": position})).decode().rstrip("=")


def decode_cursor(cursor: str, size: int) -> int:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        position = orjson.loads(base64.urlsafe_b64decode(padded.encode("ascii")))["before"]
    except (ValueError, KeyError, TypeError, UnicodeEncodeError, binascii.Error):
        position = None
    if not isinstance(position, int) or isinstance(position, bool) or not 0 <= position <= size:
        raise validation("Invalid query.", field_errors={"cursor": ["Malformed cursor."]})
    return position
