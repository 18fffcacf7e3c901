"""The HTTP server under the mock: granian (Rust, hyper) embedded in this process, on uvloop.

Chosen by measurement (`./dev bench`, bench/README.md): granian's own work per request (HTTP
parsing, sockets, the ASGI glue) is 55-60 % of uvicorn's on this app by instruction counts, it
parses on a Rust thread beside the one that runs the app, and it bounds what a client can send
before the app sees anything, which uvicorn's httptools protocol does not:

- a header section over `MAX_HEADER_BYTES`, or more than hyper's fixed 100 header fields, is
  answered `431 Request Header Fields Too Large` with an empty body by the server itself and
  the connection closed: the request never reaches the mock (no envelope, no request id, no
  journal entry), and memory stays bounded whatever the client sends. hyper checks the size
  after each read, so the cut falls between the limit and twice it (64 to 128 KiB), by how the
  bytes arrive;
- a header section HTTP/1.1 does not allow (a name that is not a token, a value with a control
  character other than HTAB) is answered `400 Bad Request`, empty, the same way: hyper's
  parser (httparse) refuses it and granian has no setting to let it through (its
  `HTTP1Settings`: a read timeout, keep-alive, the buffer size, pipeline flushing), so the
  app cannot answer it in the envelope. The spec declares both answers; the testing API's
  in-process transport gives the same 400;
- a request target (path and query) over `MAX_TARGET_BYTES` is answered `414 URI Too Long`
  with an empty body by the server itself and the connection closed, likewise;
- a client that has not finished its request line and headers `header_timeout_s` after its
  first byte (or stays idle that long between two requests on a kept-alive connection) is
  disconnected, so slow clients hold no more than a socket for that long (a connection that
  never sends a byte is left open, as hyper starts the timer at the first byte: it holds a
  socket and no task);
- HTTP/1.1 only (no h2c, whose header limit is hyper's 16 MiB).

One process, one app: the socket is bound by the caller (so the banner is printed only once
connections queue, and `--port 0` knows its port) and handed to granian by file descriptor.
Granian's worker processes (`MPServer`) take the same socket: that is `--workers N`
(`serve_workers`: one app per process, built after the fork, the socket shared). The workers
are always forked, as they inherit that socket (not with the spawn or forkserver start method
granian would follow), so `--workers N > 1` needs a platform with fork: not Windows.

Granian has no public way to serve an already-bound socket, so `_Embedded` overrides one
private method (`_init_shared_socket`; `_Workers` that one and `_spawn_worker`, and gives
granian's respawn loop a guarded list of dead workers and wake-up event: respawn.py); granian is
pinned below its next major version for it, and every HTTP-level test runs through this
module, so a change there fails the suite.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

HEADER_TIMEOUT_S = 10.0
MAX_HEADER_BYTES = 64 * 1024  # request line and headers (hyper: the read buffer's size)
# hyper's own bound on the request target (it keeps the length in 16 bits; not a setting):
# one of 65,535 bytes or more is a bare 414 and a closed connection, before the mock
MAX_TARGET_BYTES = 65_534
BACKLOG = 2048


@dataclass(frozen=True, slots=True)
class Limits:
    """What a client may cost the server before the app sees its request."""

    header_timeout_s: float = HEADER_TIMEOUT_S
    max_header_bytes: int = MAX_HEADER_BYTES


# granian's handlers write to stdout by default: a traceback would land among the banner and the
# --log-requests lines a script reads there. Diagnostics go to stderr.
LOG_TO_STDERR = {
    "handlers": {
        "console": {
            "formatter": "generic",
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stderr",
        },
        "access": {
            "formatter": "access",
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stderr",
        },
    }
}


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket: connections queue in its backlog from here on."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


def _options(sock: socket.socket, limits: Limits) -> dict[str, Any]:
    from granian.constants import HTTPModes, Interfaces
    from granian.http import HTTP1Settings
    from granian.log import LogLevels

    host, port = sock.getsockname()[:2]
    return {
        "address": host,
        "port": port,
        "interface": Interfaces.ASGINL,  # no lifespan: the app is built before the socket
        "http": HTTPModes.http1,
        "http1_settings": HTTP1Settings(
            header_read_timeout=max(1, round(limits.header_timeout_s * 1000)),
            max_buffer_size=max(8192, limits.max_header_bytes),  # hyper's minimum is 8 KiB
        ),
        "websockets": False,
        "backlog": BACKLOG,
        # Errors only: an exception escaping the app is logged with its traceback (the client
        # already got the INTERNAL envelope); granian's start-up chatter is not.
        "log_level": LogLevels.error,
        "log_dictconfig": LOG_TO_STDERR,
    }


def _holder(fd: int) -> Any:
    from granian._granian import SocketHolder

    socket_holder: Any = SocketHolder  # (fd, is_unix, backlog); granian's stub omits them
    return socket_holder(fd, False, BACKLOG)


def _server(app: Any, sock: socket.socket, limits: Limits) -> Any:
    from granian.server.embed import Server

    class _Embedded(Server):
        def _init_shared_socket(self) -> None:
            # Serve the socket we bound instead of binding (host, port) again.
            self._ssp = None
            self._shd = _holder(os.dup(sock.fileno()))  # granian closes it

    return _Embedded(app, **_options(sock, limits))


def serve_workers(
    load_app: Callable[[], Any], sock: socket.socket, workers: int, limits: Limits = Limits()
) -> None:
    """`--workers N`: N processes answer on `sock`, each with its own app from `load_app`
    (called in the worker, after the fork, so each has its own store connection). Only a
    shared store (Redis) can back more than one: the caller refuses the others. Returns once
    SIGINT or SIGTERM has stopped the workers."""
    import multiprocessing

    from granian.server.mp import MPServer

    from .respawn import guard_deaths

    class _Workers(MPServer):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            guard_deaths(self)  # two workers dying at once are two respawns (respawn.py)

        def _init_shared_socket(self) -> None:
            fd = os.dup(sock.fileno())  # inherited by the forked workers
            self._ssp = None
            self._shd = _holder(fd)
            self._sfd = fd  # type: ignore[assignment]
            self._sso = socket.socket(fileno=os.dup(fd))
            self._sso.set_inheritable(True)

        # MPServer's own signature (it drops AbstractServer's socket_loader)
        def _spawn_worker(self, idx: int, target: Any, callback_loader: Any) -> Any:  # type: ignore[override]
            """The worker, forked whatever multiprocessing's default start method: it finds
            the socket above by its fd number, which only a fork inherits. Granian follows
            the default (spawn on macOS, and spawn for forkserver, Linux's from Python 3.14),
            and there a worker panics on the fd ("Socket operation on non-socket"), is
            replaced and panics again until the server gives up. Granian's process is made
            but not started yet: it is swapped for the same one, made by fork. (The CLI
            refuses N > 1 where there is no fork.)"""
            worker = super()._spawn_worker(idx, target, callback_loader)
            made: Any = worker.inner  # target and args: multiprocessing's own fields
            worker.inner = multiprocessing.get_context("fork").Process(
                name=made.name, target=made._target, args=made._args
            )
            return worker

        def _spawn_workers(self, spawn_target: Any, target_loader: Any) -> None:
            """Every worker forked before any thread starts. Granian starts a thread per worker
            (it waits for the worker's exit) right after forking it, so each next worker was
            forked in a process with threads, which Python 3.12 warns may deadlock the child
            (DeprecationWarning). A worker that replaces one that died is still forked beside
            the others' threads: they wait in waitpid, holding no lock the child needs."""
            made = [
                self._spawn_worker(idx=idx, target=spawn_target, callback_loader=target_loader)
                for idx in range(self.workers)
            ]
            for worker in made:
                worker.inner.start()
            for worker in made:
                worker._watch()
                self.wrks.append(worker)
            self._metrics.incr_spawn(self.workers)

    # A worker that dies (kill -9, out of memory) is replaced; a crash loop (a replacement that
    # exits within 5.5 s of its start) stops the server. So a replacement started while Redis
    # is down waits for it rather than exit (cli.py `opened`).
    # One that has not stopped 10 s after SIGTERM is killed: stopping never hangs.
    server = _Workers(
        "layers-mock",
        workers=workers,
        respawn_failed_workers=True,
        workers_kill_timeout=10,
        **_options(sock, limits),
    )
    with contextlib.suppress(KeyboardInterrupt):
        server.serve(target_loader=load_app, wrap_loader=False)


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # Windows: the standard loop
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def serve(
    app: Any,
    sock: socket.socket,
    limits: Limits = Limits(),
    started: Callable[[], None] | None = None,
) -> None:
    """Serve `app` on `sock` until SIGINT or SIGTERM, then stop gracefully and return.

    Ctrl-C is the normal way to stop the mock, so it returns instead of raising. `started`
    is called on the server's event loop as it starts, before any request: what the app
    does on its own from then on (a worker on Redis follows the others, http/shared.py).

    `--workers N` with N > 1 is `serve_workers` below; N = 1 stays embedded, here.
    """
    server = _server(app, sock, limits)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, server.stop)
        if started is not None:
            started()
        await server.serve()

    loop = _new_loop()
    try:
        with contextlib.suppress(KeyboardInterrupt):  # a Ctrl-C before the handlers are set
            loop.run_until_complete(main())
    finally:
        loop.close()


class Background:
    """`app` served on `sock` by a thread of its own, until `stop()`.

    `loop` is the event loop the app runs on: code in another thread that must not touch the
    app's state at the same moment as a request (the testing API's steering calls) submits
    its coroutines there.

    A server never stopped is stopped at interpreter exit (atexit, while Python is whole):
    the thread is a daemon, and granian's Rust threads outliving the interpreter panic
    ("The Python interpreter is not initialized") and abort the process, 1 exit in 3 to 10
    when the script ends soon after the start (tests/testing_api/test_layers_mock.py).
    """

    def __init__(
        self,
        app: Any,
        sock: socket.socket,
        limits: Limits = Limits(),
        started: Callable[[], None] | None = None,
    ) -> None:
        self.sock = sock
        self.loop = _new_loop()
        if started is not None:  # on the loop, as it starts (see `serve`)
            self.loop.call_soon(started)
        self._server = _server(app, sock, limits)
        self._failed: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, name="layers-mock-server", daemon=True)
        self._thread.start()
        atexit.register(self.stop)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._server.serve())
        except BaseException as exc:  # reported to the caller by stop()
            self._failed.append(exc)
        finally:
            self.loop.close()

    def stop(self) -> None:
        """Stop serving, wait for the thread, close the socket; re-raise what the server raised."""
        atexit.unregister(self.stop)
        with contextlib.suppress(RuntimeError):  # the loop already ended
            self.loop.call_soon_threadsafe(self._server.stop)
        self._thread.join(timeout=10)
        self.sock.close()
        if self._failed:
            raise self._failed[0]


@contextlib.contextmanager
def running(
    app: Any,
    limits: Limits = Limits(),
    host: str = "127.0.0.1",
    started: Callable[[], None] | None = None,
) -> Iterator[tuple[str, int]]:
    """Serve `app` on an ephemeral port of `host` in a thread; yields (host, port).

    The socket listens before this yields, so a first request queues instead of racing the
    start-up: callers need no readiness polling. For tests and embedding in a test process.
    """
    background = Background(app, bind(host, 0), limits, started)
    try:
        yield host, background.sock.getsockname()[1]
    finally:
        background.stop()
