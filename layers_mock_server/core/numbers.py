"""A JSON number no double holds (1e400): valid JSON that orjson refuses as if it were broken.

A client that sent one gets told the number is out of range, and where, rather than that its
JSON is not JSON: the body is read again by the standard library, on that error path only.
"""

from __future__ import annotations

import json
import math
from typing import Any

INFINITE = "number is infinity"  # how orjson's JSONDecodeError starts for such a number

Path = list[str | int]


class _Beyond:
    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def beyond_double(raw: bytes | bytearray) -> tuple[Path, str] | None:
    """(the path to, and the text of) the first number in `raw` past a double's range; None
    when there is none, or `raw` is not JSON after all (orjson stops at its first error; NaN,
    which the standard library takes, is not JSON), or too deep for the standard library."""

    def number(text: str) -> Any:
        return _Beyond(text) if math.isinf(float(text)) else 0

    def constant(text: str) -> Any:
        raise ValueError(f"{text} is not JSON")

    try:
        document = json.loads(raw, parse_float=number, parse_int=number, parse_constant=constant)
    except (ValueError, RecursionError):
        return None
    stack: list[tuple[Path, Any]] = [([], document)]
    while stack:  # depth-first, in the document's order
        where, value = stack.pop()
        if isinstance(value, _Beyond):
            return where, value.text
        items: list[tuple[str | int, Any]] = []
        if isinstance(value, dict):
            items = list(value.items())
        elif isinstance(value, list):
            items = list(enumerate(value))
        stack += [([*where, key], item) for key, item in reversed(items)]
    return None
