"""The Schemathesis engine: cases generated from `openapi/layers.yaml`, sent through `Target`.

Schemathesis generates positive and negative cases per operation and judges each response with
its built-in checks; we send the requests ourselves (so the budget, the recorder and the
rate limit apply to them exactly as to the Hypothesis engine) and map each built-in check to
a contract clause. Pitfalls followed from the reference notes: the fixture project is pinned
(otherwise every case is a 404), a fresh Idempotency-Key goes on every case whose headers are
not the negated part, the mock-steering `Prefer` header is pinned, `X-Layers-Organization` is
left out (a made-up organization is a 404 that says nothing of the operation; the sub-
organization clauses own that header), and the checks that send requests of their own
(ignored_auth, ...) are left to our explicit auth clauses.

Against a URL only the contract's surface is fuzzed, never with accepted writes, and only on
what the run may touch: a project is patched or archived only when it is the run's own.
"""

from __future__ import annotations

import re
from datetime import timedelta
from functools import cache
from importlib.resources import as_file
from typing import Any

import httpx
import schemathesis
from hypothesis import given, seed
from schemathesis.checks import CHECKS
from schemathesis.core.failures import FailureGroup
from schemathesis.generation import GenerationMode

from ..spec import PARTNER_SPEC
from . import contract as c
from .exchange import Exchange
from .harness import Capture, run_guarded, run_settings
from .report import Violation
from .session import Session, body_of
from .target import BudgetSpent, NotOurs, TimeUp

SPEC = PARTNER_SPEC  # inside the package: an installed wheel finds it too

# built-in check -> clause it evidences
CLAUSE = "fuzz.schemathesis"
CHECK_CLAUSES = {
    "not_a_server_error": "responses.no-5xx",
    "status_code_conformance": "responses.match-spec",
    "content_type_conformance": "responses.match-spec",
    "response_headers_conformance": "responses.match-spec",
    "response_schema_conformance": "responses.match-spec",
    "negative_data_rejection": "validation.negative-rejected",
    "positive_data_acceptance": "validation.positive-accepted",
    "missing_required_header": "auth.missing-key-401",
}
# Rules the schema cannot express: minted tokens and checks against outside databases.
SEMANTIC = frozenset({"cursor", "timezone", "primaryLanguage"})
MUTATING = {"POST", "PATCH", "DELETE"}


PINNED = "4.32.5"  # pyproject pins it; defaults and check semantics move between releases


@cache
def load_schema() -> Any:
    """Loaded once per process: the run's two users (the fuzz engine, the response observer)
    and every run of a test session read the same immutable document."""
    if schemathesis.__version__ != PINNED:
        raise RuntimeError(
            f"conformance needs schemathesis=={PINNED}, found {schemathesis.__version__}"
        )
    with as_file(SPEC) as path:  # a real file already, unless the package is zipped
        schema = schemathesis.openapi.from_path(path)
    schema.config.update(base_url="http://conformance.invalid")
    return schema


def _checks() -> list[Any]:
    return [check for check in CHECKS.get_all() if check.__name__ in CHECK_CLAUSES]


def _to_httpx(ex: Exchange) -> httpx.Response:
    headers = [(k.encode("latin-1"), _latin1(v)) for k, v in ex.request_headers.items()]
    request = httpx.Request(ex.method, ex.url, headers=headers, content=ex.request_body)
    response = httpx.Response(
        ex.status, headers=ex.response_headers, content=ex.response_body, request=request
    )
    response.elapsed = timedelta(0)  # recorded exchanges carry no timing; checks need a value
    return response


def _latin1(value: str) -> bytes:
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8")


def judge(case: Any, ex: Exchange, sent_headers: dict[str, str]) -> None:
    """Run each mapped built-in check on its own, so a failure names exactly one clause."""
    response = _to_httpx(ex)
    for check in _checks():
        if check.__name__ == "positive_data_acceptance" and _opaque_rejected(ex):
            continue
        if check.__name__ == "negative_data_rejection" and _only_extra_parameters(case):
            continue
        try:
            case.validate_response(response, checks=[check], headers=sent_headers)
        except (AssertionError, FailureGroup) as exc:  # schemathesis failures are AssertionErrors
            clause = CHECK_CLAUSES[check.__name__]
            raise Violation(clause, f"{check.__name__}: {_titles(exc)}", ex) from exc


def _titles(exc: BaseException) -> str:
    inner = getattr(exc, "exceptions", None) or [exc]
    parts = []
    for failure in inner:
        title = getattr(failure, "title", None) or str(failure).strip().splitlines()[0]
        message = (getattr(failure, "message", "") or "").strip().splitlines()
        parts.append(f"{title}: {message[0]}" if message else title)
    return "; ".join(parts)


def _opaque_rejected(ex: Exchange) -> bool:
    """A schema-valid but unminted `cursor` (opaque server token) or a string that is not an
    IANA zone / BCP-47 tag is rightly 422 by the contract; the schema cannot say so."""
    body = ex.json()
    if ex.status != 422 or not isinstance(body, dict):
        return False
    fields = (body.get("error", {}).get("details") or {}).get("fieldErrors") or {}
    return bool(fields) and set(fields) <= SEMANTIC


def _mutations(case: Any) -> tuple[Any, ...]:
    phase = getattr(case.meta, "phase", None)
    return tuple(getattr(getattr(phase, "data", None), "mutations", None) or ())


def _only_extra_parameters(case: Any) -> bool:
    """Unknown query/header parameters: the contract does not say they are 422 (only unknown
    *body* fields are), so a server that ignores them conforms; Schemathesis agrees (#2315)."""
    mutations = _mutations(case)
    return bool(mutations) and all(
        tuple(m.keywords) == ("additionalProperties",)
        and getattr(m.parameter_location, "value", "") in ("query", "header", "cookie")
        for m in mutations
    )


def _header_negated(case: Any) -> bool:
    components = getattr(case.meta, "components", None) or {}
    return any(loc.value == "header" and info.mode.is_negative for loc, info in components.items())


def run_schemathesis(s: Session, examples: int) -> None:
    """Fuzz every partner operation in both modes; raise the first Violation."""
    t = s.target
    schema = load_schema()
    sample = s.sample if s.sample is not None else None
    ids = sample.body if sample is not None else {}
    path_parameters = {
        "projectId": s.project,
        "jobId": ids.get("jobId", "job_00000000000000000000000000"),
        "influencerId": ids.get("influencerId", "inf_00000000-0000-4000-8000-000000000000"),
    }
    operations = [result.ok() for result in schema.get_all_operations()]
    if not t.in_process:  # only the contract's surface table (contract.OPERATIONS)
        operations = [op for op in operations if c.operation_of(op.method, _sample_path(op.path))]
    # Destructive operations last, so the sample influencer/job stay usable for the rest.
    operations.sort(key=lambda op: (op.method.upper() in {"DELETE", "PATCH"}, op.label))
    own_project = body_of(s.created_project).get("id") if s.created_project else None
    for op in operations:
        params = {k: v for k, v in path_parameters.items() if f"{{{k}}}" in op.path}
        if not t.in_process and op.method.upper() in {"PATCH", "DELETE"} and "projectId" in params:
            if not own_project:
                continue  # the given project is not the run's to change, and it has no other
            params["projectId"] = str(own_project)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            if (
                mode is GenerationMode.POSITIVE
                and op.method.upper() in MUTATING
                and not t.in_process
            ):
                continue  # against a deployment, accepted writes cost money or destroy data
            strategy = op.as_strategy(
                mode, path_parameters=params, headers={"Prefer": "outcome=completed"}
            )
            try:
                _fuzz(s, op, strategy, examples)
            except TimeUp:
                if not s.notes.get(s.clause):
                    raise  # not a single case was judged
                return  # the time share ran out: what was judged stands (and is noted)


def _fuzz(s: Session, op: Any, strategy: Any, examples: int) -> None:
    t = s.target
    capture = Capture()

    def one(case: Any) -> None:
        # A case whose negation *is* the Authorization header must go out without our key,
        # or the negation is undone and the judgement is about a request never sent.
        auth_negated = any(
            getattr(m, "parameter", None) == "Authorization" for m in _mutations(case)
        )
        if any(getattr(m, "parameter", None) == c.ORG_HEADER for m in _mutations(case)):
            return  # negating X-Layers-Organization is the suborgs section's question
        kwargs = case.as_transport_kwargs(
            base_url=t.base_url, headers={} if auth_negated else t.auth()
        )
        headers = {k: str(v) for k, v in (kwargs.get("headers") or {}).items()}
        headers.pop("X-Schemathesis-TestCaseId", None)  # random: breaks a fixed sequence
        headers.pop(c.ORG_HEADER, None)  # a made-up organization: 404 before the operation
        if not all(v.isascii() and k.isascii() for k, v in headers.items()):
            return  # HTTP/1.1 clients cannot send these; nothing a server could be judged on
        if "Idempotency-Key" in headers and not _header_negated(case):
            headers["Idempotency-Key"] = t.idempotency_key()
        body = kwargs.get("json")
        content = kwargs.get("data")
        if isinstance(content, str):
            content = content.encode()
        path = str(kwargs["url"])[len(t.base_url) :]
        try:
            ex = t.send(
                kwargs["method"],
                path,
                headers=headers,
                json_body=body if content is None else None,
                content=content,
                params=kwargs.get("params") or None,
            )
        except (BudgetSpent, NotOurs):
            return  # over budget, or a write on something the run did not create: not sent
        judge(case, ex, headers)

    @run_settings(examples, s.database)
    @seed(t.seed)
    @given(case=strategy)
    def test(case: Any) -> None:
        capture.guard(lambda: one(case))

    run_guarded(test, capture, s.note)


def validate_exchanges(exchanges: list[Exchange]) -> None:
    """responses.match-spec for the Hypothesis engine's exchanges too: every response of the
    run (not only Schemathesis' own) must be one the spec describes."""
    schema = load_schema()
    checks = [
        check
        for check in CHECKS.get_all()
        if CHECK_CLAUSES.get(check.__name__) == "responses.match-spec"
    ]
    for ex in exchanges:
        if ex.path.startswith("/_mock/"):
            continue
        op = schema.find_operation_by_path(ex.method, ex.path.split("?")[0])
        if op is None:
            continue
        values = _path_values(op.path, ex.path.split("?")[0])
        case = op.Case(path_parameters=values)
        try:
            case.validate_response(_to_httpx(ex), checks=checks)
        except (AssertionError, FailureGroup) as exc:
            raise Violation("responses.match-spec", _titles(exc), ex) from exc


def _sample_path(template: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", template)


def _path_values(template: str, path: str) -> dict[str, str]:
    out = {}
    for t_part, p_part in zip(
        template.strip("/").split("/"), path.strip("/").split("/"), strict=False
    ):
        if t_part.startswith("{"):
            out[t_part[1:-1]] = p_part
    return out


__all__ = ["CHECK_CLAUSES", "CLAUSE", "run_schemathesis", "validate_exchanges"]
