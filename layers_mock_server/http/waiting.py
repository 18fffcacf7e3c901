"""What a `--workers` process answers while it waits for Redis at its start (cli.py `opened`).

A worker granian starts while Redis cannot be reached (it replaced one that died during an
outage) has no copy of the state to answer from: its store opens only once Redis answers.
It used to take no connection meanwhile, so with every worker in that wait (all of them
killed during the outage) a client and a probe got no answer at all. It now answers from
`Waiting`, in the contract's envelope, until the real app is swapped in (`Swap`):

- `GET /_mock/health` 200, saying Redis is unreachable (`sharedStore`, as a running worker's);
- `/_mock/ready` 503 `STORAGE_UNAVAILABLE`, without Retry-After (a probe's "not ready");
- a not-simulated operation its fixed 501 `NOT_SIMULATED`, `GET /` its links (JSON), a
  dashboard asset the file: none of them needs the state;
- anything else 503 `STORAGE_UNAVAILABLE` with `Retry-After: 1` and a request id (a path no
  spec has too: the routes that tell a 404 from a 405 are the real app's).

It knows no key (the keys are in Redis), so it cannot tell a tenant's key from a wrong one:
health answers any bearer, and with an admin token set, a request without one gets the 401
the real app would give. Its request ids are random (no seed to mint them from: the seed
is the state's), unique as a running worker's. Its answers are not journaled: the journal
is in Redis, and the worker has no journal of its own yet (README, "A Redis that cannot be
reached").
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Awaitable
from typing import Any

import orjson

from ..core.errors import ApiError
from ..core.ids import ulid_from
from ..spec import Operation
from .pipeline import RETRY_AFTER
from .render import encode_headers, error_body, send_response

HEALTH = "/_mock/health"
READY = "/_mock/ready"
STATELESS = frozenset({"mockIndex", "mockDashboardAsset"})  # answered as by the real app


Route = tuple[str, "re.Pattern[str]", Operation, bool]  # method, path, operation, not simulated


def routes() -> list[Route]:
    """Every operation of the three documents, in the real app's order (partner first)."""
    from ..spec import control_spec, not_simulated_spec, partner_spec

    found: list[Route] = []
    documents = ((partner_spec(), False), (not_simulated_spec(), True), (control_spec(), False))
    for spec, unsimulated in documents:
        for op in spec.operations.values():
            parts = [
                "[^/]+" if part.startswith("{") and part.endswith("}") else re.escape(part)
                for part in op.path.split("/")
            ]
            found.append((op.method, re.compile("/".join(parts)), op, unsimulated))
    return found


class Waiting:
    """The stand-in app of a worker waiting for Redis (see the module's docstring)."""

    def __init__(self, reason: str, admin_token: str | None) -> None:
        self.reason = reason  # what the last try to open the store said
        self.admin_token = admin_token
        self.salt = int.from_bytes(os.urandom(8), "big")
        self.count = 0
        self.routes = routes()

    def operation(self, method: str, path: str) -> tuple[Operation | None, bool]:
        """The operation a request reaches, and whether it is a not-simulated one."""
        method = "GET" if method == "HEAD" else method
        for verb, pattern, op, unsimulated in self.routes:
            if verb == method and pattern.fullmatch(path):
                return op, unsimulated
        return None, False

    def request_id(self) -> str:
        """A fresh request id: random per process, numbered within it."""
        self.count += 1
        at_ms = int(time.time() * 1000)
        return "req_" + ulid_from(self.salt, f"waiting:{os.getpid()}:{self.count}", at_ms)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        request_id = self.request_id()
        headers = [(b"x-request-id", request_id.encode())]
        path = scope["path"]
        op, unsimulated = self.operation(scope["method"], path)
        if op is not None and (unsimulated or op.operation_id in STATELESS):
            await self._stateless(scope, send, op, unsimulated, request_id)
            return
        if path in (HEALTH, READY) and not self._let_in(scope):
            error = ApiError(
                "UNAUTHENTICATED",
                "The control plane needs the admin token, or an API key of your organization "
                "that is not killed.",
            )
            await send_response(send, 401, headers, orjson.dumps(error_body(error, request_id)))
            return
        if path == HEALTH and scope["method"] in ("GET", "HEAD"):
            store = {"reachable": False, "reason": self.reason, "waitingMs": 0, "full": False}
            body = orjson.dumps({"status": "ok", "sharedStore": store})
            await send_response(send, 200, headers, None if scope["method"] == "HEAD" else body)
            return
        error = ApiError(
            "STORAGE_UNAVAILABLE",
            "The mock could not reach its shared state; nothing of this request was done.",
            {"reason": self.reason},
            None if path == READY else RETRY_AFTER,
        )
        if error.headers:
            headers += encode_headers(list(error.headers.items()))
        await send_response(send, 503, headers, orjson.dumps(error_body(error, request_id)))

    async def _stateless(
        self, scope: dict[str, Any], send: Any, op: Operation, unsimulated: bool, request_id: str
    ) -> None:
        """What needs no state: as the real app answers it (not journaled, see above)."""
        from ..ui.assets import asset
        from ..ui.pages import LINKS
        from .unsimulated import not_simulated

        headers = [(b"x-request-id", request_id.encode())]
        head = scope["method"] == "HEAD"
        if unsimulated:
            error = not_simulated(op)
            body = orjson.dumps(error_body(error, request_id))
            await send_response(send, error.status, headers, body)
            return
        if op.operation_id == "mockIndex":
            await send_response(send, 200, headers, None if head else orjson.dumps(LINKS))
            return
        found = asset(scope["path"].rsplit("/", 1)[1])
        if found is None:
            error = ApiError("NOT_FOUND", "No such dashboard asset.")
            await send_response(send, 404, headers, orjson.dumps(error_body(error, request_id)))
            return
        sent = [*headers, (b"content-type", found.media_type.encode())]
        sent += [(b"cache-control", b"no-cache"), (b"x-content-type-options", b"nosniff")]
        sent.append((b"content-length", str(len(found.body)).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": sent})
        await send({"type": "http.response.body", "body": b"" if head else found.body})

    def _let_in(self, scope: dict[str, Any]) -> bool:
        """A probe's call: open without an admin token; with one, the token or any bearer
        key (which of them is an organization's is in Redis: not checked while waiting)."""
        if self.admin_token is None:
            return True
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, credentials = value.decode("latin-1").partition(" ")
                return scheme.lower() == "bearer" and bool(credentials.strip())
        return False


class Swap:
    """The app granian serves: the stand-in first, the real app once it is set (`app`).
    Set on the worker's event loop, between two requests: each request goes whole to one."""

    __slots__ = ("app",)

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Awaitable[None]:
        return self.app(scope, receive, send)
