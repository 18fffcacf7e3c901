"""Build the Starlette application from the contract and the handler tables."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any, cast

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..core.errors import ApiError
from ..deps import Deps
from ..spec import Spec, SpecError, control_spec, not_simulated_spec, partner_spec
from ..ui.pages import UI_HANDLERS
from ..ui.pipeline import UiPipeline
from .control import CONTROL_HANDLERS, ControlPipeline
from .dispatch import MockApp, PartnerPaths
from .handlers import HANDLERS, RATE_CLASS_OF, RESOLVERS
from .pipeline import OperationPipeline
from .render import dumps, error_body, send_response
from .shared import Gated, SharedGate
from .unsimulated import NotSimulated


def check_handlers(spec: Spec, handlers: Mapping[str, Any]) -> None:
    """Start-up fails loudly when the contract and the code disagree."""
    missing = sorted(set(spec.operations) - set(handlers))
    extra = sorted(set(handlers) - set(spec.operations))
    if missing or extra:
        raise SpecError(
            f"{spec.source}: operations without a handler: {missing or 'none'}; "
            f"handlers without an operation: {extra or 'none'}"
        )


class PathDispatch:
    """All operations of one path; HEAD is GET without the body (RFC 9110 §9.3.2); any other
    undeclared method is a 405 with Allow."""

    __slots__ = ("allow", "by_method", "deps")

    def __init__(self, by_method: dict[str, Any], deps: Deps) -> None:
        self.by_method = by_method
        allowed = {*by_method, "HEAD"} if "GET" in by_method else set(by_method)
        self.allow = ", ".join(sorted(allowed))
        self.deps = deps

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        pipeline = self.by_method.get(scope["method"])
        if pipeline is not None:
            await pipeline(scope, receive, send)
            return
        if scope["method"] == "HEAD" and "GET" in self.by_method:
            await self.by_method["GET"](scope, receive, without_body(send))
            return
        exc = ApiError(
            "METHOD_NOT_ALLOWED",
            f"{scope['method']} is not allowed on this path; allowed: {self.allow}.",
        )
        await _send_error(
            self.deps, send, exc, [(b"allow", self.allow.encode())], scope.get("path", "")
        )


def without_body(send: Any) -> Any:
    """The GET answer's status and headers (Content-Length included), and no body bytes."""

    async def head(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            message = {**message, "body": b""}
        await send(message)

    return head


class NoRoute:
    __slots__ = ("deps",)

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        exc = ApiError("NOT_FOUND", f"No route for {scope['method']} {scope['path']}.")
        await _send_error(self.deps, send, exc, [], scope.get("path", ""))


def request_id_for(deps: Deps, path: str = "") -> str:
    """A request id for an answer outside any operation. Minting cannot fail (the seed and the
    clock are checked wherever they are set); if it did anyway, the error must still go out in
    the envelope, so it falls back to an id of zeros rather than a text/plain 500.

    A miss under /_mock (a typo such as `/_mock/clock/`) takes the control plane's counter, as
    every control route does: steering the mock must not shift the partner's ids and draws."""
    kind = "control-req" if path == "/_mock" or path.startswith("/_mock/") else "req"
    try:
        return deps.sim.request_id(kind)
    except Exception:
        return "req_" + "0" * 26


async def _send_error(
    deps: Deps, send: Any, exc: ApiError, headers: list[tuple[bytes, bytes]], path: str
) -> None:
    request_id = request_id_for(deps, path)
    out = [(b"x-request-id", request_id.encode()), *headers]
    await send_response(send, exc.status, out, dumps(error_body(exc, request_id)))


def _routes(spec: Spec, make: Any, deps: Deps) -> list[Route]:
    return _merged_routes([(spec, make)], deps)


def _merged_routes(specs: list[tuple[Spec, Any]], deps: Deps) -> list[Route]:
    """One route per path, whichever documents declare its methods (405 knows them all)."""
    by_path: dict[str, dict[str, Any]] = defaultdict(dict)
    for spec, make in specs:
        for op in spec.operations.values():
            if op.method in by_path[op.path]:
                raise SpecError(f"{spec.source}: {op.method} {op.path} is declared twice")
            by_path[op.path][op.method] = make(op)
    return [Route(path, PathDispatch(methods, deps)) for path, methods in by_path.items()]


def checked_specs() -> tuple[Spec, Spec, Spec]:
    """The three documents the app serves, each checked against the handlers: what can stop
    an app from being built, so that `serve` finds it before it opens its store."""
    spec, control, unsimulated = partner_spec(), control_spec(), not_simulated_spec()
    check_handlers(spec, HANDLERS)
    check_handlers(control, {**CONTROL_HANDLERS, **UI_HANDLERS})
    return spec, control, unsimulated


def build_app(
    deps: Deps,
    spec: Spec | None = None,
    control: Spec | None = None,
    unsimulated: Spec | None = None,
) -> Starlette:
    spec = spec or partner_spec()
    control = control or control_spec()
    unsimulated = unsimulated or not_simulated_spec()
    check_handlers(spec, HANDLERS)
    check_handlers(control, {**CONTROL_HANDLERS, **UI_HANDLERS})

    def partner(op: Any) -> OperationPipeline:
        return OperationPipeline(
            op, HANDLERS[op.operation_id], deps, RESOLVERS, RATE_CLASS_OF.get(op.operation_id)
        )

    def controller(op: Any) -> ControlPipeline | UiPipeline:
        if op.operation_id in UI_HANDLERS:  # the dashboard: pages, not JSON
            return UiPipeline(op, UI_HANDLERS[op.operation_id], deps)
        return ControlPipeline(op, CONTROL_HANDLERS[op.operation_id], deps)

    def not_simulated(op: Any) -> NotSimulated:
        return NotSimulated(op, deps)

    # Paths the partner document shares with the not-simulated one (a method of each) are one
    # route; the fast path covers the partner document's paths.
    partner_routes = _merged_routes([(spec, partner), (unsimulated, not_simulated)], deps)
    shared = {op.path for op in spec.operations.values()}
    routes = [  # partner routes first: Starlette matches in order, and they carry the load
        *partner_routes,
        *_routes(control, controller, deps),
        Route("/{rest:path}", NoRoute(deps)),
    ]

    async def internal_error(request: Request, exc: Exception) -> Response:
        # Outermost guard: whatever escaped is still answered in the contract's envelope.
        request_id = request_id_for(deps, request.scope.get("path", ""))
        body = error_body(ApiError("INTERNAL", "Internal error."), request_id)
        return Response(dumps(body), 500, {"x-request-id": request_id}, "application/json")

    fast = [route for route in partner_routes if route.path in shared]
    app = MockApp(routes, PartnerPaths(fast), internal_error, deps, NoRoute(deps))
    if deps.sim.shared is not None:  # many workers on one store: one order of writes
        return cast(Starlette, Gated(SharedGate(app, deps)))
    return app
