"""`serve --log-requests`: one line per request, every request, control plane included.

    2026-01-01T00:00:20.000Z  202  POST /v1/projects/prj_…/influencers  0.4 ms  req_01…  fault=503

The line starts with mock time (the clock jobs move by), then the status, the request, how long
the mock took, the request id the client saw in `X-Request-Id`, and what was injected, if
anything. Secrets are masked as the journal masks them (an API key shows `lp_test_<id>_***`,
the dashboard's `?token=` shows `token=***`). An ASGI wrapper around the whole app, so that 404s
for unknown paths and control-plane calls are logged too; it costs nothing when the flag is
off, because it is not there.
"""

from __future__ import annotations

import re
import time
from typing import Any, TextIO
from urllib.parse import quote

from ..core.clock import format_ms
from ..core.journal import redact
from ..deps import Deps
from ..said import say

# The dashboard's `?token=<admin token>`: the value never reaches the log.
TOKEN_PARAM = re.compile(r"(^|&)(token=)[^&]*", re.IGNORECASE)


def printable(text: str) -> str:
    """`text` with every character that is not printable, or is a space, percent-encoded (its
    UTF-8 bytes): the path is the client's, decoded, and a terminal obeys what it is sent.
    Printed raw, `%1b[2J` cleared the operator's screen and `%0d%0a` started a forged line."""
    if text.isprintable() and " " not in text:
        return text  # the usual path, at no cost
    return "".join(c if c.isprintable() and c != " " else quote(c, safe="") for c in text)


class RequestLog:
    __slots__ = ("app", "deps", "out")

    def __init__(self, app: Any, deps: Deps, out: TextIO) -> None:
        self.app = app
        self.deps = deps
        self.out = out

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0
        request_id = ""

        async def watched(message: dict[str, Any]) -> None:
            nonlocal status, request_id
            if message["type"] == "http.response.start":
                status = message["status"]
                for name, value in message.get("headers", ()):
                    if name.lower() == b"x-request-id":
                        request_id = value.decode("latin-1")
            await send(message)

        try:
            await self.app(scope, receive, watched)
        finally:
            self._line(scope, status, request_id, time.perf_counter() - started)

    def _line(self, scope: dict[str, Any], status: int, request_id: str, seconds: float) -> None:
        target = scope["path"]
        if query := scope.get("query_string", b""):
            target += "?" + TOKEN_PARAM.sub(r"\1\2***", query.decode("latin-1"))
        target = redact(target)  # an API key in a path or a query shows its id, never its secret
        target = printable(target)
        last = self.deps.journal.last()
        injected = last.injected if last is not None and last.requestId == request_id else None
        sent = str(status) if status else "---"  # a dropped connection sends nothing
        fields = [
            format_ms(self.deps.sim.now()),
            sent,
            f"{scope['method']} {target}",
            f"{seconds * 1000:.1f} ms",
            request_id or "-",
        ]
        if injected:
            fields.append(injected)
        say("  ".join(fields), self.out)  # one write: the workers share stdout
