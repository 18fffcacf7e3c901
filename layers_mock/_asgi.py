"""Plumbing of the testing API: running the ASGI app from synchronous code, and httpx transports.

Nothing here is public: `layers_mock.LayersMock` is the interface.

Why not `httpx.ASGITransport`: on every request it tries `import sniffio` to detect trio, and
without sniffio installed (httpx no longer depends on it) that failed import scans sys.path
each time. Measured through `httpx.Client` on this 2-core machine while busy: a whoami took
1.44 ms with it and 1.04 ms with this module, the same share every round. `call_app` is the same
exchange (one scope, the body in one message, the answer collected) without it, and the
control plane uses it too, so steering the mock needs no HTTP client at all.

A header the HTTP server refuses (a name that is not an RFC 9110 token, a value with a control
character other than HTAB) is answered here as granian answers it served, a bare 400 with no
body, before the app sees anything (`refused_by_the_server`): a test that passes in-process
passes against `serve()` too. The app itself never sees such a header served.
"""

from __future__ import annotations

import asyncio
import importlib.util
import re
import threading
import weakref
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import httpx

T = TypeVar("T")
HOST = "layers-mock.test"
NEEDS_HTTPX = (
    "the httpx clients of LayersMock need httpx: install the [pytest] extra "
    "(pip install '/path/to/layers-mock[pytest]')"
)
RawHeaders = list[tuple[bytes, bytes]]


# What hyper's parser (httparse) refuses in a request's header section: answered before the app.
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
# granian's answer to it (and hyper's), the same in-process: no envelope, the connection closed
REFUSED = (400, [(b"connection", b"close"), (b"content-length", b"0")], b"")


def refused_by_the_server(headers: RawHeaders) -> bool:
    """Whether the HTTP server serving the mock refuses these headers (tests/test_serving.py)."""
    return any(not _TOKEN.fullmatch(name) or _CONTROL.search(value) for name, value in headers)


class Dropped(Exception):
    """The app ended without answering: the `drop` fault closed the connection."""


class Runner:
    """Runs the app's coroutines to the end for synchronous callers.

    In-process, on a private event loop in the caller's thread (no thread hop: a request costs
    what the app costs). Called from inside a running loop (an async test calling `advance`),
    on a short-lived helper thread, since the caller's loop cannot be re-entered. While served,
    on the server's loop, so that the test and the server never touch the state at once.
    """

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.RLock()
        self.server_loop: asyncio.AbstractEventLoop | None = None

    def owns(self, loop: asyncio.AbstractEventLoop | None) -> bool:
        return loop is not None and loop in (self._loop, self.server_loop)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        running = running_loop()
        server = self.server_loop
        if server is not None:
            if running is server:
                coro.close()
                raise RuntimeError("LayersMock called from its own server thread")
            return asyncio.run_coroutine_threadsafe(coro, server).result()
        with self._lock:
            if running is None:
                if self._loop is None or self._loop.is_closed():
                    self._loop = asyncio.new_event_loop()
                    weakref.finalize(self, self._loop.close)
                return self._loop.run_until_complete(coro)
            with ThreadPoolExecutor(1, thread_name_prefix="layers-mock") as helper:
                return helper.submit(asyncio.run, coro).result()

    def close(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.close()


def require_httpx() -> None:
    """An ImportError that says which extra brings httpx, when it is missing."""
    if importlib.util.find_spec("httpx") is None:
        raise ImportError(NEEDS_HTTPX)


def running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


async def call_app(
    app: Any,
    method: str,
    path: str,
    *,
    query: bytes = b"",
    headers: RawHeaders | None = None,
    body: bytes = b"",
    raw_path: bytes | None = None,
) -> tuple[int, RawHeaders, bytes]:
    """One HTTP exchange with the ASGI app: (status, headers, body); Dropped if none came.

    `path` is decoded, `raw_path` as the client sent it (a server hands over both): the mock
    routes on the raw one, where an encoded slash separates nothing. Without it, `path`."""
    if headers is None:
        headers = [(b"host", HOST.encode())]
        if body:
            headers += [(b"content-type", b"application/json")]
        headers.append((b"content-length", b"%d" % len(body)))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode() if raw_path is None else raw_path,
        "query_string": query,
        "root_path": "",
        "headers": headers,
        "server": (HOST, 80),
        "client": None,  # no socket: nothing for a `drop` fault to look for
    }
    delivered = False
    status = 0
    response_headers: RawHeaders = []
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if delivered:
            return {"type": "http.disconnect"}
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status, response_headers
        if message["type"] == "http.response.start":
            status = message["status"]
            response_headers = list(message.get("headers", ()))
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    if not status:
        raise Dropped
    return status, response_headers, b"".join(chunks)


async def _exchange(app: Any, request: httpx.Request, body: bytes) -> httpx.Response:
    import httpx

    sent = [(name.lower(), value) for name, value in request.headers.raw]
    try:
        status, headers, content = (
            REFUSED
            if refused_by_the_server(sent)
            else await call_app(
                app,
                request.method,
                request.url.path,
                query=request.url.query,
                headers=sent,
                body=body,
                raw_path=request.url.raw_path.split(b"?", 1)[0],
            )
        )
    except Dropped:  # what httpx raises for a real connection closed without an answer
        raise httpx.RemoteProtocolError(
            "Server disconnected without sending a response.", request=request
        ) from None
    if request.method == "HEAD":
        content = b""
    return httpx.Response(
        status, headers=headers, stream=httpx.ByteStream(content), request=request
    )


def sync_transport(app: Any, runner: Runner) -> httpx.BaseTransport:
    require_httpx()
    import httpx

    class Transport(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            return runner.run(_exchange(app, request, request.read()))

        def close(self) -> None:
            """The mock owns its loop: closing a client must not close it."""

    return Transport()


def async_transport(app: Any, runner: Runner) -> httpx.AsyncBaseTransport:
    require_httpx()
    import httpx

    class AsyncTransport(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            body = await request.aread()
            server = runner.server_loop
            if server is not None and running_loop() is not server:  # served: its loop, its state
                future = asyncio.run_coroutine_threadsafe(_exchange(app, request, body), server)
                return await asyncio.wrap_future(future)
            return await _exchange(app, request, body)

        async def aclose(self) -> None:
            """The mock owns the app: closing a client must not close anything of it."""

    return AsyncTransport()
