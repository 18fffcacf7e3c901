"""`serve --log-requests` masks secrets as the journal does; tracebacks go to stderr."""

from __future__ import annotations

import io
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient
from support import FULL, auth, make_mock, running_server

from layers_mock_server.http import handlers
from layers_mock_server.http.app import build_app
from layers_mock_server.http.request_log import RequestLog


def test_the_request_log_never_prints_a_token_or_a_key_secret() -> None:
    mock = make_mock()
    out = io.StringIO()
    client = TestClient(RequestLog(build_app(mock.deps), mock.deps, out))
    client.get("/_mock/ui?token=s3cret-admin&status=running")
    client.get("/_mock/requests?TOKEN=s3cret-admin")
    client.get(f"/v1/whoami?key={FULL}", headers=auth())
    client.get(f"/v1/jobs/{FULL}", headers=auth())
    client.get("/v1/whoami?x=lp_test_my_id_s3cretpart", headers=auth())
    log = out.getvalue()
    assert "s3cret" not in log and "Zx81Qm4TnR7vKp2W" not in log, log
    assert "GET /_mock/ui?token=***&status=running  " in log
    assert "GET /_mock/requests?TOKEN=***  " in log
    assert "GET /v1/whoami?key=lp_test_acmefull_***  " in log
    assert "GET /v1/jobs/lp_test_acmefull_***  " in log


def test_a_traceback_goes_to_stderr_not_among_the_log_lines(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    def broken(call: Any) -> Any:
        raise RuntimeError("planted bug")

    monkeypatch.setitem(handlers.HANDLERS, "whoami", broken)
    with running_server(build_app(make_mock().deps)) as url:
        answer = httpx.get(f"{url}/v1/whoami", headers=auth(), timeout=10)
    assert answer.status_code == 500 and "planted" not in answer.text
    out, err = capfd.readouterr()
    assert "planted bug" in err and "Traceback" in err
    assert "planted bug" not in out


def test_a_path_s_control_characters_never_reach_the_terminal_raw() -> None:
    """The decoded path was printed as it came: `%1b[2J` cleared the operator's terminal, and
    `%0d%0a` began a line of the client's own that read like one of the mock's. Whatever is
    not printable (or a space) is printed percent-encoded, one request one line."""
    mock = make_mock()
    out = io.StringIO()
    client = TestClient(RequestLog(build_app(mock.deps), mock.deps, out))
    forged = "%0d%0a2026-01-01T00:00:00.000Z%20%20200%20%20GET"  # a line of the client's
    client.get(f"/v1/%1b%5b31mRED%07{forged}", headers=auth())
    client.get("/_mock/%c2%9b2J%e2%80%aeevil%7f")  # C1 CSI, a bidi override, DEL
    log = out.getvalue()
    assert len(log.splitlines()) == 2, log
    assert all(c.isprintable() for line in log.splitlines() for c in line), repr(log)
    assert "GET /v1/%1B[31mRED%07%0D%0A2026-01-01T00:00:00.000Z%20%20200%20%20GET  " in log
    assert "GET /_mock/%C2%9B2J%E2%80%AEevil%7F  " in log
