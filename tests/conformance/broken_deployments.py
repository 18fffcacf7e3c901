"""Deliberately broken deployments: thin ASGI wrappers around the real mock, one clause each.

Each wrapper rewrites a request on its way in or a response on its way out, so exactly one
contract clause breaks while the rest of the mock stays correct. The suite must FAIL each on
the clause named next to it (and PASS the unwrapped mock): that is how the checks themselves
are tested, the way Schemathesis tests its checks on planted bugs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from support import FULL, GLOBEX_PROJECT, NO_INFLUENCERS

ASGIApp = Callable[..., Any]


@dataclass
class Req:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Resp:
    status: int
    headers: dict[str, str]
    body: bytes
    state: dict[str, Any] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    def set_json(self, value: Any) -> None:
        self.body = json.dumps(value).encode()


class Rewrite:
    """Buffer the request and the response so `on_request`/`on_response` can edit them."""

    def __init__(
        self,
        app: ASGIApp,
        on_request: Callable[[Req, dict[str, Any]], None] | None = None,
        on_response: Callable[[Req, Resp, dict[str, Any]], None] | None = None,
    ) -> None:
        self.app = app
        self.on_request = on_request
        self.on_response = on_response
        self.memory: dict[str, Any] = {}  # per-deployment state (counters, first bodies)

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
        req = Req(scope["method"], scope["path"], headers, body)
        if self.on_request:
            self.on_request(req, self.memory)
        req.headers["content-length"] = str(len(req.body))
        inner = dict(scope)
        inner["headers"] = [(k.encode(), v.encode("latin-1")) for k, v in req.headers.items()]
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
        resp = Resp(
            out["status"],
            {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in out["headers"]},
            out["body"],
        )
        if self.on_response:
            self.on_response(req, resp, self.memory)
        resp.headers["content-length"] = str(len(resp.body))
        await send(
            {
                "type": "http.response.start",
                "status": resp.status,
                "headers": [(k.encode(), v.encode("latin-1")) for k, v in resp.headers.items()],
            }
        )
        await send({"type": "http.response.body", "body": resp.body})


def _error(resp: Resp, status: int, code: str, details: dict[str, Any] | None = None) -> None:
    body = resp.json() or {}
    error = body.get("error", {})
    error["code"] = code
    if details is not None:
        error["details"] = details
    else:
        error.pop("details", None)
    resp.status = status
    resp.set_json({"error": error})


def _is_create(req: Req) -> bool:
    return req.method == "POST" and req.path.endswith("/influencers")


def _is_job_read(req: Req, resp: Resp) -> bool:
    return req.method == "GET" and req.path.startswith("/v1/jobs/") and resp.status == 200


# -- the wrappers: (request hook, response hook) ----------------------------------------------
def validation_400(req: Req, resp: Resp, mem: dict[str, Any]) -> None:
    if resp.status == 422:
        resp.status = 400


def scopes_ignored(req: Req, mem: dict[str, Any]) -> None:
    if req.headers.get("authorization") == f"Bearer {NO_INFLUENCERS}":
        req.headers["authorization"] = f"Bearer {FULL}"


def foreign_403(req: Req, resp: Resp, mem: dict[str, Any]) -> None:
    if GLOBEX_PROJECT in req.path and resp.status == 404:
        _error(resp, 403, "FORBIDDEN_SCOPE", {"requiredScope": "influencers:write"})


def missing_location_url(req: Req, resp: Resp, mem: dict[str, Any]) -> None:
    if _is_create(req) and resp.status == 202:
        body = resp.json()
        body.pop("locationUrl", None)
        resp.set_json(body)


def status_backwards(req: Req, resp: Resp, mem: dict[str, Any]) -> None:
    """Every second read of a finished job says it is still training."""
    if _is_job_read(req, resp) and (body := resp.json())["status"] != "running":
        mem[req.path] = mem.get(req.path, 0) + 1
        if mem[req.path] % 2 == 0:
            for key in ("finishedAt", "result", "error"):
                body.pop(key, None)
            body.update(status="running", stage="training", progress=0.5)
            resp.set_json(body)


def replay_new_job(req: Req, mem: dict[str, Any]) -> None:
    req.headers.pop("idempotency-key", None)


def etag_constant(req: Req, resp: Resp, mem: dict[str, Any]) -> None:
    if req.path.startswith("/v1/jobs/") and "etag" in resp.headers:
        resp.headers["etag"] = '"static"'


def unknown_fields_dropped(req: Req, mem: dict[str, Any]) -> None:
    if _is_create(req) and req.body:
        try:
            body = json.loads(req.body)
        except ValueError:
            return
        if isinstance(body, dict):
            kept = {k: v for k, v in body.items() if k in {"gender", "ageRange", "prompt"}}
            req.body = json.dumps(kept).encode()


def wrong_error_code(req: Req, resp: Resp, mem: dict[str, Any]) -> None:
    if resp.status == 404:
        _error(resp, 404, "RESOURCE_MISSING")


def request_id_mismatch(req: Req, resp: Resp, mem: dict[str, Any]) -> None:
    resp.headers["x-request-id"] = "req_00000000000000000000000000"


def influencer_404_after_202(req: Req, resp: Resp, mem: dict[str, Any]) -> None:
    reading = req.method == "GET" and req.path.startswith("/v1/influencers/")
    if reading and resp.status == 200 and resp.json().get("status") == "pending":
        _error(resp, 404, "NOT_FOUND")


def unauthenticated_403(req: Req, resp: Resp, mem: dict[str, Any]) -> None:
    if resp.status == 401:
        _error(resp, 403, "FORBIDDEN_SCOPE", {"requiredScope": "influencers:write"})


def conflict_replays(req: Req, mem: dict[str, Any]) -> None:
    """Same key, another body: silently treated as a new request instead of 409."""
    key = req.headers.get("idempotency-key")
    if req.method != "POST" or not key:
        return
    first = mem.setdefault(("first", req.headers.get("authorization"), req.path, key), req.body)
    if first != req.body:
        req.headers.pop("idempotency-key")


def job_404_at_first(req: Req, resp: Resp, mem: dict[str, Any]) -> None:
    if _is_job_read(req, resp) and req.path not in mem:
        mem[req.path] = True
        _error(resp, 404, "NOT_FOUND")


def extra_field_in_202(req: Req, resp: Resp, mem: dict[str, Any]) -> None:
    if _is_create(req) and resp.status == 202:
        body = resp.json()
        body["debug"] = True
        resp.set_json(body)


# name -> (request hook, response hook, the clause it must FAIL)
BROKEN: dict[str, tuple[Any, Any, str]] = {
    "422-becomes-400": (None, validation_400, "validation.unknown-field-named"),
    "scopes-ignored": (scopes_ignored, None, "scope.forbidden-403"),
    "foreign-project-403": (None, foreign_403, "tenancy.foreign-project-404"),
    "missing-locationUrl": (None, missing_location_url, "jobs.accepted-envelope"),
    "status-goes-backwards": (None, status_backwards, "jobs.status-monotonic"),
    "replay-mints-new-job": (replay_new_job, None, "idempotency.replay-identical"),
    "etag-never-changes": (None, etag_constant, "jobs.etag-304"),
    "unknown-fields-dropped": (unknown_fields_dropped, None, "validation.unknown-field-named"),
    "wrong-error-code": (None, wrong_error_code, "errors.code-matches-status"),
    "request-id-mismatch": (None, request_id_mismatch, "errors.request-id-matches"),
    "influencer-404-after-202": (None, influencer_404_after_202, "influencers.exists-at-once"),
    "401-becomes-403": (None, unauthenticated_403, "auth.missing-key-401"),
    "conflict-replays": (conflict_replays, None, "idempotency.conflict-409"),
    "job-404-after-202": (None, job_404_at_first, "jobs.pollable-at-once"),
    "extra-field-in-202": (None, extra_field_in_202, "responses.match-spec"),
}


def broken(name: str, app: ASGIApp) -> Rewrite:
    on_request, on_response, _ = BROKEN[name]
    return Rewrite(app, on_request, on_response)
