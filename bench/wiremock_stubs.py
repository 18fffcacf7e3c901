"""WireMock stubs for the two benchmarked requests, generated from openapi/layers.yaml's examples.

OSS WireMock has no OpenAPI import, so the benchmark writes two mappings (the idea of
../shared/peers/spectool.py `wiremock`, narrowed to what bench/run.py sends):

  POST /v1/projects/{projectId}/influencers  bearer token + body valid against the request
      schema (`matchesJsonSchema`, $refs inlined)  -> 202, the JobAccepted example, Location
  GET  /v1/jobs/{jobId}                        bearer token  -> 200, the Job example, ETag

Matching the bearer header and the body schema keeps WireMock doing a little of the work the mock
does (the shared harness, whose figures issue 5 quotes, matches the same way).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

BEARER = {"Authorization": {"matches": r"^Bearer \S+$"}}
CREATE_TEMPLATE = "/v1/projects/{projectId}/influencers"
JOB_TEMPLATE = "/v1/jobs/{jobId}"
# A fixed, quoted entity tag: stubs are static, so the tag is too (its shape is the mock's).
STUB_ETAG = '"wm-0000000000000000"'


def _inline(doc: dict[str, Any], node: Any, depth: int = 0) -> Any:
    """`node` with every local $ref replaced by its target; docs and `x-` keys dropped."""
    if depth > 40:
        raise ValueError("schema nests too deeply (a $ref cycle?)")
    if isinstance(node, list):
        return [_inline(doc, item, depth + 1) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target: Any = doc
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        rest = {k: v for k, v in node.items() if k != "$ref"}
        return _inline(doc, {**target, **rest}, depth + 1)
    return {
        k: _inline(doc, v, depth + 1)
        for k, v in node.items()
        if not k.startswith("x-") and k not in ("description", "examples", "example")
    }


def _example(media: dict[str, Any]) -> Any:
    """The media type's first example value (`example`, else the first of `examples`)."""
    if "example" in media:
        return media["example"]
    return next(iter(media["examples"].values()))["value"]


def write_stubs(spec: Path, root: Path) -> int:
    """Write the stub mappings under `root`/mappings (WireMock's --root-dir); returns how many."""
    doc = yaml.safe_load(spec.read_text())
    create = doc["paths"][CREATE_TEMPLATE]["post"]
    get_job = doc["paths"][JOB_TEMPLATE]["get"]
    accepted = _example(create["responses"]["202"]["content"]["application/json"])
    job = _example(get_job["responses"]["200"]["content"]["application/json"])
    schema = _inline(doc, create["requestBody"]["content"]["application/json"]["schema"])
    json_ct = {"Content-Type": "application/json"}
    stubs = {
        "create-202": {
            "priority": 1,
            "request": {
                "method": "POST",
                "urlPathTemplate": CREATE_TEMPLATE,
                "headers": BEARER,
                "bodyPatterns": [{"matchesJsonSchema": schema, "schemaVersion": "V202012"}],
            },
            "response": {
                "status": 202,
                "headers": {**json_ct, "Location": accepted["locationUrl"]},
                "jsonBody": accepted,
            },
        },
        "get-job-200": {
            "priority": 1,
            "request": {"method": "GET", "urlPathTemplate": JOB_TEMPLATE, "headers": BEARER},
            "response": {
                "status": 200,
                "headers": {**json_ct, "ETag": STUB_ETAG},
                "jsonBody": job,
            },
        },
    }
    mappings = root / "mappings"
    mappings.mkdir(parents=True, exist_ok=True)
    (root / "__files").mkdir(exist_ok=True)
    for name, stub in stubs.items():
        (mappings / f"{name}.json").write_text(json.dumps({"name": name, **stub}, indent=2))
    return len(stubs)
