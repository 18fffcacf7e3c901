"""The `layers-mock` command: `serve` runs the mock, `conform` checks a deployment."""

from __future__ import annotations

import argparse
import secrets
import sys
from dataclasses import replace
from pathlib import Path

from .core.chaos import ChaosError
from .core.fixtures import DEFAULT_FIXTURES, FixtureError
from .settings import Settings, make_deps
from .spec import SpecError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="layers-mock", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the mock on a port")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=4010)
    serve.add_argument("--fixtures", type=Path, default=DEFAULT_FIXTURES)
    serve.add_argument("--seed", type=int, default=0)
    serve.add_argument("--clock", choices=("wall", "virtual"), default="wall")
    serve.add_argument("--speed", type=float, default=1.0, help="wall clock speed factor")
    serve.add_argument("--progression", choices=("time", "poll"), default="time")
    serve.add_argument("--strict", action="store_true", help="validate every response")
    serve.add_argument("--admin-token", help="token for /_mock/ when not bound to loopback")
    serve.add_argument("--chaos", type=Path, help="chaos profile (YAML): seeded background faults")
    serve.add_argument("--state", default="memory", help="memory (default) or sqlite:PATH")
    from .conformance.command import add_parser as add_conform_parser

    add_conform_parser(sub)
    return parser


def banner(settings: Settings, deps_keys: list[tuple[str, str, str]], project: str | None) -> str:
    url = f"http://{settings.host}:{settings.port}"
    lines = [
        f"layers-mock listening on {url}",
        f"  seed {settings.seed} · clock {settings.clock} (speed {settings.speed:g}) · "
        f"progression {settings.progression} · strict {'on' if settings.strict else 'off'}",
        f"  fixtures {settings.fixtures}",
        "  keys:",
        *(f"    {key}  {org}  [{scopes}]" for key, org, scopes in deps_keys),
    ]
    if settings.admin_token:
        lines.append(f"  control plane token: {settings.admin_token}")
    if deps_keys and project:
        lines += [
            "  try:",
            f"    curl -s -X POST {url}/v1/projects/{project}/influencers \\",
            f"      -H 'Authorization: Bearer {deps_keys[0][0]}' \\",
            "      -H 'Content-Type: application/json' \\",
            '      -d \'{"gender": "female", "prompt": "barista energy"}\'',
        ]
    return "\n".join(lines)


def serve(args: argparse.Namespace) -> int:
    from . import serving
    from .http.app import build_app
    from .http.heap import FrozenHeap

    token = args.admin_token
    settings = Settings(
        host=args.host,
        port=args.port,
        fixtures=args.fixtures,
        seed=args.seed,
        clock=args.clock,
        speed=args.speed,
        progression=args.progression,
        strict=args.strict,
        chaos=args.chaos,
        state=args.state,
    )
    if not settings.loopback and token is None:
        token = secrets.token_urlsafe(18)  # never leave the control plane open off loopback
    settings = replace(settings, admin_token=token)
    try:
        deps = make_deps(settings)
        app = build_app(deps)
    except (FixtureError, SpecError, ChaosError, ValueError) as exc:
        print(f"layers-mock: {exc}", file=sys.stderr)
        return 2
    state = deps.sim.state
    keys = [(k.key, k.org_id, ",".join(k.scopes)) for k in state.keys.values() if not k.killed]
    project = next(iter(state.projects), None)
    # Bind before printing: once the banner is out, connections queue instead of failing.
    try:
        sock = serving.bind(settings.host, settings.port)
    except OSError as exc:
        print(
            f"layers-mock: cannot listen on {settings.host}:{settings.port}: {exc}", file=sys.stderr
        )
        return 2
    settings = replace(settings, port=sock.getsockname()[1])
    print(banner(settings, keys, project), flush=True)
    serving.serve(FrozenHeap(app), sock)
    print("layers-mock stopped", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return serve(args)
    from .conformance.command import run as conform

    return conform(args)


if __name__ == "__main__":
    sys.exit(main())
