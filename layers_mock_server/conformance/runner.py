"""Run a plan of clauses against one target and turn whatever each raised into a verdict.

The run never ends without a report: a violation is a FAIL on its clause with its evidence; a
spent budget or missing identity is NOT CHECKED with the reason; wrong inputs, a lost
connection, an interrupt or a bug of the runner end the run with `report.error` set (exit 2)
and every clause not reached is NOT CHECKED "not reached", so the reports say what was and was
not checked before the stop.
"""

from __future__ import annotations

import sys
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import httpx

from . import stopping
from .catalogue import BY_NAME, CATALOGUE
from .clause import Clause
from .observe import Transcript
from .planner import Abilities, Plan, make_plan, select
from .preflight import InputError, preflight
from .report import FAIL, NOT_CHECKED, PASS, NotChecked, RunReport, Verdict, Violation
from .session import Session
from .target import (
    Budget,
    BudgetSpent,
    ControlPlane,
    Identities,
    NotOurs,
    ShareSpent,
    Target,
    TargetUnreachable,
    TimeUp,
    Unsendable,
)

# The default fixtures' identities (fixtures/default.yaml): used only for the in-process mock.
MOCK_IDENTITIES = Identities(
    api_key="lp_test_acmefull_Zx81Qm4TnR7vKp2W",
    project_id="prj_254a4ce1-f4ca-42b1-9e36-17ca45ef3d39",
    scopeless_key="lp_test_acmenoinf_H3kV9sLq2MwP8dYt",
    foreign_project_id="prj_7b3e9d21-4a5c-4f6e-8d9b-0c1a2e3f4b5d",
    second_key="lp_test_acmestd_Bq5Hs8Ty1Uw3Xz6C",
    foreign_key="lp_test_globexfull_M4nB7vC1xZ9lK6jH",
    killed_key="lp_live_acmekilled_G7hJ3kL9zX5cV2bN",
    throttle_key="lp_test_acmestd_Bq5Hs8Ty1Uw3Xz6C",
    org_admin_key="lp_live_northadmin_T5yU8iO2pA4sD7fG",  # Northwind Agency, org:admin
    child_organization_id="org_c4d5e6f7-0a1b-4c2d-9e3f-5a6b7c8d9e0f",  # its child, Bakery Bros
    wallet_key="lp_live_bakery_Q9wE3rT6yU1iO4pA",  # the child's own key: 20 credits, two jobs
    wallet_project_id="prj_8e9f0a1b-2c3d-4e5f-9a6b-7c8d9e0f1a2b",
)


@dataclass(frozen=True, slots=True)
class Profile:
    examples: int  # generated cases per Hypothesis property
    scenarios: int  # state-machine runs
    steps: int  # rules per state-machine run
    fuzz: int  # Schemathesis cases per operation and mode


# The default against a URL is lighter: every request there is real. The default in-process
# keeps the whole catalogue under a minute on a busy 2-core machine (Schemathesis is most of it).
PROFILES: dict[str, Profile] = {
    "quick": Profile(3, 1, 6, 3),
    "default": Profile(25, 3, 8, 12),
    "default-url": Profile(4, 2, 8, 4),
    "thorough": Profile(200, 10, 20, 200),
}


@dataclass(slots=True)
class Options:
    base_url: str | None = None
    identities: Identities | None = None
    control_plane: bool = False  # against a URL: may use the mock's /_mock/ clock
    admin_token: str | None = None
    tenant_key: str | None = None  # move this key's organization's clock, not the server's
    max_creates: int | None = None
    max_projects: int | None = None
    max_time: float | None = None
    rate_limit: float | None = None
    seed: int = 0
    only: list[str] = field(default_factory=list)
    profile: str = "default"
    examples: int | None = None
    scenarios: int | None = None
    steps: int | None = None
    patience: float = 600.0
    poll_interval: float = 5.0
    database: Path | None = None  # keep Hypothesis' example database here
    fail_on_not_checked: bool = False
    failures_dir: Path | None = None
    sleep: Callable[[float], None] = time.sleep  # Retry-After, --rate-limit, real-job polling
    now: Callable[[], float] = time.monotonic
    app: Any = None  # an ASGI app to test in-process instead of the default mock
    progress: TextIO | None = None
    live: bool = False  # one rewritten progress line (a terminal) instead of plain lines


def build_target(options: Options) -> Target:
    if options.base_url:
        if options.identities is None:
            raise ValueError("--base-url needs --api-key and --project-id")
        client = httpx.Client(timeout=30.0, follow_redirects=False)
        budget = Budget(
            options.max_creates if options.max_creates is not None else 5,
            options.max_time,
            options.rate_limit,
            max_projects=options.max_projects if options.max_projects is not None else 0,
            now=options.now,
        )
        control = None
        if options.control_plane:
            control = ControlPlane(
                client, options.base_url.rstrip("/"), options.admin_token, options.tenant_key
            )
        return Target(
            client,
            options.base_url,
            options.identities,
            budget,
            control=control,
            seed=options.seed,
            sleep=options.sleep,
        )
    with warnings.catch_warnings():  # Starlette nudges towards httpx2; httpx is what we pin
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    app = options.app
    if app is None:
        from ..settings import Settings, make_app

        app = make_app(Settings(clock="virtual", seed=options.seed))
    client = TestClient(app, base_url="http://testserver", raise_server_exceptions=False)
    budget = Budget(
        options.max_creates,
        options.max_time,
        options.rate_limit,
        max_projects=options.max_projects,
        now=options.now,
    )
    return Target(
        client,
        "http://testserver",
        options.identities or MOCK_IDENTITIES,
        budget,
        app=app,
        control=ControlPlane(client, "http://testserver", options.admin_token, options.tenant_key),
        seed=options.seed,
        sleep=options.sleep,
    )


def profile_of(options: Options, in_process: bool) -> Profile:
    """The named profile, with --examples (properties and fuzzing alike) on top."""
    name = options.profile
    if name == "default" and not in_process:
        name = "default-url"
    p = PROFILES[name]
    return Profile(
        options.examples or p.examples,
        options.scenarios or p.scenarios,
        options.steps or p.steps,
        options.examples or p.fuzz,
    )


class _Runner:
    def __init__(self, options: Options, report: RunReport) -> None:
        self.options = options
        self.report = report
        self.started = options.now()
        self.planned = self.started  # when the plan was made (after the preflight)
        self.last_progress = 0.0
        self.current = "preflight"
        self.time_up: str | None = None
        self.target = build_target(options)
        self.target.on_request = self.progress
        profile = profile_of(options, self.target.in_process)
        database = None
        if options.database is not None:
            from hypothesis.database import DirectoryBasedExampleDatabase

            database = DirectoryBasedExampleDatabase(str(options.database))
        self.session = Session(
            self.target,
            profile.examples,
            patience=options.patience,
            poll_interval=options.poll_interval,
            scenarios=profile.scenarios,
            steps=profile.steps,
            fuzz_examples=profile.fuzz,
            database=database,
        )
        self.plan: Plan | None = None
        self.seen: dict[str, Verdict] = {}  # every verdict, asked for or not (engines)
        self.wanted: list[Clause] = []

    # -- progress -----------------------------------------------------------------------------
    def progress(self, t: Target) -> None:
        out = self.options.progress
        now = self.options.now()
        if out is None or not self.options.live or now - self.last_progress < 0.2:
            return
        self.last_progress = now
        out.write(
            f"\r[conform] {self.current[:40]:<40} {len(t.exchanges):>5} requests · "
            f"{t.budget.creates} jobs · {now - self.started:5.1f}s"
        )
        out.flush()

    def say(self, verdict: Verdict) -> None:
        out = self.options.progress
        if out is None:
            return
        if self.options.live:
            out.write("\r" + " " * 80 + "\r")
        note = f": {verdict.reason}" if verdict.reason and verdict.status != PASS else ""
        out.write(f"conform: {verdict.status:<11} {verdict.clause}{note}\n")
        out.flush()

    # -- the run -----------------------------------------------------------------------------
    def execute(self, wanted: list[Clause]) -> None:
        s, o = self.session, self.options
        self.wanted = wanted
        preflight(s, control_plane=o.control_plane)
        self.planned = o.now()  # the clauses share what the preflight left of --max-time
        left = None if o.max_time is None else max(0.0, o.max_time - (self.planned - self.started))
        self.plan = plan = make_plan(
            wanted,
            Abilities(
                identities=self.target.ids,
                clock=self.target.control is not None,
                still=s.still,
                mock=self.target.control is not None,
                max_creates=self.target.budget.max_creates,
                max_projects=self.target.budget.max_projects,
                max_time=left,
            ),
        )
        s.allowance = dict(plan.allowance)
        for name, reason in plan.skipped.items():
            self.record(Verdict(name, BY_NAME[name].section, NOT_CHECKED, reason))
        if any(c.needs.sample for c in plan.active):  # it moves on while the probes run
            self.warm_up()
        for clause in plan.active:
            stopping.check()
            self.attempt(clause)
        transcript = Transcript(s, list(self.target.exchanges))
        for clause in plan.observers:
            stopping.check()
            self.observe(clause, transcript)
        for clause in wanted:
            if clause.judged_by and clause.name not in self.report.verdicts:
                engine = self.seen.get(clause.judged_by)
                status = engine.status if engine and engine.status != FAIL else NOT_CHECKED
                reason = "" if status == PASS else (engine.reason if engine else "not run")
                self.record(Verdict(clause.name, clause.section, status, reason))

    def warm_up(self) -> None:
        s = self.session
        s.clause = self.target.clause = "sample"
        self.current = "sample job"  # the job several clauses read; not a clause itself
        try:
            s.sample_job()
        except (NotChecked, BudgetSpent, ShareSpent) as exc:
            s.sample_error = getattr(exc, "reason", str(exc))

    def attempt(self, clause: Clause) -> None:
        s, t = self.session, self.target
        name = clause.name
        if self.time_up is not None:
            self.record(Verdict(name, clause.section, NOT_CHECKED, self.time_up))
            return
        s.clause = t.clause = name
        # A clause run only to produce evidence for the --only ones is labelled as such: the
        # live line named a clause the user had not asked for, as if --only were ignored.
        asked = {c.name for c in self.wanted}
        self.current = name if name in asked else f"evidence: {name}"
        deadline = self.plan.deadlines.get(name) if self.plan else None
        t.budget.clause_deadline = None if deadline is None else self.planned + deadline
        before, t0 = len(t.exchanges), self.options.now()
        status, reason, evidence, found = PASS, "", None, None
        try:
            clause.run(s)  # type: ignore[misc]
        except Violation as v:
            evidence = v.exchange
            if v.clause == name or v.clause not in BY_NAME:
                status, reason = FAIL, v.message
            else:
                found = v
                status, reason = NOT_CHECKED, f"stopped early: {v.clause} failed"
        except NotChecked as nc:
            status, reason = NOT_CHECKED, nc.reason
        except ShareSpent as exc:
            status, reason = NOT_CHECKED, f"{exc} ({deadline or 0:.0f}s into --max-time)"
        except TimeUp as exc:
            status, reason = NOT_CHECKED, str(exc)
            self.time_up = f"{exc} before it ran"
        except (BudgetSpent, Unsendable) as exc:
            status, reason = NOT_CHECKED, str(exc)
        except TargetUnreachable as exc:
            if t.in_process or not t.still_answers():
                raise
            # it hung up on this clause's request alone: that is the deployment's answer to it
            status, reason = FAIL, f"the deployment dropped the request without an answer: {exc}"
        except (NotOurs, KeyboardInterrupt):
            raise
        except Exception as exc:  # a bug of the runner in this clause: say so, keep going
            status, reason = NOT_CHECKED, f"internal error: {type(exc).__name__}: {exc}"
            self.report.error = self.report.error or f"internal error in {name}: {exc!r}"
            self.report.tracebacks.append(traceback.format_exc())
        finally:
            t.budget.clause_deadline = None
        if notes := s.notes.get(name):
            reason = "; ".join([reason, *notes]) if reason else "; ".join(notes)
        spent, seconds = len(t.exchanges) - before, self.options.now() - t0
        if found is not None:
            self.record(
                Verdict(
                    found.clause,
                    BY_NAME[found.clause].section,
                    FAIL,
                    found.message,
                    spent,
                    found.exchange,
                    seconds,
                )
            )
        self.record(Verdict(name, clause.section, status, reason, spent, evidence, seconds))

    def observe(self, clause: Clause, transcript: Transcript) -> None:
        asked = {c.name for c in self.wanted}
        self.current = clause.name if clause.name in asked else f"evidence: {clause.name}"
        status, reason, evidence = PASS, "", None
        t0 = self.options.now()
        try:
            clause.observe(transcript)  # type: ignore[misc]
        except Violation as v:
            status, reason, evidence = FAIL, v.message, v.exchange
        except NotChecked as nc:
            status, reason = NOT_CHECKED, nc.reason
        except Exception as exc:
            status, reason = NOT_CHECKED, f"internal error: {type(exc).__name__}: {exc}"
            self.report.error = self.report.error or f"internal error in {clause.name}: {exc!r}"
            self.report.tracebacks.append(traceback.format_exc())
        seconds = self.options.now() - t0
        self.record(Verdict(clause.name, clause.section, status, reason, 0, evidence, seconds))

    def record(self, verdict: Verdict) -> None:
        self.seen.setdefault(verdict.clause, verdict)
        if verdict.clause not in {c.name for c in self.wanted}:
            return
        if verdict.status == FAIL and self.options.failures_dir is not None:
            from .replay import save_failure

            verdict.replay_file = str(save_failure(self.options.failures_dir, self, verdict))
        self.report.record(verdict)
        self.say(self.report.verdicts[verdict.clause])

    def finish(self, stopped: str | None) -> None:
        report, t = self.report, self.target
        for clause in self.wanted:
            if clause.name not in report.verdicts:
                why = f"not reached: the run stopped ({stopped})" if stopped else "not run"
                report.record(Verdict(clause.name, clause.section, NOT_CHECKED, why))
        order = {c.name: i for i, c in enumerate(CATALOGUE)}
        report.verdicts = dict(sorted(report.verdicts.items(), key=lambda kv: order[kv[0]]))
        report.requests = len(t.exchanges)
        report.statuses = t.statuses.copy()
        report.creates = t.budget.creates
        report.projects = t.budget.projects
        report.seconds = self.options.now() - self.started
        report.sequence_digest = t.digest.hexdigest()
        control = t.control
        if control is None:
            report.control_plane = "not used (black box: the partner API only)"
        else:
            where = "in-process mock" if t.in_process else "--control-plane"
            whose = "the mock's clock" if control.tenant_key is None else "--tenant-key's own clock"
            report.control_plane = (
                f"{where}: moved {whose} {control.advanced_s:g}s forward in {control.moves} step(s)"
            )
        if self.options.progress is not None and self.options.live:
            self.options.progress.write("\r" + " " * 80 + "\r")
            self.options.progress.flush()


def run(options: Options) -> tuple[RunReport, Target | None]:
    """Never raises: every ending is in the report (error set: exit 2)."""
    report = RunReport(
        target=options.base_url or "in-process mock",
        seed=options.seed,
        profile=options.profile,
        fail_on_not_checked=options.fail_on_not_checked,
    )
    runner: _Runner | None = None
    stopped: str | None = None
    try:
        wanted = select(options.only)
        runner = _Runner(options, report)
        runner.execute(wanted)
    except ValueError as exc:
        report.error = stopped = str(exc)
    except InputError as exc:
        report.error = str(exc)
        stopped = "the inputs do not fit the target"
    except TargetUnreachable as exc:
        report.error = f"cannot reach the target: {exc}"
        stopped = "the target stopped answering"
        in_preflight = runner is not None and runner.current == "preflight"
        if in_preflight and runner is not None and runner.target.still_answers():
            # one request hung up on, not a target gone: no clause sent it to blame
            report.error = (
                f"the deployment hung up on a request of the preflight without an answer: "
                f"{exc}; it still answers (a deployment that drops requests breaks the "
                "contract: run again, or look at its logs)"
            )
            stopped = "the deployment dropped a request of the preflight"
    except KeyboardInterrupt:
        report.error = stopped = "interrupted"
    except Exception as exc:  # a bug of the runner: exit 2, with whatever was checked so far
        report.error = f"internal error of the runner: {type(exc).__name__}: {exc}"
        report.tracebacks.append(traceback.format_exc())
        stopped = "internal error"
    if stopped is not None:
        report.partial = stopped
    if runner is not None:
        runner.finish(stopped)
    return report, runner.target if runner is not None else None


def print_tracebacks(report: RunReport, out: TextIO = sys.stderr) -> None:
    for text in report.tracebacks:
        out.write(text)


__all__ = ["MOCK_IDENTITIES", "PROFILES", "Options", "run", "select"]
