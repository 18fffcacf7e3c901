"""A thin ASGI wrapper around the real mock that rewrites one request or one response.

Each broken deployment of the mutation study is the faithful mock plus one such rewrite, so
exactly one clause of the contract breaks while the rest of the mock stays correct. A request
hook may edit the request (method, path, query, headers, body) or answer it itself; a response
hook may edit the answer. `Ctx` gives hooks a memory and the mock's clock.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

ASGIApp = Callable[..., Any]


@dataclass
class Req:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            return None

    def set_json(self, value: Any) -> None:
        self.body = json.dumps(value).encode()

    @property
    def key(self) -> str:
        return self.headers.get("authorization", "").removeprefix("Bearer ")


@dataclass
class Resp:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            return None

    def set_json(self, value: Any) -> None:
        self.body = json.dumps(value).encode()
        self.headers["content-type"] = "application/json"


@dataclass
class Ctx:
    app: Any
    mem: dict[Any, Any] = field(default_factory=dict)

    def now_s(self) -> float:
        """The mock's clock, in seconds."""
        return float(self.app.state.deps.sim.now()) / 1000


RequestHook = Callable[[Req, Ctx], Resp | None]
ResponseHook = Callable[[Req, Resp, Ctx], None]


class Rewrite:
    """Buffer the request and the response so the hooks can edit them."""

    def __init__(
        self,
        app: ASGIApp,
        on_request: RequestHook | None = None,
        on_response: ResponseHook | None = None,
    ) -> None:
        self.app = app
        self.on_request = on_request
        self.on_response = on_response
        self.ctx = Ctx(app)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        query = scope.get("query_string", b"").decode("latin-1")
        req = Req(scope["method"], scope["path"], query, headers, body)
        answer = self.on_request(req, self.ctx) if self.on_request else None
        if answer is None:
            answer = await self._forward(scope, req)
            if self.on_response:
                self.on_response(req, answer, self.ctx)
        answer.headers["content-length"] = str(len(answer.body))
        await send(
            {
                "type": "http.response.start",
                "status": answer.status,
                "headers": [(k.encode(), v.encode("latin-1")) for k, v in answer.headers.items()],
            }
        )
        await send({"type": "http.response.body", "body": answer.body})

    async def _forward(self, scope: dict[str, Any], req: Req) -> Resp:
        req.headers["content-length"] = str(len(req.body))
        inner = dict(scope)
        inner.update(
            method=req.method,
            path=req.path,
            raw_path=req.path.encode(),
            query_string=req.query.encode("latin-1"),
            headers=[(k.encode(), v.encode("latin-1")) for k, v in req.headers.items()],
        )
        sent = False

        async def inner_receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": req.body, "more_body": False}

        out: dict[str, Any] = {"status": 500, "headers": [], "body": b""}

        async def capture(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                out["status"] = message["status"]
                out["headers"] = message.get("headers", [])
            elif message["type"] == "http.response.body":
                out["body"] += message.get("body", b"")

        await self.app(inner, inner_receive, capture)
        return Resp(
            out["status"],
            {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in out["headers"]},
            out["body"],
        )


def error(resp: Resp, status: int, code: str, details: dict[str, Any] | None = None) -> None:
    """Turn `resp` into another error, keeping its request id."""
    body = resp.json() or {}
    err = body.get("error", {}) if isinstance(body, dict) else {}
    err["code"] = code
    err.setdefault("message", "Rewritten.")
    err["requestId"] = resp.headers.get("x-request-id", err.get("requestId"))
    if details is not None:
        err["details"] = details
    else:
        err.pop("details", None)
    resp.status = status
    resp.set_json({"error": err})
