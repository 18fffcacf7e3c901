"""Static checks of the OpenAPI documents in openapi/.

The documents are the single source of truth of the mock, so these tests check that they are
valid OpenAPI 3.1, that every example validates against its schema (with a real JSON Schema
2020-12 validator and the whole document as the $ref root), and that the conventions the server
relies on at start-up hold (security scopes, rate classes, operationIds, statuses, headers).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jsonschema_rs
import pytest
import yaml
from openapi_spec_validator import OpenAPIV31SpecValidator, validate

from layers_mock_server.http.control import TENANT_ROUTES

ROOT = Path(__file__).resolve().parents[2]
OPENAPI = ROOT / "openapi"
DOCS = ("layers.yaml", "control.yaml", "not-simulated.yaml")
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
BASE_URI = "urn:layers-mock:"

# Schema keywords whose value is a subschema / a map of subschemas / a list of subschemas.
SUBSCHEMA = (
    "not",
    "if",
    "then",
    "else",
    "items",
    "contains",
    "additionalProperties",
    "propertyNames",
    "unevaluatedItems",
    "unevaluatedProperties",
    "contentSchema",
)
SUBSCHEMA_MAPS = ("properties", "patternProperties", "$defs", "dependentSchemas")
SUBSCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")

# The operations of layers.yaml: operationId -> (method, path, scopes, rate class, statuses).
COMMON = {"401", "429", "500", "503"}
LAYERS_OPERATIONS = {
    "createInfluencer": (
        "post",
        "/v1/projects/{projectId}/influencers",
        ["influencers:write"],
        "long-running",
        {"202", "402", "403", "404", "409", "422"},
    ),
    "cloneInfluencer": (
        "post",
        "/v1/influencers/{influencerId}/clone",
        ["influencers:write"],
        "long-running",
        {"202", "402", "403", "404", "409", "422"},
    ),
    "listInfluencers": (
        "get",
        "/v1/projects/{projectId}/influencers",
        ["influencers:write"],
        "read-light",
        {"200", "403", "404", "422"},
    ),
    "getInfluencer": (
        "get",
        "/v1/influencers/{influencerId}",
        ["influencers:write"],
        "read-light",
        {"200", "403", "404", "422"},
    ),
    "patchInfluencer": (
        "patch",
        "/v1/influencers/{influencerId}",
        ["influencers:write"],
        "write-light",
        {"200", "403", "404", "409", "422"},
    ),
    "deleteInfluencer": (
        "delete",
        "/v1/influencers/{influencerId}",
        ["influencers:write"],
        "write-light",
        {"200", "403", "404", "409", "422"},
    ),
    "getJob": (
        "get",
        "/v1/jobs/{jobId}",
        ["jobs:read"],
        "read-light",
        {"200", "304", "403", "404", "422"},
    ),
    "cancelJob": (
        "post",
        "/v1/jobs/{jobId}/cancel",
        ["jobs:cancel"],
        "write-light",
        {"200", "202", "403", "404", "409", "422"},
    ),
    "whoami": ("get", "/v1/whoami", [], "read-light", {"200", "403", "404", "422"}),
    "getCredits": ("get", "/v1/credits", [], "read-light", {"200", "403", "404", "422"}),
    "createProject": (
        "post",
        "/v1/projects",
        ["projects:write"],
        "long-running",
        {"201", "403", "404", "409", "422"},
    ),
    "listProjects": (
        "get",
        "/v1/projects",
        ["projects:read"],
        "read-light",
        {"200", "403", "404", "422"},
    ),
    "patchProject": (
        "patch",
        "/v1/projects/{projectId}",
        ["projects:write"],
        "write-light",
        {"200", "403", "404", "409", "422"},
    ),
    "deleteProject": (
        "delete",
        "/v1/projects/{projectId}",
        ["projects:write"],
        "write-light",
        {"200", "403", "404", "409", "422"},
    ),
    "getProject": (
        "get",
        "/v1/projects/{projectId}",
        ["projects:read"],
        "read-light",
        {"200", "403", "404", "422"},
    ),
}
RATE_HEADERS = (
    "X-RateLimit-Endpoint-Class",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
)
ERROR_CODE_BY_STATUS = {
    "401": {"UNAUTHENTICATED"},
    "402": {"BILLING_EXHAUSTED"},
    "403": {"FORBIDDEN_SCOPE"},
    "404": {"NOT_FOUND"},
    "409": {"IDEMPOTENCY_CONFLICT", "CONFLICT"},
    "422": {"VALIDATION"},
    "429": {"RATE_LIMITED"},
    "500": {"INTERNAL"},
    "501": {"NOT_SIMULATED"},
    "503": {"KILL_SWITCH", "STORAGE_UNAVAILABLE"},
}


def load(name: str) -> dict[str, Any]:
    with (OPENAPI / name).open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)


@pytest.fixture(scope="module", params=DOCS)
def doc_name(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def layers() -> dict[str, Any]:
    return load("layers.yaml")


# --------------------------------------------------------------------------- helpers


def escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def pointer(parts: tuple[str, ...]) -> str:
    return "".join("/" + escape(str(p)) for p in parts)


def get(doc: dict[str, Any], parts: tuple[str, ...]) -> Any:
    node: Any = doc
    for part in parts:
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def resolve(doc: dict[str, Any], node: Any) -> tuple[Any, tuple[str, ...] | None]:
    """Follow an OpenAPI `$ref` (non-schema objects); return the target and its location."""
    location = None
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), ref
        location = tuple(p.replace("~1", "/").replace("~0", "~") for p in ref[2:].split("/"))
        node = get(doc, location)
    return node, location


class Checker:
    """Validates instances against schemas located by JSON pointer inside one document."""

    def __init__(self, name: str, doc: dict[str, Any]) -> None:
        self.uri = BASE_URI + name
        self.registry = jsonschema_rs.Registry([(self.uri, doc)], draft=jsonschema_rs.Draft202012)
        self.cache: dict[str, Any] = {}

    def validator(self, parts: tuple[str, ...]) -> Any:
        ptr = pointer(parts)
        if ptr not in self.cache:
            ref = self.uri + "#" + quote(ptr, safe="/~")
            self.cache[ptr] = jsonschema_rs.Draft202012Validator(
                {"$schema": "https://json-schema.org/draft/2020-12/schema", "$ref": ref},
                registry=self.registry,
                validate_formats=True,
                ignore_unknown_formats=False,
            )
        return self.cache[ptr]

    def errors(self, parts: tuple[str, ...], instance: Any) -> list[str]:
        return [
            f"{'/'.join(map(str, e.instance_path)) or '<root>'}: {e.message}"
            for e in self.validator(parts).iter_errors(instance)
        ]


def walk_schema(schema: Any, parts: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Yield (location, schema) for a schema and every subschema in it."""
    if not isinstance(schema, dict):
        return
    yield parts, schema
    for key in SUBSCHEMA:
        if key in schema:
            yield from walk_schema(schema[key], (*parts, key))
    for key in SUBSCHEMA_MAPS:
        for name, sub in schema.get(key, {}).items():
            yield from walk_schema(sub, (*parts, key, name))
    for key in SUBSCHEMA_LISTS:
        value = schema.get(key)
        if isinstance(value, list):
            for i, sub in enumerate(value):
                yield from walk_schema(sub, (*parts, key, str(i)))


def schema_holders(doc: dict[str, Any]) -> Iterator[tuple[tuple[str, ...], dict[str, Any]]]:
    """Yield every parameter, header and media-type object (anything with a `schema`)."""

    def rec(node: Any, parts: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
        if parts[:2] == ("components", "schemas"):
            return  # schemas are walked by walk_schema
        if isinstance(node, dict):
            if isinstance(node.get("schema"), dict):
                yield parts, node
            for key, value in node.items():
                # Do not descend into schemas or example values (they may hold a "schema" key).
                if key not in ("schema", "examples", "example"):
                    yield from rec(value, (*parts, key))
        elif isinstance(node, list):
            for i, value in enumerate(node):
                yield from rec(value, (*parts, str(i)))

    yield from rec(doc, ())


def all_schemas(doc: dict[str, Any]) -> Iterator[tuple[tuple[str, ...], Any]]:
    for name, schema in doc.get("components", {}).get("schemas", {}).items():
        yield from walk_schema(schema, ("components", "schemas", name))
    for parts, holder in schema_holders(doc):
        yield from walk_schema(holder["schema"], (*parts, "schema"))


def holder_examples(doc: dict[str, Any], holder: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    if "example" in holder:
        yield "example", holder["example"]
    for name, raw in holder.get("examples", {}).items():
        example, _ = resolve(doc, raw)
        if "value" in example:
            yield f"examples/{name}", example["value"]


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item, item[method]


def responses(doc: dict[str, Any], op: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for status, response in op["responses"].items():
        resolved, _ = resolve(doc, response)
        yield str(status), resolved


# --------------------------------------------------------------------------- validity


def test_document_is_valid_openapi_31(doc_name: str) -> None:
    doc = load(doc_name)
    assert doc["openapi"] == "3.1.0"
    validate(doc, cls=OpenAPIV31SpecValidator)
    errors = [str(e) for e in OpenAPIV31SpecValidator(doc).iter_errors()]
    assert errors == []


def test_every_local_ref_resolves(doc_name: str) -> None:
    doc = load(doc_name)
    broken = []

    def rec(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                try:
                    resolve(doc, {"$ref": ref})
                except (KeyError, IndexError, ValueError):
                    broken.append(ref)
            for value in node.values():
                rec(value)
        elif isinstance(node, list):
            for value in node:
                rec(value)

    rec(doc)
    assert broken == []


# --------------------------------------------------------------------------- examples


def test_parameter_header_and_media_type_examples_validate(doc_name: str) -> None:
    doc = load(doc_name)
    checker = Checker(doc_name, doc)
    failures = []
    seen = 0
    for parts, holder in schema_holders(doc):
        for label, value in holder_examples(doc, holder):
            seen += 1
            errs = checker.errors((*parts, "schema"), value)
            if errs:
                failures.append(f"{pointer(parts)} {label}: {errs}")
    assert seen > 0
    assert failures == []


def test_schema_examples_validate(doc_name: str) -> None:
    doc = load(doc_name)
    checker = Checker(doc_name, doc)
    failures = []
    for parts, schema in all_schemas(doc):
        examples = schema.get("examples")
        if isinstance(examples, list):
            for i, value in enumerate(examples):
                errs = checker.errors(parts, value)
                if errs:
                    failures.append(f"{pointer(parts)} examples[{i}]: {errs}")
        assert "example" not in schema, f"{pointer(parts)}: use `examples` (a list) in schemas"
    assert failures == []


def test_every_request_body_and_response_body_has_examples(doc_name: str) -> None:
    doc = load(doc_name)
    missing = []
    for path, method, _, op in operations(doc):
        body, _ = resolve(doc, op.get("requestBody"))
        if body:
            for media_type, media in body["content"].items():
                if not list(holder_examples(doc, media)):
                    missing.append(f"{method.upper()} {path} request {media_type}")
        for status, response in responses(doc, op):
            for media_type, media in response.get("content", {}).items():
                if not list(holder_examples(doc, media)):
                    missing.append(f"{method.upper()} {path} {status} {media_type}")
    assert missing == []


def test_error_examples_carry_the_code_of_their_status(doc_name: str) -> None:
    doc = load(doc_name)
    wrong = []
    for path, method, _, op in operations(doc):
        for status, response in responses(doc, op):
            if status not in ERROR_CODE_BY_STATUS:
                continue
            media = response["content"]["application/json"]
            for label, value in holder_examples(doc, media):
                code = value["error"]["code"]
                if code not in ERROR_CODE_BY_STATUS[status]:
                    wrong.append(f"{method.upper()} {path} {status} {label}: {code}")
    assert wrong == []


def test_schemas_reject_wrong_error_code_and_invalid_job(layers: dict[str, Any]) -> None:
    """Spot-check that the schemas are strict where the server relies on them."""
    checker = Checker("layers.yaml", layers)
    schemas = ("components", "schemas")
    envelope = {
        "error": {
            "code": "NOT_FOUND",
            "message": "Project not found.",
            "requestId": "req_01HXZ9G7KMV2QX8Y1S5RJW3B7T",
        }
    }
    assert checker.errors((*schemas, "NotFoundError"), envelope) == []
    assert checker.errors((*schemas, "UnauthenticatedError"), envelope)
    assert checker.errors((*schemas, "ErrorEnvelope"), {**envelope, "extra": 1})
    job = {
        "jobId": "job_01JDZ8Q5N4W7X2Y3Z4A5B6C7D8",
        "kind": "influencer_create",
        "status": "running",
        "stage": "queued",
        "progress": 0,
        "projectId": "prj_254a4ce1-f4ca-42b1-9e36-17ca45ef3d39",
        "influencerId": "inf_6f1c2b3a-8d4e-4f5a-9b6c-7d8e9f0a1b2c",
        "locationUrl": "/v1/jobs/job_01JDZ8Q5N4W7X2Y3Z4A5B6C7D8",
        "startedAt": "2026-01-01T00:00:00.000Z",
    }
    assert checker.errors((*schemas, "Job"), job) == []
    assert checker.errors((*schemas, "Job"), {**job, "finishedAt": "2026-01-01T00:01:00.000Z"})
    done = {**job, "status": "completed", "stage": "finalizing", "progress": 1}
    assert checker.errors((*schemas, "Job"), done)  # no finishedAt/result
    done |= {
        "finishedAt": "2026-01-01T00:01:00.000Z",
        "result": {"influencerId": job["influencerId"]},
    }
    assert checker.errors((*schemas, "Job"), done) == []
    assert checker.errors((*schemas, "Job"), {**done, "progress": 0.9})
    assert checker.errors((*schemas, "Job"), {**done, "error": {"code": "X", "message": "x"}})
    failed = {**job, "status": "failed", "finishedAt": "2026-01-01T00:00:15.000Z"}
    assert checker.errors((*schemas, "Job"), failed)  # no error
    failed["error"] = {"code": "GENERATION_FAILED", "message": "Portrait rendering failed."}
    assert checker.errors((*schemas, "Job"), failed) == []
    canceled = {**job, "status": "canceled", "finishedAt": "2026-01-01T00:00:15.000Z"}
    assert checker.errors((*schemas, "Job"), canceled) == []
    assert checker.errors((*schemas, "Job"), {**job, "startedAt": "2026-01-01T00:00:00Z"})
    assert checker.errors((*schemas, "CreateInfluencerRequest"), {"name": "Ava"})
    assert checker.errors((*schemas, "PatchInfluencerRequest"), {})
    assert checker.errors((*schemas, "PatchInfluencerRequest"), {"gender": None})
    assert checker.errors((*schemas, "PatchInfluencerRequest"), {"ageRange": None}) == []


# --------------------------------------------------------------------------- conventions


def test_layers_operations_are_exactly_the_v1_surface(layers: dict[str, Any]) -> None:
    found = {op["operationId"]: (method, path) for path, method, _, op in operations(layers)}
    expected = {op_id: spec[:2] for op_id, spec in LAYERS_OPERATIONS.items()}
    assert found == expected


@pytest.mark.parametrize("operation_id", sorted(LAYERS_OPERATIONS))
def test_layers_operation_conventions(layers: dict[str, Any], operation_id: str) -> None:
    method, path, scopes, rate_class, statuses = LAYERS_OPERATIONS[operation_id]
    op = layers["paths"][path][method]
    assert op["operationId"] == operation_id
    assert op["security"] == [{"bearerAuth": scopes}]
    assert op["x-rate-class"] == rate_class
    assert op.get("summary")
    assert op.get("description")
    assert op.get("tags")
    assert set(op["responses"]) == statuses | COMMON

    item = layers["paths"][path]
    params = [resolve(layers, p)[0] for p in item.get("parameters", []) + op.get("parameters", [])]
    names = {(p["in"], p["name"]) for p in params}
    assert ("header", "Prefer") in names
    assert ("header", "X-Layers-Organization") in names
    assert (("header", "Idempotency-Key") in names) == (method in ("post", "patch", "delete"))
    for param in params:
        if param["in"] == "path":
            assert param["schema"] == {"type": "string"}, param["name"]
            assert "example" in param


def test_layers_security_scheme(layers: dict[str, Any]) -> None:
    scheme = layers["components"]["securitySchemes"]["bearerAuth"]
    assert scheme["type"] == "http"
    assert scheme["scheme"] == "bearer"
    assert "lp_live_" in scheme["description"]


def test_every_v1_response_declares_request_id_and_rate_headers(layers: dict[str, Any]) -> None:
    problems = []
    for path, method, _, op in operations(layers):
        for status, response in responses(layers, op):
            where = f"{method.upper()} {path} {status}"
            headers = {n: resolve(layers, h)[0] for n, h in response.get("headers", {}).items()}
            request_id = headers.get("X-Request-Id")
            if not request_id or request_id.get("required") is not True:
                problems.append(f"{where}: X-Request-Id missing or not required")
            for name in RATE_HEADERS:
                header = headers.get(name)
                if status == "401":
                    continue
                if header is None:
                    problems.append(f"{where}: {name} missing")
                elif header.get("required", False) != (status not in ("500", "503")):
                    problems.append(f"{where}: {name} required flag")
            if status == "429" and not headers.get("Retry-After", {}).get("required"):
                problems.append(f"{where}: Retry-After")
            if status.startswith(("4", "5")) and "application/json" not in response.get(
                "content", {}
            ):
                problems.append(f"{where}: no application/json error body")
    assert problems == []


def test_special_headers_and_bodiless_304(layers: dict[str, Any]) -> None:
    create = layers["paths"]["/v1/projects/{projectId}/influencers"]["post"]
    assert resolve(layers, create["responses"]["202"]["headers"]["Location"])[0]["required"]
    job = layers["paths"]["/v1/jobs/{jobId}"]["get"]
    for status in ("200", "304"):
        assert resolve(layers, job["responses"][status]["headers"]["ETag"])[0]["required"]
    assert "content" not in job["responses"]["304"]
    names = {resolve(layers, p)[0]["name"] for p in job["parameters"]}
    assert "If-None-Match" in names


def test_links(layers: dict[str, Any]) -> None:
    paths = layers["paths"]
    links = paths["/v1/projects/{projectId}/influencers"]["post"]["responses"]["202"]["links"]
    assert links["GetJob"] == {
        "operationId": "getJob",
        "parameters": {"jobId": "$response.body#/jobId"},
    }
    assert links["GetInfluencer"]["parameters"] == {"influencerId": "$response.body#/influencerId"}
    assert links["CancelJob"]["operationId"] == "cancelJob"
    assert links["ListInfluencers"]["parameters"] == {"projectId": "$response.body#/projectId"}
    project_links = paths["/v1/projects"]["post"]["responses"]["201"]["links"]
    assert project_links["GetProject"]["parameters"] == {"projectId": "$response.body#/id"}
    assert project_links["CreateInfluencer"]["operationId"] == "createInfluencer"
    inf_links = paths["/v1/influencers/{influencerId}"]["get"]["responses"]["200"]["links"]
    assert {link["operationId"] for link in inf_links.values()} == {
        "patchInfluencer",
        "deleteInfluencer",
        "cloneInfluencer",
    }
    clone = paths["/v1/influencers/{influencerId}/clone"]["post"]["responses"]["202"]["links"]
    assert {k: v["operationId"] for k, v in clone.items()} == {
        k: v["operationId"] for k, v in links.items() if k != "CloneInfluencer"
    }
    assert clone["GetInfluencer"]["parameters"] == {"influencerId": "$response.body#/influencerId"}
    operation_ids = {op["operationId"] for _, _, _, op in operations(layers)}
    targets = set()
    for _, _, _, op in operations(layers):
        for _, response in responses(layers, op):
            for link in response.get("links", {}).values():
                assert link["operationId"] in operation_ids
                targets.add(link["operationId"])
    # An archived project stays readable, so a stateful fuzzer that followed a link to the
    # DELETE would report the (documented) read after it as a use after free.
    assert "deleteProject" not in targets


def test_control_plane_conventions() -> None:
    doc = load("control.yaml")
    assert all(path.startswith("/_mock/") or path == "/" for path in doc["paths"])
    assert doc["components"]["securitySchemes"]["adminToken"]["scheme"] == "bearer"
    # the dashboard: pages also take the token in their URL; links and static files are open
    page_security = [{}, {"adminToken": []}, {"tenantKey": []}, {"adminTokenQuery": []}]
    # what a tenant key may call is decided in one place (control.py); the spec says the same
    tenant_security = [{}, {"adminToken": []}, {"tenantKey": []}]
    security_of = {
        **dict.fromkeys(TENANT_ROUTES, tenant_security),
        "mockIndex": [{}],
        "mockDashboardAsset": [{}],
        "mockDashboard": page_security,
        "mockDashboardLive": page_security,
        "mockDashboardJob": page_security,
        "mockDashboardRequest": page_security,
    }
    expected = {
        "mockHealth",
        "mockReady",
        "mockFixtures",
        "mockGetClock",
        "mockAdvanceClock",
        "mockSetClock",
        "mockReset",
        "mockGetSeed",
        "mockRequests",
        "mockListRules",
        "mockAddRule",
        "mockClearRules",
        "mockDeleteRule",
        "mockGetState",
        "mockPutState",
        "mockListJobs",
        "mockGetJob",
        "mockListProjects",
        "mockGetChaos",
        "mockGetOrganizationClock",
        "mockAdvanceOrganizationClock",
        "mockSetOrganizationClock",
        "mockResetOrganizationClock",
        *security_of,
    }
    found = set()
    for path, method, _, op in operations(doc):
        found.add(op["operationId"])
        assert op["security"] == security_of.get(op["operationId"], [{}, {"adminToken": []}])
        for status, response in responses(doc, op):
            header = resolve(doc, response.get("headers", {}).get("X-Request-Id"))[0]
            assert header, f"{method} {path} {status}"
            assert header["required"] is True, f"{method} {path} {status}"
    assert found == expected
