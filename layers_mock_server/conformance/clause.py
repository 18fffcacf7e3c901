"""A clause of the contract as a named function, with what it needs to run.

Each section of the contract is one module that declares a `Section` and decorates its clause
functions with it, in the order they should be read; `catalogue.py` puts the sections together.
Active clauses send requests (`run(session)`); observers judge the whole transcript of the run
after the active clauses are done (`observe(transcript)`), so an invariant such as "a status
never goes back" is checked on every read any clause made.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .observe import Transcript
    from .session import Session

# Identities a clause may need beyond the main key and project (the --flag that gives each).
IDENTITY_FLAGS = {
    "scopeless_key": "--scopeless-key",
    "foreign_project_id": "--foreign-project-id",
    "second_key": "--second-key",
    "foreign_key": "--foreign-key",
    "killed_key": "--killed-key",
    "throttle_key": "--throttle-key",
    "org_admin_key": "--org-admin-key",
    "child_organization_id": "--child-organization-id",
    "wallet_key": "--wallet-key",
    "wallet_project_id": "--wallet-project-id",
}


@dataclass(frozen=True, slots=True)
class Needs:
    """What a clause needs beyond the main key and project."""

    jobs: int = 0  # fresh jobs it starts itself (each costs one of --max-creates)
    spare: int = 0  # more jobs it starts only when the target lacks data (if the budget allows)
    sample: bool = False  # the run's shared job (read, completed, patched, deleted at the end)
    workbench: bool = False  # a second shared job whose influencer idempotency may PATCH/DELETE
    identities: tuple[str, ...] = ()  # attributes of Identities
    clock: bool = False  # moving the mock's clock: in-process, or --control-plane
    still: bool = False  # a clock that stands still between requests (a virtual clock)
    projects: int = 0  # projects it creates (each costs one of --max-projects)

    def describe(self) -> str:
        parts = []
        if self.sample:
            parts.append("sample job")
        if self.workbench:
            parts.append("workbench job")
        if self.jobs:
            parts.append(f"{self.jobs} job{'s' if self.jobs > 1 else ''}")
        if self.spare:
            parts.append(f"up to {self.spare} more job{'s' if self.spare > 1 else ''}")
        if self.projects:
            parts.append(f"{self.projects} project{'s' if self.projects > 1 else ''}")
        parts += [IDENTITY_FLAGS[i].removeprefix("--") for i in self.identities]
        if self.still:
            parts.append("control plane, virtual clock")
        elif self.clock:
            parts.append("control plane")
        return ", ".join(parts) or "-"


@dataclass(frozen=True, slots=True)
class Clause:
    name: str
    section: str
    doc: str  # one line: what the clause holds the deployment to
    run: Callable[[Session], None] | None = None  # active clause
    observe: Callable[[Transcript], None] | None = None  # transcript observer
    needs: Needs = field(default_factory=Needs)
    weight: float = 1.0  # relative share of --max-time
    producers: tuple[str, ...] = ()  # observers: active clauses whose traffic they judge
    black_box: bool = True  # False: mock-only behaviour (Prefer steering, simulated timings)
    judged_by: str | None = None  # a clause whose verdict comes from an engine's checks

    @property
    def kind(self) -> str:
        if self.judged_by is not None:
            return "engine"
        return "observer" if self.observe is not None else "active"


class Section:
    """One section of the contract; its clauses in the order they read (and run)."""

    def __init__(self, key: str, title: str) -> None:
        self.key = key
        self.title = title
        self.clauses: list[Clause] = []

    def clause(
        self,
        name: str,
        *,
        needs: Needs | None = None,
        weight: float = 1.0,
        black_box: bool = True,
    ) -> Callable[[Callable[[Session], None]], Callable[[Session], None]]:
        def register(fn: Callable[[Session], None]) -> Callable[[Session], None]:
            self.clauses.append(
                Clause(
                    name,
                    self.key,
                    _first_line(fn),
                    run=fn,
                    needs=needs or Needs(),
                    weight=weight,
                    black_box=black_box,
                )
            )
            return fn

        return register

    def observer(
        self, name: str, *, producers: tuple[str, ...], needs: Needs | None = None
    ) -> Callable[[Callable[[Transcript], None]], Callable[[Transcript], None]]:
        def register(fn: Callable[[Transcript], None]) -> Callable[[Transcript], None]:
            self.clauses.append(
                Clause(
                    name,
                    self.key,
                    _first_line(fn),
                    observe=fn,
                    needs=needs or Needs(),
                    weight=0.0,
                    producers=producers,
                )
            )
            return fn

        return register

    def add(self, clause: Clause) -> None:
        self.clauses.append(clause)


def _first_line(fn: Any) -> str:
    doc = (fn.__doc__ or "").strip()
    return " ".join(doc.split("\n\n", 1)[0].split())
