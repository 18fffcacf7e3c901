"""X-Layers-Organization: a parent key with org:admin acts inside a child, never silently in
the parent."""

from __future__ import annotations

import pytest
from support import (
    BAKERY,
    CHILD_ORG,
    CHILD_PROJECT,
    FULL,
    NORTH_ADMIN,
    NORTH_ORG,
    NORTH_PLAIN,
    NORTH_PROJECT,
    PROJECT,
    Mock,
    auth,
)

HEADER = "X-Layers-Organization"


def as_child(key: str = NORTH_ADMIN, org: str = CHILD_ORG) -> dict[str, str]:
    return auth(key, **{HEADER: org})


def test_whoami_reports_the_child_and_its_parent(mock: Mock) -> None:
    parent = mock.client.get("/v1/whoami", headers=auth(NORTH_ADMIN)).json()
    assert (parent["organizationId"], parent["parentOrganizationId"]) == (NORTH_ORG, None)
    child = mock.client.get("/v1/whoami", headers=as_child()).json()
    assert child["organizationId"] == child["workspaceId"] == CHILD_ORG
    assert child["parentOrganizationId"] == NORTH_ORG
    assert child["organizationName"] == "Northwind for Bakery Bros"
    assert child["apiKeyId"] == parent["apiKeyId"]  # the same key, acting elsewhere
    assert child["creditBalance"] == 20
    own = mock.client.get("/v1/whoami", headers=auth(BAKERY)).json()
    assert (own["organizationId"], own["parentOrganizationId"]) == (CHILD_ORG, NORTH_ORG)


def test_the_bare_uuid_names_the_child_too(mock: Mock) -> None:
    bare = CHILD_ORG.removeprefix("org_")
    assert mock.client.get("/v1/whoami", headers=as_child(org=bare)).json()["organizationId"] == (
        CHILD_ORG
    )


def test_everything_read_and_created_is_the_childs(mock: Mock) -> None:
    projects = mock.client.get("/v1/projects", headers=as_child()).json()["items"]
    assert [p["id"] for p in projects] == [CHILD_PROJECT]
    created = mock.client.post(
        "/v1/projects", headers=as_child(), json={"name": "Bakery Two", "timezone": "UTC"}
    ).json()
    assert created["organizationId"] == CHILD_ORG
    assert created["ownerEmail"] == "ops@northwind.example"  # the acting key's owner
    in_parent = mock.client.get(f"/v1/projects/{created['id']}", headers=auth(NORTH_ADMIN))
    assert in_parent.status_code == 404  # the parent's own view does not see the child's rows
    child_key = mock.client.get(f"/v1/projects/{created['id']}", headers=auth(BAKERY))
    assert child_key.status_code == 200
    parent_project = mock.client.get(f"/v1/projects/{NORTH_PROJECT}", headers=as_child())
    assert parent_project.status_code == 404
    job = mock.create(NORTH_ADMIN, CHILD_PROJECT, headers={HEADER: CHILD_ORG})
    assert job.status_code == 202
    assert mock.job(job.json()["jobId"], BAKERY).status_code == 200


def test_idempotency_keys_are_kept_per_organization(mock: Mock) -> None:
    body = {"name": "Same Name", "timezone": "UTC"}
    key = {"Idempotency-Key": "shared-key"}
    in_child = mock.client.post("/v1/projects", headers={**as_child(), **key}, json=body).json()
    in_parent = mock.client.post("/v1/projects", headers=auth(NORTH_ADMIN, **key), json=body).json()
    assert in_child["organizationId"] == CHILD_ORG
    assert in_parent["organizationId"] == NORTH_ORG  # not a replay of the child's project
    assert in_parent["id"] != in_child["id"]


def test_a_key_without_org_admin_is_403(mock: Mock) -> None:
    for org in (CHILD_ORG, NORTH_ORG, "garbage"):  # whatever it names
        response = mock.client.get("/v1/whoami", headers=as_child(NORTH_PLAIN, org))
        assert response.status_code == 403
        assert response.json()["error"]["details"] == {"requiredScope": "org:admin"}
        assert "x-ratelimit-limit" in response.headers
    plain = mock.client.get("/v1/projects", headers=as_child(NORTH_PLAIN))
    assert plain.status_code == 403


@pytest.mark.parametrize(
    "org",
    [
        "org_3f6c2a8e-1b7d-4c59-9e0a-5d4b8c7f1a23",  # another top-level organization
        "org_00000000-0000-4000-8000-000000000000",  # nobody
    ],
)
def test_an_organization_that_is_not_a_direct_child_is_404(mock: Mock, org: str) -> None:
    response = mock.client.get("/v1/projects", headers=as_child(org=org))
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "Organization not found."


def test_a_child_cannot_reach_its_parent_or_a_sibling(mock: Mock) -> None:
    # `*` on the child's key includes org:admin, but the parent is no child of the child
    response = mock.client.get("/v1/whoami", headers=as_child(BAKERY, NORTH_ORG))
    assert response.status_code == 404


@pytest.mark.parametrize(
    "value", ["", "0", "org_", "org_nope", "ORG_C4D5E6F7-0A1B-4C2D-9E3F-5A6B7C8D9E0F", "x" * 300]
)
def test_a_malformed_header_is_an_unknown_organization_never_the_parent(
    mock: Mock, value: str
) -> None:
    response = mock.client.post(
        "/v1/projects", headers=as_child(org=value), json={"name": "Nope", "timezone": "UTC"}
    )
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "Organization not found."
    listed = mock.client.get("/v1/projects", headers=auth(NORTH_ADMIN)).json()["items"]
    assert [p["name"] for p in listed] == ["Northwind House Brand"]  # nothing made in the parent


def test_naming_the_own_organization_changes_nothing(mock: Mock) -> None:
    acme = "org_3f6c2a8e-1b7d-4c59-9e0a-5d4b8c7f1a23"
    mine = mock.client.get("/v1/whoami", headers=as_child(FULL, acme))
    assert mine.status_code == 200
    assert mine.json()["organizationId"] == acme
    project = mock.client.get(f"/v1/projects/{PROJECT}", headers=as_child(FULL, acme))
    assert project.status_code == 200


def test_reset_of_the_child_drops_what_the_parent_did_inside_it(mock: Mock) -> None:
    key = {"Idempotency-Key": "k1"}
    body = {"name": "Ephemeral", "timezone": "UTC"}
    first = mock.client.post("/v1/projects", headers={**as_child(), **key}, json=body).json()
    assert mock.client.post("/_mock/reset", json={"organizationId": CHILD_ORG}).status_code == 200
    assert mock.client.get(f"/v1/projects/{first['id']}", headers=as_child()).status_code == 404
    again = mock.client.post("/v1/projects", headers={**as_child(), **key}, json=body)
    assert again.status_code == 201
    assert (
        mock.client.get(f"/v1/projects/{again.json()['id']}", headers=as_child()).status_code == 200
    )
