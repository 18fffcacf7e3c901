"""Divide the run's budgets among the clauses before the first request.

A budget spent first-come-first-served lets the first clause eat everything: `--examples
100000 --max-time 20` used to pass with 22 clauses never checked. Here every clause gets a
share of `--max-time` (cumulative deadlines by weight, so time one clause leaves over flows to
the next), the lifecycle state machine keeps a reserve of `--max-creates`, and a clause that
cannot be afforded, or needs an identity or a control plane the run does not have, is NOT
CHECKED with that reason before anything is sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .catalogue import BY_NAME, CATALOGUE
from .clause import IDENTITY_FLAGS, Clause
from .target import Identities

LIFECYCLE = "lifecycle.state-machine"


@dataclass(slots=True)
class Plan:
    report: list[Clause]  # the clauses asked for, in catalogue order
    active: list[Clause]  # what runs, in catalogue order (producers of observers included)
    observers: list[Clause]
    skipped: dict[str, str] = field(default_factory=dict)  # clause -> why NOT CHECKED
    allowance: dict[str, int | None] = field(default_factory=dict)  # jobs each may start
    deadlines: dict[str, float] = field(default_factory=dict)  # seconds after the start


def select(only: list[str]) -> list[Clause]:
    if not only:
        return list(CATALOGUE)
    unknown = [o for o in only if not any(c.name.startswith(o) for c in CATALOGUE)]
    if unknown:
        raise ValueError(f"unknown clause(s): {', '.join(unknown)} (see conform --list)")
    return [c for c in CATALOGUE if any(c.name.startswith(o) for o in only)]


@dataclass(frozen=True, slots=True)
class Abilities:
    identities: Identities
    clock: bool  # the mock's clock may be moved
    still: bool  # ... and it stands still between requests (virtual)
    mock: bool  # the target is a layers-mock (in-process, or --control-plane)
    max_creates: int | None
    max_projects: int | None
    max_time: float | None


def make_plan(wanted: list[Clause], can: Abilities) -> Plan:
    names = {c.name for c in wanted}
    for clause in wanted:
        names.update(clause.producers)
        if clause.judged_by:
            names.add(clause.judged_by)
    run = [c for c in CATALOGUE if c.name in names and c.run is not None]
    plan = Plan(wanted, [], [c for c in CATALOGUE if c.name in names and c.observe is not None])
    for clause in run:
        reason = _unable(clause, can)
        if reason:
            plan.skipped[clause.name] = reason
        else:
            plan.active.append(clause)
    _allot_jobs(plan, can.max_creates)
    _allot_time(plan, can.max_time)
    return plan


def _unable(clause: Clause, can: Abilities) -> str | None:
    missing = [i for i in clause.needs.identities if not getattr(can.identities, i)]
    if missing:
        return f"needs {IDENTITY_FLAGS[missing[0]]}"
    if (clause.needs.clock or not clause.black_box) and not can.mock:
        what = "moving the mock's clock" if clause.needs.clock else "mock-only behaviour"
        return f"needs the control plane: {what} (in-process, or --control-plane on a mock)"
    if clause.needs.still and not can.still:
        return "needs a virtual clock: on a wall clock the job's stage moves between requests"
    projects = can.max_projects
    if clause.needs.projects and projects is not None and projects < clause.needs.projects:
        return "needs --max-projects (projects cannot be deleted through the API)"
    return None


def _cost(clause: Clause, paid: set[str]) -> int:
    shared = {"sample"} if clause.needs.sample else set()
    shared |= {"workbench"} if clause.needs.workbench else set()
    return clause.needs.jobs + len(shared - paid)


def _allot_jobs(plan: Plan, max_creates: int | None) -> None:
    if max_creates is None:
        everyone = [*(c.name for c in plan.active), "sample", "workbench"]
        plan.allowance = dict.fromkeys(everyone)
        return
    left = max_creates
    lifecycle = next((c for c in plan.active if c.name == LIFECYCLE), None)
    sample_first = 1 if any(c.needs.sample for c in plan.active) else 0
    reserve = min(lifecycle.needs.jobs, max(0, left - sample_first)) if lifecycle else 0
    paid: set[str] = set()
    for clause in list(plan.active):
        if clause is lifecycle:
            continue
        cost = _cost(clause, paid)
        if cost > left - reserve:
            plan.active.remove(clause)
            plan.skipped[clause.name] = (
                f"needs {cost} job(s): --max-creates {max_creates} leaves {max(0, left - reserve)}"
                + (f" after the lifecycle's reserve of {reserve}" if reserve else "")
            )
            continue
        for role in ("sample", "workbench"):
            if getattr(clause.needs, role) and role not in paid:
                paid.add(role)
                plan.allowance[role] = 1
        plan.allowance[clause.name] = clause.needs.jobs
        left -= cost
    for clause in plan.active:  # spare jobs come out of what is left, the reserve kept
        if clause.needs.spare and clause is not lifecycle:
            spare = min(clause.needs.spare, max(0, left - reserve))
            plan.allowance[clause.name] = (plan.allowance.get(clause.name) or 0) + spare
            left -= spare
    if lifecycle is not None:
        if left < 1:
            plan.active.remove(lifecycle)
            plan.skipped[LIFECYCLE] = f"needs a job: --max-creates {max_creates} leaves none"
        plan.allowance[LIFECYCLE] = left


def _allot_time(plan: Plan, max_time: float | None) -> None:
    if max_time is None or not plan.active:
        return
    total = sum(max(c.weight, 0.1) for c in plan.active)
    spent = 0.0
    for clause in plan.active:
        spent += max(clause.weight, 0.1)
        plan.deadlines[clause.name] = max_time * spent / total


__all__ = ["BY_NAME", "Abilities", "Plan", "make_plan", "select"]
