"""Clone (spec: cloneInfluencer; the Layers clone page): a new influencer in the source's
project that keeps the source's identity with per-field overrides, started as an
influencer_create job. The sample influencer is the source (it is alive until the Delete
section); a deleted source is the workbench influencer, which the idempotency clauses delete.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from .. import contract as c
from ..clause import Needs, Section
from ..exchange import Exchange
from ..report import NotChecked, Violation
from ..session import Job, Session, body_of, expect_error, field_errors, items_of

SECTION = Section("clone", "Clone")
JSON = dict[str, Any]
# Invalid only at step 5 (an override out of its enum): a 404 must come first, and a deployment
# that does not refuse the source answers 422 instead of starting a job on the partner's money.
PROBE = {"name": "Conformance Clone", "overrides": {"gender": "__conformance_probe__"}}
UNKNOWN_INFLUENCER = "inf_00000000-0000-4000-8000-0000000c1013"
COPIED = ("gender", "brandVoice")  # the fields the clone below keeps from its source


def _clone(s: Session, source: str, body: Any, key: str | None = None, **headers: str) -> Exchange:
    return s.call("POST", c.clone_path(source), body, key=key, headers=headers)


def _other(values: tuple[str, ...], current: object) -> str:
    return next(v for v in values if v != current)


def _check_accepted(clause: str, ex: Exchange, source: JSON) -> Job:
    """The 202 of a clone: the create's envelope, in the source's project, a new influencer."""
    accepted = body_of(ex)
    if ex.status != 202:
        raise Violation(clause, f"clone answered {ex.status}", ex)
    job_id, inf_id = str(accepted.get("jobId")), str(accepted.get("influencerId"))
    want: JSON = {"kind": "influencer_create", "status": "running", "stage": "queued"}
    want |= {"projectId": source.get("projectId"), "locationUrl": c.job_path(job_id)}
    wrong = {k: accepted.get(k) for k, v in want.items() if accepted.get(k) != v}
    if wrong or not c.JOB_ID.match(job_id) or ex.header("Location") != c.job_path(job_id):
        raise Violation(clause, f"the 202 envelope differs: {wrong or 'jobId or Location'}", ex)
    if not c.INFLUENCER_ID.match(inf_id) or inf_id == source.get("influencerId"):
        raise Violation(clause, f"the clone is not a new influencer: {inf_id}", ex)
    return Job(ex, job_id, inf_id, "completed", accepted)


@SECTION.clause("influencers.clone-accepted", needs=Needs(sample=True, jobs=1))
def clone_accepted(s: Session) -> None:
    """POST /v1/influencers/{id}/clone is 202 with the create's job envelope and Location; the
    clone is a new pending influencer in the source's project with the source's fields and
    the overrides, listed at once, ready with the name sent; a retry with its
    Idempotency-Key replays the 202; the source is untouched."""
    clause = "influencers.clone-accepted"
    sample = s.sample_job()
    s.wait_terminal(sample)  # a source that no longer moves: it must come out of this as it was
    source = s.influencer_record(sample)
    name = f"Conformance Clone {s.target.seed}"
    overrides: JSON = {
        "ageRange": _other(c.AGE_RANGES, source.get("ageRange")),
        "language": "es-MX" if source.get("language") != "es-MX" else "de",
    }
    body: JSON = {"name": name, "overrides": overrides}
    s.spend_job()
    headers = {"Idempotency-Key": s.target.idempotency_key(), "Prefer": "outcome=completed"}
    job = _check_accepted(clause, _clone(s, sample.influencer_id, body, **headers), source)
    again = _clone(s, sample.influencer_id, body, **headers)
    if again.status != 202 or body_of(again).get("jobId") != job.job_id:
        raise Violation(clause, "a retry with the clone's Idempotency-Key did not replay it", again)
    record = s.influencer_record(job)
    want: JSON = {k: source.get(k) for k in COPIED} | overrides
    want["projectId"] = source.get("projectId")
    if s.mock:
        want["name"] = name  # mock decision: the clone's name is set from the start
    wrong = {k: record.get(k) for k, v in want.items() if record.get(k) != v}
    if wrong or (s.still and record.get("status") != "pending"):  # a wall clock moves it on
        problem = wrong or record.get("status")
        raise Violation(clause, f"the new clone: {problem}, expected {want}", None)
    listed = s.get(c.create_path(str(source.get("projectId"))) + f"?limit={c.LIMIT_MAX}")
    if job.influencer_id not in {i.get("influencerId") for i in items_of(listed)}:
        raise Violation(clause, "the clone is not listed in the source's project", listed)
    if s.wait_terminal(job).get("status") != "completed":
        raise NotChecked("the clone's job did not complete (the deployment ignores Prefer)")
    ready = s.influencer_record(job)
    if ready.get("status") != "ready" or ready.get("name") != name:
        got = (ready.get("status"), ready.get("name"))
        raise Violation(clause, f"the finished clone is {got}, expected ('ready', {name!r})", None)
    if s.influencer_record(sample) != source:
        raise Violation(clause, "cloning changed the source", None)


@SECTION.clause("influencers.clone-404", needs=Needs(sample=True, workbench=True))
def clone_404(s: Session) -> None:
    """Cloning an unknown, a deleted or another organization's influencer is 404 NOT_FOUND,
    before the body is looked at."""
    clause = "influencers.clone-404"
    expect_error(clause, _clone(s, UNKNOWN_INFLUENCER, PROBE), 404, "NOT_FOUND")
    workbench = s.workbench_job()
    if s.workbench_deleted is None:  # as idempotency.delete-retry-replays would have
        path = c.influencer_path(workbench.influencer_id)
        deleted = s.call("DELETE", path, headers={"Idempotency-Key": s.target.idempotency_key()})
        if deleted.status != 200:
            raise NotChecked(f"the workbench influencer could not be deleted ({deleted.status})")
        s.workbench_deleted = deleted
    expect_error(clause, _clone(s, workbench.influencer_id, PROBE), 404, "NOT_FOUND")
    foreign = s.target.ids.foreign_key
    if not foreign:
        s.note("no --foreign-key: another organization's clone was not tried")
        return
    sample = s.sample_job()
    ex = _clone(s, sample.influencer_id, PROBE, key=foreign)
    expect_error(clause, ex, 404, "NOT_FOUND")


UNKNOWN_NAMES = st.from_regex(r"\A[A-Za-z][A-Za-z0-9_]{0,15}\Z").filter(
    lambda f: f not in c.CLONE_OVERRIDES
)
# (body, the field its 422 must name); nested errors may be named "overrides" or "overrides.x"
BAD_BODIES: tuple[tuple[JSON, str], ...] = (
    ({"name": "Conformance", "conformanceBogus": 1}, "conformanceBogus"),
    ({"name": "Conformance", "prompt": "a create field"}, "prompt"),
    ({"overrides": {"language": "en"}}, "name"),
    ({"name": ""}, "name"),
    ({"name": "x" * (c.NAME_MAX + 1)}, "name"),
    ({"name": 42}, "name"),
    ({"name": "Conformance", "overrides": {"prompt": "y"}}, "overrides"),
    ({"name": "Conformance", "overrides": {"name": "y"}}, "overrides"),
    ({"name": "Conformance", "overrides": {"gender": "robot"}}, "overrides"),
    ({"name": "Conformance", "overrides": []}, "overrides"),
)


def _names(fields: JSON, field: str) -> bool:
    return any(k == field or k.startswith(field + ".") or k.startswith(field + "/") for k in fields)


@SECTION.clause("influencers.clone-strict-body", needs=Needs(sample=True), weight=2)
def clone_strict_body(s: Session) -> None:
    """The clone body is strict: name (1 to 128) is required, overrides takes gender, ageRange,
    brandVoice and language only; anything else is 422 VALIDATION naming the field."""
    clause = "influencers.clone-strict-body"
    source = s.sample_job().influencer_id
    for body, field in BAD_BODIES:
        ex = _clone(s, source, body)
        if not _names(field_errors(clause, ex), field):
            raise Violation(clause, f"{field} not named", ex)

    @s.prop(UNKNOWN_NAMES, "style", "voice")
    def _(name: str) -> None:
        ex = _clone(s, source, {"name": "Conformance", "overrides": {name: "x"}})
        if not _names(field_errors(clause, ex), "overrides"):
            raise Violation(clause, f"overrides.{name} not named", ex)
