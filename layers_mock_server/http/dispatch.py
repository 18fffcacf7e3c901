"""The partner API's fast path: one regex for every partner route, before Starlette's stack.

Measured with py-spy over bench/inproc.py: Starlette's ServerErrorMiddleware, ExceptionMiddleware
and route-by-route matching were a quarter of a GET /v1/jobs/{jobId}; this dispatch made get job
about 24 % faster in-process (24.1 to 18.4 µs) and put it ahead of WireMock under wrk.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import unquote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..deps import Deps
from .pipeline import STARTED, OperationPipeline

PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
RECENT_PATHS = 1024  # paths whose match is remembered ...
RECENT_PATH_CHARS = 256  # ... when no longer than this (a real one is ~60): memory stays small


class PartnerPaths:
    """The partner routes in one regex: an alternation, one branch per route, in route order.

    Starlette tries its routes' regexes one by one; here a single `re.match` does it. Each
    branch is what Starlette compiles for the route (`{name}` is `[^/]+`, anchored with `$`),
    and an alternation takes the first branch that matches, so the answer is the route
    Starlette would pick among these (they come first in its list), or None: a path no partner
    route knows goes through Starlette, control plane and 404 included.
    """

    __slots__ = ("_recent", "_regex", "_targets")

    def __init__(self, routes: list[Route]) -> None:
        branches: list[str] = []
        # per branch: the route's app, its apps by method (PathDispatch.by_method), and its
        # (parameter name, regex group name) pairs
        self._targets: dict[
            str, tuple[ASGIApp, dict[str, ASGIApp], tuple[tuple[str, str], ...]]
        ] = {}
        for n, route in enumerate(routes):
            params: list[tuple[str, str]] = []
            pattern, at = "", 0
            for found in PARAM.finditer(route.path):
                group = f"p{n}_{len(params)}"
                params.append((found.group(1), group))
                pattern += re.escape(route.path[at : found.start()]) + f"(?P<{group}>[^/]+)"
                at = found.end()
            pattern += re.escape(route.path[at:])
            if "{" in pattern:
                raise ValueError(f"{route.path}: only plain {{name}} parameters are supported")
            branches.append(f"(?P<r{n}>{pattern})")
            methods = getattr(route.app, "by_method", {})
            self._targets[f"r{n}"] = (route.app, methods, tuple(params))
        self._regex = re.compile("^(?:" + "|".join(branches) + ")$")
        # path -> its route's targets and parameters: a client polling a job or creating in a
        # project sends the same path again and again, and the regex and the parameters' dict
        # cost ~1 µs of a ~42 µs get job. Bounded: emptied when full.
        self._recent: dict[str, tuple[ASGIApp, dict[str, ASGIApp], dict[str, str]]] = {}

    def match(self, path: str, method: str) -> tuple[ASGIApp, dict[str, str]] | None:
        """What answers `method` on the first route matching `path`, and the path parameters;
        None when no route matches.

        A method the route declares goes straight to its operation's pipeline: one coroutine
        fewer per request than through the route's PathDispatch, which still answers the
        others (HEAD as GET without the body, 405 with Allow)."""
        hit = self._recent.get(path)
        if hit is None:
            found = self._regex.match(path)
            if found is None:
                return None
            # the branch's group closes after its parameters' groups, so it is the last group
            route, methods, params = self._targets[found.lastgroup]  # type: ignore[index]
            hit = (route, methods, {name: found.group(group) for name, group in params})
            if len(path) <= RECENT_PATH_CHARS:  # else ~2x its length kept, 1,024 times over
                if len(self._recent) >= RECENT_PATHS:
                    self._recent.clear()
                self._recent[path] = hit
        # the parameters' dict is shared by every request of the path: read, never written
        return hit[1].get(method, hit[0]), hit[2]


def routed_path(scope: Scope) -> str:
    """The path as a deployment routes it: split on the slashes the client sent, not on those
    it percent-encoded.

    The server hands over `path` decoded, so `prj_x%2Finfluencers` would reach the list route of
    project `prj_x`. Routing on the raw path, a real deployment sees one segment there, a project
    id that names no project: 404. Here an encoded slash stays `%2F` inside its segment (the
    segment is otherwise decoded as the server decodes it), so every route, the fast path and
    Starlette's router alike, sees the segments the client sent."""
    path: str = scope["path"]
    raw = scope.get("raw_path")
    if not raw or (b"%2F" not in raw and b"%2f" not in raw):
        return path
    # some clients' ASGI bridges leave the query on raw_path; it is not part of the route
    text = raw.split(b"?", 1)[0].decode("latin-1")
    return "/".join(unquote(part).replace("/", "%2F") for part in text.split("/"))


def _closing(deps: Deps) -> Any:
    """Lifespan: the store is released when the app shuts down (a durable store's lock)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        try:
            yield
        finally:
            store = deps.sim.store
            if store is not None:
                store.close()

    return lifespan


class MockApp(Starlette):
    """Starlette, with the partner API's requests dispatched before its middleware and router.

    ServerErrorMiddleware, ExceptionMiddleware and the route-by-route regex match cost about a
    quarter of a GET /v1/jobs/{jobId} in-process (py-spy, bench/inproc.py). For the partner
    paths the only part of that stack with an effect is the outermost guard, so it is kept here:
    whatever escapes is answered with the INTERNAL envelope (if nothing was sent yet) and
    re-raised for the server to log, as ServerErrorMiddleware does. Everything else (control
    plane, unknown paths, other root paths) takes the full Starlette path.
    """

    def __init__(
        self, routes: list[Route], partner: PartnerPaths, internal: Any, deps: Deps, no_route: Any
    ) -> None:
        super().__init__(
            routes=routes, exception_handlers={Exception: internal}, lifespan=_closing(deps)
        )
        self.partner = partner
        self.internal = internal
        self.no_route = no_route
        self.state.deps = deps

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope["path"] = routed_path(scope)
        if scope["type"] == "http" and not scope.get("root_path"):
            hit = self.partner.match(scope["path"], scope["method"])
            if hit is not None:
                target = hit[0]
                scope["app"] = self
                scope["path_params"] = hit[1]
                if type(target) is not OperationPipeline:
                    await self._guarded(target, scope, receive, send)
                    return
                # An operation, guarded here rather than in _guarded: a coroutine fewer per
                # request. It marks its scope when it answers, so nothing wraps `send`.
                try:
                    await target(scope, receive, send)  # type: ignore[arg-type]  # a dict
                except Exception as exc:
                    if not scope.get(STARTED):
                        response = await self.internal(Request(scope), exc)
                        await response(scope, receive, send)
                    raise
                return
            if not scope["path"].startswith("/"):  # `OPTIONS *`: no route, in the envelope
                await self.no_route(scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    async def _guarded(self, target: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        """Any other partner target (a path's PathDispatch: HEAD, 405): whether the answer
        started is watched on `send`."""
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await target(scope, receive, tracked)
        except Exception as exc:
            if not started:
                response = await self.internal(Request(scope), exc)
                await response(scope, receive, send)
            raise
