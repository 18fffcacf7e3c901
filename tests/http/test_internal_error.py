"""A bug in a handler: the client gets the envelope, the journal keeps the 500."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.testclient import TestClient
from support import FULL, auth, make_mock

from layers_mock_server.http import handlers, pipeline
from layers_mock_server.http.app import build_app


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


def test_an_error_before_the_answer_starts_is_answered_by_the_outer_guard(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past the pipeline's own guard (here: its last check before sending), the app's
    outermost guard still answers in the envelope, once."""

    def broken(*args: Any) -> None:
        raise RuntimeError("planted bug")

    monkeypatch.setattr(pipeline, "check_response", broken)
    mock = make_mock()
    assert mock.deps.strict  # check_response runs on every answer
    client = TestClient(build_app(mock.deps), raise_server_exceptions=False)
    answer = client.get("/v1/whoami", headers=auth())
    assert answer.status_code == 500
    assert answer.json()["error"]["code"] == "INTERNAL" and "planted" not in answer.text


def test_an_error_after_the_answer_started_leaves_that_answer_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The outer guard must not start a second answer: the client gets the first one only."""

    def broken(*args: Any) -> None:
        raise RuntimeError("planted bug")

    monkeypatch.setattr(pipeline.OperationPipeline, "_journal", broken)
    app = build_app(make_mock().deps)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/v1/whoami",
        "raw_path": b"/v1/whoami",
        "root_path": "",
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in auth().items()],
    }
    with pytest.raises(RuntimeError, match="planted"):  # on to the server's log
        asyncio.run(app(scope, receive, send))
    starts = [m for m in sent if m["type"] == "http.response.start"]
    assert [m["status"] for m in starts] == [200]
