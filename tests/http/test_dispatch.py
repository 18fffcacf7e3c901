"""The partner fast path answers exactly as Starlette's router would, and never leaks a crash."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient
from support import PROJECT, auth, make_mock

from layers_mock_server.http import handlers


def test_a_crash_in_a_handler_is_an_internal_envelope(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(call: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setitem(handlers.HANDLERS, "whoami", broken)
    mock = make_mock()
    client = TestClient(mock.client.app, raise_server_exceptions=False)
    response = client.get("/v1/whoami", headers=auth())
    assert response.status_code == 500
    error = response.json()["error"]
    assert (error["code"], error["message"]) == ("INTERNAL", "Internal error.")
    assert error["requestId"] == response.headers["x-request-id"]
    assert "boom" not in response.text


@pytest.mark.parametrize(
    ("path", "status"),
    [
        (f"/v1/projects/{PROJECT}/influencers/", 404),  # trailing slash: no route
        (f"/v1/projects/{PROJECT}//influencers", 404),
        ("/v1/projects//influencers", 404),
        ("/v1/jobs/job_x/cancel/extra", 404),
        ("/v1/whoami", 200),
        ("/v1/jobs/job_x", 404),  # a route, an unknown job
    ],
)
def test_paths_match_like_starlette(path: str, status: int) -> None:
    mock = make_mock()
    response = mock.client.get(path, headers=auth())
    assert response.status_code == status
    assert response.headers["x-request-id"].startswith("req_")
