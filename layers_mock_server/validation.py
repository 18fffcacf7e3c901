"""JSON Schema errors to the contract's `fieldErrors` / `formErrors`, in one function.

The messages are written for a partner reading a 422: they name the rule, never echo the
value (a 1 MB string must not come back in an error body).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

UNKNOWN_FIELD = "Unrecognized key."
TYPE_NAMES = {
    "object": "an object",
    "array": "an array",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "null": "null",
}


# An enum longer than this is summarised in a message (a count and a few examples).
MAX_LISTED = 12


def _spread(count: int, shown: int = 3) -> list[int]:
    """Indexes of a few options spread across the list (not three neighbours)."""
    return [i * count // shown for i in range(shown)]


def _message(kind: Any) -> str:
    name = type(kind).__name__
    facts = kind.as_dict()
    if name == "Enum":
        options = ["null" if o is None else str(o) for o in facts["options"]]
        if len(options) > MAX_LISTED:  # the time zones: ~600 names, 10 KB in every 422
            such = ", ".join(options[i] for i in _spread(len(options)))
            return f"Must be one of the {len(options)} values the contract lists, such as {such}."
        return "Must be one of: " + ", ".join(options) + "."
    if name == "Type":
        return "Must be " + " or ".join(TYPE_NAMES.get(t, t) for t in facts["types"]) + "."
    if name == "MaxLength":
        return f"Must be at most {facts['limit']} characters."
    if name == "MinLength":
        return f"Must be at least {facts['limit']} characters."
    if name == "Maximum":
        return f"Must be at most {facts['limit']}."
    if name == "Minimum":
        return f"Must be at least {facts['limit']}."
    if name == "Pattern":  # the rule itself: "wrong format" left a partner to guess it
        return f"Must match {facts['pattern']}."
    if name == "Constant":
        return f"Must be {facts['expected_value']}."
    if name == "MaxProperties":
        return f"Must have at most {facts['limit']} fields."
    return "Is not valid."


def collect_errors(
    validator: Any,
    instance: Any,
    unknown_messages: Mapping[str, str] | None = None,
    *,
    body: bool = True,
) -> tuple[dict[str, list[str]], list[str]]:
    """(fieldErrors, formErrors) for `instance`; both empty when it is valid. `body=False`
    for a single value (a query parameter, a header), which is not "a JSON object"."""
    fields: dict[str, list[str]] = {}
    form: list[str] = []

    def add(name: str, message: str) -> None:
        messages = fields.setdefault(name, [])
        if message not in messages:
            messages.append(message)

    for error in validator.iter_errors(instance):
        kind = error.kind
        name = type(kind).__name__
        path = error.instance_path
        if path:
            # The key is the top-level field (as zod's flatten() keys fieldErrors); the message
            # names the nested one, at any depth: "overrides.foo: Unrecognized key."
            add(str(path[0]), _nested_message(path, kind, name))
        elif name == "AdditionalProperties":
            for unexpected in kind.unexpected:
                add(unexpected, (unknown_messages or {}).get(unexpected, UNKNOWN_FIELD))
        elif name == "Required":
            add(kind.property, "Required.")
        elif name == "Type":
            form.append("Body must be a JSON object." if body else _message(kind))
        elif name == "MinProperties":
            form.append("Send at least one field.")
        else:
            form.append(_message(kind))
    return fields, form


def dotted(path: Sequence[str | int]) -> str:
    """overrides.foo, items[0].name: the path a reader would type."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _nested_message(path: Sequence[str | int], kind: Any, name: str) -> str:
    if name == "AdditionalProperties":
        unexpected = ", ".join(dotted([*path, str(u)]) for u in kind.unexpected)
        return f"{unexpected}: {UNKNOWN_FIELD}"
    if name == "Required":
        return f"{dotted([*path, kind.property])}: Required."
    if len(path) == 1:
        return _message(kind)  # the key already names the field
    return f"{dotted(path)}: {_message(kind)}"


def problems(validator: Any, instance: Any, limit: int = 5) -> list[str]:
    """`<path>: <message>` for the first errors of `instance`, for documents deeper than a
    request body (a state import), where a field name alone would not say where."""
    found: list[str] = []
    for error in validator.iter_errors(instance):
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.instance_path)
        name = type(error.kind).__name__
        if name == "AdditionalProperties":
            message = "Unrecognized keys: " + ", ".join(map(str, error.kind.unexpected)) + "."
        elif name == "Required":
            message = f"Missing {error.kind.property}."
        else:
            message = _message(error.kind)
        found.append(f"{path}: {message}" if path else message)
        if len(found) >= limit:
            break
    return found
