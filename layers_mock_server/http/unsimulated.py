"""Operations Layers has and the mock does not simulate: one fixed 501 answer each.

The routes come from `openapi/not-simulated.yaml`. A 404 there would tell a client (or an agent
driving one) that its id is wrong; 501 `NOT_SIMULATED` names the operation instead. Nothing is
authenticated, validated or changed, but the answer is in the contract's envelope, checked
against its spec in strict mode, and journalled like any other request.
"""

from __future__ import annotations

from typing import Any

from ..core.errors import ApiError
from ..deps import Deps
from ..spec import Operation
from .render import dumps, error_body, send_response
from .strict import check_response

SIMULATED = "projects, influencers, jobs, credits, whoami"


def not_simulated(op: Operation) -> ApiError:
    """The fixed 501 of a not-simulated operation (also a waiting worker's: http/waiting.py)."""
    return ApiError(
        "NOT_SIMULATED",
        f"{op.method} {op.path} ({op.operation_id}) is a Layers operation that layers-mock "
        f"does not simulate: it simulates the influencer flow ({SIMULATED}).",
        {"operation": op.operation_id, "method": op.method, "path": op.path},
    )


class NotSimulated:
    """The ASGI endpoint of one not-simulated operation."""

    __slots__ = ("deps", "exc", "op")

    def __init__(self, op: Operation, deps: Deps) -> None:
        self.op = op
        self.deps = deps
        self.exc = not_simulated(op)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        deps = self.deps
        sim = deps.sim
        request_id = sim.request_id()
        headers = [(b"x-request-id", request_id.encode())]
        payload = dumps(error_body(self.exc, request_id))
        if deps.strict:
            check_response(self.op, self.exc.status, headers, payload)
        position = deps.journal.position()
        await send_response(send, self.exc.status, headers, payload)
        deps.journal.add(
            sim.now(),
            self.op.method,
            scope["path"],
            scope.get("query_string", b"").decode("latin-1"),
            self.exc.status,
            request_id,
            None,
            self.op.operation_id,
            None,
            None,
            position,
        )
