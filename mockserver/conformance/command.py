"""`layers-mock conform`: check the mock (in-process, default) or any deployment over HTTP.

Exit codes: 0 every checked clause passed, 1 a contract violation, 2 usage or connection error.
Keys may come from the environment (LAYERS_API_KEY, LAYERS_SCOPELESS_KEY) so they stay out of
shell history; reports never print a key, only the variable it came from.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ENV = {
    "base_url": "LAYERS_BASE_URL",
    "api_key": "LAYERS_API_KEY",
    "project_id": "LAYERS_PROJECT_ID",
    "scopeless_key": "LAYERS_SCOPELESS_KEY",
    "foreign_project_id": "LAYERS_FOREIGN_PROJECT_ID",
}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "conform",
        help="check a deployment against the contract",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    target = p.add_argument_group("target (default: the mock, in-process, default fixtures)")
    target.add_argument("--base-url", help=f"deployment to check (env {ENV['base_url']})")
    target.add_argument("--api-key", help=f"full-scope key (env {ENV['api_key']})")
    target.add_argument(
        "--project-id", help=f"a project of that key's org (env {ENV['project_id']})"
    )
    target.add_argument(
        "--scopeless-key", help=f"a key without influencers:write (env {ENV['scopeless_key']})"
    )
    target.add_argument(
        "--foreign-project-id",
        help=f"a project of another organization (env {ENV['foreign_project_id']})",
    )
    budget = p.add_argument_group("budget")
    budget.add_argument(
        "--max-creates",
        type=int,
        help="max real jobs to start (default 5 against a URL, unlimited against the mock)",
    )
    budget.add_argument("--max-time", type=float, help="seconds; remaining clauses NOT CHECKED")
    budget.add_argument(
        "--rate-limit", type=float, help="max requests per second (429 Retry-After always honoured)"
    )
    budget.add_argument("--seed", type=int, default=0, help="mock seed and request sequence seed")
    budget.add_argument(
        "--patience", type=float, default=600.0, help="seconds a real job may take to finish"
    )
    budget.add_argument("--examples", type=int, help="generated cases per property/operation")
    p.add_argument(
        "--only", action="append", default=[], metavar="CLAUSE", help="clause name or prefix"
    )
    p.add_argument("--list", action="store_true", help="list the clauses and exit")
    p.add_argument("--junit", type=Path, help="write a JUnit XML report")
    p.add_argument("--json", type=Path, help="write a JSON report")
    p.add_argument("--quiet", action="store_true", help="no live progress line")


def run(args: argparse.Namespace) -> int:
    from .runner import ALL_CLAUSES, Options
    from .runner import run as run_suite
    from .target import Identities, TargetUnreachable

    if args.list:
        print("\n".join(ALL_CLAUSES))
        return 0
    values: dict[str, str | None] = {
        name: getattr(args, name) or os.environ.get(env) for name, env in ENV.items()
    }
    identities = None
    if values["base_url"]:
        missing = [f"--{n.replace('_', '-')}" for n in ("api_key", "project_id") if not values[n]]
        if missing:
            print(f"layers-mock conform: --base-url needs {' and '.join(missing)}", file=sys.stderr)
            return 2
        identities = Identities(
            values["api_key"] or "",
            values["project_id"] or "",
            values["scopeless_key"],
            values["foreign_project_id"],
        )
    options = Options(
        base_url=values["base_url"],
        identities=identities,
        max_creates=args.max_creates,
        max_time=args.max_time,
        rate_limit=args.rate_limit,
        seed=args.seed,
        only=args.only,
        examples=args.examples,
        patience=args.patience,
        progress=None if args.quiet else sys.stderr,
    )
    try:
        report, target = run_suite(options)
    except ValueError as exc:
        print(f"layers-mock conform: {exc}", file=sys.stderr)
        return 2
    except TargetUnreachable as exc:
        print(f"layers-mock conform: cannot reach the target: {exc}", file=sys.stderr)
        return 2
    secrets = target.secrets
    print(report.table())
    failures = report.failures_text(secrets)
    if failures:
        print()
        print(failures)
    if args.json:
        report.write_json(args.json, secrets)
    if args.junit:
        report.write_junit(args.junit, secrets)
    return report.exit_code()
