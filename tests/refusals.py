"""A `serve` that cannot start, for the tests that check it leaves its `--state` as it found it
(tests/test_refused_start.py on SQLite, tests/redis/test_serve_settings.py on Redis): the two
causes found before anything is written, and what such a refusal looks like."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from layers_mock_server.cli import main
from layers_mock_server.http import app as http_app
from layers_mock_server.spec import SpecError


@dataclass(frozen=True)
class Cause:
    """Why the serve fails: a port another process listens on, or (port 0, free) a contract
    that fails its start-up check, as a broken install's would."""

    port: str
    contract: bool
    monkeypatch: pytest.MonkeyPatch

    @property
    def said(self) -> str:
        return "on purpose" if self.contract else f"cannot listen on 127.0.0.1:{self.port}"


@pytest.fixture(params=["port in use", "contract"])
def failing(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cause]:
    if request.param == "contract":
        yield Cause("0", True, monkeypatch)
        return
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield Cause(str(sock.getsockname()[1]), False, monkeypatch)


def refused(argv: list[str], cause: Cause, capsys: pytest.CaptureFixture[str]) -> None:
    """`serve ARGV` on the cause's port, the contract broken from here on if that is the
    cause: exit code 2, one sentence on stderr naming it, no traceback, no banner."""
    if cause.contract:

        def broken() -> None:
            raise SpecError("openapi/layers.yaml: broken on purpose")

        cause.monkeypatch.setattr(http_app, "partner_spec", broken)
    assert main(["serve", "--port", cause.port, *argv]) == 2
    out, err = capsys.readouterr()
    assert out == "", out
    assert err.startswith("layers-mock: ") and cause.said in err, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
