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
    sent: float = 0.0  # seconds since the run started when the request left (client clock)
    at: float = 0.0  # ... and when its answer was in: the server answered in between

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
        """A curl that reproduces the request; keys appear as $ENV references, never literally.

        Every argument is single-quoted (shlex.quote) but the "${ENV}" references themselves:
        a header value the server (or a fuzzer) chose, such as `$(touch x)`, must stay text
        when the line is pasted into a shell."""
        parts = ["curl", "-i", "-X", _word(self.method, secrets), _word(self.url, secrets)]
        skip = {"host", "content-length", "accept-encoding", "connection", "user-agent", "accept"}
        for key, value in self.request_headers.items():
            if key.lower() in skip:
                continue
            parts += ["-H", _word(f"{key}: {value}", secrets)]
        if self.request_body:
            body = self.request_body.decode("utf-8", "replace")
            parts += ["--data-binary", _word(body, secrets)]
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


def _word(text: str, secrets: dict[str, str]) -> str:
    """One shell word: literal text single-quoted, each secret as a double-quoted "${ENV}"."""
    pieces: list[str | tuple[str]] = [text]  # a str is literal, a 1-tuple names a variable
    for secret, env in secrets.items():
        if not secret:
            continue
        split: list[str | tuple[str]] = []
        for piece in pieces:
            if isinstance(piece, tuple):
                split.append(piece)
                continue
            for n, literal in enumerate(piece.split(secret)):
                if n:
                    split.append((env,))
                split.append(literal)
        pieces = split
    word = "".join(
        f'"${{{p[0]}}}"' if isinstance(p, tuple) else shlex.quote(p) for p in pieces if p
    )
    return word or "''"
