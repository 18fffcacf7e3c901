"""The simulated Layers API: operations on State, given a clock. No HTTP in here.

Handlers (http/handlers.py) translate a request into one of these calls and the answer back
into a response; everything a partner can observe is decided here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

from . import credits as wallets
from . import projects as prj
from .clock import format_ms
from .errors import ApiError, not_found
from .ids import persona_name
from .influencers import default_gender, influencer_view
from .jobs import (
    DONE,
    KIND,
    NOT_CANCELABLE,
    STAGES,
    JobFacts,
    JobState,
    Outcome,
    Progression,
    job_envelope,
    job_state,
    record_poll,
)
from .lifecycle import Lifecycle
from .listing import ProjectListing, decode_cursor, encode_cursor
from .records import ApiKey, InfluencerFacts, Project, canonical_id
from .tenancy import acting_key

# Bounds the largest table (and so the state's memory: ~800 bytes per influencer with its job,
# bench/scale.py); every other table is bounded by its own limit or by the fixtures.
MAX_INFLUENCERS = 2_000_000
MAX_PROJECT_BYTES = 64 * 1024**2  # projects carry up to 8 KB of partner metadata each
ALREADY = {
    "completed": "ALREADY_COMPLETED",
    "failed": "ALREADY_FAILED",
    "canceled": "ALREADY_CANCELED",
}


class JobPlan(NamedTuple):
    """How a new job will end: chosen by Prefer, a rule, the project's fixture, or the default.

    NamedTuples, this and Persona: one of each is built per create, and a frozen dataclass's
    __init__ (object.__setattr__ per field) cost ~1.5 µs each."""

    outcome: Outcome = "completed"
    end_stage: int = DONE - 1
    progression: Progression = "time"


class Simulator(Lifecycle):
    """The simulated API: every operation a partner request can ask for, on the State that
    Lifecycle keeps (lifecycle.py)."""

    def now(self, organization_id: str | None = None) -> int:
        """The server clock's instant, or the organization's when it has a clock of its own."""
        return self.state.clocks.now(organization_id, self.clock.now_ms())

    def client_speed(self, organization_id: str) -> float:
        """Mock seconds per client second for the organization: a detached clock is virtual."""
        return 1.0 if self.state.clocks.is_detached(organization_id) else self.clock.client_speed

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

    def acting_key(self, key: ApiKey, organization: str | None) -> ApiKey:
        """The key as it acts: in its own organization or the child X-Layers-Organization names."""
        return acting_key(key, organization, self.state.organizations)

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
        self,
        project: Project,
        body: dict[str, Any],
        plan: JobPlan,
        scope: str | None = None,
        credits: int = 0,
    ) -> dict[str, Any]:
        """Start an influencer_create job; the influencer exists, pending, at once."""
        gender = body.get("gender") or default_gender(project.target_gender)
        return self._start_influencer(
            project,
            Persona(
                gender,
                body.get("ageRange", "young_adult"),
                project.brand_voice,
                project.primary_language,
                body.get("prompt"),
            ),
            plan,
            scope,
            credits,
        )

    def clone_influencer(
        self,
        source: InfluencerFacts,
        body: dict[str, Any],
        plan: JobPlan,
        scope: str | None = None,
        credits: int = 0,
    ) -> dict[str, Any]:
        """A new influencer in the source's project that looks like it, with overrides."""
        overrides = body.get("overrides", {})
        persona = Persona(
            overrides.get("gender", source.gender),
            overrides.get("ageRange", source.age_range),
            overrides.get("brandVoice", source.brand_voice),
            overrides.get("language", source.language),
            source.prompt,
            body["name"],
        )
        project = self.state.projects[source.project_id]
        return self._start_influencer(project, persona, plan, scope, credits)

    def _start_influencer(
        self, project: Project, persona: Persona, plan: JobPlan, scope: str | None, credits: int
    ) -> dict[str, Any]:
        prj.refuse_if_archived(project)
        now = self.now(project.org_id)
        state = self.state
        if len(state.influencers) >= MAX_INFLUENCERS:
            self._room_for_influencer()
        wallet = self.wallet(project.org_id) if credits else None
        if wallet is not None:
            wallets.require(wallet, credits)  # before anything is minted: a 402 leaves nothing
        mint = state.mint
        # Never an id that exists: a reused Idempotency-Key must not overwrite a live record.
        influencer_id = "inf_" + mint.uuid("inf", scope, state.influencers, "inf_")
        job_id = "job_" + mint.ulid("job", now, scope, state.jobs, "job_")
        inf = InfluencerFacts(
            influencer_id=influencer_id,
            org_id=project.org_id,
            project_id=project.project_id,
            job_id=job_id,
            created_ms=now,
            gender=persona.gender,
            age_range=persona.age_range,
            brand_voice=persona.brand_voice,
            language=persona.language,
            generated_name=persona_name(self.state.seed, influencer_id, persona.gender),
            prompt=persona.prompt,
            name_override=persona.name,
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
            credits=credits,
        )
        listing = self.listing(project)
        self.state.influencers[influencer_id] = inf
        self.state.jobs[job_id] = job
        project.influencer_ids.append(influencer_id)
        listing.append(inf.position, job, now)
        if wallet is not None:
            wallet.track(job, now)
        # Not the project: its stored row leaves out the list (rebuilt from the positions), and
        # rewriting a row with up to 8 KB of metadata on every create is what a commit costs.
        self.state.dirty.update((("influencers", influencer_id), ("jobs", job_id)))
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

    def _room_for_influencer(self) -> None:
        if len(self.state.influencers) >= MAX_INFLUENCERS:
            raise ApiError(
                "STORAGE_UNAVAILABLE",
                f"The mock holds {MAX_INFLUENCERS:,} influencers, as many as it keeps; reset "
                "it (POST /_mock/reset) to make room.",
                {"reason": "capacity"},
            )

    def influencer_body(self, inf: InfluencerFacts) -> dict[str, Any]:
        return influencer_view(inf, self.state.jobs[inf.job_id], self.now(inf.org_id), format_ms)

    def listing(self, project: Project) -> ProjectListing:
        """The project's list index, built from its influencers on first use."""
        listing = self.state.listings.get(project.project_id)
        if listing is None:
            listing = ProjectListing()
            now = self.now(project.org_id)
            for position, influencer_id in enumerate(project.influencer_ids):
                inf = self.state.influencers[influencer_id]
                job = self.state.jobs[inf.job_id]
                listing.append(position, job, now, live=inf.deleted_ms is None)
            self.state.listings[project.project_id] = listing
        return listing

    def list_influencers(
        self, project: Project, limit: int, cursor: str | None, status: str | None
    ) -> dict[str, Any]:
        """Newest first; a page costs O(limit) at any list size, with or without a filter."""
        now = self.now(project.org_id)
        before = decode_cursor(cursor) if cursor else len(project.influencer_ids)
        positions = self.listing(project).page(before, limit, status, now)
        items: list[dict[str, Any]] = []
        for position in positions[:limit]:
            view = self.influencer_body(self.state.influencers[project.influencer_ids[position]])
            if status is None or view["status"] == status:  # see ProjectListing.append
                items.append(view)
        more = len(positions) > limit
        return {"items": items, "nextCursor": encode_cursor(positions[limit - 1]) if more else None}

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
        inf.patched_ms = self.now(inf.org_id)
        self.state.dirty.add(("influencers", inf.influencer_id))
        return self.influencer_body(inf)

    def delete_influencer(self, inf: InfluencerFacts) -> dict[str, Any]:
        """Soft delete: the row stays (its job is still readable) but the influencer is gone."""
        now = self.now(inf.org_id)
        project = self.state.projects[inf.project_id]
        self.listing(project).unplace(inf.position, self.state.jobs[inf.job_id], now)
        inf.deleted_ms = now
        self.state.dirty.add(("influencers", inf.influencer_id))
        return {
            "influencerId": inf.influencer_id,
            "status": "deleted",
            "deletedAt": format_ms(inf.deleted_ms),
        }

    # -- jobs -------------------------------------------------------------------------------

    def job_body(self, job: JobFacts) -> dict[str, Any]:
        return job_envelope(job, self.read_job(job), format_ms)

    def read_job(self, job: JobFacts) -> JobState:
        """What a read of the job sees now; in poll progression the read moves it a stage."""
        now = self.now(job.org_id)
        if job.progression == "poll":
            with self._moving(job, now):
                if record_poll(job, now):
                    self.state.dirty.add(("jobs", job.job_id))
        return job_state(job, now)

    @contextmanager
    def _moving(self, job: JobFacts, now: int) -> Iterator[None]:
        """Around a change of the facts that place a job's influencer in its list and wallet."""
        inf = self.state.influencers.get(job.influencer_id)
        project = self.state.projects.get(job.project_id)
        listing = None
        if inf is not None and inf.deleted_ms is None and project is not None:
            listing = self.listing(project)
            listing.unplace(inf.position, job, now)
        yield
        if listing is not None and inf is not None:
            listing.place(inf.position, job, now)
        if job.credits:
            self.wallet(job.org_id).touch(job, now)

    def cancel_job(self, job: JobFacts) -> tuple[int, dict[str, Any]]:
        now = self.now(job.org_id)
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
        with self._moving(job, now):
            job.cancel_ms = now
        self.state.dirty.add(("jobs", job.job_id))
        return 202, {"jobId": job.job_id, "accepted": True}

    # -- organization and projects ----------------------------------------------------------

    def wallet(self, org_id: str) -> wallets.Wallet:
        """The organization's wallet at its now (rebuilt from its jobs on first use)."""
        now = self.now(org_id)
        wallet = self.state.wallets.get(org_id)
        if wallet is None:
            org = self.state.organizations[org_id]
            wallet = wallets.build_wallet(org, self.state.jobs.values(), now)
            self.state.wallets[org_id] = wallet
        wallet.settle(self.state.jobs, now)
        return wallet

    def credits(self, key: ApiKey) -> dict[str, Any]:
        org = self.state.organizations[key.org_id]
        return wallets.wallet_view(org, self.wallet(key.org_id), self.now(key.org_id), format_ms)

    def whoami(self, key: ApiKey) -> dict[str, Any]:
        org = self.state.organizations[key.org_id]
        return {
            "organizationId": org.organization_id,
            "workspaceId": org.organization_id,
            "organizationName": org.name,
            "parentOrganizationId": org.parent_id,
            "scopes": list(key.scopes),
            "rateLimitTier": key.tier,
            "apiKeyId": key.api_key_id,
            "creditBalance": self.wallet(key.org_id).balance,
        }

    def create_project(
        self, key: ApiKey, body: dict[str, Any], plan: JobPlan, scope: str | None = None
    ) -> dict[str, Any]:
        prj.check_metadata(body)
        now = self.now(key.org_id)
        projects = self.state.projects
        project = Project(
            project_id="prj_" + self.state.mint.uuid("prj", scope, projects, "prj_"),
            org_id=key.org_id,
            name=body["name"],
            timezone=body["timezone"],
            target_gender=body.get("targetGender", "all"),
            brand_voice=body.get("brandVoice", "authentic"),
            primary_language=body.get("primaryLanguage", "en"),
            customer_external_id=body.get("customerExternalId"),
            app_name=body.get("appName"),
            app_description=body.get("appDescription"),
            tagline=body.get("tagline"),
            owner_email=body.get("ownerEmail", key.owner_email),
            metadata=body.get("metadata", {}),
            created_ms=now,
            updated_ms=now,
            seq=self._next_project_seq(),
        )
        if project.app_description:
            self._room_for_influencer()  # checked first: a project without its first influencer
        size = project.size_bytes()
        if self.state.project_bytes + size > MAX_PROJECT_BYTES:
            raise ApiError(
                "STORAGE_UNAVAILABLE",
                f"The mock's projects take {MAX_PROJECT_BYTES // 1024**2} MiB, as much as it "
                "keeps; reset it (POST /_mock/reset) to make room.",
                {"reason": "capacity"},
            )
        self.state.project_bytes += size
        self.state.projects[project.project_id] = project
        self.state.dirty.add(("projects", project.project_id))
        if project.app_description:
            # The documented background workflow: the first influencer starts by itself, and
            # its failure (here: a wallet that cannot pay for it) never fails the create.
            cost = self.job_credits(key)
            if not cost or self.wallet(key.org_id).available >= cost:
                first = None if scope is None else scope + ":first"
                self.create_influencer(project, {}, plan, first, cost)
        return prj.project_body(project, format_ms)

    def project_body(self, project: Project) -> dict[str, Any]:
        return prj.project_body(project, format_ms)

    def list_projects(self, key: ApiKey, query: dict[str, Any]) -> dict[str, Any]:
        cursor = query.get("cursor")
        before = decode_cursor(cursor) if cursor else None
        return prj.list_projects(self.state.projects.values(), key.org_id, query, before, format_ms)

    def patch_project(self, project: Project, body: dict[str, Any]) -> dict[str, Any]:
        prj.patch_project(project, body, self.now(project.org_id))
        self.state.dirty.add(("projects", project.project_id))
        return prj.project_body(project, format_ms)

    def archive_project(self, project: Project) -> dict[str, Any]:
        prj.archive_project(project, self.now(project.org_id))
        self.state.dirty.add(("projects", project.project_id))
        return prj.project_body(project, format_ms)

    @staticmethod
    def job_credits(key: ApiKey) -> int:
        """What a job started with this key reserves: nothing for a sandbox `lp_test_` key."""
        return 0 if key.sandbox else wallets.INFLUENCER_CREATE_CREDITS

    def _next_project_seq(self) -> int:
        counters = self.state.mint.counters
        last = counters.get("projectSeq")
        if last is None:
            last = max((p.seq for p in self.state.projects.values()), default=0)
        counters["projectSeq"] = last + 1
        return last + 1


class Persona(NamedTuple):
    """What a new influencer starts from: the create body and project, or a clone's source."""

    gender: str
    age_range: str | None
    brand_voice: str
    language: str
    prompt: str | None
    name: str | None = None
