"""The HTTP server under `layers-mock serve` (layers_mock_server/serving.py), over real sockets.

What a client of the mock relies on at the HTTP level, checked on the real command where it
matters: the port and the banner, pipelining, HEAD, the body limit, the `drop` fault, header
limits (431, memory bounded), slow clients (header timeout), and a clean stop on SIGTERM.
Latency that does not block others and the drop's journal entry are in
tests/realism/test_faults.py, SQLite's commit before the answer in test_sqlite_store.py, Ctrl-C
in test_cli.py: all of them on this same engine.
"""

from __future__ import annotations

import gc
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import FULL, PROJECT, make_mock

from layers_mock_server import cli, serving
from layers_mock_server.http.heap import FrozenHeap

IO_TIMEOUT_S = 10  # a bound on every socket wait: a hang fails instead of blocking the suite
CREATE = f"/v1/projects/{PROJECT}/influencers"


class Serve:
    """`layers-mock serve --port 0` in a subprocess, found through the first banner line."""

    def __init__(self, *flags: str) -> None:
        command = [sys.executable, "-m", "layers_mock_server.cli", "serve", "--port", "0", *flags]
        self.proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline()
        assert first.startswith("layers-mock listening on http://127.0.0.1:"), first
        self.port = int(first.rsplit(":", 1)[1])
        self.url = f"http://127.0.0.1:{self.port}"

    def peak_rss_kb(self) -> int:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(next(x for x in status.splitlines() if x.startswith("VmHWM:")).split()[1])

    def stop(self, signum: int = signal.SIGINT) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        out, err = self.proc.communicate(timeout=IO_TIMEOUT_S)
        return self.proc.returncode, out + err


@pytest.fixture(scope="module")
def server() -> Iterator[Serve]:
    served = Serve("--clock", "virtual")
    yield served
    served.stop()


def exchange(port: int, data: bytes) -> bytes:
    """Send raw bytes on a fresh connection and read until the server closes it."""
    with socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT_S) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def request(method: str, path: str, *headers: str, body: bytes = b"", close: bool = False) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Authorization: Bearer {FULL}"]
    lines += headers
    if body:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def responses(raw: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    """Split a byte stream of HTTP/1.1 responses framed by Content-Length."""
    found = []
    while raw:
        head, _, raw = raw.partition(b"\r\n\r\n")
        status_line, *fields = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (f.partition(":") for f in fields)}
        length = int(headers.get("content-length", "0"))
        found.append((int(status_line.split()[1]), headers, raw[:length]))
        raw = raw[length:]
    return found


def test_the_banner_names_the_bound_port_and_pipelined_requests_answer_in_order(
    server: Serve,
) -> None:
    # the port of the banner is the one the socket is bound to: a connection right after it
    # is accepted (the fixture read the banner and nothing else)
    body = b'{"gender": "female"}'
    raw = request("POST", CREATE, body=body) + request("GET", "/v1/whoami")
    raw += request("GET", "/v1/nope") + request("GET", "/v1/whoami", close=True)
    answers = responses(exchange(server.port, raw))
    assert [status for status, _, _ in answers] == [202, 200, 404, 200]  # in the order asked
    assert len({headers["x-request-id"] for _, headers, _ in answers}) == 4
    assert all(body for _, _, body in answers)


def test_head_answers_headers_without_a_body(server: Serve) -> None:
    raw = request("HEAD", "/v1/whoami") + request("GET", "/v1/whoami", close=True)
    stream = exchange(server.port, raw)
    head, _, rest = stream.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 ")
    assert rest.startswith(b"HTTP/1.1 200 ")  # the next answer follows the head: no body bytes
    assert responses(rest)[0][2].startswith(b'{"organizationId"')


def test_a_body_over_the_limit_is_a_422_in_the_envelope(server: Serve) -> None:
    big = b'{"prompt": "' + b"x" * (1024 * 1024) + b'"}'
    [(status, headers, body)] = responses(
        exchange(server.port, request("POST", CREATE, body=big, close=True))
    )
    assert status == 422
    assert b"Body is larger than 1024 KiB" in body
    assert headers["x-request-id"].encode() in body


def test_drop_closes_the_connection_before_any_byte_and_the_server_goes_on(
    server: Serve,
) -> None:
    def influencers() -> list[Any]:
        listing = httpx.get(
            f"{server.url}{CREATE}", headers={"Authorization": f"Bearer {FULL}"}, timeout=10
        )
        assert listing.status_code == 200
        return listing.json()["items"]

    before = influencers()
    assert exchange(server.port, request("POST", CREATE, "Prefer: fault=drop")) == b""
    [entry, *_] = httpx.get(f"{server.url}/_mock/requests", timeout=IO_TIMEOUT_S).json()["items"]
    assert (entry["method"], entry["status"], entry["injected"]) == ("POST", 0, "fault=drop")
    assert influencers() == before  # dropped before the operation: nothing was created


@pytest.mark.parametrize(
    "headers",
    [
        # hyper reads in chunks: a section is refused somewhere between the limit and twice it
        [f"X-Big: {'a' * (2 * serving.MAX_HEADER_BYTES + 1)}"],
        [f"X-H{n}: v" for n in range(100)],  # over hyper's 100 fields (with Host, Authorization)
    ],
    ids=["size", "count"],
)
def test_headers_over_the_limit_are_431_and_the_connection_is_closed(
    server: Serve, headers: list[str]
) -> None:
    stream = exchange(server.port, request("GET", "/v1/whoami", *headers))
    assert stream.startswith(b"HTTP/1.1 431 ")
    [(_, answer_headers, body)] = responses(stream)
    assert answer_headers["connection"] == "close" and body == b""


# What hyper (httparse) refuses in a header section: a name that is not an RFC 9110 token, a
# value with a control character other than HTAB (obs-text, 0x80-0xFF, passes).
REFUSED_HEADERS = [
    *(f"{name}: a{chr(c)}b" for name in ("X-Foo", "Idempotency-Key") for c in (0, 1, 31, 127)),
    f"Authorization: Bearer {FULL}\x01",
    "X Foo: v",
    "X(Foo: v",
]


@pytest.mark.parametrize("header", REFUSED_HEADERS, ids=ascii)
def test_a_header_the_http_server_refuses_is_a_bare_400_and_the_connection_is_closed(
    server: Serve, header: str
) -> None:
    """edges14: as the 431, granian answers before the mock sees the request (no setting of
    granian's lets these through): a bare 400, declared in openapi/layers.yaml, no journal
    entry. The testing API's in-process transport answers the same (test_layers_mock.py)."""
    before = httpx.get(f"{server.url}/_mock/requests", timeout=IO_TIMEOUT_S).json()["total"]
    stream = exchange(server.port, request("POST", CREATE, header, body=b"{}"))
    assert stream.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    [(_, answer_headers, body)] = responses(stream)
    assert answer_headers["connection"] == "close" and body == b""
    assert "x-request-id" not in answer_headers
    after = httpx.get(f"{server.url}/_mock/requests", timeout=IO_TIMEOUT_S).json()["total"]
    assert after == before


@pytest.mark.parametrize("value", ["a\tb", "a b", "caf\xe9", "\xff"], ids=ascii)
def test_a_header_value_with_a_tab_or_obs_text_reaches_the_mock(server: Serve, value: str) -> None:
    raw = request("GET", "/v1/whoami", f"X-Foo: {value}", close=True)  # UTF-8: obs-text
    [(status, _, _)] = responses(exchange(server.port, raw))
    assert status == 200


def test_headers_under_the_limit_reach_the_mock(server: Serve) -> None:
    many = [f"X-H{n}: {'v' * 600}" for n in range(90)]  # 90 fields, 55 KB
    [(status, _, _)] = responses(
        exchange(server.port, request("GET", "/v1/whoami", *many, close=True))
    )
    assert status == 200


def test_a_huge_header_costs_the_server_no_memory(server: Serve) -> None:
    peak = server.peak_rss_kb()
    chunk = b"a" * (1024 * 1024)
    with socket.create_connection(("127.0.0.1", server.port), timeout=IO_TIMEOUT_S) as sock:
        sock.sendall(b"GET /v1/whoami HTTP/1.1\r\nHost: x\r\nX-Big: ")
        # the server answers 431 and closes the connection long before 64 MB have gone
        with pytest.raises((BrokenPipeError, ConnectionResetError)):  # noqa: PT012
            for _ in range(64):
                sock.sendall(chunk)
    assert server.peak_rss_kb() - peak < 8 * 1024  # was 238 MB peak for 100 MB under uvicorn
    assert httpx.get(f"{server.url}/_mock/health", timeout=IO_TIMEOUT_S).status_code == 200


def test_a_slow_client_is_disconnected_and_blocks_nobody() -> None:
    limits = serving.Limits(header_timeout_s=0.3)
    with (
        serving.running(make_mock().client.app, limits) as (host, port),
        socket.create_connection((host, port), timeout=IO_TIMEOUT_S) as slow,
    ):
        slow.sendall(b"GET /v1/whoami HTTP/1.1\r\nHost: x\r\n")  # and never the end
        fast = httpx.get(
            f"http://{host}:{port}/v1/whoami",
            headers={"Authorization": f"Bearer {FULL}"},
            timeout=IO_TIMEOUT_S,
        )
        assert fast.status_code == 200  # answered while the slow one is still sending
        assert slow.recv(1024) == b""  # then the slow one is closed, unanswered


def test_serve_binds_before_the_banner_and_freezes_the_heap(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: dict[str, Any] = {}

    def fake_serve(app: Any, sock: socket.socket, limits: Any = None, started: Any = None) -> None:
        seen["app"], seen["frozen"], seen["started"] = app, gc.get_freeze_count(), started
        seen["banner"] = capsys.readouterr().out
        with socket.create_connection(sock.getsockname()[:2], timeout=IO_TIMEOUT_S):
            seen["port"] = sock.getsockname()[1]  # listening: the connection was accepted
        sock.close()

    monkeypatch.setattr(serving, "serve", fake_serve)
    try:
        assert cli.main(["serve", "--port", "0", "--clock", "virtual"]) == 0
    finally:
        gc.unfreeze()
    assert isinstance(seen["app"], FrozenHeap) and seen["frozen"] > 0
    assert seen["started"] is None  # in memory: no other worker to follow
    assert seen["banner"].startswith(f"layers-mock listening on http://127.0.0.1:{seen['port']}\n")


def test_sigterm_stops_the_server_cleanly() -> None:
    served = Serve()
    assert httpx.get(f"{served.url}/_mock/health", timeout=IO_TIMEOUT_S).status_code == 200
    code, output = served.stop(signal.SIGTERM)
    assert code == 0 and "layers-mock stopped" in output and "Traceback" not in output
