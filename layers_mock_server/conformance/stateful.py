"""The job lifecycle as a Hypothesis rule-based state machine over plain HTTP.

Rules start jobs (out of the planned allowance), poll them with their influencer in between,
cancel them, list the project and, when the clock is ours, move it. After every poll the
invariants hold: status, stage and progress never go back, and the influencer agrees with the
job read before and after it. Teardown waits until every job is terminal (the mock's clock is
moved; a black box is polled until --patience or the time share).

Against a deployment nothing is repeatable, so every rule runs through `Capture`: the first
violation (or spent budget) stops the machine's work and is raised once Hypothesis is done,
and every precondition depends only on the machine's own counters (see harness.py). A rule
that needs nothing (`look_at_list`) is always enabled, so a spent budget never leaves the
machine without a rule to run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hypothesis import seed, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    get_state_machine_test,
    initialize,
    precondition,
    rule,
)

from . import contract as c
from .clauses.influencers import check_agrees
from .clauses.jobs import check_monotonic
from .exchange import Exchange
from .harness import Capture, run_guarded, run_settings
from .report import NotChecked
from .session import Job, Session, body_of

CLAUSE = "lifecycle.state-machine"
OUTCOMES = st.sampled_from(["completed", "failed", "canceled"])


@dataclass(slots=True)
class Tracked:
    job: Job
    history: list[tuple[Exchange, dict[str, Any]]] = field(default_factory=list)


def _poll(s: Session, tracked: Tracked) -> None:
    before = s.read_job(tracked.job)
    influencer = s.read_influencer(tracked.job)
    after = s.read_job(tracked.job)
    for ex in (before, after):
        if ex.status == 200:
            tracked.history.append((ex, body_of(ex)))
    check_monotonic(tracked.history)
    if before.status == after.status == influencer.status == 200:
        check_agrees(body_of(before), influencer, body_of(after))


def _finish(s: Session, tracked: Tracked) -> None:
    body = s.wait_terminal(tracked.job)
    influencer = s.read_influencer(tracked.job)
    final = s.read_job(tracked.job)  # a terminal status is final: read once more to see it stay
    path = c.job_path(tracked.job.job_id)
    reads = [
        (ex, body_of(ex))
        for ex in s.target.exchanges
        if ex.method == "GET" and ex.bare_path == path and ex.status == 200
    ]
    check_monotonic(reads)
    if influencer.status == 200:
        check_agrees(body, influencer, body_of(final))


def build_machine(s: Session, per_scenario: int, capture: Capture) -> type[RuleBasedStateMachine]:
    clock = s.clock

    class JobLifecycle(RuleBasedStateMachine):
        jobs = Bundle("jobs")

        def __init__(self) -> None:
            super().__init__()
            self.started = 0  # the machine's own counter: preconditions never look outside
            self.tracked: list[Tracked] = []

        @initialize(target=jobs, outcome=OUTCOMES)
        def first(self, outcome: str) -> Tracked | None:
            return self._start(outcome)

        @precondition(lambda self: self.started < per_scenario)
        @rule(target=jobs, outcome=OUTCOMES)
        def start(self, outcome: str) -> Tracked | None:
            return self._start(outcome)

        def _start(self, outcome: str) -> Tracked | None:
            self.started += 1
            job = capture.call(lambda: s.start_job(outcome, {"prompt": f"conformance {outcome}"}))
            if job is None:
                return None
            tracked = Tracked(job)
            self.tracked.append(tracked)
            return tracked

        @rule(tracked=jobs)
        def poll(self, tracked: Tracked | None) -> None:
            if tracked is not None:
                capture.guard(lambda: _poll(s, tracked), stateful=True)

        @rule(tracked=jobs)
        def cancel(self, tracked: Tracked | None) -> None:
            if tracked is not None:
                capture.guard(lambda: _cancel_and_poll(s, tracked), stateful=True)

        @precondition(lambda self: clock)
        @rule(seconds=st.sampled_from([1, 3, 13, 20, 30]))
        def advance(self, seconds: int) -> None:
            capture.guard(lambda: s.target.advance(seconds), stateful=True)

        @rule()
        def look_at_list(self) -> None:
            capture.call(lambda: s.get(c.create_path(s.project) + "?limit=5"))

        def teardown(self) -> None:
            for tracked in self.tracked:
                capture.guard(lambda t=tracked: _finish(s, t), stateful=True)  # type: ignore[misc]

    return JobLifecycle


def _cancel_and_poll(s: Session, tracked: Tracked) -> None:
    s.call("POST", c.cancel_path(tracked.job.job_id))
    _poll(s, tracked)


def run_lifecycle(s: Session, scenarios: int, steps: int) -> None:
    """Run the machine; its cancel answers are judged by jobs.cancel-answer-agrees."""
    allowance = s.allowance.get(CLAUSE)
    if allowance is not None and allowance < 1:
        raise NotChecked("needs a job: the --max-creates budget left none for it")
    per_scenario = 2
    if allowance is not None:
        scenarios = max(1, min(scenarios, allowance))
        per_scenario = max(1, min(per_scenario, allowance // scenarios))
    capture = Capture()
    test = get_state_machine_test(
        build_machine(s, per_scenario, capture),
        settings=settings(run_settings(scenarios, derandomize=False), stateful_step_count=steps),
    )
    seed(s.target.seed)(test)
    run_guarded(test, capture, s.note)
