"""The check a state import (or a state file read at start-up) must pass, from the contracts.

Rows are checked against control.yaml's State* schemas, and a stored idempotent answer against
the partner contract's response for its operation and status, so that nothing imported can
later make the mock send a response the spec does not describe. References between records
are core/restore.py's business.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import orjson

from .core.projects import PATCHABLE
from .core.restore import Check
from .core.snapshot import ALL_TABLES
from .spec import Spec, control_spec, partner_spec
from .validation import problems

ROW_SCHEMAS = {
    "organizations": "StateOrganization",
    "keys": "StateKey",
    "projects": "StateProject",
    "influencers": "StateInfluencer",
    "jobs": "StateJob",
    "idempotency": "StateIdempotency",
}


def _validator(spec: Spec, name: str) -> Any:
    return spec.validator({"$ref": f"#/components/schemas/{name}"})


# A row field -> the schema a partner's request holds it to: an imported project may hold only
# what PATCH /v1/projects/{id} could have set (a timezone of the Timezone enum, a name of 3 to
# 30 characters, ...), an organization only the owner email a fixture may have (fixturecheck).
ROUTE_FIELDS: dict[str, dict[str, tuple[str, str | None]]] = {
    "projects": {
        attr: ("PatchProjectRequest", api) for api, attr in PATCHABLE.items() if attr != "metadata"
    },
    "organizations": {
        "owner_email": ("Email", None),
    },
}


def _route_fields(partner: Spec) -> dict[str, dict[str, Any]]:
    schemas = partner.components.get("schemas", {})
    found: dict[str, dict[str, Any]] = {}
    for table, named in ROUTE_FIELDS.items():
        found[table] = {}
        for attr, (schema, prop) in named.items():
            if prop is None:
                found[table][attr] = _validator(partner, schema)
            else:
                properties = partner.resolve(schemas[schema]).get("properties", {})
                found[table][attr] = partner.validator(properties[prop])
    return found


@cache
def state_check() -> Check:
    control, partner = control_spec(), partner_spec()
    document = _validator(control, "StateDocument")
    rows = {table: _validator(control, name) for table, name in ROW_SCHEMAS.items()}
    fields = _route_fields(partner)
    empty: dict[str, list[Any]] = {table: [] for table in ALL_TABLES}

    def check(part: str, value: Any) -> list[str]:
        if part == "meta":
            whole = {**empty, **value} if isinstance(value, dict) else value
            return [] if document.is_valid(whole) else problems(document, whole)
        if part == "idempotency-answer":
            return _answer(partner, value)
        if part == "rule":  # a rule, already valid against the document's schema
            problem = rule_operation_problem(value["match"].get("operationId"))
            return [] if problem is None else [problem]
        validator = rows[part]
        if not validator.is_valid(value):
            return problems(validator, value)
        found: list[str] = []
        for attr, field in fields.get(part, {}).items():
            if not field.is_valid(value[attr]):
                found.extend(_at(attr, p) for p in problems(field, value[attr], limit=1))
        return found

    return check


def _at(attr: str, problem: str) -> str:
    return f".{attr}{problem}" if problem[:1] in ".[" else f".{attr}: {problem}"


def rule_operation_problem(operation: str | None) -> str | None:
    """Why a rule's `match.operationId` can never fire (no such operation), or None. One check
    for POST /_mock/rules and an import's rules."""
    operations = partner_spec().operations
    if operation is None or operation in operations:
        return None
    return (
        f"match.operationId: the contract has no operation {operation!r}; one of "
        f"{', '.join(sorted(operations))}."
    )


def _answer(partner: Spec, row: dict[str, Any]) -> list[str]:
    """A replay sends this answer again; it must be one the operation may send."""
    op = partner.operations.get(row["operation_id"])
    if op is None or op.method not in ("POST", "PATCH", "DELETE"):
        return [f".operation_id: {row['operation_id']} is not an operation that takes a key."]
    contract = op.response_for(row["status"])
    if contract is None:
        return [f".status: {op.operation_id} never answers {row['status']}."]
    sent = {name for name, _ in row["headers"]}
    missing = [
        name
        for name in contract.required_headers
        if name not in sent and name != "x-request-id" and not name.startswith("x-ratelimit-")
    ]
    if missing:
        return [f".headers: {op.operation_id} {row['status']} needs {', '.join(missing)}."]
    for name, value in row["headers"]:
        validator = contract.header_validators.get(name)
        if validator is not None and not validator.is_valid(value):
            return [f".headers: {name} is not a valid value."]
    if contract.validator is None:
        return [] if row["body"] is None else [f".body: {op.operation_id} sends no body here."]
    if row["body"] is None:
        return [f".body: {op.operation_id} {row['status']} has a body."]
    body = orjson.loads(row["body"])
    found = problems(contract.validator, body)
    return [f".body{p}" for p in found]
