"""Project lists (spec: listProjects; the Layers projects-list page): the caller's projects
newest first, filtered by status, by a case-insensitive part of the name and by the exact
customerExternalId. Reads only: the given project and the ones the run created are the data.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any
from urllib.parse import quote

from .. import contract as c
from ..clause import Section
from ..exchange import Exchange
from ..observe import Transcript
from ..report import NotChecked, Violation
from ..session import Session, body_of, items_of
from .projects import need_scope

SECTION = Section("project-lists", "Project lists")


def project_pages(t: Transcript) -> list[Exchange]:
    """Every 200 page of GET /v1/projects the run read (any key, any organization)."""
    return [ex for ex in t.partner if ex.method == "GET" and ex.bare_path == c.PROJECTS]


@SECTION.observer(
    "projects.list-newest-first",
    producers=("projects.create-returns-row", "projects.first-influencer", "projects.list-filters"),
)
def list_newest_first(t: Transcript) -> None:
    """Every page of GET /v1/projects lists projects newest first (createdAt never increases
    down the page)."""
    pages = [ex for ex in project_pages(t) if ex.status == 200]
    for ex in pages:
        stamps = [c.parse_time(i.get("createdAt")) for i in items_of(ex)]
        for a, b in pairwise(stamps):
            if a is None or b is None or b > a:
                raise Violation("projects.list-newest-first", "an older project before a newer", ex)
    distinct = any(len({i.get("createdAt") for i in items_of(ex)}) > 1 for ex in pages)
    t.need(distinct, "no list of projects created at different instants")


def _page(s: Session, clause: str, **query: str) -> tuple[Exchange, list[dict[str, Any]], bool]:
    """One page of at most 200 projects: (exchange, items, whether it is the whole list)."""
    params = "&".join(f"{k}={quote(v, safe='')}" for k, v in query.items())
    ex = s.get(f"{c.PROJECTS}?limit={c.PROJECT_LIMIT_MAX}" + (f"&{params}" if params else ""))
    if ex.status != 200:
        raise Violation(clause, f"GET /v1/projects?{params} answered {ex.status}", ex)
    return ex, items_of(ex), body_of(ex).get("nextCursor") is None


def _searchable(name: object) -> bool:
    """A name whose part has letters (so that flipping its case changes it)."""
    return isinstance(name, str) and len(name) >= 3 and any(ch.isalpha() for ch in name[1:-1])


def _case_flipped_part(name: str) -> str:
    """A part of the name (at least 3 characters), in the other case: C0nformance -> NFORM."""
    part = name[1:-1] if len(name) > 4 else name
    return part.swapcase()


@SECTION.clause("projects.list-filters")
def list_filters(s: Session) -> None:
    """status= lists exactly the projects in that status; search= the projects whose name
    contains it, ignoring case; customerExternalId= the projects with exactly that value
    (a part of it matches nothing)."""
    clause = "projects.list-filters"
    need_scope(s, c.PROJECTS_READ)
    _, everything, whole = _page(s, clause)
    if not everything:
        raise NotChecked("the key's organization lists no project")
    for status in c.PROJECT_STATUSES:
        ex, items, complete = _page(s, clause, status=status)
        wrong = sorted({str(p.get("status")) for p in items} - {status})
        if wrong:
            raise Violation(clause, f"status={status} listed projects {wrong}", ex)
        listed = {p.get("id") for p in items}
        left_out = [p.get("id") for p in everything if p.get("status") == status]
        left_out = [i for i in left_out if i not in listed] if whole and complete else []
        if left_out:
            raise Violation(clause, f"status={status} left out {left_out[:2]}", ex)
    named = next((p for p in everything if _searchable(p.get("name"))), None)
    if named is not None:
        needle = _case_flipped_part(str(named["name"]))
        ex, items, complete = _page(s, clause, search=needle)
        names = [str(p.get("name")) for p in items]
        strangers = [n for n in names if needle.casefold() not in n.casefold()]
        if strangers:
            raise Violation(clause, f"search={needle!r} listed {strangers[:2]}", ex)
        if complete and named["id"] not in {p.get("id") for p in items}:
            raise Violation(clause, f"search={needle!r} left out {named['name']!r}", ex)
    tagged = next((p for p in everything if p.get("customerExternalId")), None)
    if tagged is None:
        s.note("no listed project has a customerExternalId: that filter was not tried")
        return
    value = str(tagged["customerExternalId"])
    ex, items, complete = _page(s, clause, customerExternalId=value)
    others = [p.get("customerExternalId") for p in items if p.get("customerExternalId") != value]
    if others or (complete and tagged["id"] not in {p.get("id") for p in items}):
        raise Violation(clause, f"customerExternalId={value!r}: {others[:2]}, or it is missing", ex)
    if len(value) > 1:
        ex, items, _ = _page(s, clause, customerExternalId=value[:-1])
        if tagged["id"] in {p.get("id") for p in items}:
            raise Violation(clause, f"customerExternalId={value[:-1]!r} (a part) matched", ex)
