"""A shared sandbox's tenant routes fuzzed where they are shared: two workers on one Redis.

tests/http/test_control_fuzz.py fuzzes openapi/control.yaml in one process, a tenant's key
included; here every control operation's boundary cases (Schemathesis, deterministic) come
from Acme's key to two workers of one sandbox on a real redis-server, turn by turn, as a load
balancer spreads them. Each answer must be one the spec describes (the workers are strict),
the partner API must still answer on the other worker, and whatever the tenant sent, no other
organization moves: each case that names Acme's organization is sent again naming Globex's
(never a 2xx), and Globex's clock, data, journal and rule, the server clock and the seed are
the same after every operation as before the first.
"""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

import httpx
import pytest
import schemathesis
from grouped import Worker
from redisd import RedisServer
from schemathesis.checks import CHECKS
from schemathesis.core.failures import FailureGroup
from schemathesis.generation import GenerationMode
from support import FULL, GLOBEX, GLOBEX_PROJECT, PROJECT, auth

from layers_mock_server.spec import CONTROL_SPEC

CASES = 12  # per operation: the narrowing on the shared store, not every input again
ACME_ORG = "org_3f6c2a8e-1b7d-4c59-9e0a-5d4b8c7f1a23"  # FULL's organization (the tenant)
GLOBEX_ORG = "org_8d1e5f3a-6c2b-4e7d-a9f0-1b3c5d7e9f02"  # the neighbour it must not touch
OPERATOR = "operator-only"
LATER = "2026-02-01T00:00:00.000Z"
CHECKED = {
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
}
CHECK_FUNCTIONS = [check for check in CHECKS.get_all() if check.__name__ in CHECKED]
SCHEMA = schemathesis.openapi.from_path(CONTROL_SPEC)
SCHEMA.config.update(base_url="http://testserver")
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]


class Sandbox:
    """Two strict workers of one sandbox with an admin token; `send` goes to one of them."""

    def __init__(self, url: str) -> None:
        self.workers = [Worker(url), Worker(url)]
        self.clients = []
        for worker in self.workers:
            worker.deps.admin_token = OPERATOR
            transport = httpx.ASGITransport(app=worker.app)
            self.clients.append(httpx.AsyncClient(transport=transport, base_url="http://t"))

    def send(self, turn: int, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request on worker `turn % 2`, then its lease back (the other's turn next)."""
        worker = self.workers[turn % 2]

        async def one() -> httpx.Response:
            answer = await self.clients[turn % 2].request(method, path, **kwargs)
            await worker.deps.shared.settled()
            return answer

        return worker.loop.run_until_complete(one())

    def close(self) -> None:
        for worker, client in zip(self.workers, self.clients, strict=True):
            worker.loop.run_until_complete(client.aclose())
            worker.close()


def _tamed(case: Any) -> None:
    """A fuzzed rule may ask for a minute of latency, or to drop the connection, on every
    request of the tenant: the probe would wait, or find no answer, for nothing."""
    body = case.body
    if not isinstance(body, dict):
        return
    latency = body.get("latencyMs")
    if isinstance(latency, int | float) and not isinstance(latency, bool):
        body["latencyMs"] = min(latency, 5)
    if body.get("fault") == "drop":
        body["fault"] = "503"


def _sent(case: Any) -> tuple[str, str, dict[str, Any]]:
    kwargs = case.as_transport_kwargs(base_url="http://t")
    headers = {k: str(v) for k, v in (kwargs.get("headers") or {}).items()}
    headers.pop("X-Schemathesis-TestCaseId", None)
    headers["Authorization"] = f"Bearer {FULL}"  # the tenant, whatever the case generated
    content = kwargs.get("data")
    request = {
        "headers": headers,
        "params": kwargs.get("params") or None,
        "json": kwargs.get("json") if content is None else None,
        "content": content.encode() if isinstance(content, str) else content,
    }
    return kwargs["method"], str(kwargs["url"]).removeprefix("http://t"), request


def _neighbour(request: dict[str, Any], path: str) -> tuple[str, dict[str, Any]] | None:
    """The same request naming Globex's organization where it names Acme's, if it does."""
    text = repr((path, request["params"], request["json"], request["content"]))
    if ACME_ORG not in text and ACME_ORG.removeprefix("org_") not in text:
        return None

    def swap(value: Any) -> Any:
        if isinstance(value, str):
            return value.replace(ACME_ORG.removeprefix("org_"), GLOBEX_ORG.removeprefix("org_"))
        if isinstance(value, bytes):
            return swap(value.decode("utf-8", "replace")).encode()
        if isinstance(value, dict):
            return {swap(k): swap(v) for k, v in value.items()}
        if isinstance(value, list):
            return [swap(v) for v in value]
        return value

    swapped = {**request, **{k: swap(request[k]) for k in ("params", "json", "content")}}
    return swap(path), swapped


def _probe(sandbox: Sandbox, turn: int) -> None:
    """The partner API still answers, in the contract or with a fault a rule of the tenant's
    asked for (marked injected)."""
    created = sandbox.send(turn, "POST", f"/v1/projects/{PROJECT}/influencers", headers=auth())
    # two requests a case: the journal (1,000 entries) must still hold Globex's at the end
    paths = [created.headers["location"]] if created.status_code == 202 else ["/v1/whoami"]
    for answer in [created, *(sandbox.send(turn, "GET", p, headers=auth()) for p in paths)]:
        if answer.status_code >= 500 or answer.status_code == 429:
            assert answer.json()["error"]["details"]["injected"] is True, answer.text


def _neighbourhood(sandbox: Sandbox) -> list[Any]:
    """What the tenant must never move, read by the operator (no partner request: the
    journal would move): Globex's clock, jobs, projects, journal and rule, the server clock
    and the seed."""
    admin = {"Authorization": f"Bearer {OPERATOR}"}
    reads = [
        f"/_mock/organizations/{GLOBEX_ORG}/clock",
        "/_mock/clock",
        "/_mock/seed",
        "/_mock/rules",
        f"/_mock/jobs?organizationId={GLOBEX_ORG}",
        f"/_mock/projects?organizationId={GLOBEX_ORG}",
    ]
    seen: list[Any] = []
    for path in reads:
        answer = sandbox.send(0, "GET", path, headers=admin)
        assert answer.status_code == 200, (path, answer.text)
        seen.append(answer.json())
    seen[3] = [r for r in seen[3]["items"] if r["match"].get("organizationId") != ACME_ORG]
    journal = sandbox.send(1, "GET", "/_mock/requests?limit=1000", headers=auth(GLOBEX)).json()
    seen.append([(e["sequence"], e["requestId"]) for e in journal["items"]])
    return seen


@pytest.fixture
def sandbox(redis_server: RedisServer) -> Any:
    shared = Sandbox(redis_server.sandbox())
    yield shared
    shared.close()


def test_no_tenant_case_breaks_the_shared_sandbox_or_moves_another_organization(
    sandbox: Sandbox,
) -> None:
    admin = {"Authorization": f"Bearer {OPERATOR}"}
    # Globex has a job, a detached clock and a rule of the operator's for the tenant to miss
    job = sandbox.send(
        0, "POST", f"/v1/projects/{GLOBEX_PROJECT}/influencers", headers=auth(GLOBEX)
    )
    assert job.status_code == 202
    theirs = job.json()["jobId"]
    moved = sandbox.send(
        1,
        "POST",
        f"/_mock/organizations/{GLOBEX_ORG}/clock/advance",
        json={"seconds": 20},
        headers=auth(GLOBEX),
    )
    assert moved.status_code == 200
    rule = {"match": {"organizationId": GLOBEX_ORG}, "latencyMs": 1}
    assert sandbox.send(0, "POST", "/_mock/rules", json=rule, headers=admin).status_code == 201
    before = _neighbourhood(sandbox)
    [(sequence, _)] = before[-1]  # Globex's create, in the journal
    for turn, (method, path, body, refused) in enumerate(
        [
            ("POST", "/_mock/reset", {"organizationId": GLOBEX_ORG}, 404),
            ("POST", "/_mock/reset", {"organizationId": GLOBEX_ORG.removeprefix("org_")}, 404),
            (
                "POST",
                "/_mock/rules",
                {"match": {"organizationId": GLOBEX_ORG}, "fault": "503"},
                404,
            ),
            ("DELETE", "/_mock/rules/rule_1", None, 404),  # Globex's, the operator's
            ("GET", f"/_mock/jobs/{theirs}", None, 404),
            ("GET", f"/_mock/ui/jobs/{theirs}", None, 404),
            ("GET", f"/_mock/ui/requests/{sequence}", None, 404),
            ("POST", f"/_mock/organizations/{GLOBEX_ORG}/clock/set", {"now": LATER}, 404),
            ("POST", "/_mock/clock/advance", {"seconds": 1}, 403),  # everyone's clock
            ("PUT", "/_mock/state", {}, 403),
        ]
    ):
        answer = sandbox.send(turn, method, path, json=body, headers=auth(FULL))
        assert answer.status_code == refused, (method, path, answer.text)
    parent = {**auth(FULL), "X-Layers-Organization": GLOBEX_ORG}
    assert sandbox.send(1, "POST", "/_mock/reset", headers=parent).status_code == 403
    assert _neighbourhood(sandbox) == before
    modes = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
    turn = 0
    for operation in OPERATIONS:
        config = SCHEMA.config.generation_for(operation=operation)
        cases = SCHEMA.iter_coverage_cases(
            operation, generation_modes=modes, generation_config=config
        )
        for case in itertools.islice(cases, CASES):
            _tamed(case)
            method, path, request = _sent(case)
            if not all(k.isascii() and v.isascii() for k, v in request["headers"].items()):
                continue  # not sendable over HTTP/1.1
            turn += 1
            answer = sandbox.send(turn, method, path, **request)
            answer.elapsed = timedelta(0)
            for check in CHECK_FUNCTIONS:
                try:
                    case.validate_response(answer, checks=[check], headers=request["headers"])
                except (AssertionError, FailureGroup) as exc:
                    raise AssertionError(
                        f"{check.__name__}: {method} {path} {answer.status_code} "
                        f"{answer.text[:400]} for {request['json'] or request['content']!r}"
                    ) from exc
            theirs = _neighbour(request, path)
            if theirs is not None:
                other = sandbox.send(turn + 1, method, theirs[0], **theirs[1])
                assert not 200 <= other.status_code < 300, (method, theirs, other.text)
            _probe(sandbox, turn + 1)
        assert _neighbourhood(sandbox) == before, operation.label
