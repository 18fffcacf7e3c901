"""The control plane under /_mock/: everything a test needs to steer the mock.

Never under /v1/, so a partner's client cannot reach it by accident. Bodies and queries are
validated against openapi/control.yaml like any partner request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..core.clock import ClockError, format_ms, parse_timestamp
from ..core.errors import ApiError, validation
from ..core.snapshot import export_state, import_state
from ..deps import Deps
from ..spec import Operation
from . import inputs
from .access import control_principal
from .control_reads import READ_HANDLERS
from .pipeline import Reply
from .render import dumps, encode_headers, error_body, send_response
from .strict import check_response

ControlHandler = Callable[[Deps, dict[str, Any], dict[str, Any], dict[str, str]], Reply]


def health(deps: Deps, body: dict[str, Any], query: dict[str, Any], path: dict[str, str]) -> Reply:
    return Reply(200, {"status": "ok"})


def ready(deps: Deps, body: dict[str, Any], query: dict[str, Any], path: dict[str, str]) -> Reply:
    return Reply(200, {"status": "ready"})


def fixtures(
    deps: Deps, body: dict[str, Any], query: dict[str, Any], path: dict[str, str]
) -> Reply:
    state = deps.sim.state
    orgs = []
    for org in state.organizations.values():
        orgs.append(
            {
                "organizationId": org.organization_id,
                "name": org.name,
                "projects": [
                    {"projectId": p.project_id, "name": p.name, "targetGender": p.target_gender}
                    for p in deps.sim.fixtures.projects.values()
                    if p.org_id == org.organization_id
                ],
                "keys": [
                    {
                        "key": k.key,
                        "apiKeyId": k.api_key_id,
                        "scopes": list(k.scopes),
                        "rateLimitTier": k.tier,
                        "killed": k.killed,
                    }
                    for k in state.keys.values()
                    if k.org_id == org.organization_id
                ],
            }
        )
    return Reply(200, {"organizations": orgs})


def get_clock(
    deps: Deps, body: dict[str, Any], query: dict[str, Any], path: dict[str, str]
) -> Reply:
    clock = deps.sim.clock
    return Reply(
        200,
        {
            "now": format_ms(clock.now_ms()),
            "mode": clock.mode,
            "speed": clock.speed,
            "progression": deps.progression,
        },
    )


def _clock_error(exc: ClockError) -> ApiError:
    return validation("Invalid body.", [str(exc)])


def advance_clock(
    deps: Deps, body: dict[str, Any], query: dict[str, Any], path: dict[str, str]
) -> Reply:
    try:
        now = deps.sim.clock.advance(body["seconds"])
    except ClockError as exc:
        raise _clock_error(exc) from None
    return Reply(200, {"now": format_ms(now)})


def set_clock(
    deps: Deps, body: dict[str, Any], query: dict[str, Any], path: dict[str, str]
) -> Reply:
    try:
        now = deps.sim.clock.set(parse_timestamp(body["now"]))
    except ClockError as exc:
        raise _clock_error(exc) from None
    except ValueError:
        raise validation(
            "Invalid body.", field_errors={"now": ["Must be an ISO-8601 instant."]}
        ) from None
    return Reply(200, {"now": format_ms(now)})


def reset(deps: Deps, body: dict[str, Any], query: dict[str, Any], path: dict[str, str]) -> Reply:
    deps.sim.reset(seed=body.get("seed"), organization_id=body.get("organizationId"))
    deps.store.replace(deps.sim.state, deps.sim.clock)
    if body.get("organizationId") is None:
        deps.journal.clear()
    return Reply(
        200,
        {"status": "reset", "now": format_ms(deps.sim.now()), "seed": deps.sim.state.seed},
    )


def get_seed(
    deps: Deps, body: dict[str, Any], query: dict[str, Any], path: dict[str, str]
) -> Reply:
    return Reply(200, {"seed": deps.sim.state.seed})


def requests(
    deps: Deps, body: dict[str, Any], query: dict[str, Any], path: dict[str, str]
) -> Reply:
    items, total = deps.journal.query(
        method=query.get("method"),
        path=query.get("path"),
        status=query.get("status"),
        limit=query.get("limit", 100),
    )
    return Reply(200, {"items": items, "total": total})


def list_rules(
    deps: Deps, body: dict[str, Any], query: dict[str, Any], path: dict[str, str]
) -> Reply:
    return Reply(200, {"items": [r.public() for r in deps.sim.state.rules.rules.values()]})


def add_rule(
    deps: Deps, body: dict[str, Any], query: dict[str, Any], path: dict[str, str]
) -> Reply:
    return Reply(201, deps.sim.state.rules.add(body).public())


def clear_rules(
    deps: Deps, body: dict[str, Any], query: dict[str, Any], path: dict[str, str]
) -> Reply:
    return Reply(200, {"deleted": deps.sim.state.rules.clear()})


def delete_rule(
    deps: Deps, body: dict[str, Any], query: dict[str, Any], path: dict[str, str]
) -> Reply:
    if not deps.sim.state.rules.delete(path["ruleId"]):
        raise ApiError("NOT_FOUND", "Rule not found.")
    return Reply(200, {"deleted": 1})


def get_state(
    deps: Deps, body: dict[str, Any], query: dict[str, Any], path: dict[str, str]
) -> Reply:
    return Reply(200, export_state(deps.sim.state, deps.sim.clock))


def put_state(
    deps: Deps, body: dict[str, Any], query: dict[str, Any], path: dict[str, str]
) -> Reply:
    deps.sim.replace_state(import_state(body, deps.sim.clock))
    deps.store.replace(deps.sim.state, deps.sim.clock)
    return Reply(200, {"status": "imported"})


CONTROL_HANDLERS: dict[str, ControlHandler] = {
    "mockListRules": list_rules,
    "mockAddRule": add_rule,
    "mockClearRules": clear_rules,
    "mockDeleteRule": delete_rule,
    "mockGetState": get_state,
    "mockPutState": put_state,
    "mockHealth": health,
    "mockReady": ready,
    "mockFixtures": fixtures,
    "mockGetClock": get_clock,
    "mockAdvanceClock": advance_clock,
    "mockSetClock": set_clock,
    "mockReset": reset,
    "mockGetSeed": get_seed,
    "mockRequests": requests,
    **READ_HANDLERS,
}


class ControlPipeline:
    __slots__ = ("deps", "handler", "op")

    def __init__(self, op: Operation, handler: ControlHandler, deps: Deps) -> None:
        self.op = op
        self.handler = handler
        self.deps = deps

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        deps = self.deps
        # A counter of its own: steering the mock must not shift the ids and seeded draws
        # (chaos, rule probabilities) of the partner requests it steers.
        request_id = "req_" + deps.sim.state.mint.ulid("control-req", deps.sim.now())
        headers = inputs.header_map(scope)
        body = await inputs.read_body(receive, headers.get("content-type"))
        out = [(b"x-request-id", request_id.encode())]
        try:
            control_principal(deps, headers.get("authorization"))
            parsed = inputs.validate_body(self.op, body)
            query = inputs.validate_query(self.op, scope.get("query_string", b""))
            reply = self.handler(deps, parsed, query, scope.get("path_params", {}))
            if self.op.method != "GET":
                deps.store.commit(deps.sim.state, deps.sim.clock)  # rules and clock survive too
            status, payload = reply.status, dumps(reply.body)
            out.extend(encode_headers(reply.headers))
        except ApiError as exc:
            status, payload = exc.status, dumps(error_body(exc, request_id))
        if deps.strict:
            check_response(self.op, status, out, payload)
        await send_response(send, status, out, payload)
