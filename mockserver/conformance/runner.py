"""Run every clause against one target and collect one verdict per clause.

Order matters for money: the negative clauses (401/403/404/422) run first and cost nothing on a
conforming deployment; the clauses that need a real job share one sample job; the state machine
and Schemathesis get whatever budget is left. A clause that cannot run (identity missing,
budget or time spent) is NOT CHECKED with the reason, never silently PASS.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TextIO

import httpx

from .clauses import CLAUSES, RESPONSE_CLAUSES, Session
from .report import FAIL, NOT_CHECKED, PASS, NotChecked, RunReport, Verdict, Violation
from .st_engine import ST_CLAUSES, run_schemathesis, validate_exchanges
from .stateful import STATEFUL_CLAUSES, run_lifecycle
from .target import Budget, BudgetSpent, Identities, Target, TargetUnreachable, TimeUp

# The default fixtures' identities (fixtures/default.yaml): used only for the in-process mock.
MOCK_KEY = "lp_test_acmefull_Zx81Qm4TnR7vKp2W"
MOCK_SCOPELESS_KEY = "lp_test_acmenoinf_H3kV9sLq2MwP8dYt"
MOCK_PROJECT = "prj_254a4ce1-f4ca-42b1-9e36-17ca45ef3d39"
MOCK_FOREIGN_PROJECT = "prj_7b3e9d21-4a5c-4f6e-8d9b-0c1a2e3f4b5d"

# Clauses that produce error responses for the response-level clauses to judge.
PRODUCERS = ("auth.missing-key-401", "tenancy.foreign-project-404", "validation.body-shape-422")

ALL_CLAUSES = tuple(dict.fromkeys((*CLAUSES, *STATEFUL_CLAUSES, *ST_CLAUSES, *RESPONSE_CLAUSES)))


@dataclass(slots=True)
class Options:
    base_url: str | None = None
    identities: Identities | None = None
    max_creates: int | None = None
    max_time: float | None = None
    rate_limit: float | None = None
    seed: int = 0
    only: list[str] = field(default_factory=list)
    examples: int | None = None  # per property / per operation and mode
    scenarios: int = 3
    steps: int = 8
    patience: float = 600.0
    poll_interval: float = 5.0
    sleep: Callable[[float], None] = time.sleep  # Retry-After, --rate-limit, real-job polling
    app: Any = None  # an ASGI app to test in-process instead of the default mock
    progress: TextIO | None = None


def selected(options: Options) -> list[str]:
    if not options.only:
        return list(ALL_CLAUSES)
    unknown = [o for o in options.only if not any(n.startswith(o) for n in ALL_CLAUSES)]
    if unknown:
        raise ValueError(
            f"unknown clause(s): {', '.join(unknown)}; known: {', '.join(ALL_CLAUSES)}"
        )
    return [n for n in ALL_CLAUSES if any(n.startswith(o) for o in options.only)]


def build_target(options: Options, on_request: Callable[[Target], None] | None) -> Target:
    if options.base_url:
        if options.identities is None:
            raise ValueError("--base-url needs --api-key and --project-id")
        client = httpx.Client(timeout=30.0, follow_redirects=False)
        budget = Budget(
            options.max_creates if options.max_creates is not None else 5,
            options.max_time,
            options.rate_limit,
        )
        return Target(
            client,
            options.base_url,
            options.identities,
            budget,
            seed=options.seed,
            on_request=on_request,
            sleep=options.sleep,
        )
    with warnings.catch_warnings():  # Starlette nudges towards httpx2; httpx is what we pin
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    app = options.app
    if app is None:
        from ..settings import Settings, make_app

        app = make_app(Settings(clock="virtual", seed=options.seed))
    identities = options.identities or Identities(
        MOCK_KEY, MOCK_PROJECT, MOCK_SCOPELESS_KEY, MOCK_FOREIGN_PROJECT
    )
    client = TestClient(app, base_url="http://testserver", raise_server_exceptions=False)
    budget = Budget(options.max_creates, options.max_time, options.rate_limit)
    return Target(
        client,
        "http://testserver",
        identities,
        budget,
        app=app,
        seed=options.seed,
        on_request=on_request,
        sleep=options.sleep,
    )


class _Runner:
    """Runs groups of clauses and turns what each group raised into verdicts."""

    def __init__(self, options: Options, wanted: list[str]) -> None:
        self.options = options
        self.wanted = wanted
        self.to_run = set(wanted)
        if any(n in RESPONSE_CLAUSES for n in wanted) and not any(n in CLAUSES for n in wanted):
            self.to_run.update(PRODUCERS)  # something must provoke the error responses
        self.started = time.monotonic()
        self.current = ""
        self.last_progress = 0.0
        self.target = build_target(options, self.progress)
        self.report = RunReport(target=options.base_url or "in-process mock", seed=options.seed)

    def progress(self, t: Target) -> None:
        """The live line: which clause, how many requests and jobs, how long."""
        out = self.options.progress
        now = time.monotonic()
        if out is None or now - self.last_progress < 0.2:
            return
        self.last_progress = now
        out.write(
            f"\r[conform] {self.current:<36} {len(t.exchanges):>5} requests · "
            f"{t.budget.creates} jobs · {now - self.started:5.1f}s"
        )
        out.flush()

    def attempt(self, group: Sequence[str], engine: str, fn: Callable[[], None]) -> None:
        # Producers only run as single Hypothesis clauses; engines run for what was asked.
        pool = self.to_run if engine == "hypothesis" else set(self.wanted)
        names = [n for n in group if n in pool]
        if not names:
            return
        self.current = names[0] if len(names) == 1 else f"{engine} ({len(names)} clauses)"
        before, t0 = len(self.target.exchanges), time.monotonic()
        evidence = None
        try:
            fn()
            outcome = {n: (PASS, "") for n in names}
        except Violation as v:
            outcome = {n: (NOT_CHECKED, f"stopped early: {v.clause} failed") for n in names}
            outcome[v.clause] = (FAIL, v.message)
            evidence = v.exchange
        except NotChecked as nc:
            outcome = {n: (NOT_CHECKED, nc.reason) for n in names}
        except (TimeUp, BudgetSpent) as exc:
            outcome = {n: (NOT_CHECKED, str(exc)) for n in names}
        spent, seconds = len(self.target.exchanges) - before, time.monotonic() - t0
        for name, (status, reason) in outcome.items():
            if name in self.wanted:
                exchange = evidence if status == FAIL else None
                self.report.record(Verdict(name, engine, status, reason, spent, exchange, seconds))

    def run_all(self, session: Session, examples: int) -> None:
        o, target = self.options, self.target
        for name, fn in CLAUSES.items():
            self.attempt([name], "hypothesis", partial(fn, session))
        self.attempt(
            STATEFUL_CLAUSES,
            "stateful",
            lambda: run_lifecycle(session, o.scenarios, o.steps, o.patience, o.poll_interval),
        )
        self.attempt(ST_CLAUSES, "schemathesis", lambda: run_schemathesis(session, examples))
        for name, check in RESPONSE_CLAUSES.items():
            self.attempt([name], "responses", partial(check, target.exchanges))
        self.attempt(
            ["responses.match-spec"], "responses", lambda: validate_exchanges(target.exchanges)
        )


def run(options: Options) -> tuple[RunReport, Target]:
    """Raises ValueError (usage) or TargetUnreachable (connection): both exit code 2."""
    runner = _Runner(options, selected(options))
    target, report = runner.target, runner.report
    examples = options.examples or (25 if target.in_process else 4)
    try:
        runner.run_all(Session(target, examples), examples)
    finally:
        if options.progress is not None:
            options.progress.write("\r" + " " * 80 + "\r")
            options.progress.flush()
    report.requests = len(target.exchanges)
    report.creates = target.budget.creates
    report.seconds = time.monotonic() - runner.started
    report.sequence_digest = target.digest.hexdigest()
    return report, target


__all__ = ["ALL_CLAUSES", "Options", "TargetUnreachable", "run", "selected"]
