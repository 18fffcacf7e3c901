"""curl command lines a person can paste into a shell, built from what the mock saw.

Everything that came from a client (path, query, body, Host) is single-quoted with shlex, so a
hostile value stays one argument. The key is the one exception: `${LAYERS_API_KEY}` is written
inside double quotes so the shell expands it, and a real key never appears in a journal curl.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence

ENV_KEY = "${LAYERS_API_KEY}"
# What a Host header may look like before it is trusted to build a URL: name or address, port.
HOST = re.compile(r"^[A-Za-z0-9.\-]{1,253}(:\d{1,5})?$|^\[[0-9A-Fa-f:.]{2,45}\](:\d{1,5})?$")


def base_url(host_header: str | None, server: tuple[str, int] | None) -> str:
    """The address the client used to reach us, or the socket's own when Host is unusable."""
    if host_header and HOST.match(host_header):
        return "http://" + host_header
    if server is not None:
        host, port = server
        return f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    return "http://127.0.0.1:4010"


def curl_command(
    method: str,
    url: str,
    key: str | None = ENV_KEY,
    body: str | None = None,
    headers: Sequence[tuple[str, str]] = (),
) -> str:
    """One line: `curl -i -X METHOD 'url' -H "Authorization: Bearer ${LAYERS_API_KEY}" ...`.

    `key` is ENV_KEY (the default: the shell fills it in), a literal key (quoted like any other
    value, for the fixtures panel's ready-to-paste lines), or None for a request without one.
    `headers` are sent as given (an Authorization among them is dropped: `key` decides it); a
    body without a Content-Type among them is sent as JSON.
    """
    parts = ["curl", "-i", "-X", shlex.quote(method), shlex.quote(url)]
    if key == ENV_KEY:
        parts += ["-H", f'"Authorization: Bearer {ENV_KEY}"']
    elif key is not None:
        parts += ["-H", shlex.quote(f"Authorization: Bearer {key}")]
    names = set()
    for name, value in headers:
        if name.lower() != "authorization":
            names.add(name.lower())
            parts += ["-H", shlex.quote(f"{name}: {value}")]
    if body is not None:
        if "content-type" not in names:
            parts += ["-H", shlex.quote("Content-Type: application/json")]
        parts += ["--data-binary", shlex.quote(body)]
    return " ".join(parts)
