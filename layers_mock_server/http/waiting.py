"""What a `--workers` process answers while it waits for Redis at its start (cli.py `opened`).

A worker granian starts while Redis cannot be reached (it replaced one that died during an
outage) has no copy of the state to answer from: its store opens only once Redis answers.
It used to take no connection meanwhile, so with every worker in that wait (all of them
killed during the outage) a client and a probe got no answer at all. It now answers from
`Waiting`, in the contract's envelope, until the real app is swapped in (`Swap`).

Whatever the real app answers without reading the state, it answers alike (the same code
where it can, tests/redis/test_waiting.py compares the two):

- a path no spec has 404 `NOT_FOUND`, a method the path does not declare 405 with `Allow`,
  HEAD as GET without the body;
- a not-simulated operation its fixed 501 `NOT_SIMULATED`; `GET /` its links (HTML for a
  browser, JSON otherwise) and a dashboard asset the file, with the same cache headers
  (ui/pages.py `index_page`, `asset_page`);
- a control request another site's page made 403 (access.py `check_origin`);
- a partner request without an Authorization header, or whose bearer cannot be a key (no key
  of any state has that form: control.yaml's `StateKey`), 401 `UNAUTHENTICATED`; with an
  admin token set, a control request likewise when it carries neither the token nor
  something of a key's form.

What it cannot know it says: `GET /_mock/health` 200 with Redis unreachable (`sharedStore`,
as a running worker's); `/_mock/ready` 503 `STORAGE_UNAVAILABLE` without Retry-After (a
probe's "not ready"); a browser's `/_mock/ui` a 503 HTML page that says the sandbox's Redis
cannot be reached and reloads itself; anything else 503 `STORAGE_UNAVAILABLE` with
`Retry-After: 1` and a request id. A bearer of a key's form passes, whether the sandbox has
that key or not (the keys are in Redis): such a request gets the 503, health its 200.

Its request ids are random (no seed to mint them from: the seed is the state's), unique as
a running worker's. Its answers are not journaled: the journal is in Redis, and the worker
has no journal of its own yet (README, "A Redis that cannot be reached").
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from ..core.errors import ApiError
from ..core.ids import ulid_from
from ..spec import Operation
from . import inputs
from .access import check_origin, token_in_query, token_matches
from .app import without_body
from .dispatch import routed_path
from .pipeline import RETRY_AFTER
from .render import encode_headers, error_body, send_response

HEALTH = "/_mock/health"
READY = "/_mock/ready"
STATELESS = frozenset({"mockIndex", "mockDashboardAsset"})  # answered as by the real app
# Every key a state can hold has this form (control.yaml, StateKey.key; fixtures' keys are a
# narrower form): a bearer of another form is no key of any sandbox.
KEY_FORM = re.compile(r"^lp_(live|test)_[!-~]+_[!-~]+$")


@dataclass(frozen=True, slots=True)
class Target:
    op: Operation
    kind: Literal["partner", "unsimulated", "control"]


@dataclass(frozen=True, slots=True)
class Path:
    """One route of the real app (app.py `_merged_routes`): its operations by method."""

    pattern: re.Pattern[str]
    by_method: dict[str, Target]

    @property
    def allow(self) -> str:
        """As app.py's PathDispatch says it in a 405."""
        methods = set(self.by_method)
        return ", ".join(sorted({*methods, "HEAD"} if "GET" in methods else methods))


def routes() -> list[Path]:
    """One per path of the three documents, in the real app's order (partner paths, with the
    not-simulated methods of the same paths, then the not-simulated paths, then control)."""
    from ..spec import control_spec, not_simulated_spec, partner_spec

    by_path: dict[str, dict[str, Target]] = {}
    documents = (
        (partner_spec(), "partner"),
        (not_simulated_spec(), "unsimulated"),
        (control_spec(), "control"),
    )
    for spec, kind in documents:
        for op in spec.operations.values():
            by_path.setdefault(op.path, {})[op.method] = Target(op, kind)  # type: ignore[arg-type]
    found: list[Path] = []
    for path, by_method in by_path.items():
        parts = [
            "[^/]+" if part.startswith("{") and part.endswith("}") else re.escape(part)
            for part in path.split("/")
        ]
        found.append(Path(re.compile("/".join(parts)), by_method))
    return found


class Waiting:
    """The stand-in app of a worker waiting for Redis (see the module's docstring)."""

    def __init__(self, reason: str, admin_token: str | None) -> None:
        self.reason = reason  # what the last try to open the store said
        self.admin_token = admin_token
        self.salt = int.from_bytes(os.urandom(8), "big")
        self.count = 0
        self.routes = routes()

    def path(self, path: str) -> Path | None:
        """The route a path reaches, the first that matches (as Starlette picks), or None."""
        return next((p for p in self.routes if p.pattern.fullmatch(path)), None)

    def request_id(self) -> str:
        """A fresh request id: random per process, numbered within it."""
        self.count += 1
        at_ms = int(time.time() * 1000)
        return "req_" + ulid_from(self.salt, f"waiting:{os.getpid()}:{self.count}", at_ms)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        request_id = self.request_id()
        out = [(b"x-request-id", request_id.encode())]
        path, method = routed_path(scope), scope["method"]
        route = self.path(path) if path.startswith("/") else None  # `OPTIONS *`: no route
        if route is None:
            error = ApiError("NOT_FOUND", f"No route for {method} {path}.")
            await send_response(send, 404, out, orjson.dumps(error_body(error, request_id)))
            return
        head = method == "HEAD" and "HEAD" not in route.by_method
        target = route.by_method.get("GET" if head else method)
        if target is None:
            allowed = f"{method} is not allowed on this path; allowed: {route.allow}."
            error = ApiError("METHOD_NOT_ALLOWED", allowed)
            out.append((b"allow", route.allow.encode()))
            await send_response(send, 405, out, orjson.dumps(error_body(error, request_id)))
            return
        await self._answer(scope, without_body(send) if head else send, target, out, request_id)

    async def _answer(
        self, scope: dict[str, Any], send: Any, target: Target, out: Any, request_id: str
    ) -> None:
        """The operation's answer, as far as it needs no state."""
        from ..ui.pages import UI_HANDLERS
        from ..ui.pipeline import browser_dashboard, send_unreachable
        from .unsimulated import not_simulated

        op, headers = target.op, inputs.header_map(scope)
        query = scope.get("query_string", b"")
        try:
            if target.kind == "unsimulated":
                raise not_simulated(op)  # (not authenticated: as the real app)
            if op.operation_id in STATELESS:
                await self._stateless(scope, send, op, out)
                return
            if target.kind == "partner":
                _check_key(headers.get("authorization"))
            else:
                check_origin(self.admin_token, headers, scope.get("server"))
                token = token_in_query(query) if op.operation_id in UI_HANDLERS else None
                self._check_control(headers.get("authorization"), token)
            if op.path == HEALTH:
                store = {"reachable": False, "reason": self.reason, "waitingMs": 0, "full": False}
                body = orjson.dumps({"status": "ok", "sharedStore": store})
                await send_response(send, 200, out, body)
                return
            if browser_dashboard("GET", op.path, headers.get("accept")):
                await send_unreachable(send, out)
                return
            raise ApiError(
                "STORAGE_UNAVAILABLE",
                "The mock could not reach its shared state; nothing of this request was done.",
                {"reason": self.reason},
                None if op.path == READY else RETRY_AFTER,
            )
        except ApiError as error:
            if error.headers:
                out += encode_headers(list(error.headers.items()))
            body = orjson.dumps(error_body(error, request_id))
            await send_response(send, error.status, out, body)

    async def _stateless(self, scope: dict[str, Any], send: Any, op: Operation, out: Any) -> None:
        """The links and the dashboard's files, by the real app's own functions (ui/pages.py);
        ApiError (an unknown file, a bad query) for the caller to send."""
        from ..ui.pages import asset_page, index_page
        from ..ui.pipeline import send_page

        values = inputs.validate_query(op, scope.get("query_string", b""))
        if op.operation_id == "mockIndex":
            page = index_page(inputs.header_map(scope).get("accept", ""))
        else:
            page = asset_page(routed_path(scope).rsplit("/", 1)[1], values.get("v"))
        out.extend(encode_headers(page.headers))
        await send_page(send, page.status, out, page.body, page.media_type)

    def _check_control(self, authorization: str | None, query_token: str | None) -> None:
        """access.py `control_principal` as far as it needs no state: open without an admin
        token; with one, the token, or a bearer (else `?token=` on a page) of a key's form,
        which may be one of the sandbox's keys: not checked while waiting."""
        if self.admin_token is None:
            return
        scheme, _, given = (authorization or "").partition(" ")
        bearer = given if scheme.lower() == "bearer" else ""
        if any(token_matches(given, self.admin_token) for given in (bearer, query_token)):
            return
        candidate = bearer.strip() or (query_token or "").strip()
        if not KEY_FORM.fullmatch(candidate):
            raise ApiError(
                "UNAUTHENTICATED",
                "The control plane needs the admin token, or an API key of your organization "
                "that is not killed.",
            )


def _check_key(authorization: str | None) -> None:
    """core/simulator.py `authenticate` as far as it needs no state: 401 without the header,
    or with a bearer no sandbox can hold; a key of the right form may be the sandbox's."""
    if not authorization:
        raise ApiError("UNAUTHENTICATED", "Missing API key: send Authorization: Bearer <key>.")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not KEY_FORM.fullmatch(token.strip()):
        raise ApiError("UNAUTHENTICATED", "Missing, malformed, or wrong API key.")


class Swap:
    """The app granian serves: the stand-in first, the real app once it is set (`app`).
    Set on the worker's event loop, between two requests: each request goes whole to one."""

    __slots__ = ("app",)

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Awaitable[None]:
        return self.app(scope, receive, send)
