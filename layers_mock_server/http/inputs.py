"""Reading what a client sent: headers, a bounded body, JSON, and the declared query and headers.

Every way a body can be wrong (too big, not UTF-8, truncated, too deep, not an object, the wrong
content type) ends as a 422 in the contract's envelope: never a 500, never a traceback.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

import orjson

from ..core.errors import invalid_body, validation
from ..core.numbers import INFINITE, beyond_double
from ..spec import Operation, Param
from ..validation import collect_errors, dotted

MAX_BODY_BYTES = 1024 * 1024
# ASCII digits only, to the end: `\d` takes any Unicode digit (and int() a fullwidth one as
# its ASCII twin), `$` a trailing newline.
INTEGER = re.compile(r"-?[0-9]{1,18}")
DIGITS = re.compile(r"-?[0-9]+")
# An integer longer than INTEGER takes (parsing one costs time, and past 4,300 digits raises)
# is past the bound of any parameter that has one: this stand-in lets the validator say which.
BEYOND = 10**18


class Body:
    __slots__ = ("content_type", "raw", "too_large")

    def __init__(self, raw: bytes, too_large: bool, content_type: str | None) -> None:
        self.raw = raw
        self.too_large = too_large
        self.content_type = content_type


# header name bytes -> str: clients send the same few names on every request, and a dict hit
# is cheaper than a decode (a third of building the map). Bounded: unknown names past it are
# decoded every time.
_NAMES: dict[bytes, str] = {}
_NAMES_MAX = 256


# Header fields whose repeats are one list (RFC 9110 section 5.3): kept whole, not the last.
# X-Layers-Organization and Authorization are no lists, but joined as HTTP joins a field's
# lines they name no organization and no key (as a malformed value does): the last line was
# acted in, and authenticated (shared.joined_authorization joins them alike).
LISTS = frozenset({"prefer", "if-none-match", "x-layers-organization", "authorization"})
# Fields that hold one value, where which line counts is no contract: sent twice, the request
# is refused naming the field (as `?limit=2&limit=3` is), not guessed at. Their names go under
# REPEATED, which no header can be called (a field name has no space).
SINGLETONS = frozenset({"idempotency-key"})
REPEATED = " repeated"


def header_map(scope: dict[str, Any]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for raw, value in scope["headers"]:
        name = _NAMES.get(raw)
        if name is None:
            name = raw.decode("latin-1")
            if len(_NAMES) < _NAMES_MAX:
                _NAMES[raw] = name
        if name in headers:  # sent twice (rare: the common path is the one below)
            if name in LISTS:  # one comma-separated list
                headers[name] += ", " + value.decode("latin-1")
                continue
            if name in SINGLETONS:
                headers[REPEATED] = f"{headers[REPEATED]},{name}" if REPEATED in headers else name
        headers[name] = value.decode("latin-1")
    return headers


async def read_body(receive: Any, content_type: str | None, length: str | None = None) -> Body:
    """Reads at most MAX_BODY_BYTES; past that it stops and remembers the body was too large.

    With a Content-Length it stops as soon as that many bytes are in: granian hands over the
    body, then an empty last message, and waiting for that one is a trip through the event loop
    (6 % of a create's instructions, server included)."""
    chunks: list[bytes] = []
    size = 0
    expected = int(length) if length is not None and length.isascii() and length.isdigit() else -1
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return Body(b"", True, content_type)
        chunks.append(chunk)
        if size == expected or not message.get("more_body", False):
            break
    return Body(b"".join(chunks), False, content_type)


def media_problem(content_type: str | None) -> str | None:
    """Why a body sent with this Content-Type is not read as JSON; None when it is.

    JSON is UTF-8 (RFC 8259 section 8.1): a `charset` parameter other than utf-8 (any case,
    quoted or not) names bytes the body is not, so it is refused as a wrong media type is,
    rather than read as if the client had said nothing."""
    if content_type is None:
        return "Content-Type must be application/json."
    media, *parameters = content_type.split(";")
    media = media.strip().lower()
    if media != "application/json" and not (
        media.startswith("application/") and media.endswith("+json")
    ):
        return "Content-Type must be application/json."
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and _unquoted(value.strip()).lower() != "utf-8":
            return "Content-Type charset must be utf-8 (JSON is UTF-8), or left out."
    return None


def _unquoted(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def parse_json(body: Body) -> tuple[bool, Any]:
    """(present, value). No body at all is `present=False`; the operation decides if that is ok."""
    if body.too_large:
        raise invalid_body([f"Body is larger than {MAX_BODY_BYTES // 1024} KiB."])
    if not body.raw.strip():
        return False, None
    problem = media_problem(body.content_type)
    if problem is not None:
        raise invalid_body([problem])
    try:
        return True, orjson.loads(body.raw)
    except orjson.JSONDecodeError as exc:
        beyond = out_of_range(body.raw) if str(exc).startswith(INFINITE) else None
        if beyond is not None:
            raise beyond from None
        raise invalid_body(["Body is not valid JSON (UTF-8, at most 1024 levels deep)."]) from None


def out_of_range(raw: bytes) -> Exception | None:
    """The 422 for a body that is valid JSON holding a number no double holds (1e400), which
    orjson refuses as if it were broken: the first such number, named by its field (None:
    not that, the caller's 422 stands)."""
    found = beyond_double(raw)
    if found is None:
        return None
    where, text = found
    message = f"Number out of range: {text} (a number here must lie within ±1.8e308)."
    if not where:
        return invalid_body([message])
    if len(where) > 1:
        message = f"{dotted(where)}: {message}"
    return invalid_body([], {str(where[0]): [message]})


def validate_body(op: Operation, body: Body) -> dict[str, Any]:
    present, value = parse_json(body)
    if not present:
        if op.body_required:
            raise invalid_body(["A JSON body is required."])
        return {}
    if op.body_validator is None:
        raise invalid_body(["This operation takes no body."])
    if op.body_validator.is_valid(value):
        return value
    fields, form = collect_errors(op.body_validator, value, op.unknown_field_messages)
    if fields or form:
        raise invalid_body(form, fields)
    return value


def _coerce(param: Param, text: str) -> Any:
    if param.schema.get("type") == "integer":
        if INTEGER.fullmatch(text):
            return int(text)
        negative = text.startswith("-")
        if DIGITS.fullmatch(text) and ("minimum" if negative else "maximum") in param.schema:
            return -BEYOND if negative else BEYOND
    return text


def _check(params: list[Param], values: dict[str, str], message: str) -> dict[str, Any]:
    parsed: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for param in params:
        if param.name not in values:
            if param.required:
                errors[param.name] = ["Required."]
            elif param.default is not None:
                parsed[param.name] = param.default
            continue
        value = _coerce(param, values[param.name])
        fields, form = collect_errors(param.validator, value, body=False)
        if fields or form:
            errors[param.name] = [m for ms in fields.values() for m in ms] + form
        else:
            parsed[param.name] = value
    if errors:
        raise validation(message, field_errors=errors)
    return parsed


def query_params(op: Operation) -> list[Param]:
    return [p for p in op.params if p.location == "query"]


def header_params(op: Operation) -> list[Param]:
    return [p for p in op.params if p.location == "header" and p.name.lower() != "prefer"]


def validate_query(op: Operation, query_string: bytes) -> dict[str, Any]:
    return check_query(query_params(op), query_string)


def check_query(params: list[Param], query_string: bytes) -> dict[str, Any]:
    """`validate_query` with the operation's query parameters already picked out."""
    if not params:
        return {}
    values: dict[str, str] = {}
    try:
        pairs = parse_qsl(query_string.decode("utf-8"), keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        raise validation("Invalid query.", ["Query string is not valid UTF-8."]) from None
    repeated: dict[str, list[str]] = {}
    declared = {p.name for p in params}
    for name, value in pairs:
        if name in values and name in declared:
            # which would win is no contract: `?limit=2&limit=3` is refused, not guessed at
            repeated[name] = [f"Given more than once; send {name} once."]
        values.setdefault(name, value)
    if repeated:
        raise validation("Invalid query.", field_errors=repeated)
    return _check(params, values, "Invalid query.")


def validate_headers(op: Operation, headers: dict[str, str]) -> dict[str, Any]:
    return check_headers(header_params(op), headers)


def check_headers(params: list[Param], headers: dict[str, str]) -> dict[str, Any]:
    """`validate_headers` with the operation's declared headers already picked out."""
    if not params:
        return {}
    repeated = headers.get(REPEATED)
    if repeated is not None:
        twice = repeated.split(",")
        errors = {
            p.name: [f"Given more than once; send {p.name} once."]
            for p in params
            if p.name.lower() in twice
        }
        if errors:
            raise validation("Invalid header.", field_errors=errors)
    values = {p.name: headers[p.name.lower()] for p in params if p.name.lower() in headers}
    return _check(params, values, "Invalid header.")
