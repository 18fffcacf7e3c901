"""Idempotency (CONTRACT.md: Idempotency, and the Changes of 2026-12-01).

Records are per (API key, method, path, Idempotency-Key) for 24 hours of mock time; the same
body (as parsed JSON) replays the first answer; another body is 409; only answers of requests
that reached the handler are stored; a stored answer is found before the resource lookup, so a
retried DELETE gets its 200 again; an expired key mints new ids that collide with nothing.
Most clauses here work on the workbench influencer with PATCH, so they cost no job starts.
"""

from __future__ import annotations

import json
from typing import Any

from .. import contract as c
from ..clause import Needs, Section
from ..exchange import Exchange
from ..observe import Transcript
from ..report import NotChecked, Violation
from ..session import Session, body_of, expect_error

SECTION = Section("idempotency", "Idempotency")

# Headers a replay does not repeat (CONTRACT.md Changes: "What a replay repeats"), plus the
# ones a server or proxy adds per connection, which no application stores.
NOT_REPLAYED = {"x-request-id", "date", "server", "connection", "keep-alive", "transfer-encoding"}


def replayed_headers(ex: Exchange) -> dict[str, str]:
    return {
        k.lower(): v
        for k, v in ex.response_headers.items()
        if k.lower() not in NOT_REPLAYED and not k.lower().startswith("x-ratelimit-")
    }


def check_replay(clause: str, first: Exchange, again: Exchange) -> None:
    """`again` repeats `first`: status, body, headers; with a fresh X-Request-Id."""
    if again.status != first.status or again.json() != first.json():
        raise Violation(
            clause, f"replay answered {again.status} {again.response_body[:160]!r}", again
        )
    a, b = replayed_headers(first), replayed_headers(again)
    diff = sorted(k for k in a if a[k] != b.get(k))  # a replay may add a header, not drop one
    if diff:
        raise Violation(clause, f"replayed headers differ: {diff}", again)
    if again.header("X-Request-Id") == first.header("X-Request-Id"):
        raise Violation(clause, "the replay reused the first answer's X-Request-Id", again)


@SECTION.clause("idempotency.replay-identical", needs=Needs(sample=True))
def replay_identical(s: Session) -> None:
    """A retry with the same key and body replays the first answer (same job, same body, same
    headers) with a fresh X-Request-Id."""
    first = s.sample_job().accepted
    key = first.request_header("Idempotency-Key") or ""
    again = s.create(headers={"Idempotency-Key": key}, expect_replay=True)
    check_replay("idempotency.replay-identical", first, again)


@SECTION.clause("idempotency.conflict-409", needs=Needs(sample=True))
def conflict_409(s: Session) -> None:
    """The same key with another body is 409 IDEMPOTENCY_CONFLICT, not a second job."""
    key = s.sample_job().accepted.request_header("Idempotency-Key") or ""
    body = {"gender": "male", "prompt": "conformance conflict"}
    ex = s.create(body, headers={"Idempotency-Key": key})
    expect_error("idempotency.conflict-409", ex, 409, "IDEMPOTENCY_CONFLICT")


def _patch(s: Session, inf: str, body: Any, key: str, **kw: Any) -> Exchange:
    return s.call("PATCH", c.influencer_path(inf), body, headers={"Idempotency-Key": key}, **kw)


@SECTION.clause("idempotency.body-compared-as-json", needs=Needs(workbench=True))
def body_compared_as_json(s: Session) -> None:
    """Bodies are compared as parsed JSON: the same PATCH with its keys reordered and other
    whitespace replays the first answer instead of a 409."""
    job = s.workbench_job()
    key = s.target.idempotency_key()
    first = _patch(s, job.influencer_id, {"brandVoice": "warm", "language": "en-GB"}, key)
    if first.status != 200:
        raise NotChecked(f"the PATCH answered {first.status}")
    if s.clock:
        s.target.advance(1)  # a re-execution would now show another updatedAt
    raw = b'{ "language" : "en-GB",\n  "brandVoice":"warm" }'
    again = s.call(
        "PATCH",
        c.influencer_path(job.influencer_id),
        content=raw,
        headers={"Idempotency-Key": key, "Content-Type": "application/json"},
    )
    check_replay("idempotency.body-compared-as-json", first, again)


@SECTION.clause("idempotency.rejected-not-stored", needs=Needs(workbench=True))
def rejected_not_stored(s: Session) -> None:
    """A request rejected before the handler (a 422) is not stored: the key's next request
    with a valid body is evaluated afresh, not answered 409 or with the old 422."""
    job = s.workbench_job()
    key = s.target.idempotency_key()
    rejected = _patch(s, job.influencer_id, {"conformanceBogus": 1}, key)
    expect_error("idempotency.rejected-not-stored", rejected, 422, "VALIDATION")
    ex = _patch(s, job.influencer_id, {"ageRange": "teen"}, key)
    if ex.status != 200 or body_of(ex).get("ageRange") != "teen":
        raise Violation("idempotency.rejected-not-stored", f"the retry answered {ex.status}", ex)


@SECTION.clause(
    "idempotency.scoped-per-key", needs=Needs(workbench=True, identities=("second_key",))
)
def scoped_per_key(s: Session) -> None:
    """Records are per API key: another key of the organization using the same
    Idempotency-Key gets its own answer, neither the first key's replay nor a 409."""
    second = s.require("second_key", "another key of the same organization")
    if not c.grants(s.scopes("second_key"), c.INFLUENCERS_WRITE):
        raise NotChecked("--second-key lacks influencers:write (whoami)")
    job = s.workbench_job()
    key = s.target.idempotency_key()
    first = _patch(s, job.influencer_id, {"name": "Conformance One"}, key)
    if first.status != 200:
        raise NotChecked(f"the PATCH answered {first.status}")
    path = c.influencer_path(job.influencer_id)
    ex = s.call(
        "PATCH", path, {"name": "Conformance Two"}, key=second, headers={"Idempotency-Key": key}
    )
    if ex.status != 200 or body_of(ex).get("name") != "Conformance Two":
        raise Violation(
            "idempotency.scoped-per-key",
            f"the second key's request answered {ex.status} {ex.response_body[:120]!r}",
            ex,
        )


@SECTION.clause("idempotency.window-24h", needs=Needs(workbench=True, clock=True))
def window_24h(s: Session) -> None:
    """A record lives 24 hours of mock time: the same request replays just before, and is
    evaluated afresh just after."""
    job = s.workbench_job()
    key = s.target.idempotency_key()
    body = {"name": "Conformance Window"}
    first = _patch(s, job.influencer_id, body, key)
    if first.status != 200:
        raise NotChecked(f"the PATCH answered {first.status}")
    s.target.advance(c.IDEMPOTENCY_WINDOW_S - 60)
    check_replay("idempotency.window-24h", first, _patch(s, job.influencer_id, body, key))
    s.target.advance(120)
    late = _patch(s, job.influencer_id, body, key)
    was, now = (
        c.parse_time(body_of(first).get("updatedAt")),
        c.parse_time(body_of(late).get("updatedAt")),
    )
    if late.status != 200 or was is None or now is None or now <= was:
        raise Violation(
            "idempotency.window-24h", "24 h later the same key still replayed the old answer", late
        )


@SECTION.clause("idempotency.scoped-per-method-and-path", needs=Needs(sample=True, workbench=True))
def scoped_per_method_and_path(s: Session) -> None:
    """Records are per method and path: the same key on another influencer, or with DELETE
    after a PATCH, is a request of its own (then the workbench influencer is deleted)."""
    clause = "idempotency.scoped-per-method-and-path"
    sample, job = s.sample_job(), s.workbench_job()
    key = s.target.idempotency_key()
    body = {"name": "Conformance Path"}
    first = _patch(s, job.influencer_id, body, key)
    if first.status != 200:
        raise NotChecked(f"the PATCH answered {first.status}")
    other = _patch(s, sample.influencer_id, body, key)
    if other.status != 200 or body_of(other).get("influencerId") != sample.influencer_id:
        raise Violation(clause, "the same key on another path did not act on that path", other)
    deleted = s.call(
        "DELETE", c.influencer_path(job.influencer_id), headers={"Idempotency-Key": key}
    )
    if deleted.status != 200 or body_of(deleted).get("status") != "deleted":
        raise Violation(clause, "DELETE with a key used by a PATCH did not delete", deleted)
    s.workbench_deleted = deleted


@SECTION.clause("idempotency.delete-retry-replays", needs=Needs(workbench=True))
def delete_retry_replays(s: Session) -> None:
    """A DELETE retried with its Idempotency-Key after it succeeded replays its 200 (the stored
    answer is found before the resource lookup), and the influencer stays deleted."""
    clause = "idempotency.delete-retry-replays"
    job = s.workbench_job()
    path = c.influencer_path(job.influencer_id)
    first = s.workbench_deleted
    if first is None:
        first = s.call("DELETE", path, headers={"Idempotency-Key": s.target.idempotency_key()})
        if first.status != 200:
            raise NotChecked(f"the DELETE answered {first.status}")
        s.workbench_deleted = first
    key = first.request_header("Idempotency-Key") or ""
    again = s.call("DELETE", path, headers={"Idempotency-Key": key})
    check_replay(clause, first, again)
    expect_error(clause, s.read_influencer(job), 404, "NOT_FOUND")


@SECTION.clause("idempotency.expired-key-is-new", needs=Needs(jobs=2, clock=True))
def expired_key_is_new(s: Session) -> None:
    """Once a key has expired it is new: it mints new ids, and what the first request created
    is untouched (a key never resurrects or overwrites anything)."""
    clause = "idempotency.expired-key-is-new"
    key = s.target.idempotency_key()
    first = s.start_job(idempotency_key=key)
    s.target.advance(c.IDEMPOTENCY_WINDOW_S + 60)
    second = s.start_job(idempotency_key=key)
    if second.job_id == first.job_id or second.influencer_id == first.influencer_id:
        raise Violation(
            clause, "an expired key minted the ids of the first request", second.accepted
        )
    job = s.read_job(first)
    if job.status != 200 or body_of(job).get("startedAt") != first.started_at:
        raise Violation(clause, "the first job changed after its key was reused", job)
    inf = s.read_influencer(first)
    created = c.parse_time(body_of(inf).get("createdAt"))
    if inf.status != 200 or created is None or created >= (c.parse_time(second.started_at) or 0):
        raise Violation(clause, "the first influencer changed after its key was reused", inf)


@SECTION.clause("idempotency.concurrent-one-resource", needs=Needs(spare=1))
def concurrent_one_resource(s: Session) -> None:
    """Concurrent requests with one Idempotency-Key produce one resource: the others wait and
    replay, so every answer is the same 202 naming one job."""
    s.spend_job()
    t = s.target
    headers = {**t.auth(), "Idempotency-Key": t.idempotency_key(), "Prefer": "outcome=completed"}
    answers = t.send_together(
        "POST", c.create_path(s.project), headers, {"prompt": "conformance concurrent"}, 3
    )
    jobs = {body_of(ex).get("jobId") for ex in answers}
    if any(ex.status != 202 for ex in answers) or len(jobs) != 1:
        statuses = [ex.status for ex in answers]
        raise Violation(
            "idempotency.concurrent-one-resource",
            f"three concurrent creates with one key answered {statuses} naming {len(jobs)} job(s)",
            answers[-1],
        )


def _canonical(ex: Exchange) -> str:
    body = ex.request_json() if ex.request_body.strip() else {}
    return json.dumps(body, sort_keys=True)


@SECTION.observer(
    "idempotency.every-retry-replays",
    producers=(
        "idempotency.replay-identical",
        "jobs.cancel-accepted",
        "projects.create-idempotent",
    ),
)
def every_retry_replays(t: Transcript) -> None:
    """Every retry the run made (any operation, any key) with an Idempotency-Key and the same
    body, within 24 hours of mock time, repeated the first accepted answer."""
    first: dict[tuple[str, ...], Exchange] = {}
    judged = False
    for ex in t.partner:
        key = ex.request_header("Idempotency-Key")
        if key is None or ex.method not in ("POST", "PATCH", "DELETE"):
            continue
        if ex.status == 429 or ex.status >= 500:
            continue  # refused before the record is looked up (rate limit) or a fault
        group = (str(t.identity_of(ex)), ex.method, ex.bare_path, key, _canonical(ex))
        stored = first.get(group)
        if stored is None:
            if ex.status < 300:  # only accepted answers are stored
                first[group] = ex
            continue
        if t.moved_between(stored, ex) >= c.IDEMPOTENCY_WINDOW_S:
            first[group] = ex  # expired: a new record
            continue
        judged = True
        check_replay("idempotency.every-retry-replays", stored, ex)
    t.need(judged, "no request was retried with its Idempotency-Key")
