"""The control plane is attack surface too: openapi/control.yaml fuzzed with Schemathesis.

Every operation, positive and negative cases, in-process and in strict mode (a response the
spec does not describe raises). After each control request a probe of partner requests must
still be answered: whatever a control request set (a seed, a clock, a rule, an imported state),
it must not make a later request fail. This is what would have found issue 9's D1 (a float
seed), D4 (a broken import) and D7 (a clock past year 9999) before a user did.

Pinned on purpose (each a Schemathesis pitfall, see reference/schemathesis.md): a rule's
latency is capped at 5 ms (a fuzzed 60 s latency would stall the probe, not find a bug), and
the Hypothesis database is off so a seed gives one sequence.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
from datetime import timedelta
from typing import Any

import httpx
import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from schemathesis.checks import CHECKS
from schemathesis.core.failures import FailureGroup
from schemathesis.generation import GenerationMode
from support import FULL, PROJECT, auth, make_mock

from layers_mock_server.spec import CONTROL_SPEC, control_spec

EXAMPLES = 12
# Generating a whole StateDocument from its schema is slow, and nearly every one fails the
# references check at once; the edits of a real export below reach much further per second.
FEWER = {"mockPutState": 3}
EDITS = 60
BOUNDARY_CASES = 80  # per operation; PUT /_mock/state alone has ~1,100
TENANT_CASES = 20  # per operation, from a tenant key: the narrowing, not the inputs again
CHECKED = {
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
}
SCHEMA = schemathesis.openapi.from_path(CONTROL_SPEC)
SCHEMA.config.update(base_url="http://testserver")
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]


CHECK_FUNCTIONS = [check for check in CHECKS.get_all() if check.__name__ in CHECKED]


def _tamed(case: Any) -> None:
    """A fuzzed rule may ask for up to 60 s of latency on every partner request."""
    body = case.body
    latency = body.get("latencyMs") if isinstance(body, dict) else None
    if isinstance(latency, int | float) and not isinstance(latency, bool):
        body["latencyMs"] = min(latency, 5)  # Schemathesis writes integers as 7182.0 too


async def probe(client: httpx.AsyncClient) -> None:
    """Partner requests after the control request: each answers in the contract, or carries a
    fault a rule asked for (marked `injected`), or is a connection a rule dropped."""
    created = await _partner(client, "POST", f"/v1/projects/{PROJECT}/influencers", {})
    requests = [("GET", "/v1/whoami", None), ("GET", f"/v1/projects/{PROJECT}/influencers", None)]
    if created is not None and created.status_code == 202:
        requests.append(("GET", created.headers["location"], None))
    for method, path, body in requests:
        await _partner(client, method, path, body)
    assert (await client.get("/_mock/health")).status_code == 200


async def _partner(
    client: httpx.AsyncClient, method: str, path: str, body: Any
) -> httpx.Response | None:
    try:
        answer = await client.request(method, path, headers=auth(FULL), json=body)
    except AssertionError:  # no answer at all: only a `drop` a rule asked for may do that
        newest = (await client.get("/_mock/requests?limit=1")).json()["items"][0]
        assert newest["status"] == 0 and "drop" in (newest["injected"] or ""), newest
        return None
    if answer.status_code >= 500 or answer.status_code == 429:
        details = answer.json()["error"].get("details") or {}
        assert details.get("injected") is True, (method, path, answer.text)
    return answer


def _as_floats(value: Any) -> Any:
    """Every integer written `2.0`: JSON Schema calls that an integer, Python does not (the
    float seed of D1). Each body is also sent this way, first."""
    if isinstance(value, dict):
        return {k: _as_floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_floats(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**53:
        return float(value)
    return value


def exercise(loop: asyncio.AbstractEventLoop, client: httpx.AsyncClient, case: Any) -> None:
    """Send one generated control request (and its body with floats for integers), judge the
    answers, then probe the partner API."""
    _tamed(case)
    original = case.body
    floats = _as_floats(original)
    if repr(floats) != repr(original):  # floats first: a cache warmed by the int hides nothing
        case.body = floats
        send(loop, client, case)
        case.body = original
    send(loop, client, case)


def send(loop: asyncio.AbstractEventLoop, client: httpx.AsyncClient, case: Any) -> None:
    kwargs = case.as_transport_kwargs(base_url="http://testserver")
    headers = {k: str(v) for k, v in (kwargs.get("headers") or {}).items()}
    headers.pop("X-Schemathesis-TestCaseId", None)
    if not all(k.isascii() and v.isascii() for k, v in headers.items()):
        return  # not sendable over HTTP/1.1
    content = kwargs.get("data")
    answer = loop.run_until_complete(
        client.request(
            kwargs["method"],
            str(kwargs["url"]).removeprefix("http://testserver"),
            headers=headers,
            params=kwargs.get("params") or None,
            json=kwargs.get("json") if content is None else None,
            content=content.encode() if isinstance(content, str) else content,
        )
    )
    answer.elapsed = timedelta(0)
    for check in CHECK_FUNCTIONS:
        try:
            case.validate_response(answer, checks=[check], headers=headers)
        except (AssertionError, FailureGroup) as exc:
            sent = kwargs.get("json") if content is None else content
            raise AssertionError(
                f"{check.__name__}: {answer.status_code} {answer.text[:500]} for {sent!r}"
            ) from exc
    loop.run_until_complete(probe(client))


class Session:
    """A fresh strict mock and one event loop, for one operation's cases. `tenant`: a shared
    sandbox's (an admin token is set) and every control request carries a tenant's own key."""

    def __init__(self, tenant: bool = False) -> None:
        self.loop = asyncio.new_event_loop()
        mock = make_mock()
        headers = {}
        if tenant:
            mock.deps.admin_token = "operator-only"
            headers = auth(FULL)
        transport = httpx.ASGITransport(app=mock.client.app)
        self.client = httpx.AsyncClient(
            transport=transport, base_url="http://testserver", headers=headers
        )

    def close(self) -> None:
        self.loop.run_until_complete(self.client.aclose())
        self.loop.close()


@pytest.mark.parametrize("operation", OPERATIONS, ids=[op.label for op in OPERATIONS])
def test_no_boundary_case_breaks_the_mock(operation: Any) -> None:
    """Schemathesis' coverage cases: each bound, just past it, each wrong type, each missing
    field (a seed of 2^64, a clock move past the last instant, ...), deterministic."""
    session = Session()
    modes = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
    config = SCHEMA.config.generation_for(operation=operation)
    try:
        cases = SCHEMA.iter_coverage_cases(
            operation, generation_modes=modes, generation_config=config
        )
        for case in itertools.islice(cases, BOUNDARY_CASES):
            exercise(session.loop, session.client, case)
    finally:
        session.close()


@pytest.mark.parametrize("operation", OPERATIONS, ids=[op.label for op in OPERATIONS])
def test_no_boundary_case_of_a_tenant_breaks_the_mock(operation: Any) -> None:
    """The same boundary cases from a tenant key on a server with an admin token: every answer
    (403 for what is server-wide, 404 for another organization's) is one the spec describes."""
    session = Session(tenant=True)
    modes = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
    config = SCHEMA.config.generation_for(operation=operation)
    try:
        cases = SCHEMA.iter_coverage_cases(
            operation, generation_modes=modes, generation_config=config
        )
        for case in itertools.islice(cases, TENANT_CASES):
            exercise(session.loop, session.client, case)
    finally:
        session.close()


@pytest.mark.parametrize("operation", OPERATIONS, ids=[op.label for op in OPERATIONS])
def test_no_control_request_breaks_the_mock(operation: Any) -> None:
    """Hypothesis' cases, positive and negative, from a fixed seed."""
    session = Session()
    strategies = [
        operation.as_strategy(mode) for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    ]

    @settings(
        max_examples=FEWER.get(operation.definition.raw["operationId"], EXAMPLES),
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @seed(9)
    @given(case=strategies[0] | strategies[1])
    def one(case: Any) -> None:
        exercise(session.loop, session.client, case)

    try:
        one()
    finally:
        session.close()


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(value, dict):
        for k, v in value.items():
            found += _leaves(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += _leaves(v, (*path, i))
    return found


def test_no_edit_of_a_real_export_breaks_the_mock() -> None:
    """One value anywhere in a real export (records of every kind, an idempotency record, a
    rule, rate windows) replaced by any JSON value: the import is 200 or 422, never a 500, and
    never leaves a state that a later request trips on."""
    mock = make_mock()
    with mock.client:
        keyed = mock.create(json={"gender": "male"}, headers={"Idempotency-Key": "k"}).json()
        mock.client.patch(
            f"/v1/influencers/{keyed['influencerId']}", json={"name": "N"}, headers=auth()
        )
        mock.client.post(f"/v1/jobs/{keyed['jobId']}/cancel", headers=auth())
        mock.create(json={}, headers={"Prefer": "progression=poll"})
        mock.client.post("/v1/projects", headers=auth(), json={"name": "Fuzz", "timezone": "UTC"})
        mock.client.post(
            "/_mock/rules", json={"match": {"path": "/v1/**"}, "latencyMs": 1, "count": 3}
        )
        globex = "org_8d1e5f3a-6c2b-4e7d-a9f0-1b3c5d7e9f02"  # an organization's own clock too
        mock.client.post(f"/_mock/organizations/{globex}/clock/advance", json={"seconds": 30})
        document = mock.client.get("/_mock/state").json()
    assert document["clock"]["organizations"]
    paths = _leaves(document)[1:]
    loop = asyncio.new_event_loop()

    @settings(
        max_examples=EDITS, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @seed(9)
    @given(where=st.sampled_from(paths), value=JSON_VALUES)
    def one(where: tuple[Any, ...], value: Any) -> None:
        edited = copy.deepcopy(document)
        target = edited
        for part in where[:-1]:
            target = target[part]
        target[where[-1]] = value
        try:
            body = orjson.dumps(edited)
        except TypeError:  # an integer orjson cannot write: not a document anyone can send
            return
        fresh = make_mock()
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=fresh.client.app), base_url="http://t"
        )

        async def run() -> None:
            answer = await client.put(
                "/_mock/state", content=body, headers={"Content-Type": "application/json"}
            )
            assert answer.status_code in (200, 422), (where, answer.text)
            await probe(client)
            await client.aclose()

        loop.run_until_complete(run())

    try:
        one()
    finally:
        loop.close()


BODIES = [
    (b'{"x": 1}', "application/json"),
    (b"[1, 2]", "application/json"),
    (b"garbage", "text/plain"),
    (b"\xff\xfe", "application/octet-stream"),
    (b"{", "application/json"),
]


@pytest.mark.parametrize(
    "op",
    sorted(control_spec().operations.values(), key=lambda o: o.operation_id),
    ids=lambda o: o.operation_id,
)
def test_a_body_where_none_is_declared_gets_a_declared_answer(op: Any) -> None:
    """GET /_mock/health with a body answered an undeclared 422, a 500 in strict mode."""
    mock = make_mock()  # strict: an undeclared answer raises ContractViolation here
    path = op.path
    for name, value in {
        "jobId": "job_x",
        "sequence": "1",
        "name": "layers.css",
        "ruleId": "r",
    }.items():
        path = path.replace("{" + name + "}", value)
    for body, media_type in BODIES:
        answer = mock.client.request(
            op.method, path, content=body, headers={"content-type": media_type}
        )
        assert answer.status_code < 500, (op.operation_id, body, answer.text)
