"""Lists (spec: listInfluencers): newest first, pages followed to their end and compared with
one big page (so an item repeated or skipped across pages shows), the status filter, and the
items themselves; and, on the mock, cursors as keyset positions (both lists).
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

from hypothesis import strategies as st

from .. import contract as c
from ..clause import Needs, Section
from ..exchange import Exchange
from ..observe import Transcript
from ..report import NotChecked, Violation
from ..session import Session, body_of, items_of

SECTION = Section("lists", "Lists")


def list_ids(ex: Exchange) -> list[str]:
    items = body_of(ex).get("items")
    if not isinstance(items, list):
        return []
    return [str(i.get("influencerId")) for i in items if isinstance(i, dict)]


def _walk(s: Session, query: str, limit: int, need: int, clause: str) -> list[str]:
    """Follow nextCursor from the first page until `need` items or the end; every page but the
    last holds exactly `limit` items."""
    ids: list[str] = []
    cursor: str | None = None
    for _ in range(need // limit + 2):
        params = f"?limit={limit}{query}" + (f"&cursor={cursor}" if cursor else "")
        ex = s.get(c.create_path(s.project) + params)
        if ex.status != 200:
            raise Violation(clause, f"a page answered {ex.status}", ex)
        page = list_ids(ex)
        if ids and not page:
            raise Violation(clause, "nextCursor led to an empty page (it must be null)", ex)
        cursor = body_of(ex).get("nextCursor")
        if len(page) > limit or (cursor is not None and len(page) != limit):
            raise Violation(clause, f"a page of {len(page)} items with limit={limit}", ex)
        ids += page
        if cursor is None or len(ids) >= need:
            return ids
    raise Violation(clause, "the walk did not end", None)


def check_pages(s: Session, clause: str, query: str = "", limit: int = 2) -> int:
    """The pages of a walk, put together, are the big page: same items, same order, none
    repeated or skipped, nextCursor null exactly at the end. Returns the items compared."""
    for _ in range(2):  # a list that changed during the walk is walked once more
        reference = s.get(c.create_path(s.project) + f"?limit={c.LIMIT_MAX}{query}")
        ref = list_ids(reference)
        limit = min(limit, max(1, len(ref) // 3))
        if len(ref) < limit + 1:
            raise NotChecked(f"needs at least 2 items in the list ({len(ref)})")
        complete = body_of(reference).get("nextCursor") is None
        walked = _walk(s, query, limit, len(ref), clause)
        if len(set(walked)) != len(walked):
            repeated = sorted({i for i in walked if walked.count(i) > 1})
            raise Violation(clause, f"an item came back on a later page: {repeated[:3]}", None)
        if list_ids(s.get(c.create_path(s.project) + f"?limit={c.LIMIT_MAX}{query}")) != ref:
            continue
        if walked[: len(ref)] != ref or (complete and len(walked) != len(ref)):
            missing = [i for i in ref if i not in walked]
            raise Violation(clause, f"the pages skip {missing[:3]} or reorder the list", reference)
        return len(ref) if complete else c.LIMIT_MAX + 1
    raise NotChecked("the list kept changing while it was walked")


def _at_least(s: Session, n: int) -> None:
    """Start jobs (out of the clause's spare allowance) until the list has `n` items."""
    have = len(list_ids(s.get(c.create_path(s.project) + f"?limit={n}")))
    for _ in range(n - have):
        if not s.allowance.get(s.clause, 1):
            return
        if s.clock:
            s.target.advance(1)  # distinct createdAt, so the order is the list's to get right
        s.start_job(read_back=False)


@SECTION.clause("lists.pages-complete", needs=Needs(sample=True, spare=2))
def pages_complete(s: Session) -> None:
    """Following nextCursor gives every item once, in order, with full pages of `limit` and a
    null nextCursor only at the end; without limit a page holds at most 25."""
    s.sample_job()
    _at_least(s, 3)
    count = check_pages(s, "lists.pages-complete")
    default = s.get(c.create_path(s.project))
    n = len(list_ids(default))
    if n != min(count, c.LIMIT_DEFAULT):
        raise Violation("lists.pages-complete", f"a default page of {n} items", default)


@SECTION.clause("lists.status-filter", needs=Needs(sample=True))
def status_filter(s: Session) -> None:
    """`status=` lists exactly the influencers in that status (following pages too), including
    the run's own finished ones."""
    clause = "lists.status-filter"
    job = s.sample_job()
    s.wait_terminal(job)
    own: dict[str, str] = {}
    for j in s.jobs:
        read = s.read_influencer(j)
        if read.status == 200 and body_of(read).get("status") in ("ready", "failed"):
            own[j.influencer_id] = str(body_of(read).get("status"))
    counts: dict[str, int] = {}
    for status in c.INFLUENCER_STATUSES:
        ex = s.get(c.create_path(s.project) + f"?limit={c.LIMIT_MAX}&status={status}")
        items = items_of(ex)
        wrong = [i.get("status") for i in items if i.get("status") != status]
        if ex.status != 200 or wrong:
            raise Violation(clause, f"status={status} listed {sorted(set(map(str, wrong)))}", ex)
        counts[status] = len(items)
        listed = set(list_ids(ex))
        complete = body_of(ex).get("nextCursor") is None
        absent = [i for i, st in own.items() if st == status and i not in listed]
        if absent and complete:
            raise Violation(clause, f"status={status} left out {absent[:2]}", ex)
    busiest = max(counts, key=lambda k: counts[k])
    if counts[busiest] >= 2:
        check_pages(s, clause, f"&status={busiest}", limit=1)


@SECTION.observer("lists.newest-first", producers=("lists.pages-complete",))
def newest_first(t: Transcript) -> None:
    """Every page lists influencers newest first (createdAt never increases down the page)."""
    for ex in t.list_reads:
        stamps = [c.parse_time(i.get("createdAt")) for i in items_of(ex)]
        for a, b in pairwise(stamps):
            if a is None or b is None or b > a:
                raise Violation("lists.newest-first", "an older influencer before a newer one", ex)
    t.need(any(len(items_of(e)) > 1 for e in t.list_reads), "no list of 2+")


@SECTION.observer(
    "lists.items-in-project",
    producers=("lists.pages-complete", "projects.first-influencer", "tenancy.foreign-key-404"),
)
def items_in_project(t: Transcript) -> None:
    """A project's list holds that project's influencers only (no other project's, no other
    organization's)."""
    judged = False
    for ex in t.list_reads:
        project = "prj_" + c.bare(ex.bare_path.split("/")[3])
        for item in items_of(ex):
            judged = True
            if item.get("projectId") != project:
                raise Violation(
                    "lists.items-in-project", f"an item of {item.get('projectId')} listed", ex
                )
    t.need(judged, "no list with items")


@SECTION.clause("lists.items-match-records", needs=Needs(sample=True))
def items_match_records(s: Session) -> None:
    """A list item is the full influencer record, equal to what GET returns."""
    job = s.sample_job()
    s.wait_terminal(job)
    record = s.influencer_record(job)
    ex = s.get(c.create_path(s.project) + f"?limit={c.LIMIT_MAX}")
    item = next(
        (i for i in items_of(ex) if i.get("influencerId") == job.influencer_id),
        None,
    )
    if item is None:
        raise NotChecked("the sample influencer is not on the first page")
    if item != record:
        diff = sorted(k for k in set(item) | set(record) if item.get(k) != record.get(k))
        raise Violation("lists.items-match-records", f"list item differs from GET: {diff}", ex)


CURSORS = st.from_regex(r"\A[0-9A-HJKMNP-TV-Z]{1,12}\Z")
LARGEST = "Z" * 12


def _slice_of(
    clause: str, ex: Exchange, full: list[Any], *, whole: bool, key: str, limit: int
) -> None:
    """The page is a run of the whole list, in its order, full unless it is the last."""
    if ex.status != 200:
        raise Violation(clause, f"a well-formed cursor answered {ex.status}", ex)
    page = [i.get(key) for i in items_of(ex)]
    last = body_of(ex).get("nextCursor") is None
    if not page:
        if not last:
            raise Violation(clause, "an empty page with a nextCursor", ex)
        return
    if page[0] not in full:
        if whole:
            raise Violation(clause, f"the page holds {page[0]}, which the list does not", ex)
        return
    at = full.index(page[0])
    if full[at : at + len(page)] != page and (whole or at + len(page) <= len(full)):
        raise Violation(clause, "the page is not a run of the list in its order", ex)
    if not last and len(page) != limit:
        raise Violation(clause, f"a page of {len(page)} with limit={limit} and a nextCursor", ex)
    if last and whole and at + len(page) != len(full):
        raise Violation(clause, "nextCursor is null before the end of the list", ex)


@SECTION.clause("lists.any-wellformed-cursor", needs=Needs(sample=True), black_box=False)
def any_wellformed_cursor(s: Session) -> None:
    """Any cursor of 1 to 12 Crockford digits, minted or not, is a keyset position on both
    lists: 200 with the items after it in list order ("0" gives nothing, the largest gives
    the first page); never a 422 (mock decision: real Layers cursors are opaque)."""
    clause = "lists.any-wellformed-cursor"
    s.sample_job()
    lists = [(c.create_path(s.project), c.LIMIT_MAX, "influencerId")]
    if c.grants(s.scopes(), c.PROJECTS_READ):
        lists.append((c.PROJECTS, c.PROJECT_LIMIT_MAX, "id"))
    wholes = []
    for path, most, key in lists:
        reference = s.get(f"{path}?limit={most}")
        full = [i.get(key) for i in items_of(reference)]
        whole = body_of(reference).get("nextCursor") is None
        wholes.append((full, whole))
        empty = s.get(f"{path}?cursor=0")
        if empty.status != 200 or items_of(empty) or body_of(empty).get("nextCursor") is not None:
            raise Violation(clause, "cursor 0 (before everything) is not an empty last page", empty)
        first = s.get(f"{path}?limit=2&cursor={LARGEST}")
        if [i.get(key) for i in items_of(first)] != full[:2]:
            raise Violation(
                clause, f"cursor {LARGEST} (after everything) is not the first page", first
            )

    @s.prop(st.tuples(st.sampled_from(range(len(lists))), CURSORS, st.integers(1, 5)))
    def _(case: tuple[int, str, int]) -> None:
        which, cursor, limit = case
        path, _, key = lists[which]
        full, whole = wholes[which]
        ex = s.get(f"{path}?limit={limit}&cursor={cursor}")
        _slice_of(clause, ex, full, whole=whole, key=key, limit=limit)
