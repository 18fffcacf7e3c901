"""Strict mode: the mock checks its own answer against the contract before sending it."""

from __future__ import annotations

from typing import Any

import orjson

from ..spec import JSON, Operation
from .render import Headers


class ContractViolation(AssertionError):
    """The mock was about to send something `openapi/` does not describe. Always a mock bug."""


def _header_value(validator: Any, text: str) -> bool:
    if validator.is_valid(text):
        return True
    try:
        return bool(validator.is_valid(int(text)))
    except ValueError:
        return False


def check_response(
    op: Operation, status: int, headers: Headers, body: bytes | None, media_type: str = JSON
) -> None:
    where = f"{op.operation_id} answered {status}"
    contract = op.response_for(status)
    if contract is None:
        raise ContractViolation(f"{where}: status {status} is not declared in the spec")
    sent = {k.decode("latin-1"): v.decode("latin-1") for k, v in headers}
    for name in contract.required_headers:
        if name not in sent:
            raise ContractViolation(f"{where}: required header {name} is missing")
    for name, validator in contract.header_validators.items():
        if name in sent and not _header_value(validator, sent[name]):
            raise ContractViolation(f"{where}: header {name}={sent[name]!r} violates its schema")
    validator = contract.validator_for(media_type)
    if validator is None:
        if body and contract.media_types:
            declared = ", ".join(contract.media_types)
            raise ContractViolation(f"{where}: sent {media_type}, the spec declares {declared}")
        if body:
            raise ContractViolation(f"{where}: the spec declares no body but one was sent")
        return
    if body is None:
        raise ContractViolation(f"{where}: the spec declares a body but none was sent")
    instance = orjson.loads(body) if media_type == JSON else body.decode("utf-8")
    errors = [f"{list(e.instance_path)}: {e.message}" for e in validator.iter_errors(instance)]
    if errors:
        raise ContractViolation(f"{where}: body violates the schema: " + "; ".join(errors[:5]))
