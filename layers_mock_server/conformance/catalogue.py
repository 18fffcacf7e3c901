"""The clause catalogue: every section of the contract, in the order `conform --list` shows
them and the runner runs them. Adding a section is one module with a `Section` and one line
here.
"""

from __future__ import annotations

from .clause import Clause, Section
from .clauses import (
    auth,
    cancel,
    clone,
    credits,
    delete,
    engines,
    errors,
    idempotency,
    influencers,
    jobs,
    lists,
    project_changes,
    project_lists,
    projects,
    ratelimits,
    steering,
    suborgs,
    validation,
)

SECTIONS: tuple[Section, ...] = (
    auth.SECTION,
    validation.SECTION,
    idempotency.SECTION,
    jobs.SECTION,
    cancel.SECTION,
    influencers.SECTION,
    lists.SECTION,
    clone.SECTION,
    delete.SECTION,
    projects.SECTION,
    project_lists.SECTION,
    project_changes.SECTION,
    suborgs.SECTION,
    credits.SECTION,
    ratelimits.SECTION,
    errors.SECTION,
    steering.SECTION,
    engines.SECTION,
)

CATALOGUE: tuple[Clause, ...] = tuple(clause for s in SECTIONS for clause in s.clauses)
BY_NAME: dict[str, Clause] = {clause.name: clause for clause in CATALOGUE}
if len(BY_NAME) != len(CATALOGUE):  # pragma: no cover - a duplicate name is a typo
    raise RuntimeError("two clauses share a name")


def _needs(clause: Clause) -> str:
    needs = clause.needs.describe()
    if not clause.black_box:
        needs = "mock only" + ("" if needs == "-" else f", {needs}")
    return needs


def markdown() -> str:
    """The clause table of README.md (`conform --list markdown` prints it)."""
    lines = []
    for section in SECTIONS:
        lines += [f"**{section.title}**", "", "| clause | needs | holds the deployment to |"]
        lines.append("|---|---|---|")
        for clause in section.clauses:
            kind = {"observer": " (all traffic)", "engine": f" (by `{clause.judged_by}`)"}
            lines.append(
                f"| `{clause.name}` | {_needs(clause)}{kind.get(clause.kind, '')} | {clause.doc} |"
            )
        lines.append("")
    return "\n".join(lines)


def listing() -> str:
    """`conform --list`: each clause, what it needs, and what it holds the deployment to."""
    width = max(len(clause.name) for clause in CATALOGUE)
    lines = []
    for section in SECTIONS:
        lines.append(f"\n{section.title}")
        for clause in section.clauses:
            needs = _needs(clause)
            kind = {"observer": "(all traffic)", "engine": f"(by {clause.judged_by})"}
            lines.append(
                f"  {clause.name:<{width}}  [{needs}] {kind.get(clause.kind, '')}".rstrip()
            )
            lines.append(f"  {'':<{width}}  {clause.doc}")
    return "\n".join(lines).lstrip("\n") + "\n"
