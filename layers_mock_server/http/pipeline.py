"""One request through one operation, in the contract's order of checks.

authenticate (401/503) → rate limit (429) → scope (403) → a stored idempotent answer
(replay / 409, CONTRACT.md 2026-12-01) → path resources (404) → body, query and headers (422)
→ idempotency (replay / 409) → handler → written to the store (503) → sent.
Each step either passes or raises ApiError; the error is rendered in one place below.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from ..core.errors import ApiError
from ..core.idempotency import (
    Scope,
    StoredResponse,
    body_fingerprint,
    scope_digest,
    unpack_headers,
)
from ..core.journal import Exchange
from ..core.prefer import NONE, Preferences, parse_prefer
from ..core.records import ApiKey
from ..core.rules import RequestFacts
from ..core.store import Refused, StoreFull, StoreUnavailable
from ..deps import Deps
from ..spec import Operation
from . import inputs
from .connection import drop_connection
from .render import Headers, dumps, encode_headers, error_body, send_response
from .strict import check_response

MUTATING = frozenset({"POST", "PATCH", "DELETE"})
# Set in the request's scope just before its answer starts: dispatch.py's outermost guard reads
# it instead of wrapping `send` to watch for http.response.start (a coroutine per message).
STARTED = "layers_mock_server.started"


class ConnectionDropped(Exception):
    """A `drop` fault: the connection was closed and nothing may be sent."""


# The 503 of a request refused because the shared state is full (Redis at its maxmemory).
FULL = (
    "The mock's shared state is full (Redis is at its maxmemory); nothing of this request was "
    "done. Reads still answer; retry it once Redis has room."
)


RESHARD = (
    "the Redis Cluster slot that holds the sandbox is being moved to another node (a reshard); "
    "it answers again once the move ends"
)

DAMAGED = (
    "a key of the sandbox in Redis, named in the reason, is not as the mock left it "
    "(overwritten, deleted, renamed or expired by someone else): delete that key if it is still "
    "there and reset the sandbox with POST /_mock/reset, or delete every key of the sandbox to "
    "start it afresh"
)

# Why Redis refused a command before running any of it (its error code), in plain words.
REFUSALS = {
    "BUSY": "Redis is busy running a script",
    "LOADING": "Redis is loading its dataset",
    "MISCONF": "Redis cannot save to disk, and takes no write until it can",
    "READONLY": "Redis is a read-only replica",
    "NOREPLICAS": "Redis has fewer replicas in sync than its min-replicas-to-write",
    "NOSCRIPT": "the mock's scripts were flushed from Redis; it loads them again",
    "WRONGTYPE": DAMAGED,  # someone else overwrote a key of the sandbox (stores/redis_pipe.py)
    "DAMAGED": DAMAGED,
    # Redis Cluster: the sandbox's slot is half-way through a reshard (stores/redis_cluster.py)
    "TRYAGAIN": RESHARD,
    "ASK": RESHARD,
    "MOVED": RESHARD,
}


def refused(exc: Refused) -> str:
    """The message of a 503 for a request the shared store refused before running any of it
    (the reason, beside it, is what Redis said)."""
    if isinstance(exc, StoreFull):
        return FULL
    why = REFUSALS.get(exc.code, "Redis refused it")
    return (
        f"The mock's shared state refused this request before running it ({why}); a retry "
        "is safe: nothing of this request was done."
    )


# A 503 whose cause passes by itself says when to try again: 1 s of the client's real time,
# whatever the mock clock (CONTRACT.md "Changes": Retry-After speaks the client's time, and a
# store outage passes in real time, never in mock time, so it is real seconds on a virtual
# clock too). The store's error says whether it passes (`StoreUnavailable.transient`).
RETRY_AFTER = {"retry-after": "1"}


def retry_after(exc: StoreUnavailable) -> dict[str, str] | None:
    """The headers of the 503 for `exc` beyond the request id and rate headers: every path
    that answers a store's failure takes them from here."""
    return RETRY_AFTER if exc.transient else None


def storage_error(exc: StoreUnavailable) -> ApiError:
    if isinstance(exc, Refused):
        return ApiError("STORAGE_UNAVAILABLE", refused(exc), {"reason": str(exc)}, retry_after(exc))
    return ApiError(
        "STORAGE_UNAVAILABLE",
        "The mock could not write its state file; nothing of this request was acknowledged.",
        {"reason": str(exc)},
        retry_after(exc),
    )


def error_headers(exc: ApiError) -> Headers:
    """An error's own headers (Retry-After), as sent."""
    return encode_headers(list(exc.headers.items())) if exc.headers else []


@dataclass(slots=True)
class Reply:
    status: int
    body: Any  # a JSON-able value, bytes already encoded, or None for no body
    headers: list[tuple[str, str]] = field(default_factory=list)


@dataclass(slots=True)
class Call:
    """Everything a handler may read about the request it answers."""

    deps: Deps
    op: Operation
    key: ApiKey
    resources: dict[str, Any]
    body: dict[str, Any]
    query: dict[str, Any]
    headers: dict[str, str]
    prefs: Preferences
    idempotency_scope: str | None
    generation: int = 0  # of the state the resources were looked up in


Handler = Callable[[Call], Reply]
Resolver = Callable[[Deps, ApiKey, str], Any]


def principal(caller: ApiKey, acting: ApiKey) -> str:
    """Whose idempotency records: a parent key acting in a child keeps a set per organization."""
    return caller.api_key_id if acting is caller else f"{caller.api_key_id}@{acting.org_id}"


def encode_body(body: Any) -> bytes | None:
    """A handler may hand over bytes it already encoded (get_job hashes them for the ETag)."""
    if body is None or isinstance(body, bytes):
        return body
    return dumps(body)


class OperationPipeline:
    nap = staticmethod(asyncio.sleep)  # a latency fault's real-time wait (tests hold it)

    __slots__ = (
        "deps",
        "handler",
        "header_names",
        "header_params",
        "headers_optional",
        "inflight",
        "mutating",
        "op",
        "query_params",
        "rate_class_of",
        "resolvers",
    )

    def __init__(
        self,
        op: Operation,
        handler: Handler,
        deps: Deps,
        resolvers: dict[str, Resolver],
        rate_class_of: Callable[[inputs.Body], str] | None = None,
    ) -> None:
        self.op = op
        self.handler = handler
        self.deps = deps
        self.resolvers = {p.name: resolvers[p.name] for p in op.params if p.location == "path"}
        self.rate_class_of = rate_class_of
        # Per-operation facts picked out of the spec once, not on every request.
        self.query_params = inputs.query_params(op)
        self.header_params = inputs.header_params(op)
        # A request that sends none of the declared headers, when none is required and none has
        # a default, has nothing to check: most requests (~1 µs of the checker's loop saved).
        self.header_names = frozenset(p.name.lower() for p in self.header_params)
        self.headers_optional = all(
            not p.required and p.default is None for p in self.header_params
        )
        self.mutating = op.method in MUTATING
        self.inflight: dict[bytes, asyncio.Future[None]] = {}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:  # noqa: PLR0915 - the steps in order
        deps, sim = self.deps, self.deps.sim
        request_id = sim.request_id()
        headers = inputs.header_map(scope)
        if "content-length" in headers or "transfer-encoding" in headers:
            body = await inputs.read_body(
                receive, headers.get("content-type"), headers.get("content-length")
            )
        else:  # HTTP/1.1: no length and no chunking means no body; nothing to wait for
            body = inputs.Body(b"", False, headers.get("content-type"))
        out: Headers = [(b"x-request-id", request_id.encode())]
        # the key that sent it (whose journal and rate windows, whose tenant rules) and the
        # key as it acts (in a child, with X-Layers-Organization: whose data and clock)
        caller: ApiKey | None = None
        injected: str | None = None
        try:
            caller = sim.authenticate(headers.get("authorization"))
            key = self._admit(caller, body, out, headers)
            replay = (
                self._stored(principal(caller, key), scope, headers["idempotency-key"], body, key)
                if self.mutating and "idempotency-key" in headers and inputs.REPEATED not in headers
                else None  # (one sent twice is refused with the other headers' problems)
            )
            if replay is not None:
                # A retry after a lost answer gets it again, even if the resource has changed
                # or gone since (CONTRACT.md 2026-12-01); faults still apply to it.
                prefs, injected = self._preferences(caller, key, {}, headers, scope["path"])
                if prefs is not NONE:
                    await self._inject(prefs, scope)
                status, payload = replay.status, replay.body
                out.extend(unpack_headers(replay.headers))
            else:
                generation = sim.generation
                params = scope.get("path_params", {})
                resources = {n: r(deps, key, params[n]) for n, r in self.resolvers.items()}
                call_body = inputs.validate_body(self.op, body)
                query = inputs.check_query(self.query_params, scope.get("query_string", b""))
                declared = (
                    {}
                    if self.headers_optional and self.header_names.isdisjoint(headers)
                    else inputs.check_headers(self.header_params, headers)
                )
                prefs, injected = self._preferences(caller, key, resources, headers, scope["path"])
                if prefs is not NONE:
                    await self._inject(prefs, scope)
                call = Call(
                    deps,
                    self.op,
                    key,
                    resources,
                    call_body,
                    query,
                    headers,
                    prefs,
                    None,
                    generation,
                )
                if call.generation != sim.generation:  # a reset or import while it waited
                    self._land(call, params)
                idem_key = declared.get("Idempotency-Key") if self.mutating else None
                if idem_key is None:
                    reply = self.handler(call)
                    status, payload, extra = reply.status, encode_body(reply.body), reply.headers
                    out.extend(encode_headers(extra))
                else:
                    status, payload, stored = await self._idempotent(
                        call,
                        params,
                        (principal(caller, key), self.op.method, scope["path"], idem_key),
                    )
                    out.extend(stored)
        except ConnectionDropped:
            self._journal(
                scope, 0, request_id, caller, injected, (scope["headers"], body.raw, None, None)
            )
            return
        except ApiError as exc:
            status = exc.status
            payload = dumps(error_body(exc, request_id))
            out.extend(error_headers(exc))
        except Exception:
            await self._bug(scope, send, request_id, caller, injected, body.raw)
            raise  # on to the server's log (stderr), as the outermost guard would do
        await self._finish(
            scope, send, status, out, payload, request_id, caller, injected, body.raw
        )

    def _admit(
        self, key: ApiKey, body: inputs.Body, out: Headers, headers: dict[str, str]
    ) -> ApiKey:
        """Steps 2 and 3: the caller's rate limit (its headers go on every later answer), the
        organization it acts in, and the scope. Returns the key as it acts."""
        sim = self.deps.sim
        rate_class = self.rate_class_of(body) if self.rate_class_of else self.op.rate_class
        quota = sim.state.rates.take(
            key.api_key_id, key.tier, rate_class, sim.now(key.org_id), sim.client_speed(key.org_id)
        )
        out.extend(quota.header_bytes())
        if quota.retry_after_s is not None:
            raise ApiError(
                "RATE_LIMITED",
                f"Rate limit of {quota.limit} {rate_class} requests per minute exceeded.",
                {"endpointClass": rate_class, "limit": quota.limit},
                {"retry-after": str(quota.retry_after_s)},
            )
        # X-Layers-Organization: after the rate limit, so its 403/404/422 report the bucket
        key = sim.acting_key(key, headers.get("x-layers-organization"))
        if not key.allows(self.op.scope):
            raise ApiError(
                "FORBIDDEN_SCOPE",
                f"This key is missing the {self.op.scope} scope.",
                {"requiredScope": self.op.scope},
            )
        return key

    def _resolve(self, key: ApiKey, params: dict[str, str]) -> dict[str, Any]:
        return {n: r(self.deps, key, params[n]) for n, r in self.resolvers.items()}

    def _land(self, call: Call, params: dict[str, str]) -> None:
        """After a wait, a reset or an import may have replaced the state: look the path's
        resources up again in the state the request lands in, never write into the old one."""
        generation = self.deps.sim.generation
        if call.generation != generation:
            call.resources = self._resolve(call.key, params)
            call.generation = generation

    def _stored(
        self, whose: str, scope: dict[str, Any], idem_key: str, body: inputs.Body, key: ApiKey
    ) -> StoredResponse | None:
        """Step 3½: a stored answer for this key replays before the resource lookup; another
        body is a 409. None when there is no record (the order of checks goes on as usual)."""
        sim = self.deps.sim
        digest = scope_digest((whose, self.op.method, scope["path"], idem_key))
        record = sim.state.idempotency.lookup(digest, sim.now(key.org_id))
        if record is None:
            return None
        try:
            _, parsed = inputs.parse_json(body)
        except ApiError:
            parsed = None  # not JSON at all: not the body that was stored
        if parsed is None and not body.raw.strip():
            parsed = {}
        if parsed is None or _fingerprint(parsed) != record.fingerprint:
            raise _conflict()
        return record

    def _preferences(
        self,
        caller: ApiKey,
        key: ApiKey,
        resources: dict[str, Any],
        headers: dict[str, str],
        path: str,
    ) -> tuple[Preferences, str | None]:
        """The request's Prefer header, then control-plane rules, then the chaos profile."""
        state = self.deps.sim.state
        header = headers.get("prefer")
        if not header and not state.rules.rules and self.deps.chaos is None:
            return NONE, None  # the common case: nothing asked for, nothing to draw
        prefs = parse_prefer(header)
        marks = [m] if (m := prefs.applied()) else []
        sequence = self.deps.sim.requests.sequence()
        if state.rules.rules:
            project_id = next((getattr(r, "project_id", None) for r in resources.values()), None)
            facts = RequestFacts(
                self.op.method,
                path,
                self.op.operation_id,
                key.org_id,
                project_id,
                sequence,
                caller.org_id,
            )
            ruled = state.rules.apply(state.seed, facts, prefs)
            if ruled != prefs or state.rules.changed:
                # a counted rule was used up, or a rule drew its chance: persist it
                state.dirty.add(("meta", ""))
                if (m := ruled.applied()) and m not in marks:
                    marks.append("rule:" + m)
            prefs = ruled
        chaos = self.deps.chaos
        if chaos is not None and not prefs.fault and (drawn := chaos.draw(state.seed, sequence)):
            prefs = replace(
                prefs, fault=drawn.fault, latency_ms=prefs.latency_ms or drawn.latency_ms
            )
            marks.append("chaos:" + (drawn.applied() or ""))
        return prefs, ",".join(marks) or None

    async def _inject(self, prefs: Preferences, scope: dict[str, Any]) -> None:
        if prefs.latency_ms:  # real time, other requests go on (other workers' writes too)
            shared = self.deps.shared
            await (shared.sleep if shared else self.nap)(prefs.latency_ms / 1000)
        if prefs.fault == "drop":
            drop_connection(scope)  # a real closed connection, not an HTTP answer
            raise ConnectionDropped
        if prefs.fault == "500":
            raise ApiError("INTERNAL", "Injected fault: internal error.", {"injected": True})
        if prefs.fault == "503":
            raise ApiError(
                "KILL_SWITCH",
                "Injected fault: service unavailable.",
                {"scope": "key", "injected": True},
            )
        if prefs.fault == "429":
            raise ApiError(
                "RATE_LIMITED",
                "Injected fault: rate limited.",
                {"injected": True},
                {"retry-after": "1"},
            )

    async def _idempotent(
        self, call: Call, params: dict[str, str], scope: Scope
    ) -> tuple[int, bytes | None, Headers]:
        """Same key and body: the first answer. Same key, other body: 409.

        Bodies compare as parsed JSON: the validated body (no body is `{}`), keys sorted."""
        sim = self.deps.sim
        digest = scope_digest(scope)
        fingerprint = _fingerprint(call.body)
        record = sim.state.idempotency.lookup(digest, sim.now(call.key.org_id))
        while record is None and digest in self.inflight:
            await asyncio.shield(self.inflight[digest])
            self._land(call, params)
            record = sim.state.idempotency.lookup(digest, sim.now(call.key.org_id))
        if record is not None:
            if record.fingerprint != fingerprint:
                raise _conflict()
            return record.status, record.body, unpack_headers(record.headers)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.inflight[digest] = done
        try:
            call.idempotency_scope = digest.hex()
            reply = self.handler(call)
            payload = encode_body(reply.body)
            extra = encode_headers(reply.headers)
            stored = StoredResponse.of(
                scope[0],  # whose records: the caller, per organization it acts in
                self.op.operation_id,
                fingerprint,
                reply.status,
                extra,
                payload,
                sim.now(call.key.org_id),
            )
            sim.state.idempotency.store(digest, stored)
            return reply.status, payload, extra
        finally:
            del self.inflight[digest]
            done.set_result(None)

    async def _finish(  # noqa: PLR0917
        self,
        scope: dict[str, Any],
        send: Any,
        status: int,
        out: Headers,
        payload: bytes | None,
        request_id: str,
        key: ApiKey | None,
        injected: str | None,
        request_body: bytes,
    ) -> None:
        if self.deps.strict:
            check_response(self.op, status, out, payload)
        try:
            if self.deps.sim.state.dirty:
                self.deps.sim.commit()  # durable before the client knows
        except StoreUnavailable as exc:
            kept = [h for h in out if h[0] == b"x-request-id" or h[0].startswith(b"x-ratelimit-")]
            error = storage_error(exc)
            out, status = kept + error_headers(error), 503
            payload = dumps(error_body(error, request_id))
            if self.deps.strict:
                check_response(self.op, status, out, payload)
        scope[STARTED] = True
        position = self.deps.journal.position()  # the copy it answered from (not the next)
        await send_response(send, status, out, payload)
        exchange = (scope["headers"], request_body, out, payload)
        self._journal(scope, status, request_id, key, injected, exchange, position)

    async def _bug(  # noqa: PLR0917 - the request's facts, as _journal takes them
        self,
        scope: dict[str, Any],
        send: Any,
        request_id: str,
        key: ApiKey | None,
        injected: str | None,
        request_body: bytes,
    ) -> None:
        """A bug: the envelope with this request's id (no traceback) to the client, and the
        500 to the journal, so /_mock/requests shows it where the user looks."""
        out = [(b"x-request-id", request_id.encode())]
        payload = dumps(error_body(ApiError("INTERNAL", "Internal error."), request_id))
        scope[STARTED] = True
        position = self.deps.journal.position()
        await send_response(send, 500, out, payload)
        exchange = (scope["headers"], request_body, out, payload)
        self._journal(scope, 500, request_id, key, injected, exchange, position)

    def _journal(  # noqa: PLR0917 - one call per request, positional like Journal.add
        self,
        scope: dict[str, Any],
        status: int,
        request_id: str,
        key: ApiKey | None,
        injected: str | None,
        exchange: Exchange,
        position: int | None = None,
    ) -> None:
        """`key`: the key that sent the request, never the copy that acts in a child: the
        entry is its organization's, numbered among that organization's own."""
        self.deps.journal.add(
            self.deps.sim.now(),
            self.op.method,
            scope["path"],
            scope.get("query_string", b"").decode("latin-1"),
            status,
            request_id,
            key.api_key_id if key else None,
            self.op.operation_id,
            injected,
            exchange,
            position,
            key.org_id if key else None,
        )


def _fingerprint(body: Any) -> bytes:
    return body_fingerprint(orjson.dumps(body, option=orjson.OPT_SORT_KEYS))


def _conflict() -> ApiError:
    return ApiError(
        "IDEMPOTENCY_CONFLICT",
        "This Idempotency-Key was already used with a different request body.",
    )
