"""`layers_mock.connect(...)` against hostile arguments and servers: every failure is one
LayersMockError sentence, never a traceback, and never a password of the URL echoed back."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator

import httpx
import pytest
from support import FULL, HTTP_TIMEOUT_S

from layers_mock import LayersMock, LayersMockError, connect


@pytest.mark.parametrize(
    "credentials",
    [
        {"key": "lp_test_acmefull_Zx81Qm4TnRé"},
        {"key": "ключ"},
        {"key": "lp_test_x\r\nX-Injected: 1"},
        {"key": FULL + " "},
        {"key": "lp_test_\x00"},
        {"admin_token": "sécret"},
        {"admin_token": "secret\n"},
        {"admin_token": "two words"},
    ],
)
def test_a_key_or_token_no_header_can_carry_is_refused_before_any_request(
    credentials: dict[str, str],
) -> None:
    """Not a UnicodeEncodeError from httpx, nor "cannot reach" a server never asked."""
    name = next(iter(credentials))
    with pytest.raises(LayersMockError, match=f"^{name} must be printable ASCII"):
        connect("http://127.0.0.1:9", **credentials)  # type: ignore[arg-type]


@pytest.mark.parametrize("timeout", [float("inf"), float("nan"), -1.0])
def test_a_timeout_that_is_not_a_finite_positive_number_is_refused(timeout: float) -> None:
    with pytest.raises(LayersMockError, match="timeout must be a positive number"):
        connect("http://127.0.0.1:9", key=FULL, timeout=timeout)


def test_a_password_in_the_url_is_never_repeated_in_a_message() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, never listening: the connection is refused
        port = closed.getsockname()[1]
        with pytest.raises(LayersMockError, match="cannot reach") as refused:
            connect(f"http://ops:hunter2@127.0.0.1:{port}", key=FULL)
    assert "hunter2" not in str(refused.value)
    assert f"127.0.0.1:{port}" in str(refused.value)
    with pytest.raises(LayersMockError, match="takes no query") as bad:
        connect("http://ops:hunter2@127.0.0.1:9/?x=1", key=FULL)
    assert "hunter2" not in str(bad.value)


class LookAlike(http.server.BaseHTTPRequestHandler):
    """A JSON API whose fixtures look like layers-mock's at first sight, not on the inside."""

    answer = b'{"organizations": [{"organizationId": "org_1"}]}'

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(self.answer)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def look_alike() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), LookAlike)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("credentials", [{"key": FULL}, {"admin_token": "t"}])
def test_fixtures_that_only_look_like_layers_mocks_are_one_clear_error(
    look_alike: str, credentials: dict[str, str]
) -> None:
    with pytest.raises(LayersMockError, match="is not a layers-mock"):
        connect(look_alike, **credentials)


@pytest.mark.parametrize("seconds", [1e300, 1.7e308])
def test_an_advance_past_any_clock_is_the_mocks_refusal_not_an_overflow(
    seconds: float, layers_mock_server: LayersMock
) -> None:
    with pytest.raises(LayersMockError, match="seconds: Must be at most"):
        layers_mock_server.advance(seconds)
    with connect(layers_mock_server.base_url) as remote:
        with pytest.raises(LayersMockError, match="seconds: Must be at most"):
            remote.advance(seconds)
        with pytest.raises(LayersMockError, match="seconds: Must be at most"):
            remote.sleep(seconds)


@pytest.mark.parametrize("rule_id", ["x/..", ".", "..", "rul_1/../..", "a?b", "a#b"])
def test_deleting_a_hostile_rule_id_deletes_nothing_else(
    rule_id: str, layers_mock_server: LayersMock
) -> None:
    """httpx resolves dot segments: `rules.delete("x/..")` was DELETE /_mock/rules, which
    deleted every rule and answered as if that one rule was gone."""
    with connect(layers_mock_server.base_url) as remote:
        kept = remote.rules.add(operation="createInfluencer", fault=500)
        with pytest.raises(LayersMockError, match=r"not found|No route"):
            remote.rules.delete(rule_id)
        assert remote.rules.list() == [kept]
        with pytest.raises(LayersMockError, match=r"not found|No route"):
            layers_mock_server.rules.delete(rule_id)
        assert layers_mock_server.rules.list() == [kept]


class OlderMock(http.server.BaseHTTPRequestHandler):
    """A layers-mock of a version before resets answered a journal mark."""

    fixtures = b""

    def do_GET(self) -> None:
        self._json(self.fixtures)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", "0")))
        self._json(b'{"status": "reset", "now": "2026-01-01T00:00:00.000Z", "seed": 7}')

    def _json(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_a_tenants_reset_on_an_older_mock_says_so_rather_than_miscount(
    layers_mock_server: LayersMock,
) -> None:
    """Counting by `sequence` was wrong on a shared sandbox; without a mark to count by,
    `reset()` says what is missing instead of a KeyError."""
    with httpx.Client(base_url=layers_mock_server.base_url, timeout=HTTP_TIMEOUT_S) as api:
        OlderMock.fixtures = api.get("/_mock/fixtures").content
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), OlderMock)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        older = connect(f"http://127.0.0.1:{server.server_address[1]}", key=FULL)
        with older, pytest.raises(LayersMockError, match="answered no journal mark: it is an"):
            older.reset()
    finally:
        server.shutdown()
        server.server_close()
