"""The mock checks itself: an answer the spec does not describe never leaves quietly."""

from __future__ import annotations

import pytest
from support import PROJECT, auth, make_mock

from layers_mock_server.core.fixtures import load_fixtures
from layers_mock_server.http import handlers
from layers_mock_server.http.pipeline import Reply
from layers_mock_server.http.strict import ContractViolation


def test_a_leaked_field_is_a_loud_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    original = handlers.HANDLERS["whoami"]
    monkeypatch.setitem(
        handlers.HANDLERS, "whoami", lambda call: Reply(200, {**original(call).body, "debug": True})
    )
    mock = make_mock()
    with pytest.raises(ContractViolation, match="debug"):
        mock.client.get("/v1/whoami", headers=auth())


def test_an_undeclared_status_is_a_loud_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(handlers.HANDLERS, "whoami", lambda call: Reply(201, {}))
    mock = make_mock()
    with pytest.raises(ContractViolation, match="not declared"):
        mock.client.get("/v1/whoami", headers=auth())


def test_without_strict_mode_the_answer_goes_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(handlers.HANDLERS, "whoami", lambda call: Reply(201, {}))
    mock = make_mock()
    mock.deps.strict = False
    assert mock.client.get("/v1/whoami", headers=auth()).status_code == 201


def test_fixture_project_outcome_decides_its_jobs() -> None:
    fixtures = load_fixtures()
    fixtures.projects[PROJECT].outcome = "failed"
    mock = make_mock(fixtures=fixtures)
    accepted = mock.create(json={}).json()
    mock.advance(60)
    assert mock.job(accepted["jobId"]).json()["status"] == "failed"
    overridden = mock.create(json={}, headers={"Prefer": "outcome=completed"}).json()
    mock.advance(60)
    assert mock.job(overridden["jobId"]).json()["status"] == "completed"
