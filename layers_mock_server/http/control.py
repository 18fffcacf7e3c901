"""The control plane under /_mock/: everything a test needs to steer the mock.

Never under /v1/, so a partner's client cannot reach it by accident. Bodies and queries are
validated against openapi/control.yaml like any partner request; whatever a control request
sets is checked here, once, so that nothing it leaves behind can make a later request fail.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from ..core.clock import ClockError, format_ms, parse_timestamp
from ..core.errors import ApiError, invalid_body, not_found, validation
from ..core.ids import check_seed
from ..core.layout import StateReader
from ..core.records import canonical_id
from ..core.restore import StateBuilder
from ..core.rules import no_organization, rule_organization
from ..core.snapshot import export_chunks
from ..core.store import StoreUnavailable
from ..deps import Deps
from ..spec import Operation
from ..statecheck import rule_operation_problem, state_check
from . import inputs
from .access import Principal, check_site, control_principal
from .control_clocks import CLOCK_HANDLERS, clock_error, server_wide
from .control_reads import READ_HANDLERS
from .pipeline import Reply, error_headers, storage_error
from .render import JSON, dumps, encode_headers, error_body, send_response
from .strict import check_response

ControlHandler = Callable[[Deps, dict[str, Any], dict[str, Any], dict[str, str], Principal], Reply]


def health(
    deps: Deps,
    body: dict[str, Any],
    query: dict[str, Any],
    path: dict[str, str],
    who: Principal,
) -> Reply:
    alive: dict[str, Any] = {"status": "ok"}
    if deps.sim.shared is not None:  # what the worker knows: health asks Redis nothing
        reach = deps.sim.shared.reach()
        known: dict[str, Any] = {"reachable": reach.reachable}
        if reach.reason is not None:
            known["reason"] = reach.reason
        known["waitingMs"] = reach.waiting_ms
        known["full"] = reach.full
        if reach.refused is not None:
            known["refused"] = reach.refused
        alive["sharedStore"] = known
    return Reply(200, alive)


def ready(
    deps: Deps,
    body: dict[str, Any],
    query: dict[str, Any],
    path: dict[str, str],
    who: Principal,
) -> Reply:
    """Ready: this worker answers reads and writes. On Redis the request's own catch-up (the
    gate's round trip, a script that may write) just told: unreachable is the gate's 503, and
    a refusal of that script (full, a replica, unable to save, too few replicas) is kept in
    `reach().refused`, read here at no cost, where the worker would answer writes 503."""
    if deps.sim.shared is not None:
        reach = deps.sim.shared.reach()
        if reach.refused is not None:
            raise ApiError(
                "STORAGE_UNAVAILABLE",
                "Not ready: the mock's shared state refuses its writes, which are answered 503 "
                "until Redis takes them again (details.reason says what it said).",
                {"reason": reach.refused},
            )
    return Reply(200, {"status": "ready"})


def fixtures(
    deps: Deps,
    body: dict[str, Any],
    query: dict[str, Any],
    path: dict[str, str],
    who: Principal,
) -> Reply:
    state = deps.sim.state
    orgs = []
    for org in state.organizations.values():
        if not who.sees(org.organization_id):
            continue
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
    deps: Deps,
    body: dict[str, Any],
    query: dict[str, Any],
    path: dict[str, str],
    who: Principal,
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


def advance_clock(
    deps: Deps,
    body: dict[str, Any],
    query: dict[str, Any],
    path: dict[str, str],
    who: Principal,
) -> Reply:
    try:
        now = deps.sim.clock.advance(body["seconds"])
    except ClockError as exc:
        raise clock_error(exc) from None
    return Reply(200, {"now": format_ms(now)})


def set_clock(
    deps: Deps,
    body: dict[str, Any],
    query: dict[str, Any],
    path: dict[str, str],
    who: Principal,
) -> Reply:
    try:
        now = deps.sim.clock.set(parse_timestamp(body["now"]))
    except ClockError as exc:
        raise clock_error(exc) from None
    except ValueError:
        raise validation(
            "Invalid body.", field_errors={"now": ["Must be an ISO-8601 instant."]}
        ) from None
    return Reply(200, {"now": format_ms(now)})


def reset(
    deps: Deps,
    body: dict[str, Any],
    query: dict[str, Any],
    path: dict[str, str],
    who: Principal,
) -> Reply:
    organization_id, seed = body.get("organizationId"), body.get("seed")
    tenant = who.organization_id
    if tenant is not None:  # a tenant resets its own organization, nothing else
        if seed is not None and organization_id is None:
            raise server_wide()
        organization_id = deps.sim.organization(organization_id or tenant)
        if not who.sees(organization_id):
            raise not_found("Organization")
    if organization_id is not None:
        if seed is not None:
            raise invalid_body(
                field_errors={
                    "seed": ["Cannot go with organizationId: every organization shares the seed."]
                }
            )
        # before the reset's commit: it is numbered past the mark; a tenant is answered its
        # own (the count of its resets: it learns nothing of the other organizations')
        mark = deps.journal.org_mark(tenant) if tenant else deps.journal.mark()
        deps.sim.reset_organization(organization_id)
    else:
        mark = deps.journal.mark()
        known = set(deps.sim.state.organizations)  # ... before the reset, and after it
        try:
            deps.sim.reset(None if seed is None else check_seed(seed))
        except ValueError as exc:
            raise invalid_body(field_errors={"seed": [f"{exc}."]}) from None
        deps.journal.clear(sorted(known | set(deps.sim.state.organizations)))
    now, seed = format_ms(deps.sim.now()), deps.sim.state.seed
    return Reply(200, {"status": "reset", "now": now, "seed": seed, "mark": mark})


def get_seed(
    deps: Deps,
    body: dict[str, Any],
    query: dict[str, Any],
    path: dict[str, str],
    who: Principal,
) -> Reply:
    return Reply(200, {"seed": deps.sim.state.seed})


def journal_of(deps: Deps, who: Principal, query: dict[str, Any]) -> str | None:
    """Whose share of the journal a read reads (core/journal.py): a tenant's own, or the one
    the operator names (a tenant's entries stay in its share when the newest 1,000 of all, the
    operator's union, no longer hold them); None: the operator's union. A tenant naming another
    organization is 404, as an unknown one is: it learns nothing of it."""
    named = query.get("organizationId")
    if named is None:
        return who.organization_id
    org_id = deps.sim.organization(named)
    if who.organization_id is not None and org_id != who.organization_id:
        raise not_found("Organization")
    return org_id


def requests(
    deps: Deps,
    body: dict[str, Any],
    query: dict[str, Any],
    path: dict[str, str],
    who: Principal,
) -> Reply:
    mine = None
    mark = after = query.get("after")
    tenant = who.organization_id
    if tenant is not None:  # a tenant reads the requests of its own keys only, numbered
        keys = deps.sim.state.keys.values()  # among its own, after its own marks
        mine = {k.api_key_id for k in keys if k.org_id == tenant}
        marks = deps.journal.marks_of(tenant)
        latest = len(marks)
        if mark is not None and 0 < mark <= latest:
            after = marks[mark - 1]  # the server's mark of that reset
    else:
        latest = deps.journal.latest_mark()
    if mark is not None and (mark > latest if tenant else not deps.journal.handed_out(mark)):
        raise validation(
            "Invalid query.",
            field_errors={
                "after": [
                    f"No reset answered mark {mark}: the latest this server handed out is {latest}."
                ]
            },
        )
    items, total = deps.journal.query(
        method=query.get("method"),
        path=query.get("path"),
        status=query.get("status"),
        limit=query.get("limit", 100),
        api_key_ids=mine,
        after=after,
        local=tenant is not None,
        org=journal_of(deps, who, query),  # one organization's share, else the union
    )
    return Reply(200, {"items": items, "total": total})


def list_rules(
    deps: Deps,
    body: dict[str, Any],
    query: dict[str, Any],
    path: dict[str, str],
    who: Principal,
) -> Reply:
    return Reply(200, {"items": [r.public() for r in deps.sim.state.rules.of(who.organization_id)]})


def add_rule(
    deps: Deps,
    body: dict[str, Any],
    query: dict[str, Any],
    path: dict[str, str],
    who: Principal,
) -> Reply:
    problem = rule_operation_problem(body["match"].get("operationId"))
    if problem is not None:  # it would never fire
        raise invalid_body(field_errors={"match": [problem]})
    tenant = who.organization_id
    if tenant is not None:  # a tenant's rule matches the requests its own keys send only
        named = body["match"].get("organizationId")
        if named is not None and named != tenant and canonical_id("org_", named) != tenant:
            raise not_found("Organization")  # another's or unknown: the same answer
        body["match"]["organizationId"] = tenant
    elif (named := body["match"].get("organizationId")) is not None:  # the operator's
        org_id = rule_organization(named, deps.sim.state.organizations)
        if org_id is None:  # it would never fire
            raise invalid_body(field_errors={"match": [no_organization(named)]})
        body["match"]["organizationId"] = org_id  # as requests carry it, prefix and all
    return Reply(201, deps.sim.state.rules.add(body, tenant).public())


def clear_rules(
    deps: Deps,
    body: dict[str, Any],
    query: dict[str, Any],
    path: dict[str, str],
    who: Principal,
) -> Reply:
    return Reply(200, {"deleted": deps.sim.state.rules.clear(who.organization_id)})


def delete_rule(
    deps: Deps,
    body: dict[str, Any],
    query: dict[str, Any],
    path: dict[str, str],
    who: Principal,
) -> Reply:
    rules = deps.sim.state.rules
    rule = rules.rules.get(path["ruleId"])
    if rule is None or (who.organization_id is not None and rule.tenant != who.organization_id):
        # another tenant's, or the operator's: as if it did not exist
        raise ApiError("NOT_FOUND", "Rule not found.")
    rules.delete(rule.rule_id)
    return Reply(200, {"deleted": 1})


def get_state(
    deps: Deps,
    body: dict[str, Any],
    query: dict[str, Any],
    path: dict[str, str],
    who: Principal,
) -> Reply:
    # Encoded at once, without yielding to other requests: an export is one instant.
    sim = deps.sim
    return Reply(200, list(export_chunks(sim.state, sim.requests, sim.clock)))


def put_state(
    deps: Deps,
    body: dict[str, Any],
    query: dict[str, Any],
    path: dict[str, str],
    who: Principal,
) -> Reply:
    raise AssertionError("PUT /_mock/state reads its body as a stream: ControlPipeline._import")


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
    **CLOCK_HANDLERS,
}
# The routes that read the journal (`Journal.fetch` first).
READS_JOURNAL = frozenset({"mockRequests"})
# The routes that use a tenant's own journal marks (`Journal.fetch_marks` first).
TENANT_MARKS = frozenset({"mockRequests", "mockReset"})
# What a tenant key may call (access.py); every other control route is the operator's (403).
# Each of these narrows itself to the tenant's organization: reads filter, and anything of
# another organization is 404 exactly like an unknown one, so a tenant learns nothing of it.
TENANT_ROUTES = frozenset(
    {
        "mockHealth",
        "mockReady",
        "mockFixtures",
        "mockGetClock",  # the server clock, read only: the one a following organization sees
        "mockGetSeed",
        "mockReset",
        "mockListRules",  # its own rules: they match its organization's requests only
        "mockAddRule",
        "mockClearRules",
        "mockDeleteRule",
        "mockRequests",
        "mockListJobs",
        "mockGetJob",
        "mockListProjects",
        *CLOCK_HANDLERS,
    }
)


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
        request_id = deps.sim.request_id("control-req")
        headers = inputs.header_map(scope)
        out = [(b"x-request-id", request_id.encode())]
        payload: bytes | list[bytes] | None
        try:
            check_site(deps, headers, scope.get("server"))
            who = control_principal(
                deps, headers.get("authorization"), None, headers.get("x-layers-organization")
            )
            if who.kind == "tenant" and self.op.operation_id not in TENANT_ROUTES:
                raise server_wide()
            generation = deps.sim.generation
            if who.organization_id is not None and self.op.operation_id in TENANT_MARKS:
                await deps.journal.fetch_marks(who.organization_id)  # on Redis, kept there
            if self.op.operation_id == "mockPutState":
                reply = await self._import(headers, receive)
            else:
                body = await inputs.read_body(receive, headers.get("content-type"))
                parsed = inputs.validate_body(self.op, body)
                query = inputs.validate_query(self.op, scope.get("query_string", b""))
                if self.op.operation_id in READS_JOURNAL:  # on Redis, from every worker
                    await deps.journal.fetch(journal_of(deps, who, query))
                reply = self.handler(deps, parsed, query, scope.get("path_params", {}), who)
            # A reset or an import wrote the whole state itself, meta row included (and on
            # Redis gave the lease back with that write): a second write would go without it.
            if self.op.method != "GET" and deps.sim.generation == generation:
                deps.sim.state.dirty.add(("meta", ""))  # rules, clock and counters survive too
                deps.sim.commit()
            status = reply.status
            payload = reply.body if isinstance(reply.body, list) else dumps(reply.body)
            out.extend(encode_headers(reply.headers))
        except StoreUnavailable as exc:
            error = storage_error(exc)
            status, payload = 503, dumps(error_body(error, request_id))
            out.extend(error_headers(error))
        except ApiError as exc:
            status, payload = exc.status, dumps(error_body(exc, request_id))
        if isinstance(payload, list):
            await self._stream(send, status, out, payload)
            return
        if deps.strict:
            check_response(self.op, status, out, payload)
        await send_response(send, status, out, payload)

    async def _import(self, headers: dict[str, str], receive: Any) -> Reply:
        """PUT /_mock/state, read as it arrives (layout.py); the state changes at the end,
        whole, and only once the store has it."""
        problem = inputs.media_problem(headers.get("content-type"))
        if problem is not None:
            raise invalid_body([problem])
        builder = StateBuilder(state_check(), self.deps.sim.clock)
        reader = StateReader(builder)
        while True:
            message = await receive()
            if message["type"] != "http.request":
                raise invalid_body(["The body ended early."])
            reader.feed(message.get("body", b""))
            if not message.get("more_body", False):
                break
        reader.end()
        restored = builder.finish()
        self.deps.journal.imported(restored.state.organizations)
        self.deps.sim.restore(restored)
        return Reply(200, {"status": "imported"})

    async def _stream(self, send: Any, status: int, out: list[Any], chunks: list[bytes]) -> None:
        if self.deps.strict:
            check_response(self.op, status, out, b"".join(chunks))
        size = sum(len(c) for c in chunks)
        headers = [*out, JSON, (b"content-length", str(size).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        for n, chunk in enumerate(_batched(chunks)):
            await send({"type": "http.response.body", "body": chunk, "more_body": n >= 0})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def _batched(chunks: list[bytes], size: int = 1024 * 1024) -> Iterator[bytes]:
    """Chunks of about `size` bytes; the list empties as it goes, so memory falls as it sends."""
    pending: list[bytes] = []
    held = 0
    chunks.reverse()
    while chunks:
        chunk = chunks.pop()
        pending.append(chunk)
        held += len(chunk)
        if held >= size:
            yield b"".join(pending)
            pending, held = [], 0
    if pending:
        yield b"".join(pending)
