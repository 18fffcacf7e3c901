"""Bodies and error envelopes: the only place an error body is built."""

from __future__ import annotations

from typing import Any

import orjson

from ..core.errors import ApiError

JSON = (b"content-type", b"application/json")
Headers = list[tuple[bytes, bytes]]


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


def error_body(exc: ApiError, request_id: str) -> dict[str, Any]:
    error: dict[str, Any] = {"code": exc.code, "message": exc.message, "requestId": request_id}
    if exc.details is not None:
        error["details"] = exc.details
    return {"error": error}


def encode_headers(pairs: list[tuple[str, str]]) -> Headers:
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in pairs]


# (b"content-length", digits) for bodies under 1 KiB (a job, an accepted create, an error):
# one tuple lookup, no int formatting; ~100 KB of idle memory
_LENGTHS = tuple((b"content-length", str(n).encode()) for n in range(1024))
# No Content-Length on a 204 (RFC 9110 §8.6: MUST NOT) nor on a 304 (only the 200's length
# may be sent, and a cache could take a 0 for the size of what it holds).
_NO_LENGTH = frozenset({204, 304})


async def send_response(send: Any, status: int, headers: Headers, body: bytes | None) -> None:
    if body is not None:
        size = len(body)
        length = _LENGTHS[size] if size < 1024 else (b"content-length", str(size).encode())
        headers = [*headers, JSON, length]
    elif status not in _NO_LENGTH:
        headers = [*headers, _LENGTHS[0]]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body or b""})
