"""What the run sent and got back: one exchange per request, and the clock moves between them.

Every report and replay is made from these: the evidence of a FAIL, its curl, the failure
file. Keys never appear in them: `redacted` swaps each secret for its ${ENV} name.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class Exchange:
    method: str
    url: str
    path: str
    request_headers: dict[str, str]
    request_body: bytes
    status: int
    response_headers: dict[str, str]
    response_body: bytes
    seq: int = 0
    clause: str = ""
    at: float = 0.0  # seconds since the run started (client clock)

    def json(self) -> Any:
        try:
            return json.loads(self.response_body)
        except ValueError:
            return None

    def request_json(self) -> Any:
        try:
            return json.loads(self.request_body)
        except ValueError:
            return None

    def header(self, name: str) -> str | None:
        for key, value in self.response_headers.items():
            if key.lower() == name.lower():
                return value
        return None

    def request_header(self, name: str) -> str | None:
        for key, value in self.request_headers.items():
            if key.lower() == name.lower():
                return value
        return None

    @property
    def bare_path(self) -> str:
        return self.path.split("?", 1)[0]

    @property
    def partner(self) -> bool:
        return self.path.startswith("/v1/")

    def redacted(self, secrets: dict[str, str]) -> dict[str, str]:
        out = {}
        for key, raw in self.request_headers.items():
            value = raw
            for secret, env in secrets.items():
                value = value.replace(secret, f"${{{env}}}")
            out[key] = value
        return out

    def curl(self, secrets: dict[str, str]) -> str:
        """A curl that reproduces the request; keys appear as $ENV references, never literally."""
        parts = ["curl", "-i", "-X", self.method, shlex.quote(self.url)]
        skip = {"host", "content-length", "accept-encoding", "connection", "user-agent", "accept"}
        for key, value in self.redacted(secrets).items():
            if key.lower() in skip:
                continue
            quoted = f"{key}: {value}".replace('"', '\\"')
            parts += ["-H", f'"{quoted}"']
        if self.request_body:
            parts += ["--data-binary", shlex.quote(self.request_body.decode("utf-8", "replace"))]
        return " ".join(parts)

    def as_dict(self, secrets: dict[str, str]) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "request": {
                "method": self.method,
                "url": self.url,
                "path": self.path,
                "headers": self.redacted(secrets),
                "body": self.request_body.decode("utf-8", "replace"),
            },
            "response": {
                "status": self.status,
                "headers": self.response_headers,
                "body": self.response_body.decode("utf-8", "replace")[:4000],
            },
            "curl": self.curl(secrets),
        }


@dataclass(slots=True)
class ClockMove:
    """A move of the mock's clock, recorded in the sequence so a replay makes it too."""

    seconds: float
    seq: int = 0
    clause: str = ""


Step = Exchange | ClockMove
