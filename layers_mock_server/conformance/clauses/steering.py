"""Mock steering (mock only): what the mock promises beyond the Layers docs, observable only
on a layers-mock (in-process, or --control-plane): `Prefer` outcomes, stages, progression and
faults, and the default simulated stage timings. A real Layers server ignores `Prefer`.
"""

from __future__ import annotations

from .. import contract as c
from ..clause import Needs, Section
from ..report import NotChecked, Violation
from ..session import Session, body_of, expect_error, field_errors

SECTION = Section("steering", "Mock steering (mock only)")


@SECTION.clause("steering.prefer-outcome", needs=Needs(jobs=1), black_box=False)
def failed_outcome(s: Session) -> None:
    """`Prefer: outcome=failed, stage=rendering_portrait` ends the job failed in that stage with
    an error; its influencer is failed with an errorMessage (mock steering)."""
    clause = "steering.prefer-outcome"
    job = s.start_job(outcome="failed", extra_prefer="stage=rendering_portrait")
    body = s.wait_terminal(job)
    if body.get("status") != "failed":
        raise NotChecked(f"the job ended {body.get('status')}: the deployment ignores Prefer")
    if body.get("stage") != "rendering_portrait":
        raise Violation(clause, f"failed in stage {body.get('stage')}", None)
    inf = body_of(s.read_influencer(job))
    if inf.get("status") != "failed" or not inf.get("errorMessage"):
        raise Violation(clause, f"influencer {inf.get('status')} without errorMessage", None)


def checkpoints() -> list[tuple[float, str | None]]:
    """Half a second either side of every stage boundary: (seconds after start, stage)."""
    points: list[tuple[float, str | None]] = [(0.5, "queued")]
    for before, stage in zip(c.STAGES, c.STAGES[1:], strict=False):
        begins = c.STAGE_BEGINS_S[stage]
        points += [(begins - 0.5, before), (begins + 0.5, stage)]
    return [*points, (c.COMPLETES_AFTER_S - 0.5, "finalizing"), (c.COMPLETES_AFTER_S + 0.5, None)]


@SECTION.clause(
    "steering.stage-timings", needs=Needs(jobs=1, clock=True, still=True), black_box=False
)
def stage_timings(s: Session) -> None:
    """Stages begin at 0, 2, 15, 35 and 55 s of mock time and the job completes at 60 s, with
    the influencer pending, then training, then ready (the default simulated timings)."""
    clause = "steering.stage-timings"
    job = s.start_job()
    for seconds, stage in checkpoints():
        elapsed = s.mock_elapsed(job)
        if seconds > elapsed:
            s.target.advance(round(seconds - elapsed, 3))
        ex = s.read_job(job)
        body = body_of(ex)
        want = ("running", stage) if stage else ("completed", "finalizing")
        if (body.get("status"), body.get("stage")) != want:
            raise Violation(clause, f"{seconds:g}s after start, expected {want}", ex)
        inf = s.read_influencer(job)
        implied = c.STAGE_INFLUENCER[stage] if stage else "ready"
        if body_of(inf).get("status") != implied:
            raise Violation(
                clause, f"{seconds:g}s after start the influencer is not {implied}", inf
            )


@SECTION.clause("steering.poll-progression", needs=Needs(jobs=1), black_box=False)
def poll_progression(s: Session) -> None:
    """With `Prefer: progression=poll` each read of the job moves it one stage, whatever the
    clock, and the read after finalizing finds it completed."""
    clause = "steering.poll-progression"
    job = s.start_job(extra_prefer="progression=poll", read_back=False)
    expected = [("running", stage) for stage in c.STAGES[1:]] + [("completed", "finalizing")]
    for want in expected:
        ex = s.read_job(job)
        body = body_of(ex)
        if (body.get("status"), body.get("stage")) != want:
            raise Violation(clause, f"expected {want} at this read", ex)


FAULTS = (("500", 500, "INTERNAL"), ("503", 503, "KILL_SWITCH"), ("429", 429, "RATE_LIMITED"))


@SECTION.clause("steering.injected-faults", black_box=False)
def injected_faults(s: Session) -> None:
    """`Prefer: fault=500|503|429` answers that error in the envelope (a 429 with Retry-After);
    an unknown preference is ignored; a bad value of a known one is 422 naming Prefer."""
    clause = "steering.injected-faults"
    for fault, status, code in FAULTS:
        ex = s.call("GET", "/v1/whoami", headers={"Prefer": f"fault={fault}"}, retry_429=False)
        expect_error(clause, ex, status, code)
        if status == 429 and not (ex.header("Retry-After") or "").isdigit():
            raise Violation(clause, "an injected 429 without Retry-After", ex)
    ex = s.get("/v1/whoami", Prefer="conformance-unknown=1")
    if ex.status != 200:
        raise Violation(clause, f"an unknown preference answered {ex.status}", ex)
    ex = s.call("GET", "/v1/whoami", headers={"Prefer": "fault=418"})
    if not field_errors(clause, ex, c.INVALID_HEADER).get("Prefer"):
        raise Violation(clause, "fault=418: Prefer not named", ex)
