"""Identity, scopes, tenancy and the order of checks (CONTRACT.md, Order of checks)."""

from __future__ import annotations

import pytest
from support import (
    FULL,
    GLOBEX,
    GLOBEX_PROJECT,
    KILLED,
    NO_INFLUENCERS,
    NO_JOBS,
    PROJECT,
    Mock,
    auth,
)

CREATE = f"/v1/projects/{PROJECT}/influencers"


def error(response: object) -> dict:  # type: ignore[type-arg]
    body = response.json()["error"]  # type: ignore[attr-defined]
    assert body["requestId"] == response.headers["x-request-id"]  # type: ignore[attr-defined]
    return body


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic bHA6eA=="},
        {"Authorization": "Bearer lp_test_nobody_0000000000000000"},
        {"X-Api-Key": FULL},  # the legacy header alone is not accepted
    ],
    ids=["missing", "empty", "basic", "unknown", "x-api-key"],
)
def test_missing_malformed_or_unknown_key_is_401(mock: Mock, headers: dict[str, str]) -> None:
    response = mock.client.post(CREATE, headers=headers, json={})
    assert response.status_code == 401
    assert error(response)["code"] == "UNAUTHENTICATED"


def test_killed_key_is_503_kill_switch(mock: Mock) -> None:
    response = mock.client.get("/v1/whoami", headers=auth(KILLED))
    assert response.status_code == 503
    body = error(response)
    assert (body["code"], body["details"]["scope"]) == ("KILL_SWITCH", "key")


def test_missing_scope_is_403_naming_it(mock: Mock) -> None:
    response = mock.create(NO_INFLUENCERS, json={})
    assert response.status_code == 403
    body = error(response)
    assert (body["code"], body["details"]["requiredScope"]) == (
        "FORBIDDEN_SCOPE",
        "influencers:write",
    )
    job = mock.create(json={}).json()["jobId"]
    response = mock.job(job, NO_JOBS)
    assert response.status_code == 403
    assert error(response)["details"]["requiredScope"] == "jobs:read"


def test_reads_of_influencers_need_the_write_scope(mock: Mock) -> None:
    influencer = mock.create(json={}).json()["influencerId"]
    assert mock.influencer(influencer, NO_INFLUENCERS).status_code == 403


def test_other_organizations_resources_do_not_exist(mock: Mock) -> None:
    assert mock.create(project=GLOBEX_PROJECT, json={}).status_code == 404
    accepted = mock.create(json={}).json()
    assert mock.job(accepted["jobId"], GLOBEX).status_code == 404
    assert mock.influencer(accepted["influencerId"], GLOBEX).status_code == 404
    response = mock.client.post(f"/v1/jobs/{accepted['jobId']}/cancel", headers=auth(GLOBEX))
    assert error(response)["code"] == "NOT_FOUND"


def test_bare_uuid_names_the_same_project_and_malformed_ids_are_unknown(mock: Mock) -> None:
    bare = PROJECT.removeprefix("prj_")
    assert mock.create(project=bare, json={}).status_code == 202
    assert mock.create(project="prj_not-a-uuid", json={}).status_code == 404
    assert mock.job("job_nope").status_code == 404
    influencer = mock.create(json={}).json()["influencerId"]
    assert mock.influencer(influencer.removeprefix("inf_")).status_code == 200


def test_order_401_before_403_before_404_before_422(mock: Mock) -> None:
    bad_body = {"name": "x"}
    foreign = f"/v1/projects/{GLOBEX_PROJECT}/influencers"
    assert mock.client.post(foreign, json=bad_body).status_code == 401
    assert mock.client.post(foreign, json=bad_body, headers=auth(NO_INFLUENCERS)).status_code == 403
    assert mock.client.post(foreign, json=bad_body, headers=auth()).status_code == 404
    assert mock.client.post(CREATE, json=bad_body, headers=auth()).status_code == 422


def test_every_response_carries_a_request_id(mock: Mock) -> None:
    responses = [
        mock.create(json={}),
        mock.create(json={"gender": "robot"}),
        mock.client.get("/v1/whoami"),
        mock.client.get("/nowhere"),
        mock.client.get("/_mock/health"),
    ]
    ids = [r.headers["x-request-id"] for r in responses]
    assert all(i.startswith("req_") and len(i) == 30 for i in ids)
    assert len(set(ids)) == len(ids)


def test_whoami_describes_the_key(mock: Mock) -> None:
    body = mock.client.get("/v1/whoami", headers=auth(NO_JOBS)).json()
    assert body["organizationName"] == "Acme Growth"
    assert body["organizationId"] == body["workspaceId"]
    assert "jobs:read" not in body["scopes"]
    assert body["apiKeyId"] == "key_2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e"


def test_unknown_method_is_405_with_allow_and_unknown_path_404(mock: Mock) -> None:
    response = mock.client.put(CREATE, headers=auth())
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD, POST"
    assert error(response)["code"] == "METHOD_NOT_ALLOWED"
    response = mock.client.get("/v2/anything", headers=auth())
    assert response.status_code == 404
    assert error(response)["code"] == "NOT_FOUND"
