"""The `layers-mock` command: `serve` runs the mock, `conform` checks a deployment."""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib.util
import math
import os
import signal
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from . import __version__
from .core.chaos import ChaosError
from .core.fixtures import FixtureError
from .core.store import StoreUnreachable
from .said import say
from .settings import Settings, make_deps
from .spec import SpecError

if TYPE_CHECKING:
    from .deps import Deps

MAX_SEED = 2**64 - 1  # ids are keyed hashes of the seed as 8 bytes

EXAMPLES = """examples:
  layers-mock serve --clock virtual      # the mock on http://127.0.0.1:4010, time moves when told
  layers-mock conform                    # check the mock against the contract, in-process

`layers-mock serve --help` and `layers-mock conform --help` show every flag and its default."""

SERVE_EXAMPLES = """examples:
  layers-mock serve --clock virtual             # time moves only through /_mock/clock/advance
  layers-mock serve --port 0 --log-requests     # any free port; one line per request
  layers-mock serve --clock wall --speed 60     # the 60-second job flow in one second
  layers-mock serve --seed 7 --chaos chaos.yaml --state sqlite:./mock.sqlite
  layers-mock serve --state redis://127.0.0.1:6379/0 --workers 4   # one sandbox, many workers
  layers-mock serve --state 'redis://10.0.0.5:7000/0?sandbox=team-a'  # Redis Cluster: any node"""

CONFORM_EXAMPLES = """examples:
  layers-mock conform                           # the mock, in-process, no socket
  layers-mock conform --list                    # the clauses, named after the contract
  LAYERS_API_KEY=lp_live_... layers-mock conform --base-url https://staging.example.com \\
      --project-id prj_... --max-creates 5 --junit conformance.xml"""

CONFORM_EXTRA = (
    "layers-mock conform needs the conformance engines (schemathesis, hypothesis, httpx): "
    "install the [conform] extra (pip install '/path/to/layers-mock[conform]', from a checkout "
    "or a wheel built from one)"
)


class Parser(argparse.ArgumentParser):
    """Usage errors are one line and exit 2: the usage block buries the one thing that matters."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Examples keep their line breaks; every option that has a default says it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        help_text = action.help or ""
        default = action.default
        if (
            "%(default)" in help_text
            or any(default is absent for absent in (None, False, argparse.SUPPRESS))
            or default == []
            or not action.option_strings
        ):
            return help_text
        return f"{help_text} (default: %(default)s)"


def port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port: use 0 to 65535 (0: any free)")
    return value


def seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"{text!r} is not a seed: use a whole number, 0 to 2^64-1")
    return value


MAX_WORKERS = 64
# where the banner's links point for a serve on every interface (`banner`): no binding
WILDCARD_LINKS = {"0.0.0.0": "127.0.0.1", "::": "[::1]"}  # noqa: S104


def workers(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of workers: use a whole number, 1 to {MAX_WORKERS}"
        )
    return value


def positive(text: str, complaint: str) -> float:
    """A positive, finite number (float() takes "nan" and "inf", which no speed or wait is)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r} is not {complaint}")
    return value


def whole(text: str, least: int, complaint: str) -> int:
    """A whole number from `least` (int() takes neither "2.5" nor "nan", and a budget below
    its least is no budget: `--max-creates -3` crashed the run in its first create)."""
    try:
        value = int(text)
    except ValueError:
        value = least - 1
    if value < least:
        raise argparse.ArgumentTypeError(f"{text!r} is not {complaint}")
    return value


def speed(text: str) -> float:
    return positive(text, "a speed: use a positive number")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="layers-mock",
        description=__doc__,
        epilog=EXAMPLES,
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"layers-mock {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{serve,conform}")
    serve = sub.add_parser(
        "serve",
        help="run the mock on a port",
        description="Run the mock: the partner API under /v1/, its control plane under /_mock/.",
        epilog=SERVE_EXAMPLES,
        formatter_class=HelpFormatter,
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=port, default=4010, help="port to listen on; 0: any free")
    serve.add_argument(
        "--fixtures",
        type=Path,
        help="organizations, keys and projects (YAML); default: the fixtures shipped with it",
    )
    serve.add_argument("--seed", type=seed, default=0, help="seed of every id, name and draw")
    serve.add_argument(
        "--clock",
        choices=("wall", "virtual"),
        default="wall",
        help="wall: follows real time (times --speed); virtual: moves only when told",
    )
    serve.add_argument("--speed", type=speed, default=1.0, help="wall clock speed factor")
    serve.add_argument(
        "--progression",
        choices=("time", "poll"),
        default="time",
        help="time: jobs move with the clock; poll: every read of a job moves it one stage",
    )
    serve.add_argument("--strict", action="store_true", help="validate every response")
    serve.add_argument(
        "--admin-token",
        help="token the control plane (/_mock/) then requires, on loopback too; off loopback "
        "one is generated if not given. Partner API keys steer their own organization "
        "(a shared sandbox)",
    )
    serve.add_argument("--chaos", type=Path, help="chaos profile (YAML): seeded background faults")
    serve.add_argument(
        "--state",
        default="memory",
        help="memory, sqlite:PATH (durable) or redis://HOST:PORT/DB (durable, shared by workers;"
        " rediss:// over TLS; on a Redis Cluster, any node's URL with DB 0)",
    )
    serve.add_argument(
        "--workers",
        type=workers,
        default=1,
        help="processes answering on the port; more than 1 needs --state redis://",
    )
    serve.add_argument(
        "--log-requests", action="store_true", help="print one line per request to stdout"
    )
    serve.add_argument(
        "--journal-bodies",
        action="store_true",
        help="keep headers and bodies in /_mock/requests (bounded; keys redacted)",
    )
    from .conformance.command import add_parser as add_conform_parser

    add_conform_parser(sub)
    conform = sub.choices["conform"]
    conform.formatter_class = HelpFormatter
    conform.epilog = CONFORM_EXAMPLES
    return parser


def banner(
    settings: Settings,
    deps_keys: list[tuple[str, str, str]],
    project: str | None,
    workers: int = 1,
    state_seed: int | None = None,
) -> str:
    """What a user checks first: where to send requests, with which keys, on which state.
    `state_seed` is the seed of state that already existed (`sqlite:`, `redis://`): it wins
    over `--seed`, so the banner shows it, never a seed no id is minted from."""
    from .stores.redis_url import shown  # urllib only: no Redis client at start-up

    # an IPv6 address goes in brackets (RFC 3986), or the URLs below cannot be pasted
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    url = f"http://{host}:{settings.port}"
    # 0.0.0.0 and :: name every interface to listen on, not a host to reach (RFC 1122
    # §3.2.1.3): the links to paste go to loopback, which every interface includes
    link = f"http://{WILDCARD_LINKS.get(settings.host, host)}:{settings.port}"
    state = f"{shown(settings.state or 'memory')} · {workers} worker{'s' if workers > 1 else ''}"
    clock = f"wall (speed {settings.speed:g})" if settings.clock == "wall" else settings.clock
    fixtures = "default (shipped with layers-mock)" if settings.fixtures is None else None
    seed = f"{settings.seed}"
    if state_seed is not None and state_seed != settings.seed:
        seed = (
            f"{state_seed} (the state's; --seed {settings.seed} applies with"
            f' POST /_mock/reset {{"seed": {settings.seed}}})'
        )
    lines = [
        f"layers-mock listening on {url}",
        f"  seed {seed} · clock {clock} · "
        f"progression {settings.progression} · strict {'on' if settings.strict else 'off'}",
        f"  fixtures {fixtures or settings.fixtures}",
        # which sandbox answers, and how many workers: a second `serve` on the same Redis is
        # checked against the first's banner (never a password: `shown`)
        f"  state {state}",
        "  keys:",
        *(f"    {key}  {org}  [{scopes}]" for key, org, scopes in deps_keys),
    ]
    if settings.admin_token:
        lines.append(f"  control plane token: {settings.admin_token}")
    token = f"?token={settings.admin_token}" if settings.admin_token else ""
    lines.append(f"  dashboard: {link}/_mock/ui{token}")
    if deps_keys and project:
        lines += [
            "  try:",
            f"    curl -s -X POST {link}/v1/projects/{project}/influencers \\",
            f"      -H 'Authorization: Bearer {deps_keys[0][0]}' \\",
            "      -H 'Content-Type: application/json' \\",
            '      -d \'{"gender": "female", "prompt": "barista energy"}\'',
        ]
    return "\n".join(lines)


def serve(args: argparse.Namespace) -> int:
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
        journal_bodies=args.journal_bodies,
    )
    if not settings.loopback and token is None:
        import secrets  # here, not at the top: start-up imports only what every serve needs

        token = secrets.token_urlsafe(18)  # never leave the control plane open off loopback
        settings = replace(settings, admin_token_generated=True)
    settings = replace(settings, admin_token=token)
    if args.workers > 1 and not can_fork():
        print(
            f"layers-mock: --workers {args.workers} needs a platform that can fork (its workers"
            " inherit the listening socket): on this one, serve one process per port with the"
            " same --state",
            file=sys.stderr,
        )
        return 2
    if args.workers > 1 and not str(settings.state).startswith(("redis://", "rediss://")):
        print(
            f"layers-mock: --workers {args.workers} needs a state the workers share: "
            f"--state redis://HOST:PORT/DB (--state {settings.state} lives in one process)",
            file=sys.stderr,
        )
        return 2
    # Until the server's own handlers are set, SIGTERM stops it as Ctrl-C does, unwinding
    # (a Redis worker's liveness mark, set as its store opens, goes with it: stores/redis.py)
    # instead of killing the process where it stands.
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        return _serve(args, settings)
    except KeyboardInterrupt:  # before the server ran (serving.py suppresses it after)
        print("layers-mock stopped", flush=True)
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)


def _terminated(signum: int, frame: object) -> NoReturn:
    raise KeyboardInterrupt


_SIGNALLED: list[int] = []  # the SIGTERMs and SIGINTs a starting worker got (`_worker_signal`)


def _worker_signal(signum: int, frame: object) -> NoReturn:
    """A starting worker's SIGTERM or SIGINT: kept, then raised as Ctrl-C. Kept, because the
    KeyboardInterrupt can land where Python swallows it (a `__del__` run by the collector, as
    redis-py's pool's after a failed connect), and `worker_app` looks again before it
    returns: a lost one left the worker for granian to kill 10 s later."""
    _SIGNALLED.append(signum)
    raise KeyboardInterrupt


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    """`serve` from its first check on. Everything that can refuse the start (the contract,
    the port) is tried before the store opens, and the store's own refusals (a file in use,
    other settings on a shared sandbox, a state it cannot read) come before it writes: a
    refused start leaves the state exactly as it found it. Every way out closes the store."""
    from . import serving
    from .http.app import build_app, checked_specs

    try:
        specs = checked_specs()
    except (SpecError, OSError) as exc:
        print(f"layers-mock: {exc}", file=sys.stderr)
        return 2
    # Bound before the banner (connections then queue instead of failing) and before the
    # store opens (a fresh state is written as it opens).
    try:
        sock = serving.bind(settings.host, settings.port)
    except OSError as exc:
        print(
            f"layers-mock: cannot listen on {settings.host}:{settings.port}: {exc}", file=sys.stderr
        )
        return 2
    try:
        try:
            deps = make_deps(settings)
        except StoreUnreachable as exc:  # it serves from a stand-in until Redis answers
            return _serve_waiting(args, replace(settings, port=sock.getsockname()[1]), sock, exc)
        except (FixtureError, SpecError, ChaosError, ValueError, OSError) as exc:
            print(f"layers-mock: {exc}", file=sys.stderr)
            return 2
        except Exception as exc:
            # sqlite3.Error, matched by module: sqlite3 is imported only when --state asks for it
            if type(exc).__module__ != "sqlite3":
                raise
            print(f"layers-mock: --state {settings.state}: {exc}", file=sys.stderr)
            return 2
        try:
            try:
                app: Any = build_app(deps, *specs)
            except (SpecError, ValueError) as exc:  # (checked_specs took what it can check)
                print(f"layers-mock: {exc}", file=sys.stderr)
                return 2
            return _listen(args, replace(settings, port=sock.getsockname()[1]), deps, app, sock)
        finally:
            stopped(deps)  # (again after a server that stopped: nothing left to give back)
    finally:
        sock.close()  # (granian served duplicates of it)


def _listen(args: argparse.Namespace, settings: Settings, deps: Deps, app: Any, sock: Any) -> int:
    from . import serving
    from .http.heap import FrozenHeap
    from .http.request_log import RequestLog

    if args.log_requests:
        app = RequestLog(app, deps, sys.stdout)
    state = deps.sim.state
    keys = [(k.key, k.org_id, ",".join(k.scopes)) for k in state.keys.values() if not k.killed]
    project = next(iter(state.projects), None)
    print(banner(settings, keys, project, args.workers, state.seed), flush=True)
    if args.workers > 1:
        serve_forked(deps, settings, args, sock)
    else:
        follow = deps.shared.follow if deps.shared is not None else None  # a worker on Redis
        serving.serve(FrozenHeap(app), sock, started=follow)
    print("layers-mock stopped", flush=True)
    return 0


def _serve_waiting(
    args: argparse.Namespace, settings: Settings, sock: Any, exc: StoreUnreachable
) -> int:
    """`serve` started while Redis cannot be reached: it listens, and answers as a worker that
    waits for Redis does (http/waiting.py: health 200, 503s), until its store opens; then the
    real app answers, with no restart. The banner cannot list the keys (they are the
    sandbox's, in Redis): it says so."""
    from . import serving
    from .http.heap import FrozenHeap
    from .http.waiting import Swap, Waiting

    print(banner(settings, [], None, args.workers), flush=True)
    print(
        f"layers-mock: {exc}; it waits for Redis, trying every {OPEN_RETRY_S:g} s, and answers"
        " 503 meanwhile (/_mock/health 200); the keys and the seed are the sandbox's, in Redis",
        file=sys.stderr,
        flush=True,
    )
    if args.workers > 1:  # each worker waits on its own (`worker_app`)
        load = functools.partial(worker_app, settings, args.log_requests, os.getpid())
        serving.serve_workers(load, sock, args.workers)
    else:
        swap = Swap(Waiting(str(exc), settings.admin_token))
        openings: list[Opening] = []

        def started() -> None:  # on the server's loop, as it starts
            import asyncio

            openings.append(Opening(settings, args.log_requests, swap, asyncio.get_running_loop()))
            openings[0].start()

        try:
            serving.serve(FrozenHeap(swap), sock, started=started)
        finally:
            for opening in openings:
                opening.stop()
    print("layers-mock stopped", flush=True)
    return 0


def serve_forked(deps: Deps, settings: Settings, args: argparse.Namespace, sock: Any) -> None:
    """`--workers N`: each worker opens its own connection after the fork, and marks itself
    live; this process's mark covers the sandbox until they have (stores/redis_serving.py),
    and once they stopped it removes its own and theirs (one killed while starting left its)."""
    from . import serving

    store: Any = deps.sim.store
    store.lead()
    store.close(leave=False)
    load = functools.partial(worker_app, settings, args.log_requests, os.getpid())
    try:
        serving.serve_workers(load, sock, args.workers)
    finally:
        store.leave()


def can_fork() -> bool:
    """`--workers N > 1` forks its workers (serving.serve_workers): not on Windows."""
    import multiprocessing  # here, not at the top: only --workers needs it

    return "fork" in multiprocessing.get_all_start_methods()


def stopped(deps: Deps) -> None:
    """A server that stopped gives back what it holds in its store. On Redis that is the
    lease it kept for a next group and the journal entries its flush timer had not sent:
    the event loop that would have done it is gone (granian stops it at once), and the
    other workers' writes would wait for the lease to run out (10 s)."""
    store = deps.sim.store
    if store is not None:
        store.close()


def worker_app(settings: Settings, log_requests: bool, serve_pid: int | None = None) -> Any:
    """The app of one `--workers` process, built in that process (its own store connection).
    One started while Redis cannot be reached answers from a stand-in until its store opens
    (`Opening`)."""
    import asyncio
    import multiprocessing.util  # granian's workers are multiprocessing's processes

    from .http.heap import FrozenHeap
    from .http.waiting import Swap, Waiting

    loop = asyncio.get_event_loop()  # granian made this worker's loop, which runs it first
    # Its own handlers from here on: the ones it inherited (granian's main process's) only set
    # a flag here, and a SIGTERM would wait for granian's SIGKILL 10 s later. Not put back:
    # granian's worker sets its own as soon as the app is returned (no SIGTERM lost between).
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _worker_signal)
    opening: Opening | None = None
    try:
        if serve_pid is not None:
            watch_serve(loop, serve_pid)
        deps, reason = opened(settings)
        if deps is not None:
            # When the worker stops (SIGTERM), after its event loop ended: `stopped`.
            multiprocessing.util.Finalize(None, stopped, args=(deps,), exitpriority=0)
            app = FrozenHeap(real_app(deps, log_requests, loop))
        else:
            swap = Swap(Waiting(reason, settings.admin_token))
            opening = Opening(settings, log_requests, swap, loop)
            multiprocessing.util.Finalize(None, opening.stop, exitpriority=0)
            opening.start()
            app = FrozenHeap(swap)
        if _SIGNALLED:  # one swallowed on its way (`_worker_signal`)
            raise KeyboardInterrupt
        return app
    except KeyboardInterrupt:
        if opening is not None:
            opening.stop()
        else:
            say(f"{_worker()}: stopped as it started")
        raise SystemExit(0) from None


def real_app(deps: Deps, log_requests: bool, loop: Any) -> Any:
    """The worker's app on its open store; on Redis it follows the others from the loop's
    next turn (its first, when the worker starts)."""
    from .http.app import build_app
    from .http.request_log import RequestLog

    app: Any = build_app(deps)
    if deps.shared is not None:
        loop.call_soon(deps.shared.follow)
    if log_requests:
        app = RequestLog(app, deps, sys.stdout)
    return app


ORPHAN_S = 1.0  # how often a worker looks whether its serve still runs (`watch_serve`)


def watch_serve(loop: Any, serve_pid: int) -> None:
    """A worker whose serve's main process is gone (`kill -9`, the OOM killer) stops as on
    SIGTERM, giving its lease and journal entries back. It went on answering on the port, an
    orphan nothing would replace or stop: a supervisor's next `serve` found the port taken,
    and the sandbox counted it live. (PR_SET_PDEATHSIG would follow the thread that forked
    it, and granian forks a replacement from a thread that may end.)"""

    def look() -> None:
        if os.getppid() == serve_pid:
            loop.call_later(ORPHAN_S, look)
            return
        me = f"layers-mock: worker {os.getpid()}"
        say(f"{me}: its serve (process {serve_pid}) is gone; it stops")
        os.kill(os.getpid(), signal.SIGTERM)

    loop.call_later(0, look)  # (its serve may be gone already)


OPEN_RETRY_S = 1.0  # between two tries of a worker that waits for Redis (`Opening`)


def _worker() -> str:
    return f"layers-mock: worker {os.getpid()}"


def opened(settings: Settings) -> tuple[Deps | None, str]:
    """A `--workers` process's first try to open its store: its deps, or None and why while
    Redis cannot be reached (granian replaced a worker that died during an outage). Such a
    worker does not exit: granian takes a worker that exits within 5.5 s of its start for a
    crash loop, and stops the whole serve, the workers that were answering with it. It answers
    from a stand-in meanwhile (http/waiting.py) and tries again every OPEN_RETRY_S
    (`Opening`). SIGTERM (the serve stopping) or SIGINT during this try ends the process
    (`worker_app`); a refusal that needs someone to act (other settings on the sandbox, a
    state this version cannot read) ends it at once, as before. `serve` itself, started
    while Redis cannot be reached, does not exit either: it says so and answers from the same
    stand-in until Redis answers (`_serve_waiting`)."""
    try:
        return make_deps(settings), ""
    except StoreUnreachable as exc:
        said = f"{_worker()}: {exc}; it waits for Redis, trying every {OPEN_RETRY_S:g} s,"
        said += " and answers 503 meanwhile (/_mock/health 200)"
        say(said)
        return None, str(exc)


class Opening:
    """A worker's store opening in a thread of its own while the stand-in answers; once it
    opened, the real app is swapped in on the worker's event loop. `stop` (at the worker's
    exit) ends the wait, or gives back the store it opened."""

    def __init__(self, settings: Settings, log_requests: bool, swap: Any, loop: Any) -> None:
        import threading

        self.settings = settings
        self.log_requests = log_requests
        self.swap = swap
        self.waiting = swap.app  # the stand-in, until `_install`
        self.loop = loop
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.deps: Deps | None = None

    def start(self) -> None:
        import threading

        threading.Thread(target=self._run, name="layers-mock-opening", daemon=True).start()

    def _run(self) -> None:
        while not self.stopping.wait(OPEN_RETRY_S):
            try:
                deps = make_deps(self.settings)
            except StoreUnreachable as exc:
                self.waiting.reason = str(exc)  # what health says
                continue
            except Exception as exc:  # a refusal that needs someone to act: as at a start
                say(f"{_worker()}: {exc}")
                os._exit(2)
            with self.lock:
                if self.stopping.is_set():
                    stopped(deps)
                    return
                self.deps = deps
            with contextlib.suppress(RuntimeError):  # the loop closed: `stop` gives it back
                self.loop.call_soon_threadsafe(self._install, deps)
            return

    def _install(self, deps: Deps) -> None:
        """On the worker's loop: the real app answers from the next request on."""
        from .stores import shown

        self.swap.app = real_app(deps, self.log_requests, self.loop)
        back = f"{_worker()}: {shown(self.settings.state)} answers again: it serves"
        say(back)

    def stop(self) -> None:
        with self.lock:
            if self.stopping.is_set():  # (on SIGTERM as the app was made, then at exit)
                return
            self.stopping.set()
            deps = self.deps
        if deps is not None:
            stopped(deps)
        else:
            say(f"{_worker()}: stopped while it waited for Redis")


def conform_engines_missing() -> bool:
    return any(importlib.util.find_spec(m) is None for m in ("schemathesis", "hypothesis", "httpx"))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return serve(args)
    if conform_engines_missing():
        print(CONFORM_EXTRA, file=sys.stderr)
        return 2
    from .conformance.command import run as conform

    return conform(args)


if __name__ == "__main__":
    sys.exit(main())
