"""Influencers (CONTRACT.md: Create influencer, Job lifecycle; spec: getInfluencer,
patchInfluencer): the record as its job moves, and PATCH. Lists and DELETE are the next two
sections, in that order (the sample influencer is deleted last).
"""

from __future__ import annotations

from typing import Any

from .. import contract as c
from ..clause import Needs, Section
from ..exchange import Exchange
from ..observe import Transcript
from ..report import NotChecked, Violation
from ..session import Job, Session, body_of, items_of

SECTION = Section("influencers", "Influencers")
JSON = dict[str, Any]


@SECTION.observer("influencers.exists-at-once", producers=("jobs.accepted-envelope",))
def exists_at_once(t: Transcript) -> None:
    """The influencer a 202 names exists at once: readable, in the project, not yet ready."""
    judged = False
    for accepted in t.accepts:
        body = body_of(accepted)
        path = c.influencer_path(str(body.get("influencerId")))
        first = next(
            (
                ex
                for ex in t.partner
                if ex.seq > accepted.seq and ex.method == "GET" and ex.bare_path == path
            ),
            None,
        )
        if first is None:
            continue
        judged = True
        got = body_of(first)
        if first.status != 200 or got.get("influencerId") != body.get("influencerId"):
            raise Violation(
                "influencers.exists-at-once",
                f"GET right after the 202 answered {first.status}",
                first,
            )
        if got.get("projectId") != body.get("projectId"):
            raise Violation("influencers.exists-at-once", "another projectId than the 202's", first)
    t.need(judged, "no influencer was read after its 202")


def _first_list_after(s: Session, job: Job) -> Exchange | None:
    path = c.create_path(s.project)
    return next(
        (
            ex
            for ex in s.target.exchanges
            if ex.seq > job.accepted.seq and ex.method == "GET" and ex.bare_path == path
        ),
        None,
    )


@SECTION.clause("influencers.listed-at-once", needs=Needs(sample=True))
def listed_at_once(s: Session) -> None:
    """The new influencer is in the project's list right after the 202 (newest first)."""
    job = s.sample_job()
    ex = _first_list_after(s, job) or s.get(c.create_path(s.project) + "?limit=10")
    ids = [i.get("influencerId") for i in items_of(ex)]
    if ex.status != 200 or job.influencer_id not in ids:
        raise Violation("influencers.listed-at-once", "the new influencer is not listed", ex)


@SECTION.observer(
    "influencers.status-follows-job",
    producers=("jobs.terminal-within-patience", "lifecycle.state-machine"),
)
def status_follows_job(t: Transcript) -> None:
    """An influencer is pending, then training, then ready or failed exactly as its job says
    (queued/generating_persona, rendering_portrait to finalizing, completed / failed, canceled)."""
    judged = False
    for job_id in t.accepted_by_job:
        rows = t.timeline(job_id)
        last_job: JSON = {"status": "running", "stage": "queued"}
        for i, (ex, kind, body) in enumerate(rows):
            if kind == "job":
                last_job = body
                continue
            after = next((b for _, k, b in rows[i + 1 :] if k == "job"), None)
            check_agrees(last_job, ex, after)
            judged = True
    t.need(judged, "no influencer was read between two reads of its job")


def check_agrees(before: JSON, influencer: Exchange, after: JSON | None) -> None:
    """The influencer read between two job reads has a status between what each implies."""
    got = str(body_of(influencer).get("status"))
    low = c.implied_influencer_status(before)
    rank = c.INFLUENCER_RANK
    high = c.implied_influencer_status(after) if after is not None else None
    ok = got in rank and rank[low] <= rank[got]
    if ok and high is not None:
        ok = rank[got] <= rank[high] and (got not in ("ready", "failed") or got in (low, high))
    if ok and low in ("ready", "failed"):
        ok = got == low
    if not ok:
        raise Violation(
            "influencers.status-follows-job",
            f"influencer {got!r} while its job implies {low!r}..{high or '?'!r}",
            influencer,
        )


def _own_records(t: Transcript) -> list[tuple[Exchange, JSON]]:
    """Every influencer record of the run's own influencers: GETs, PATCH answers, list items."""
    own = set(t.job_of_influencer)
    out: list[tuple[Exchange, JSON]] = []
    for ex in t.partner:
        body = body_of(ex)
        if ex.status != 200:
            continue
        if isinstance(body.get("items"), list):
            out += [
                (ex, item)
                for item in body["items"]
                if isinstance(item, dict) and c.bare(str(item.get("influencerId"))) in own
            ]
        elif (
            ex.bare_path.startswith(c.influencer_path(""))
            and ex.method in ("GET", "PATCH")
            and c.bare(str(body.get("influencerId"))) in own
        ):
            out.append((ex, body))
    return out


def _fields_problem(record: JSON, patched: bool) -> str | None:
    status = record.get("status")
    if status != "ready" and record.get("name") is not None and not patched:
        return f"{status} with a name (it is generated when the job completes)"
    if status == "ready":
        if not record.get("name") or not isinstance(record.get("imageUrl"), str):
            return "ready without name and imageUrl"
        if record.get("errorMessage") is not None:
            return "ready with an errorMessage"
    elif status == "failed":
        if not record.get("errorMessage"):
            return "failed without errorMessage"
        if record.get("imageUrl") is not None:
            return "failed with an imageUrl"
    elif status in ("pending", "training") and (
        record.get("imageUrl") is not None or record.get("errorMessage") is not None
    ):
        return f"{status} with an imageUrl or errorMessage"
    return None


@SECTION.observer("influencers.fields-follow-status", producers=("jobs.terminal-within-patience",))
def fields_follow_status(t: Transcript) -> None:
    """ready ⇒ name and imageUrl set, no errorMessage; failed ⇒ errorMessage, no imageUrl;
    pending and training ⇒ neither imageUrl nor errorMessage; no name before ready unless
    PATCHed (in reads, PATCH answers and lists)."""
    records = _own_records(t)
    for ex, record in records:
        patched = any(
            p.method == "PATCH"
            and p.seq <= ex.seq
            and p.bare_path.endswith(c.bare(str(record.get("influencerId"))))
            for p in t.partner
        )
        problem = _fields_problem(record, patched)
        if problem:
            raise Violation("influencers.fields-follow-status", problem, ex)
    t.need(any(r.get("status") == "ready" for _, r in records), "no ready influencer was read")


@SECTION.observer("influencers.record-matches-create", producers=("jobs.accepted-envelope",))
def record_matches_create(t: Transcript) -> None:
    """Until it is PATCHed, an influencer has the gender and ageRange it was created with (or
    the defaults: the project's female/male targetGender else female, young_adult) and the
    project's brandVoice and primaryLanguage."""
    row = t.session.project_row or {}
    patched: set[str] = set()
    judged = False
    for ex in t.partner:
        path = ex.bare_path
        if ex.method == "PATCH" and path.startswith(c.influencer_path("")):
            patched.add(c.bare(path.rsplit("/", 1)[1]))
            continue
        if ex.method != "GET" or ex.status != 200 or not path.startswith(c.influencer_path("")):
            continue
        inf = c.bare(path.rsplit("/", 1)[1])
        job_id = t.job_of_influencer.get(inf)
        if job_id is None or inf in patched:
            continue
        accepted = body_of(t.accepted_by_job[job_id])
        if c.bare(str(accepted.get("projectId"))) != c.bare(t.session.project):
            continue  # another project's (a wallet's): its defaults are not the row read here
        sent = t.accepted_by_job[job_id].request_json()
        sent = sent if isinstance(sent, dict) else {}
        want: JSON = {"ageRange": sent.get("ageRange", c.DEFAULT_AGE_RANGE)}
        if "gender" in sent or row:
            want["gender"] = sent.get("gender") or c.default_gender(row.get("targetGender"))
        if row:
            want |= {"brandVoice": row.get("brandVoice"), "language": row.get("primaryLanguage")}
        got = body_of(ex)
        wrong = {k: got.get(k) for k in want if got.get(k) != want[k]}
        judged = True
        if wrong:
            raise Violation("influencers.record-matches-create", f"{wrong}, expected {want}", ex)
    t.need(judged, "no influencer was read before being patched")


@SECTION.observer("influencers.timestamps-ordered", producers=("jobs.terminal-within-patience",))
def timestamps_ordered(t: Transcript) -> None:
    """createdAt never moves and is not after updatedAt; updatedAt never goes back."""
    clause = "influencers.timestamps-ordered"
    last: dict[str, tuple[str, float]] = {}
    for ex, record in _own_records(t):
        inf = c.bare(str(record.get("influencerId")))
        created = c.parse_time(record.get("createdAt"))
        updated = c.parse_time(record.get("updatedAt"))
        if created is None or updated is None or updated < created:
            raise Violation(clause, "updatedAt is before createdAt (or not a timestamp)", ex)
        if inf in last:
            first_created, previous = last[inf]
            if record.get("createdAt") != first_created or updated < previous:
                raise Violation(clause, "createdAt moved or updatedAt went back", ex)
        last[inf] = (str(record.get("createdAt")), updated)
    t.need(bool(last), "no influencer was read")


PATCHED_FIELDS = ("brandVoice", "language")
UNTOUCHED = ("influencerId", "projectId", "gender", "ageRange", "name", "imageUrl", "status")


def _patch_and_check(
    clause: str, s: Session, job: Job, body: JSON, untouched: tuple[str, ...]
) -> JSON:
    before = s.influencer_record(job)
    if s.clock:
        s.target.advance(2)  # so that updatedAt must move to a new instant
    ex = s.call("PATCH", c.influencer_path(job.influencer_id), body)
    got = body_of(ex)
    if ex.status != 200:
        raise Violation(clause, f"PATCH answered {ex.status}", ex)
    wrong = {k: got.get(k) for k, v in body.items() if got.get(k) != v}
    changed = [k for k in untouched if k not in body and got.get(k) != before.get(k)]
    if wrong or changed:
        raise Violation(clause, f"not applied: {wrong}; changed although omitted: {changed}", ex)
    was, now = c.parse_time(before.get("updatedAt")), c.parse_time(got.get("updatedAt"))
    if was is None or now is None or now < was or (s.clock and now <= was):
        raise Violation(clause, "updatedAt did not move forward", ex)
    if got.get("createdAt") != before.get("createdAt"):
        raise Violation(clause, "createdAt moved", ex)
    read = s.read_influencer(job)
    if body_of(read) != got:
        raise Violation(clause, "GET after the PATCH differs from the PATCH's answer", read)
    return got


@SECTION.clause("influencers.patch-applies", needs=Needs(sample=True))
def patch_applies(s: Session) -> None:
    """PATCH sets the fields sent, leaves the others untouched, moves updatedAt forward, and
    answers (and stores) the full record."""
    job = s.sample_job()
    s.wait_terminal(job)
    current = s.influencer_record(job)
    voice = next(v for v in c.BRAND_VOICES if v != current.get("brandVoice"))
    _patch_and_check(
        "influencers.patch-applies", s, job, {"brandVoice": voice, "language": "es-MX"}, UNTOUCHED
    )


@SECTION.clause("influencers.patch-clears-age-range", needs=Needs(sample=True))
def patch_clears_age_range(s: Session) -> None:
    """PATCH {"ageRange": null} clears the age band; gender can be changed (but not cleared)."""
    job = s.sample_job()
    s.wait_terminal(job)
    clause = "influencers.patch-clears-age-range"
    _patch_and_check(clause, s, job, {"ageRange": None}, UNTOUCHED)
    current = s.influencer_record(job)
    gender = next(g for g in c.GENDERS if g != current.get("gender"))
    _patch_and_check(clause, s, job, {"gender": gender}, UNTOUCHED)


@SECTION.clause("influencers.patch-name-sticks", needs=Needs(jobs=1), black_box=False)
def patch_name_sticks(s: Session) -> None:
    """A name PATCHed while the job runs survives its completion (mock decision)."""
    clause = "influencers.patch-name-sticks"
    job = s.start_job()
    ex = s.call("PATCH", c.influencer_path(job.influencer_id), {"name": "Conformance Sticky"})
    if ex.status != 200 or body_of(ex).get("name") != "Conformance Sticky":
        raise Violation(clause, f"PATCH name answered {ex.status}", ex)
    if s.wait_terminal(job).get("status") != "completed":
        raise NotChecked("the job did not complete")
    read = s.read_influencer(job)
    if body_of(read).get("name") != "Conformance Sticky":
        raise Violation(clause, "completion overwrote the PATCHed name", read)
