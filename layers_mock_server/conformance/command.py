"""`layers-mock conform`: check the mock (in-process, default) or any deployment over HTTP.

Exit codes: 0 every checked clause passed; 1 the deployment broke the contract; 2 the run could
not do its job (wrong inputs, no connection, an interrupt, a bug of the runner); 3 clauses were
NOT CHECKED and --fail-on-not-checked was given, or every clause of the run was NOT CHECKED (a
run that judged nothing does not pass). Every report asked for is written whatever the ending
(a partial report says why). Keys may come from the environment (LAYERS_API_KEY,
...) so they stay out of shell history; reports never print a key, only its variable.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ..cli import positive, whole
from . import stopping

if TYPE_CHECKING:  # `serve` builds this parser too: keep its start-up free of httpx
    from .report import RunReport
    from .target import Identities

EXIT_ERROR = 2  # report.EXIT_ERROR

ENV = {
    "base_url": "LAYERS_BASE_URL",
    "api_key": "LAYERS_API_KEY",
    "project_id": "LAYERS_PROJECT_ID",
    "scopeless_key": "LAYERS_SCOPELESS_KEY",
    "foreign_project_id": "LAYERS_FOREIGN_PROJECT_ID",
    "second_key": "LAYERS_SECOND_KEY",
    "foreign_key": "LAYERS_FOREIGN_KEY",
    "killed_key": "LAYERS_KILLED_KEY",
    "throttle_key": "LAYERS_THROTTLE_KEY",
    "org_admin_key": "LAYERS_ORG_ADMIN_KEY",
    "child_organization_id": "LAYERS_CHILD_ORGANIZATION_ID",
    "wallet_key": "LAYERS_WALLET_KEY",
    "wallet_project_id": "LAYERS_WALLET_PROJECT_ID",
    "admin_token": "LAYERS_MOCK_ADMIN_TOKEN",
    "tenant_key": "LAYERS_MOCK_TENANT_KEY",
}
HELP = {
    "base_url": "deployment to check",
    "api_key": "full-scope key",
    "project_id": "a project of that key's organization",
    "scopeless_key": "a key without influencers:write",
    "foreign_project_id": "a project of another organization",
    "second_key": "another key of the same organization",
    "foreign_key": "a key of another organization",
    "killed_key": "a key whose kill switch is on",
    "throttle_key": "a limited-tier key the run may exhaust (429 clause)",
    "org_admin_key": "a key with org:admin (sub-organization clauses)",
    "child_organization_id": "a direct child of --org-admin-key's organization",
    "wallet_key": "a key of another organization whose wallet the run may run dry",
    "wallet_project_id": "a project of --wallet-key's organization",
    "admin_token": "the mock's admin token (with --control-plane)",
    "tenant_key": "instead of --admin-token: a key whose organization's own clock the run moves",
}


def seconds(text: str) -> float:
    """A wait the run may take: a positive, finite number of seconds (a job polled with
    `--patience nan` would be waited for forever)."""
    return positive(text, "a number of seconds above 0")


def count(text: str) -> int:
    """A ceiling on what the run may make: 0 (nothing) or more."""
    return whole(text, 0, "a count: use a whole number from 0")


def examples(text: str) -> int:
    """Generated cases per engine: at least one (0 fuzzed nothing and passed)."""
    return whole(text, 1, "a number of examples: use a whole number from 1")


def rate(text: str) -> float:
    """Requests per second: positive and finite (0 and nan were taken for no limit)."""
    return positive(text, "a rate: use a number of requests per second above 0")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "conform",
        help="check a deployment against the contract",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    target = p.add_argument_group("target (default: the mock, in-process, default fixtures)")
    for name, what in HELP.items():
        target.add_argument("--" + name.replace("_", "-"), help=f"{what} (env {ENV[name]})")
    target.add_argument(
        "--control-plane",
        action="store_true",
        help="against a layers-mock URL: may move its clock through /_mock/ (reported)",
    )
    budget = p.add_argument_group("budget")
    budget.add_argument(
        "--max-creates", type=count, help="max real jobs to start (default 5 against a URL)"
    )
    budget.add_argument(
        "--max-projects", type=count, help="max projects to create (default 0 against a URL)"
    )
    budget.add_argument(
        "--max-time", type=seconds, help="seconds, planned across clauses (the rest NOT CHECKED)"
    )
    budget.add_argument("--rate-limit", type=rate, help="max requests per second")
    budget.add_argument("--seed", type=int, default=0, help="mock seed and request sequence seed")
    budget.add_argument("--patience", type=seconds, default=600.0, help="seconds a job may take")
    budget.add_argument("--poll-interval", type=seconds, default=5.0, help="seconds between polls")
    budget.add_argument(
        "--profile", choices=("quick", "default", "thorough"), default="default", help="how hard"
    )
    budget.add_argument("--examples", type=examples, help="generated cases per property/operation")
    budget.add_argument("--database", type=Path, help="keep Hypothesis' example database here")
    p.add_argument("--only", action="append", default=[], metavar="CLAUSE", help="name or prefix")
    p.add_argument(
        "--list",
        nargs="?",
        const="text",
        choices=("text", "markdown"),
        help="list the clauses (and what each needs) and exit",
    )
    p.add_argument("--replay", type=Path, metavar="FILE", help="re-send a saved failure")
    p.add_argument(
        "--fail-on-not-checked", action="store_true", help="exit 3 if any clause is NOT CHECKED"
    )
    reports = p.add_argument_group("reports")
    reports.add_argument("--junit", type=Path, help="JUnit XML")
    reports.add_argument("--json", type=Path, help="JSON")
    reports.add_argument("--html", type=Path, help="a self-contained HTML page")
    reports.add_argument("--markdown", type=Path, help="Markdown (CI step summary)")
    reports.add_argument("--failures-dir", type=Path, help="save each failure for --replay")
    reports.add_argument("--quiet", action="store_true", help="no progress on stderr")


def _identities(values: dict[str, str | None]) -> Identities:
    from .target import Identities

    return Identities(
        values["api_key"] or "",
        values["project_id"] or "",
        values["scopeless_key"],
        values["foreign_project_id"],
        values["second_key"],
        values["foreign_key"],
        values["killed_key"],
        values["throttle_key"],
        values["org_admin_key"],
        values["child_organization_id"],
        values["wallet_key"],
        values["wallet_project_id"],
    )


def run(args: argparse.Namespace) -> int:
    """The command, under `_terminated_as_interrupted` from its start to its last report."""
    with _terminated_as_interrupted():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from .catalogue import listing, markdown
    from .report import FAIL, PASS
    from .runner import Options, print_tracebacks
    from .runner import run as run_suite

    if args.list:
        sys.stdout.write(markdown() if args.list == "markdown" else listing())
        return 0
    values = {name: getattr(args, name) or os.environ.get(env) for name, env in ENV.items()}
    identities = None
    problem = None
    if values["base_url"]:
        missing = [f"--{n.replace('_', '-')}" for n in ("api_key", "project_id") if not values[n]]
        if missing:
            problem = f"--base-url needs {' and '.join(missing)}"
        identities = _identities(values)
        pair = [f"--{n.replace('_', '-')}" for n in ("wallet_key", "wallet_project_id")]
        if problem is None and bool(values["wallet_key"]) != bool(values["wallet_project_id"]):
            problem = f"{pair[0]} and {pair[1]} go together (the wallet's jobs need a project)"
    elif args.control_plane:
        problem = "--control-plane needs --base-url"
    if problem is None and values["admin_token"] and values["tenant_key"]:
        problem = (
            "--admin-token and --tenant-key go apart: the operator's token moves the server's "
            "clock, a tenant key its organization's; give one"
        )
    if problem is not None:
        return usage_error(problem, args, values["base_url"])
    quiet = args.quiet
    options = Options(
        base_url=values["base_url"],
        identities=identities,
        control_plane=args.control_plane,
        admin_token=values["admin_token"],
        tenant_key=values["tenant_key"],
        max_creates=args.max_creates,
        max_projects=args.max_projects,
        max_time=args.max_time,
        rate_limit=args.rate_limit,
        seed=args.seed,
        only=args.only,
        profile=args.profile,
        examples=args.examples,
        patience=args.patience,
        poll_interval=args.poll_interval,
        database=args.database,
        fail_on_not_checked=args.fail_on_not_checked,
        failures_dir=args.failures_dir,
        progress=None if quiet else sys.stderr,
        live=not quiet and sys.stderr.isatty(),
    )
    if args.replay:
        from .replay import ReplayError, replay

        try:
            return replay(args.replay, options)
        except ReplayError as exc:
            return usage_error(f"--replay {args.replay}: {exc}", args, values["base_url"])
    if not quiet:
        where = values["base_url"] or "the in-process mock"
        print(f"conform: {where} · seed {args.seed} · profile {args.profile}", file=sys.stderr)
    report, target = run_suite(options)
    report.replay_flags = _target_flags(values, args.control_plane)
    secrets = target.secrets if target is not None else {}
    print_tracebacks(report)
    write_reports(report, args, secrets)
    if report.error and report.count(PASS) + report.count(FAIL) == 0:
        print(f"layers-mock conform: {report.error}", file=sys.stderr)
        return report.exit_code()
    print(report.table())
    failures = report.failures_text(secrets)
    if failures:
        print()
        print(failures)
    if report.error:
        print(f"\nlayers-mock conform: {report.error}", file=sys.stderr)
    return report.exit_code()


@contextlib.contextmanager
def _terminated_as_interrupted() -> Iterator[None]:
    """A CI job's timeout (SIGTERM) or Ctrl-C (SIGINT) asks the run to stop: it ends
    interrupted, its reports written, exit 2, instead of dying with no report or going on.

    In place for the whole command: start-up, the clauses and the reports (a signal while they
    are written lets them be finished). Ctrl-C only asks too: raised where it landed, inside
    Hypothesis it broke the engine (the clause 'internal error', the run went on to its end).
    A second Ctrl-C is the user insisting: it raises where it lands, as Ctrl-C always did."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set a handler (a run inside another program's thread)
        return

    def interrupt(signum: int, frame: object) -> None:
        if signum == signal.SIGINT and stopping.REQUESTED.is_set():
            raise KeyboardInterrupt
        stopping.REQUESTED.set()  # the run stops at its next request or clause (stopping.py)

    stopping.REQUESTED.clear()
    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        stopping.REQUESTED.clear()


def _target_flags(values: dict[str, str | None], control_plane: bool) -> str:
    """The flags that name the run's deployment (no key: those stay in their variables)."""
    if not values["base_url"]:
        return ""
    flags = ["--base-url", values["base_url"], "--project-id", values["project_id"] or ""]
    return shlex.join(flags + (["--control-plane"] if control_plane else []))


def usage_error(problem: str, args: argparse.Namespace, target: str | None) -> int:
    """Exit 2 with one sentence, and the reports asked for (empty, partial, saying why)."""
    from .report import RunReport

    print(f"layers-mock conform: {problem}", file=sys.stderr)
    report = RunReport(target=target or "in-process mock", seed=args.seed, error=problem)
    report.partial = "usage error: nothing was run"
    write_reports(report, args, {})
    return EXIT_ERROR


def write_reports(report: RunReport, args: argparse.Namespace, secrets: dict[str, str]) -> None:
    """Every report asked for, whatever the ending; a report that cannot be written is said."""
    from .report_html import write_html

    writers = (
        (args.json, report.write_json),
        (args.junit, report.write_junit),
        (args.markdown, report.write_markdown),
        (args.html, lambda path, s: write_html(report, path, s)),
    )
    for path, write in writers:
        if path is None:
            continue
        try:
            write(path, secrets)
        except OSError as exc:
            print(f"layers-mock conform: cannot write {path}: {exc}", file=sys.stderr)
            report.error = report.error or f"cannot write {path}"
