"""Cancel (spec: cancelJob; CONTRACT.md: Job lifecycle, the cancelable column).

202 {jobId, accepted: true} while the job is cancelable, 200 {accepted: false, reason} once it
is terminal, 409 CONFLICT (JOB_CANCEL_UNAVAILABLE) in finalizing; a canceled job's influencer
is failed and says so. A black box cannot choose the stage a cancel lands in, so there the
answer is judged against the reads around it (jobs.cancel-answer-agrees).
"""

from __future__ import annotations

from .. import contract as c
from ..clause import Needs, Section
from ..exchange import Exchange
from ..observe import Transcript
from ..report import NotChecked, Violation
from ..session import Job, Session, body_of, error_of, expect_error

SECTION = Section("cancel", "Cancel")


@SECTION.clause("jobs.cancel-finalizing-409", needs=Needs(jobs=1, clock=True, still=True))
def cancel_finalizing_409(s: Session) -> None:
    """A cancel in stage finalizing is 409 CONFLICT (subcode JOB_CANCEL_UNAVAILABLE, the jobId
    and stage), and the job goes on to complete."""
    clause = "jobs.cancel-finalizing-409"
    job = s.start_job()
    s.advance_to(job, "finalizing")
    ex = s.call("POST", c.cancel_path(job.job_id))
    error = expect_error(clause, ex, 409, "CONFLICT")
    details = error.get("details") or {}
    want = {"subcode": c.CANCEL_SUBCODE, "jobId": job.job_id, "stage": "finalizing"}
    if {k: details.get(k) for k in want} != want:
        raise Violation(clause, f"details {details!r}, expected {want}", ex)
    if s.wait_terminal(job).get("status") != "completed":
        raise Violation(clause, "the job did not complete after a refused cancel", None)


def _cancel(s: Session, job: Job) -> Exchange:
    return s.call("POST", c.cancel_path(job.job_id))


def check_cancel_answer(clause: str, ex: Exchange, job: Job) -> str:
    """The cancel answer is one of the three the contract allows, well formed; returns which."""
    body = body_of(ex)
    if ex.status == 202:
        if body != {"jobId": job.job_id, "accepted": True}:
            raise Violation(clause, f"202 body {body!r}", ex)
        return "accepted"
    if ex.status == 200:
        if body.get("accepted") is not False or body.get("reason") not in c.CANCEL_REASONS.values():
            raise Violation(clause, f"200 body {body!r}", ex)
        return "terminal"
    if ex.status == 409 and error_of(ex).get("code") == "CONFLICT":
        return "finalizing"
    raise Violation(clause, f"cancel answered {ex.status}", ex)


def check_canceled(clause: str, s: Session, job: Job, stage: str | None) -> None:
    """After an accepted cancel the job ends canceled (in `stage` when known) and its
    influencer is failed with an errorMessage that says it was canceled."""
    body = s.wait_terminal(job)
    if body.get("status") != "canceled":
        raise Violation(clause, f"an accepted cancel ended {body.get('status')}", None)
    if stage is not None and body.get("stage") != stage:
        raise Violation(clause, f"canceled in {stage}, reads stage {body.get('stage')}", None)
    inf = s.read_influencer(job)
    message = str(body_of(inf).get("errorMessage") or "")
    if body_of(inf).get("status") != "failed" or "cancel" not in message.lower():
        raise Violation(
            clause, "the influencer of a canceled job must be failed, saying canceled", inf
        )


@SECTION.observer(
    "jobs.cancel-answer-agrees",
    producers=("jobs.cancel-accepted", "jobs.cancel-terminal-200", "lifecycle.state-machine"),
)
def cancel_answer_agrees(t: Transcript) -> None:
    """Every cancel answer agrees with the job around it: after a 202 it ends canceled; a 200
    names the terminal status it had reached; a 409 CONFLICT comes only in finalizing."""
    clause = "jobs.cancel-answer-agrees"
    judged = False
    for ex in t.partner:
        op = c.operation_of(ex.method, ex.path)
        job_id = ex.bare_path.split("/")[3] if op is not None and op.name == "cancelJob" else ""
        reads = t.job_bodies.get(job_id)
        if not reads:
            continue
        before = [b for r, b in reads if r.seq < ex.seq][-1:]
        after = [b for r, b in reads if r.seq > ex.seq]
        was = before[0].get("status") if before else "running"
        ended = next((b.get("status") for b in after if b.get("status") in c.TERMINAL), None)
        judged = judged or bool(after)
        if ex.status == 202 and (was in c.TERMINAL or ended not in (None, "canceled")):
            raise Violation(clause, f"cancel accepted, the job was {was} and ended {ended}", ex)
        if ex.status == 200:
            reached = was if was in c.TERMINAL else ended
            reason = body_of(ex).get("reason")
            if reached is None or reason != c.CANCEL_REASONS.get(str(reached)):
                raise Violation(clause, f"reason {reason!r} for a {reached or 'running'} job", ex)
        if ex.status == 409 and error_of(ex).get("code") == "CONFLICT":
            nxt = after[0] if after else {}
            if was in c.TERMINAL or ended == "canceled" or nxt.get("stage") != "finalizing":
                raise Violation(clause, f"409 for a job in {nxt.get('stage')} ({was})", ex)
    t.need(judged, "no cancel was followed by a read of its job")


@SECTION.clause("jobs.cancel-accepted", needs=Needs(jobs=1), weight=2)
def cancel_accepted(s: Session) -> None:
    """A cancel while the job is cancelable (queued to training) is 202 {jobId, accepted:
    true}; the job ends canceled and its influencer failed, saying canceled."""
    clause = "jobs.cancel-accepted"
    job = s.start_job(body={}, read_back=s.still)  # a black box: cancel at once, while it runs
    stage = body_of(s.read_job(job)).get("stage") if s.still else None
    key = {"Idempotency-Key": s.target.idempotency_key()}
    ex = s.call("POST", c.cancel_path(job.job_id), headers=key)
    kind = check_cancel_answer(clause, ex, job)
    s.call("POST", c.cancel_path(job.job_id), headers=key)  # the retry replays it (observed)
    if s.still and kind != "accepted":
        raise Violation(clause, f"a cancel in stage {stage} was not accepted", ex)
    if kind == "finalizing":
        raise NotChecked("the job had reached finalizing when the cancel arrived")
    if kind == "terminal":
        raise NotChecked("the job had finished when the cancel arrived")
    if s.still:  # mock decision: the cancel takes effect at once, in the stage it was in
        now = s.read_job(job)
        if body_of(now).get("status") != "canceled":
            raise Violation(clause, "the next poll after an accepted cancel is not canceled", now)
    check_canceled(clause, s, job, stage)


@SECTION.clause(
    "jobs.cancel-in-each-stage", needs=Needs(jobs=3, clock=True, still=True), black_box=False
)
def cancel_in_each_stage(s: Session) -> None:
    """A cancel in generating_persona, rendering_portrait and training is accepted and the job
    reads canceled at once, in that stage (mock decision)."""
    clause = "jobs.cancel-in-each-stage"
    for stage in ("generating_persona", "rendering_portrait", "training"):
        job = s.start_job()
        s.advance_to(job, stage)
        ex = _cancel(s, job)
        if check_cancel_answer(clause, ex, job) != "accepted":
            raise Violation(clause, f"a cancel in {stage} was not accepted", ex)
        check_canceled(clause, s, job, stage)


@SECTION.clause("jobs.cancel-terminal-200", needs=Needs(sample=True))
def cancel_terminal_200(s: Session) -> None:
    """A cancel of a finished job is 200 {accepted: false, reason ALREADY_<status>} and
    changes nothing (cancelling twice included)."""
    clause = "jobs.cancel-terminal-200"
    jobs = [s.sample_job(), *(j for j in s.jobs if j is not s.sample)]
    for job in jobs[:4]:
        ex = s.read_job(job)
        before = body_of(ex)
        if before.get("status") not in c.TERMINAL:
            if job is not s.sample:
                continue
            before = s.wait_terminal(job)
        answer = _cancel(s, job)
        reason = c.CANCEL_REASONS[str(before.get("status"))]
        if answer.status != 200 or body_of(answer) != {
            "jobId": job.job_id,
            "accepted": False,
            "reason": reason,
        }:
            raise Violation(
                clause, f"cancel of a {before.get('status')} job, expected {reason}", answer
            )
        after = body_of(s.read_job(job))
        if after != before:
            raise Violation(clause, "a refused cancel changed the job", None)
