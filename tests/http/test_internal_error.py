"""A bug in a handler: the client gets the envelope, the journal keeps the 500."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient
from support import FULL, auth, make_mock

from mockserver.http import handlers
from mockserver.http.app import build_app


def test_an_unexpected_error_is_answered_and_journaled(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(call: Any) -> Any:
        raise RuntimeError("planted bug")

    monkeypatch.setitem(handlers.HANDLERS, "whoami", broken)
    mock = make_mock()
    client = TestClient(build_app(mock.deps), raise_server_exceptions=False)
    answer = client.get("/v1/whoami", headers=auth(), params={"x": "1"})
    assert answer.status_code == 500
    error = answer.json()["error"]
    assert error["code"] == "INTERNAL" and "planted" not in answer.text
    assert "Traceback" not in answer.text
    assert error["requestId"] == answer.headers["x-request-id"]
    (entry,) = client.get("/_mock/requests").json()["items"]
    assert (entry["status"], entry["path"], entry["requestId"]) == (
        500,
        "/v1/whoami",
        error["requestId"],
    )
    assert entry["operationId"] == "whoami" and entry["apiKeyId"] is not None
    assert FULL not in str(entry)
    # the mock still answers afterwards
    assert client.get("/v1/projects", headers=auth()).status_code == 200
