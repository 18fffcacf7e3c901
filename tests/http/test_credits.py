"""GET /v1/credits and the credits influencer jobs spend; lp_test_ keys spend nothing."""

from __future__ import annotations

from typing import Any

from support import BAKERY, CHILD_ORG, CHILD_PROJECT, FULL, NORTH_ADMIN, PROJECT, Mock, auth

DESCRIPTION = "A neighbourhood bakery app: pre-orders, loyalty stamps, and a weekly bake " + (
    "schedule that regulars can subscribe to for fresh-out-of-the-oven alerts."
)


def wallet(mock: Mock, key: str = BAKERY, **headers: str) -> dict[str, Any]:
    response = mock.client.get("/v1/credits", headers=auth(key, **headers))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def start(mock: Mock, key: str = BAKERY, **kwargs: Any) -> Any:
    return mock.create(key, CHILD_PROJECT, **kwargs)


def test_the_wallet_of_the_fixtures(mock: Mock) -> None:
    body = wallet(mock)
    assert body["organizationId"] == CHILD_ORG
    assert (body["balance"], body["available"], body["reservedCredits"]) == (20, 20, 0)
    assert body["currentPeriod"] == {
        "start": "2026-01-01T00:00:00.000Z",
        "end": "2026-02-01T00:00:00.000Z",
        "usedCredits": 0,
    }
    assert wallet(mock, FULL)["balance"] == 2540


def test_a_job_reserves_at_start_and_spends_when_it_completes(mock: Mock) -> None:
    assert start(mock).status_code == 202
    running = wallet(mock)
    assert (running["balance"], running["reservedCredits"], running["available"]) == (20, 10, 10)
    assert mock.client.get("/v1/whoami", headers=auth(BAKERY)).json()["creditBalance"] == 20
    mock.advance(60)
    done = wallet(mock)
    assert (done["balance"], done["reservedCredits"], done["available"]) == (10, 0, 10)
    assert done["usedThisPeriod"] == done["currentPeriod"]["usedCredits"] == 10
    assert mock.client.get("/v1/whoami", headers=auth(BAKERY)).json()["creditBalance"] == 10


def test_failed_and_canceled_jobs_give_their_reservation_back(mock: Mock) -> None:
    start(mock, headers={"Prefer": "outcome=failed; stage=training"})
    canceled = start(mock).json()
    assert wallet(mock)["available"] == 0
    assert (
        mock.client.post(f"/v1/jobs/{canceled['jobId']}/cancel", headers=auth(BAKERY)).status_code
        == 202
    )
    assert wallet(mock)["available"] == 10  # the cancel released at once
    mock.advance(60)
    assert (wallet(mock)["balance"], wallet(mock)["available"]) == (20, 20)


def test_running_out_is_402_billing_exhausted_and_starts_nothing(mock: Mock) -> None:
    assert start(mock).status_code == 202
    assert start(mock).status_code == 202
    refused = start(mock)
    assert refused.status_code == 402
    error = refused.json()["error"]
    assert error["code"] == "BILLING_EXHAUSTED"
    assert error["details"] == {"requiredCredits": 10, "availableCredits": 0}
    listed = mock.client.get(f"/v1/projects/{CHILD_PROJECT}/influencers", headers=auth(BAKERY))
    assert len(listed.json()["items"]) == 2
    mock.advance(60)
    assert wallet(mock)["balance"] == 0
    assert start(mock).status_code == 402  # spent, not only reserved


def test_clone_costs_like_a_create(mock: Mock) -> None:
    source = start(mock).json()["influencerId"]
    twin = mock.client.post(
        f"/v1/influencers/{source}/clone", headers=auth(BAKERY), json={"name": "Twin"}
    )
    assert twin.status_code == 202
    assert wallet(mock)["available"] == 0
    again = mock.client.post(
        f"/v1/influencers/{source}/clone", headers=auth(BAKERY), json={"name": "Triplet"}
    )
    assert again.status_code == 402


def test_first_influencer_of_a_project_costs_and_never_fails_the_create(mock: Mock) -> None:
    body = {"name": "Bakery Three", "timezone": "UTC", "appDescription": DESCRIPTION}
    first = mock.client.post("/v1/projects", headers=auth(BAKERY), json=body)
    assert first.status_code == 201
    assert wallet(mock)["reservedCredits"] == 10
    start(mock)
    broke = mock.client.post("/v1/projects", headers=auth(BAKERY), json=body)
    assert broke.status_code == 201  # created, without a first influencer
    listed = mock.client.get(f"/v1/projects/{broke.json()['id']}/influencers", headers=auth(BAKERY))
    assert listed.json()["items"] == []


def test_a_parent_acting_in_the_child_spends_the_childs_wallet(mock: Mock) -> None:
    child = {"X-Layers-Organization": CHILD_ORG}
    assert mock.create(NORTH_ADMIN, CHILD_PROJECT, headers=child).status_code == 202
    assert wallet(mock, NORTH_ADMIN, **child)["reservedCredits"] == 10
    assert wallet(mock, NORTH_ADMIN)["reservedCredits"] == 0


def test_sandbox_keys_spend_nothing(mock: Mock) -> None:
    for _ in range(5):
        assert mock.create(FULL, PROJECT).status_code == 202
    mock.advance(60)
    body = wallet(mock, FULL)
    assert (body["balance"], body["reservedCredits"], body["usedThisPeriod"]) == (2540, 0, 0)


def test_usage_belongs_to_the_month_the_job_completed_in(mock: Mock) -> None:
    start(mock)
    mock.advance(60)
    mock.client.post("/_mock/clock/set", json={"now": "2026-02-03T00:00:00.000Z"})
    body = wallet(mock)
    assert body["balance"] == 10  # spent stays spent
    assert body["usedThisPeriod"] == 0
    assert body["currentPeriod"]["start"] == "2026-02-01T00:00:00.000Z"
    assert body["currentPeriod"]["end"] == "2026-03-01T00:00:00.000Z"


def test_wallet_survives_an_export_and_import(mock: Mock) -> None:
    start(mock)
    start(mock, headers={"Prefer": "progression=poll"})
    before = wallet(mock)
    state = mock.client.get("/_mock/state").json()
    assert mock.client.post("/_mock/reset").status_code == 200
    assert wallet(mock)["reservedCredits"] == 0
    assert mock.client.put("/_mock/state", json=state).status_code == 200
    assert wallet(mock) == before
    mock.advance(60)
    assert wallet(mock)["balance"] == 10  # the time job completed; the poll job still holds 10
    assert wallet(mock)["reservedCredits"] == 10
