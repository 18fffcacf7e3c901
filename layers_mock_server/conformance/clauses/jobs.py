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
from ..exchange import Exchange
from ..observe import Transcript
from ..report import NotChecked, Violation
from ..session import Session, body_of

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


@SECTION.observer("jobs.failed-envelope", producers=("steering.prefer-outcome",))
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
