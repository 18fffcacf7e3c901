"""The job lifecycle as a Hypothesis rule-based state machine over plain HTTP.

Rules start jobs (within the budget), poll them, read their influencers, replay their creates
and, on the mock only, move the virtual clock. Invariants hold after every step: a job's status,
stage and progress never go backwards, its influencer's status agrees with it, and every job
ends in a terminal state within the patience bound (the mock's clock is advanced; a real
deployment is polled at an interval until the bound or `--max-time`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    precondition,
    rule,
    run_state_machine_as_test,
)

from . import contract as c
from .clauses import Session, check_influencer_exists, check_pollable, run_settings
from .report import NotChecked, Violation
from .target import Exchange

STATEFUL_CLAUSES = (
    "jobs.status-monotonic",
    "jobs.terminal-within-patience",
    "jobs.influencer-agrees",
)


@dataclass(slots=True)
class Tracked:
    accepted: Exchange
    job_id: str
    influencer_id: str
    outcome: str
    history: list[Exchange] = field(default_factory=list)


def _rank(job: dict[str, Any]) -> tuple[int, int, float]:
    status = 0 if job.get("status") == "running" else 1
    stage = c.STAGES.index(job["stage"]) if job.get("stage") in c.STAGES else -1
    return status, stage, float(job.get("progress") or 0)


def check_monotonic(history: list[Exchange]) -> None:
    """Status, stage and progress never go back; a terminal status never changes."""
    previous: dict[str, Any] | None = None
    for ex in history:
        job = ex.json()
        if ex.status != 200 or not isinstance(job, dict):
            continue
        if previous is not None:
            was, now = _rank(previous), _rank(job)
            if previous.get("status") in c.TERMINAL and job.get("status") != previous.get("status"):
                raise Violation(
                    "jobs.status-monotonic",
                    f"terminal {previous.get('status')} became {job.get('status')}",
                    ex,
                )
            for label, a, b in zip(("status", "stage", "progress"), was, now, strict=True):
                if b < a:
                    raise Violation(
                        "jobs.status-monotonic",
                        f"{label} went backwards: {previous.get(label)} -> {job.get(label)}",
                        ex,
                    )
        previous = job


def check_agrees(
    job_before: dict[str, Any], influencer: Exchange, job_after: dict[str, Any]
) -> None:
    """The influencer read between two job reads has a status between what each implies."""
    body = influencer.json() or {}
    got = body.get("status")
    low = c.implied_influencer_status(job_before)
    high = c.implied_influencer_status(job_after)
    rank = c.INFLUENCER_RANK
    if got not in rank or not rank[low] <= rank[got] <= rank[high]:
        raise Violation(
            "jobs.influencer-agrees",
            f"influencer {got!r}, job implies {low!r}..{high!r}",
            influencer,
        )
    if got in ("ready", "failed") and got not in (low, high):
        raise Violation(
            "jobs.influencer-agrees", f"influencer {got!r}, job implies {high!r}", influencer
        )
    if got == "failed" and not body.get("errorMessage"):
        raise Violation(
            "jobs.influencer-agrees", "failed influencer without errorMessage", influencer
        )


def build_machine(s: Session, patience: float, poll_interval: float) -> type[RuleBasedStateMachine]:
    t = s.target
    mock = t.has_clock_control

    class JobLifecycle(RuleBasedStateMachine):
        jobs = Bundle("jobs")

        def __init__(self) -> None:
            super().__init__()
            self.tracked: list[Tracked] = []

        @precondition(lambda self: len(self.tracked) < 3 and t.budget.can_create())
        @rule(target=jobs, outcome=st.sampled_from(["completed", "failed", "canceled"]))
        def start(self, outcome: str) -> Tracked:
            body = {"prompt": f"conformance {outcome}"}
            ex = s.create(
                body,
                headers={"Idempotency-Key": t.idempotency_key(), "Prefer": f"outcome={outcome}"},
            )
            if ex.status != 202:
                raise Violation("validation.positive-accepted", f"create answered {ex.status}", ex)
            data = ex.json() or {}
            job = Tracked(ex, str(data.get("jobId")), str(data.get("influencerId")), outcome)
            check_pollable(s, ex)
            check_influencer_exists(s, ex)
            self.tracked.append(job)
            return job

        @rule(job=jobs)
        def poll(self, job: Tracked) -> None:
            before = s.get(c.job_path(job.job_id))
            influencer = s.get(c.influencer_path(job.influencer_id))
            after = s.get(c.job_path(job.job_id))
            job.history += [before, after]
            check_monotonic(job.history)
            if before.status == after.status == 200 and influencer.status == 200:
                check_agrees(before.json(), influencer, after.json())

        @precondition(lambda self: mock)
        @rule(seconds=st.sampled_from([1, 3, 13, 20, 30]))
        def advance(self, seconds: int) -> None:
            t.advance(seconds)

        def teardown(self) -> None:
            deadline = time.monotonic() + patience
            for job in self.tracked:
                while True:
                    ex = s.get(c.job_path(job.job_id))
                    job.history.append(ex)
                    check_monotonic(job.history)
                    if (ex.json() or {}).get("status") in c.TERMINAL:
                        influencer = s.get(c.influencer_path(job.influencer_id))
                        check_agrees(ex.json(), influencer, ex.json())
                        # A terminal status is final: read once more to see it stay.
                        job.history.append(s.get(c.job_path(job.job_id)))
                        check_monotonic(job.history)
                        break
                    if mock:
                        if len(job.history) > 40:
                            raise Violation(
                                "jobs.terminal-within-patience",
                                f"not terminal after {c.COMPLETES_AFTER_S}s+ of mock time",
                                ex,
                            )
                        t.advance(c.COMPLETES_AFTER_S / 4)
                        continue
                    left = min(deadline - time.monotonic(), t.budget.remaining_time() or patience)
                    if left <= 0:
                        raise Violation(
                            "jobs.terminal-within-patience",
                            f"not terminal within {patience:g}s",
                            ex,
                        )
                    t.sleep(min(poll_interval, left))

    return JobLifecycle


def run_lifecycle(
    s: Session, scenarios: int, steps: int, patience: float, poll_interval: float
) -> None:
    if not s.target.budget.can_create():
        raise NotChecked("--max-creates budget spent before the lifecycle could start a job")
    machine = build_machine(s, patience, poll_interval)
    run_state_machine_as_test(
        machine,
        settings=settings(run_settings(scenarios, derandomize=True), stateful_step_count=steps),
    )
