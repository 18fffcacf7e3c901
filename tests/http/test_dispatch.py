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


def test_a_remembered_path_still_answers_each_method_and_each_id() -> None:
    """The dispatch remembers recent paths: the second request of a path, another method on
    it, and another id on the same route each reach the operation they name."""
    mock = make_mock()
    job_id = mock.create(json={"prompt": "x"}).json()["jobId"]
    first, again = mock.job(job_id), mock.job(job_id)
    assert first.status_code == again.status_code == 200
    assert again.json()["jobId"] == job_id
    canceled = mock.client.post(f"/v1/jobs/{job_id}/cancel", headers=auth())
    assert canceled.status_code == 202
    assert mock.client.delete(f"/v1/jobs/{job_id}", headers=auth()).status_code == 405
    assert mock.job(job_id).json()["status"] == "canceled"
    assert mock.job("job_01KBG00000000000000000000X").status_code == 404


def test_more_paths_than_the_dispatch_remembers_are_all_answered() -> None:
    """Past the number of remembered paths the memory is emptied, never wrong: every path is
    matched again, the first ones included."""
    from support import bulk

    from layers_mock_server.http.dispatch import RECENT_PATHS

    mock = make_mock()
    job_id = mock.create(json={"prompt": "x"}).json()["jobId"]
    unknown = [("GET", f"/v1/jobs/job_{n}", auth(), None) for n in range(RECENT_PATHS + 5)]
    known = ("GET", f"/v1/jobs/{job_id}", auth(), None)
    responses = bulk(mock.client.app, [known, *unknown, known])
    assert [r.status_code for r in responses] == [200] + [404] * len(unknown) + [200]
    assert responses[-1].json()["jobId"] == job_id


@pytest.mark.parametrize("value", ["", "k" * 256, "k" * 300])
def test_a_declared_header_sent_is_still_checked(value: str) -> None:
    """Requests without any declared header skip the header checks; one that sends a bad
    declared header is still refused with its field named, before anything is created."""
    mock = make_mock()
    response = mock.create(json={"prompt": "x"}, headers={"Idempotency-Key": value})
    assert response.status_code == 422, response.text
    assert "Idempotency-Key" in response.json()["error"]["details"]["fieldErrors"]
    listing = mock.client.get(f"/v1/projects/{PROJECT}/influencers", headers=auth())
    assert listing.json()["items"] == []
