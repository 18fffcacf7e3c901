"""Jobs: the 202, polling, ETag/304, the lifecycle and cancel (CONTRACT.md: Create influencer,
Job lifecycle; spec: getJob, cancelJob).

The envelope rules are observers: they judge every read of every job the run made, whichever
clause or engine made it, so a status that goes back is caught wherever it shows up.
"""

from __future__ import annotations

import json
from typing import Any

from .. import contract as c
from ..clause import Needs, Section
from ..observe import Transcript
from ..report import NotChecked, Violation
from ..session import Job, Session, body_of, error_of, expect_error
from ..target import Exchange

SECTION = Section("jobs", "Jobs: accept, poll, lifecycle, cancel")
JSON = dict[str, Any]


@SECTION.clause("jobs.accepted-envelope", needs=Needs(sample=True))
def accepted_envelope(s: Session) -> None:
    """The 202 names the job three consistent ways (jobId, locationUrl, Location), is running
    in stage queued, and names the project (prefixed) and the new influencer."""
    ex = s.sample_job().accepted
    body = body_of(ex)
    job_id = str(body.get("jobId"))
    want = c.job_path(job_id)
    problems = []
    if not c.JOB_ID.match(job_id):
        problems.append(f"jobId {job_id!r} is not job_<ULID>")
    if body.get("locationUrl") != want:
        problems.append(f"locationUrl {body.get('locationUrl')!r} != {want}")
    if ex.header("Location") != want:
        problems.append(f"Location {ex.header('Location')!r} != {want}")
    if (body.get("status"), body.get("stage")) != ("running", "queued"):
        problems.append(f"status/stage {body.get('status')}/{body.get('stage')} != running/queued")
    if body.get("kind") != "influencer_create":
        problems.append(f"kind {body.get('kind')!r}")
    if body.get("projectId") != "prj_" + c.bare(s.project):
        problems.append(f"projectId {body.get('projectId')!r} is not the prefixed project id")
    if not c.INFLUENCER_ID.match(str(body.get("influencerId"))):
        problems.append(f"influencerId {body.get('influencerId')!r}")
    if not c.TIMESTAMP.match(str(body.get("startedAt"))):
        problems.append(f"startedAt {body.get('startedAt')!r}")
    if problems:
        raise Violation("jobs.accepted-envelope", "; ".join(problems), ex)


@SECTION.observer("jobs.pollable-at-once", producers=("jobs.accepted-envelope",))
def pollable_at_once(t: Transcript) -> None:
    """The job a 202 names can be polled at once (no eventual-consistency gap)."""
    for job_id, accepted in t.accepted_by_job.items():
        path = c.job_path(job_id)
        first = next(
            (
                ex
                for ex in t.partner
                if ex.seq > accepted.seq and ex.method == "GET" and ex.bare_path == path
            ),
            None,
        )
        if first is not None and (first.status != 200 or body_of(first).get("jobId") != job_id):
            raise Violation(
                "jobs.pollable-at-once",
                f"the first poll after the 202 answered {first.status}",
                first,
            )
    t.need(bool(t.accepted_by_job), "no job was started")


STABLE = ("jobId", "kind", "projectId", "influencerId", "locationUrl", "startedAt")


@SECTION.observer("jobs.envelope-matches-accept", producers=("jobs.terminal-within-patience",))
def envelope_matches_accept(t: Transcript) -> None:
    """Every read of a job repeats what the 202 said: jobId, kind, projectId, influencerId,
    locationUrl and startedAt never change."""
    for job_id, reads in t.job_bodies.items():
        accepted = body_of(t.accepted_by_job[job_id])
        for ex, body in reads:
            changed = [k for k in STABLE if body.get(k) != accepted.get(k)]
            if changed:
                raise Violation(
                    "jobs.envelope-matches-accept", f"{changed} differ from the 202", ex
                )
    t.need(bool(t.job_bodies), "no job was read")


def _rank(job: JSON) -> tuple[int, int, float]:
    status = 0 if job.get("status") == "running" else 1
    stage = c.STAGES.index(job["stage"]) if job.get("stage") in c.STAGES else -1
    progress = job.get("progress")
    return status, stage, float(progress) if isinstance(progress, int | float) else 0.0


def check_monotonic(history: list[tuple[Exchange, JSON]]) -> None:
    """Status, stage and progress never go back; a terminal envelope never changes status."""
    previous: JSON | None = None
    for ex, job in history:
        if previous is not None:
            if previous.get("status") in c.TERMINAL and job.get("status") != previous.get("status"):
                raise Violation(
                    "jobs.status-monotonic",
                    f"terminal {previous.get('status')} became {job.get('status')}",
                    ex,
                )
            was, now = _rank(previous), _rank(job)
            for label, a, b in zip(("status", "stage", "progress"), was, now, strict=True):
                if b < a:
                    raise Violation(
                        "jobs.status-monotonic",
                        f"{label} went backwards: {previous.get(label)} -> {job.get(label)}",
                        ex,
                    )
        previous = job


@SECTION.observer(
    "jobs.status-monotonic",
    producers=("jobs.terminal-within-patience", "lifecycle.state-machine"),
)
def status_monotonic(t: Transcript) -> None:
    """A job's status, stage and progress never go back, and a terminal status is final."""
    for reads in t.job_bodies.values():
        check_monotonic(reads)
    t.need(any(len(r) > 1 for r in t.job_bodies.values()), "no job was read twice")


def _envelope_rule(t: Transcript, clause: str, status: str, rule: Any) -> None:
    seen = False
    for job_id, reads in t.job_bodies.items():
        for ex, body in reads:
            if body.get("status") == status:
                seen = True
                problem = rule(body, job_id)
                if problem:
                    raise Violation(clause, problem, ex)
    t.need(seen, f"no {status} job was read")


def _running(body: JSON, job_id: str) -> str | None:
    extra = [k for k in ("finishedAt", "result", "error") if k in body]
    return f"a running job carries {extra}" if extra else None


def _completed(body: JSON, job_id: str) -> str | None:
    result = body.get("result")
    if not body.get("finishedAt"):
        return "completed without finishedAt"
    if not isinstance(result, dict) or result.get("influencerId") != body.get("influencerId"):
        return f"completed with result {result!r}, expected its influencerId"
    if "error" in body:
        return "completed with an error"
    if body.get("progress") != 1 or body.get("stage") != "finalizing":
        return f"completed at progress {body.get('progress')} in stage {body.get('stage')}"
    return None


def _failed(body: JSON, job_id: str) -> str | None:
    error = body.get("error")
    if not body.get("finishedAt"):
        return "failed without finishedAt"
    if not isinstance(error, dict) or not error.get("code") or not error.get("message"):
        return f"failed with error {error!r}, expected {{code, message}}"
    if "result" in body:
        return "failed with a result"
    return None


def _canceled(body: JSON, job_id: str) -> str | None:
    if not body.get("finishedAt"):
        return "canceled without finishedAt"
    extra = [k for k in ("result", "error") if k in body]
    return f"canceled with {extra}" if extra else None


@SECTION.observer("jobs.running-envelope", producers=("jobs.accepted-envelope",))
def running_envelope(t: Transcript) -> None:
    """A running job has no finishedAt, result or error."""
    _envelope_rule(t, "jobs.running-envelope", "running", _running)


@SECTION.observer("jobs.completed-envelope", producers=("jobs.terminal-within-patience",))
def completed_envelope(t: Transcript) -> None:
    """A completed job has finishedAt, result.influencerId, progress 1, stage finalizing and no
    error."""
    _envelope_rule(t, "jobs.completed-envelope", "completed", _completed)


@SECTION.observer("jobs.failed-envelope", producers=("jobs.failed-outcome",))
def failed_envelope(t: Transcript) -> None:
    """A failed job has finishedAt and error {code, message}, and no result."""
    _envelope_rule(t, "jobs.failed-envelope", "failed", _failed)


@SECTION.observer("jobs.canceled-envelope", producers=("jobs.cancel-accepted",))
def canceled_envelope(t: Transcript) -> None:
    """A canceled job has finishedAt and neither result nor error."""
    _envelope_rule(t, "jobs.canceled-envelope", "canceled", _canceled)


@SECTION.observer("jobs.timestamps-ordered", producers=("jobs.terminal-within-patience",))
def timestamps_ordered(t: Transcript) -> None:
    """startedAt never moves, finishedAt is not before it and never moves once set, and every
    terminal envelope has one."""
    clause = "jobs.timestamps-ordered"
    judged = False
    for reads in t.job_bodies.values():
        finished: str | None = None
        for ex, body in reads:
            started = c.parse_time(body.get("startedAt"))
            if started is None:
                raise Violation(clause, f"startedAt {body.get('startedAt')!r}", ex)
            if body.get("finishedAt") is None:
                continue
            judged = True
            end = c.parse_time(body.get("finishedAt"))
            if end is None or end < started:
                raise Violation(clause, "finishedAt is before startedAt", ex)
            if finished is not None and body.get("finishedAt") != finished:
                raise Violation(clause, f"finishedAt moved from {finished}", ex)
            finished = body.get("finishedAt")
    t.need(judged, "no finished job was read")


def check_etags(reads: list[Exchange], clause: str = "jobs.etag-strong") -> None:
    """Every 200 carries a strong ETag; one envelope has one tag and one tag one envelope."""
    seen: dict[tuple[str, str], str] = {}  # (path, etag) -> canonical body
    for ex in reads:
        tag = ex.header("ETag")
        if ex.status == 304:
            sent = [
                t.strip().removeprefix("W/")
                for t in (ex.request_header("If-None-Match") or "").split(",")
            ]
            if ex.response_body or not tag or not ("*" in sent or tag in sent):
                raise Violation(clause, "a 304 must carry the matched ETag and no body", ex)
            continue
        if ex.status != 200:
            continue
        if not tag or not c.STRONG_ETAG.match(tag):
            raise Violation(clause, f"ETag {tag!r} is missing or not a strong tag", ex)
        body = json.dumps(ex.json(), sort_keys=True)
        key = (ex.bare_path, tag)
        if key in seen and seen[key] != body:
            raise Violation(clause, f"ETag {tag} kept while the envelope changed", ex)
        seen[key] = body
    by_body: dict[tuple[str, str], str] = {}
    for (path, tag), body in seen.items():
        other = by_body.setdefault((path, body), tag)
        if other != tag:
            raise Violation(clause, f"one envelope, two ETags {other} and {tag}", None)


@SECTION.observer("jobs.etag-strong", producers=("jobs.if-none-match-304",))
def etag_strong(t: Transcript) -> None:
    """Every job read carries a strong ETag that changes exactly when the envelope changes; a
    304 carries the tag and no body."""
    reads = [ex for r in t.job_reads.values() for ex in r]
    check_etags(reads)
    t.need(len(reads) > 1, "no job was read twice")


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


@SECTION.clause("jobs.terminal-within-patience", needs=Needs(sample=True), weight=4)
def terminal_within_patience(s: Session) -> None:
    """The sample job reaches a terminal status (within 60 s of mock time, or --patience on a
    black box), then reads the same again."""
    job = s.sample_job()
    body = s.wait_terminal(job)
    again = body_of(s.read_job(job))
    if again.get("status") != body.get("status"):
        raise Violation("jobs.terminal-within-patience", "the terminal status changed", None)


@SECTION.clause("jobs.if-none-match-304", needs=Needs(sample=True))
def if_none_match_304(s: Session) -> None:
    """If-None-Match with the current ETag is 304 with that ETag and no body."""
    job = s.sample_job()
    s.wait_terminal(job)  # a finished job cannot change between the two reads
    first = s.read_job(job)
    tag = first.header("ETag")
    if first.status != 200 or not tag:
        raise Violation("jobs.if-none-match-304", "a 200 without an ETag", first)
    again = s.read_job(job, **{"If-None-Match": tag})
    if again.status != 304 or again.response_body or again.header("ETag") != tag:
        raise Violation(
            "jobs.if-none-match-304",
            f"If-None-Match with the current tag answered {again.status}"
            f"{' with a body' if again.response_body else ''}",
            again,
        )


@SECTION.clause("jobs.stale-etag-200", needs=Needs(sample=True))
def stale_etag_200(s: Session) -> None:
    """If-None-Match with a tag of an earlier envelope is 200 with the current envelope and tag."""
    job = s.sample_job()
    first = next(
        (
            e
            for e in s.target.exchanges
            if e.bare_path == c.job_path(job.job_id) and e.status == 200
        ),
        None,
    )
    if first is None or not first.header("ETag"):
        raise NotChecked("no earlier read of the sample job")
    s.wait_terminal(job)
    now = s.read_job(job)
    if now.json() == first.json():
        raise NotChecked("the sample job never changed")
    stale = s.read_job(job, **{"If-None-Match": first.header("ETag") or ""})
    if (
        stale.status != 200
        or stale.json() != now.json()
        or stale.header("ETag") != now.header("ETag")
    ):
        raise Violation(
            "jobs.stale-etag-200", f"a stale If-None-Match answered {stale.status}", stale
        )


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
    ex = _cancel(s, job)
    kind = check_cancel_answer(clause, ex, job)
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


@SECTION.clause("jobs.failed-outcome", needs=Needs(jobs=1), black_box=False)
def failed_outcome(s: Session) -> None:
    """`Prefer: outcome=failed, stage=rendering_portrait` ends the job failed in that stage with
    an error; its influencer is failed with an errorMessage (mock steering)."""
    clause = "jobs.failed-outcome"
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


@SECTION.clause("jobs.stage-timings", needs=Needs(jobs=1, clock=True, still=True), black_box=False)
def stage_timings(s: Session) -> None:
    """Stages begin at 0, 2, 15, 35 and 55 s of mock time and the job completes at 60 s, with
    the influencer pending, then training, then ready (the default simulated timings)."""
    clause = "jobs.stage-timings"
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
