"""Fault and outcome rules through the control plane, /_mock/rules (issue 4, Faults)."""

from __future__ import annotations

from typing import Any

import pytest
from support import FULL, GLOBEX, GLOBEX_PROJECT, PROJECT, SEED, Mock, auth, make_mock


def add_rule(mock: Mock, rule: dict[str, Any]) -> dict[str, Any]:
    response = mock.client.post("/_mock/rules", json=rule)
    assert response.status_code == 201, response.text
    return response.json()


def rule_ids(mock: Mock) -> list[str]:
    return [r["ruleId"] for r in mock.client.get("/_mock/rules").json()["items"]]


def whoami(mock: Mock, key: str = FULL) -> int:
    return mock.client.get("/v1/whoami", headers=auth(key)).status_code


def test_add_list_delete_and_clear(mock: Mock) -> None:
    first = add_rule(mock, {"match": {"operationId": "whoami"}, "fault": "503"})
    assert first == {
        "ruleId": "rule_1",
        "match": {"operationId": "whoami"},
        "fault": "503",
        "remaining": None,
    }
    second = add_rule(mock, {"match": {"method": "GET", "path": "/v1/jobs/*"}, "latencyMs": 5})
    assert rule_ids(mock) == ["rule_1", "rule_2"]
    assert mock.client.get("/_mock/rules").json()["items"][1] == second
    assert whoami(mock) == 503
    assert mock.client.delete("/_mock/rules/rule_1").json() == {"deleted": 1}
    assert mock.client.delete("/_mock/rules/rule_1").status_code == 404
    assert whoami(mock) == 200
    add_rule(mock, {"match": {}, "fault": "500"})
    assert whoami(mock) == 500  # an empty match matches everything
    assert mock.client.delete("/_mock/rules").json() == {"deleted": 2}
    assert rule_ids(mock) == []
    assert whoami(mock) == 200


def test_invalid_rule_is_422(mock: Mock) -> None:
    response = mock.client.post("/_mock/rules", json={"match": {}, "fault": "418"})
    assert response.status_code == 422
    assert rule_ids(mock) == []


@pytest.mark.parametrize("tenant", [False, True])
def test_a_rule_for_an_operation_the_contract_has_not_is_422_naming_it(
    mock: Mock, tenant: bool
) -> None:
    """`getWhoami` for `whoami` was a 201: a rule that never fires, and nothing said why."""
    headers = {}
    if tenant:
        mock.deps.admin_token = "s3cret"
        headers = auth(FULL)
    rule = {"match": {"operationId": "getWhoami"}, "fault": "503"}
    response = mock.client.post("/_mock/rules", json=rule, headers=headers)
    assert response.status_code == 422
    [said] = response.json()["error"]["details"]["fieldErrors"]["match"]
    assert "match.operationId" in said and "'getWhoami'" in said and "whoami" in said
    assert mock.client.get("/_mock/rules", headers=headers).json()["items"] == []
    rule["match"]["operationId"] = "whoami"
    assert mock.client.post("/_mock/rules", json=rule, headers=headers).status_code == 201
    assert mock.client.get("/v1/whoami", headers=auth(FULL)).status_code == 503


def test_count_expires_the_rule(mock: Mock) -> None:
    add_rule(mock, {"match": {"operationId": "whoami"}, "fault": "503", "count": 2})
    assert whoami(mock) == 503
    assert mock.client.get("/_mock/rules").json()["items"][0]["remaining"] == 1
    assert whoami(mock) == 503
    assert rule_ids(mock) == []
    assert [whoami(mock) for _ in range(3)] == [200, 200, 200]
    journal = mock.client.get("/_mock/requests").json()["items"]
    assert [e["injected"] for e in journal][::-1] == ["rule:fault=503"] * 2 + [None] * 3


def test_match_on_operation_id_path_method_project_and_organization(mock: Mock) -> None:
    created = mock.create().json()
    add_rule(mock, {"match": {"path": "/v1/jobs/*", "method": "GET"}, "fault": "503"})
    assert mock.job(created["jobId"]).status_code == 503
    assert (
        mock.client.post(f"/v1/jobs/{created['jobId']}/cancel", headers=auth()).status_code == 202
    )
    assert whoami(mock) == 200
    mock.client.delete("/_mock/rules")

    add_rule(mock, {"match": {"projectId": PROJECT}, "fault": "500"})
    assert mock.create().status_code == 500
    # Resources of the project match too: its influencers and jobs; a project-less call does not.
    assert mock.influencer(created["influencerId"]).status_code == 500
    assert mock.job(created["jobId"]).status_code == 500
    assert whoami(mock) == 200
    assert mock.client.get(f"/v1/projects/{PROJECT}", headers=auth()).status_code == 500
    assert mock.create(GLOBEX, GLOBEX_PROJECT).status_code == 202
    mock.client.delete("/_mock/rules")

    add_rule(
        mock,
        {"match": {"organizationId": "org_8d1e5f3a-6c2b-4e7d-a9f0-1b3c5d7e9f02"}, "fault": "429"},
    )
    assert whoami(mock, GLOBEX) == 429
    assert whoami(mock, FULL) == 200
    mock.client.delete("/_mock/rules")

    add_rule(mock, {"match": {"operationId": "getInfluencer"}, "fault": "503"})
    assert mock.influencer(created["influencerId"]).status_code == 503
    assert mock.job(created["jobId"]).status_code == 200


def test_outcome_rule_shapes_jobs_of_matching_requests(mock: Mock) -> None:
    add_rule(
        mock, {"match": {"projectId": PROJECT}, "outcome": "failed", "stage": "rendering_portrait"}
    )
    failing = mock.create().json()
    other = mock.create(GLOBEX, GLOBEX_PROJECT).json()
    mock.advance(35)
    assert mock.job(failing["jobId"]).json()["status"] == "failed"
    assert mock.job(failing["jobId"]).json()["stage"] == "rendering_portrait"
    assert mock.job(other["jobId"], GLOBEX).json()["status"] == "running"
    # The request's own Prefer header wins over the rule.
    chosen = mock.create(headers={"Prefer": "outcome=completed"}).json()
    mock.advance(60)
    assert mock.job(chosen["jobId"]).json()["status"] == "completed"


def run_probability(seed: int) -> list[int]:
    mock = make_mock(seed)
    with mock.client:
        add_rule(mock, {"match": {"operationId": "whoami"}, "fault": "503", "probability": 0.5})
        return [whoami(mock) for _ in range(40)]


def test_probability_is_drawn_from_the_seed() -> None:
    first, second = run_probability(SEED), run_probability(SEED)
    assert first == second  # two fresh servers, one seed: the same requests fail
    assert 5 <= first.count(503) <= 35  # and it is a fraction, not all or nothing
    assert set(first) == {200, 503}
    assert run_probability(SEED + 1) != first


def test_probability_draws_the_same_requests_after_a_reset() -> None:
    mock = make_mock(SEED)
    rule = {"match": {"operationId": "whoami"}, "fault": "503", "probability": 0.5}
    with mock.client:
        add_rule(mock, rule)
        first = [whoami(mock) for _ in range(40)]
        assert mock.client.post("/_mock/reset").status_code == 200
        add_rule(mock, rule)  # rule_1 again
        assert [whoami(mock) for _ in range(40)] == first
