"""What clauses share: the target, the run's own jobs, and the helpers that read them.

A clause never starts a job behind the planner's back: `start_job` spends the allowance the
planner gave the running clause, so the `--max-creates` budget is divided before the run, not
eaten by whichever clause comes first. Everything the run creates is its own and may be read,
patched, canceled and deleted; nothing else is ever changed (see `Target._guard`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from . import contract as c
from . import harness
from .exchange import Exchange
from .report import NotChecked, Violation
from .target import ShareSpent, Target

JSON = dict[str, Any]
CLOCK_POLLS = 200  # a clock of ours that does not move the job on: it never will
WORKBENCH_BODY = {"gender": "male", "ageRange": "adult", "prompt": "conformance workbench"}


def body_of(ex: Exchange) -> JSON:
    """The response body as an object, or {} when it is not one (judged elsewhere)."""
    body = ex.json()
    return body if isinstance(body, dict) else {}


def items_of(ex: Exchange) -> list[JSON]:
    """A list page's items that are objects ([] when the page is not a page)."""
    items = body_of(ex).get("items")
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []


def error_of(ex: Exchange) -> JSON:
    error = body_of(ex).get("error")
    return error if isinstance(error, dict) else {}


def expect_error(
    clause: str, ex: Exchange, status: int | tuple[int, ...] | None, code: str | None = None
) -> JSON:
    """The answer is `status` (one of them; None: any 4xx, a refusal) with the error envelope
    (and `code`, when given)."""
    allowed = (status,) if isinstance(status, int) else status
    if (allowed is None and not 400 <= ex.status < 500) or (allowed and ex.status not in allowed):
        want = "a 4xx refusal" if allowed is None else " or ".join(map(str, allowed))
        raise Violation(clause, f"expected {want}, got {ex.status}", ex)
    error = error_of(ex)
    if not error:
        raise Violation(clause, f"{ex.status} without the error envelope", ex)
    if code is not None and error.get("code") != code:
        raise Violation(
            clause, f"{ex.status} carried error.code={error.get('code')!r}, expected {code}", ex
        )
    return error


def field_errors(
    clause: str, ex: Exchange, message: str = c.INVALID_BODY, status: int | tuple[int, ...] = 422
) -> JSON:
    """A 422 VALIDATION (or `status`) with `message` and a details.fieldErrors object."""
    error = expect_error(clause, ex, status, "VALIDATION")
    if error.get("message") != message:
        raise Violation(clause, f"422 message {error.get('message')!r}, expected {message!r}", ex)
    fields = (error.get("details") or {}).get("fieldErrors")
    if not isinstance(fields, dict):
        raise Violation(clause, "422 without details.fieldErrors", ex)
    return fields


@dataclass(slots=True)
class Job:
    """A job the run started, and every read of it the run made."""

    accepted: Exchange
    job_id: str
    influencer_id: str
    outcome: str
    body: JSON
    key: str | None = None  # None: the main key (--api-key); else the key that started it

    @property
    def started_at(self) -> str:
        return str(self.body.get("startedAt"))


@dataclass(slots=True)
class Session:
    target: Target
    examples: int
    patience: float = 600.0
    fuzz_examples: int = 3  # Schemathesis cases per operation and mode
    scenarios: int = 3  # state-machine runs
    steps: int = 8  # rules per state-machine run
    poll_interval: float = 5.0
    database: Any = None  # a Hypothesis example database, or None
    allowance: dict[str, int | None] = field(default_factory=dict)  # clause -> jobs it may start
    clause: str = ""
    sample: Job | None = None
    sample_error: str | None = None  # why the sample job could not be started
    workbench: Job | None = None
    workbench_deleted: Exchange | None = None  # the 200 of the DELETE that archived it
    sample_deleted: Exchange | None = None
    created_project: Exchange | None = None  # the 201 of the project the run created
    jobs: list[Job] = field(default_factory=list)
    whoami: dict[str, JSON] = field(default_factory=dict)  # identity attr -> whoami body
    project_row: JSON | None = None  # GET /v1/projects/{projectId}, when the key may read it
    notes: dict[str, list[str]] = field(default_factory=dict)

    @property
    def project(self) -> str:
        return self.target.ids.project_id

    @property
    def clock(self) -> bool:
        """True when the run may move the mock's clock (in-process, or --control-plane)."""
        return self.target.control is not None

    @property
    def mock(self) -> bool:
        """True when the target is a layers-mock the run may steer (in-process, or a URL with
        --control-plane): its mock-only decisions may be held to the letter."""
        return self.target.control is not None

    @property
    def still(self) -> bool:
        """True when the mock's clock only moves when told (a virtual clock): stages hold."""
        control = self.target.control
        return control is not None and control.mode == "virtual"

    def note(self, text: str) -> None:
        self.notes.setdefault(self.clause, []).append(text)

    def prop(
        self, strategy: st.SearchStrategy[Any], *explicit: Any
    ) -> Callable[[Callable[[Any], None]], None]:
        """A guarded Hypothesis property over `strategy`, boundary values first (harness.py)."""
        return harness.prop(
            strategy,
            examples=self.examples,
            run_seed=self.target.seed,
            database=self.database,
            note=self.note,
            explicit=explicit,
        )

    def scopes(self, identity: str = "api_key") -> list[str]:
        scopes = self.whoami.get(identity, {}).get("scopes")
        return [str(s) for s in scopes] if isinstance(scopes, list) else []

    def require(self, identity: str, why: str) -> str:
        value = getattr(self.target.ids, identity)
        if not value:
            flag = "--" + identity.replace("_", "-")
            raise NotChecked(f"needs {flag}: {why}")
        return str(value)

    # -- requests ----------------------------------------------------------------------------
    def create(
        self,
        body: Any = None,
        *,
        key: str | None = None,
        project: str | None = None,
        headers: dict[str, Any] | None = None,
        content: bytes | None = None,
        expect_replay: bool = False,
    ) -> Exchange:
        """POST a create; `body=None` and no `content` sends no body at all."""
        return self.target.send(
            "POST",
            c.create_path(project or self.project),
            headers={**self.target.auth(key), "Prefer": "outcome=completed", **(headers or {})},
            json_body=body,
            content=content,
            expect_replay=expect_replay,
        )

    def get(self, path: str, key: str | None = None, **headers: str) -> Exchange:
        return self.target.send("GET", path, headers={**self.target.auth(key), **headers})

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        key: str | None = None,
        headers: dict[str, Any] | None = None,
        content: bytes | None = None,
        retry_429: bool = True,
    ) -> Exchange:
        return self.target.send(
            method,
            path,
            headers={**self.target.auth(key), **(headers or {})},
            json_body=body,
            content=content,
            retry_429=retry_429,
        )

    # -- the run's own jobs -------------------------------------------------------------------
    def start_job(
        self,
        outcome: str = "completed",
        body: Any = None,
        *,
        idempotency_key: str | None = None,
        extra_prefer: str = "",
        read_back: bool = True,
        key: str | None = None,
        project: str | None = None,
    ) -> Job:
        """Start one job out of the running clause's allowance (its share of --max-creates).
        A job of another key or project (a wallet's) is not one of `jobs`, which are the main
        project's."""
        self.spend_job()
        prefer = f"outcome={outcome}" + (f", {extra_prefer}" if extra_prefer else "")
        headers = {"Idempotency-Key": idempotency_key or self.target.idempotency_key()}
        headers["Prefer"] = prefer
        ex = self.create(body, key=key, project=project, headers=headers)
        if ex.status != 202:
            raise NotChecked(f"could not start a job: the create answered {ex.status}")
        data = body_of(ex)
        job = Job(ex, str(data.get("jobId")), str(data.get("influencerId")), outcome, data, key)
        if key is None and project is None:
            self.jobs.append(job)
        if read_back:  # the observers judge that the job and influencer exist right away
            self.read_job(job)
            self.read_influencer(job)
        return job

    def spend_job(self) -> None:
        """Take one job out of the running clause's allowance (its share of --max-creates)."""
        left = self.allowance.get(self.clause)
        if left is not None:
            if left <= 0:
                raise NotChecked("needs a job: the --max-creates budget left none for it")
            self.allowance[self.clause] = left - 1

    def sample_job(self) -> Job:
        """The run's one shared job (no body at all: the contract says that is valid)."""
        if self.sample_error is not None:
            raise NotChecked(self.sample_error)
        if self.sample is None:
            saved, self.clause = self.clause, "sample"
            try:
                self.sample = self.start_job()
                self.get(c.create_path(self.project) + "?limit=10")  # listed at once
            finally:
                self.clause = saved
        return self.sample

    def workbench_job(self) -> Job:
        """A second shared job, created with every field of the body, whose influencer the
        validation and idempotency clauses may PATCH and finally DELETE."""
        if self.workbench is None:
            saved, self.clause = self.clause, "workbench"
            try:
                self.workbench = self.start_job(body=WORKBENCH_BODY)
            finally:
                self.clause = saved
        return self.workbench

    def read_job(self, job: Job, **headers: str) -> Exchange:
        return self.get(c.job_path(job.job_id), job.key, **headers)

    def read_influencer(self, job: Job) -> Exchange:
        return self.get(c.influencer_path(job.influencer_id), job.key)

    def wallet(self, key: str | None = None, organization: str | None = None) -> JSON:
        """The wallet, read as GET /v1/credits, /v1/whoami, /v1/credits with one key (acting
        in `organization` when given): the three reads side by side are the evidence that
        credits.whoami-matches-wallet judges. Returns the second wallet read."""
        headers = {c.ORG_HEADER: organization} if organization else {}
        self.get(c.CREDITS, key, **headers)
        self.get(c.WHOAMI, key, **headers)
        ex = self.get(c.CREDITS, key, **headers)
        if ex.status != 200:
            raise Violation(self.clause, f"GET /v1/credits answered {ex.status}", ex)
        return body_of(ex)

    def wait_terminal(self, job: Job) -> JSON:
        """Poll until the job is terminal: the mock's clock is moved when it is ours to move
        (three times the job's length at most, or 200 moves of a clock that does not go on);
        a black box is polled at --poll-interval until --patience or the clause's time share,
        however many polls that takes."""
        clause = "jobs.terminal-within-patience"
        t = self.target
        for polls in itertools.count(1):
            ex = self.read_job(job)
            body = body_of(ex)
            self.read_influencer(job)  # evidence for the influencer clauses at every stage
            if ex.status == 200 and body.get("status") in c.TERMINAL:
                return body
            if ex.status != 200:
                raise Violation(clause, f"polling the job answered {ex.status}", ex)
            if self.clock:
                self._movable(job)
                if self.mock_elapsed(job) > 3 * c.COMPLETES_AFTER_S:
                    raise Violation(
                        clause, f"not terminal {3 * c.COMPLETES_AFTER_S}s (mock) after start", ex
                    )
                if polls >= CLOCK_POLLS:
                    raise Violation(clause, f"not terminal after {polls} moves of the clock", ex)
                t.advance(c.COMPLETES_AFTER_S / 4)
                continue
            waited = t.budget.elapsed() - job.accepted.at
            if waited > self.patience:
                raise Violation(clause, f"not terminal within --patience {self.patience:g}s", ex)
            left = t.budget.remaining_time()
            if left is not None and left < min(self.poll_interval, 1.0):
                raise ShareSpent(f"time ran out waiting for {job.job_id} to finish")
            t.wait(min(self.poll_interval, left if left is not None else self.poll_interval))
        raise AssertionError("unreachable")  # pragma: no cover

    def _movable(self, job: Job) -> None:
        """With --tenant-key only the tenant's organization's clock moves: another
        organization's job would stand still, so what needs it to finish is NOT CHECKED."""
        control = self.target.control
        key = job.key or self.target.ids.api_key
        if control is not None and not control.moves_jobs_of(
            key, job.accepted.request_header(c.ORG_HEADER)
        ):
            raise NotChecked(
                "--tenant-key moves only its organization's clock; this job is another's"
            )

    def mock_elapsed(self, job: Job) -> float:
        """Mock seconds since the job started (only with the clock)."""
        assert self.target.control is not None
        started = c.parse_time(job.started_at) or 0.0
        return self.target.control.now_s() - started

    def advance_to(self, job: Job, stage: str) -> None:
        """Move the mock's clock into `stage` of `job` (default simulated timings)."""
        begins = c.STAGE_BEGINS_S[stage]
        ends = c.COMPLETES_AFTER_S
        later = [b for b in c.STAGE_BEGINS_S.values() if b > begins]
        if later:
            ends = min(later)
        target = begins + (ends - begins) / 2
        elapsed = self.mock_elapsed(job)
        if elapsed > ends:
            raise NotChecked(f"the clock is already past {stage} for {job.job_id}")
        if target > elapsed:
            self.target.advance(round(target - elapsed, 3))

    def influencer_record(self, job: Job) -> JSON:
        ex = self.read_influencer(job)
        if ex.status != 200:
            raise Violation(self.clause, f"GET the run's own influencer answered {ex.status}", ex)
        return body_of(ex)
