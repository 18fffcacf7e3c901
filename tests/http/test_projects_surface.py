"""Projects beyond create and read: list, patch, archive, and the create body of Layers' client."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from support import FULL, GLOBEX, NO_INFLUENCERS, PROJECT, Mock, auth

ACME_ORG = "org_3f6c2a8e-1b7d-4c59-9e0a-5d4b8c7f1a23"


def create(mock: Mock, key: str = FULL, **body: Any) -> httpx.Response:
    return mock.client.post("/v1/projects", headers=auth(key), json={"timezone": "UTC", **body})


def listing(mock: Mock, query: str = "", key: str = FULL) -> httpx.Response:
    return mock.client.get(f"/v1/projects{query}", headers=auth(key))


def test_fixture_projects_have_real_creation_instants(mock: Mock) -> None:
    body = mock.client.get(f"/v1/projects/{PROJECT}", headers=auth()).json()
    assert body["createdAt"] == "2026-01-01T00:00:00.000Z"  # the clock's start, not 1970
    assert body["ownerEmail"] == "growth@acme.example"


def test_create_accepts_what_layers_client_sends_and_round_trips_it(mock: Mock) -> None:
    metadata = {"crm": {"id": 7, "tags": ["a", "b"]}, "note": None}
    created = create(
        mock,
        name="Acme Tea",
        ownerEmail="tea@acme.example",
        tagline="x" * 80,
        brandVoice="witty",
        targetGender="male",
        metadata=metadata,
    )
    assert created.status_code == 201, created.text
    project = created.json()
    assert (project["ownerEmail"], project["tagline"]) == ("tea@acme.example", "x" * 80)
    assert project["metadata"] == metadata
    assert (project["brandVoice"], project["targetGender"], project["status"]) == (
        "witty",
        "male",
        "active",
    )
    read = mock.client.get(f"/v1/projects/{project['id']}", headers=auth()).json()
    assert read == project


def test_owner_email_defaults_to_the_key_owner(mock: Mock) -> None:
    assert create(mock, name="Acme Tea").json()["ownerEmail"] == "growth@acme.example"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"tagline": "x" * 81}, "tagline"),
        ({"tagline": ""}, "tagline"),
        ({"ownerEmail": "not-an-email"}, "ownerEmail"),
        ({"ownerEmail": 5}, "ownerEmail"),
        ({"metadata": {"blob": "x" * 8200}}, "metadata"),
        ({"metadata": ["not", "an", "object"]}, "metadata"),
        ({"timezone": "0"}, "timezone"),
        ({"timezone": "localtime"}, "timezone"),
        ({"id": "prj_254a4ce1-f4ca-42b1-9e36-17ca45ef3d39"}, "id"),
    ],
)
def test_bad_create_fields_are_422_and_create_nothing(
    mock: Mock, body: dict[str, Any], field: str
) -> None:
    before = len(listing(mock).json()["items"])
    response = create(mock, name="Acme Tea", **body)
    assert response.status_code == 422, response.text
    assert field in response.json()["error"]["details"]["fieldErrors"]
    assert len(listing(mock).json()["items"]) == before


def test_metadata_of_exactly_8_kb_is_accepted(mock: Mock) -> None:
    blob = "x" * (8192 - len('{"b":""}'))
    assert create(mock, name="Big", metadata={"b": blob}).status_code == 201


def test_list_is_newest_first_with_keyset_cursor_and_only_the_callers_projects(
    mock: Mock,
) -> None:
    for n in range(5):
        mock.advance(1)
        assert create(mock, name=f"Tea {n}").status_code == 201
    pages, cursor = [], None
    while True:
        response = listing(mock, f"?limit=2&cursor={cursor}" if cursor else "?limit=2")
        assert response.status_code == 200
        pages.append([p["name"] for p in response.json()["items"]])
        cursor = response.json()["nextCursor"]
        if cursor is None:
            break
    assert pages == [["Tea 4", "Tea 3"], ["Tea 2", "Tea 1"], ["Tea 0", "Acme Coffee"]]
    assert {p["organizationId"] for p in listing(mock).json()["items"]} == {ACME_ORG}
    globex = [p["name"] for p in listing(mock, key=GLOBEX).json()["items"]]
    assert globex == ["Globex Studio"]


def test_list_filters_search_status_and_customer_external_id(mock: Mock) -> None:
    create(mock, name="Morning COFFEE", customerExternalId="cus_1")
    create(mock, name="Evening Tea", customerExternalId="cus_2")
    names = [p["name"] for p in listing(mock, "?search=cOfFeE").json()["items"]]
    assert names == ["Morning COFFEE", "Acme Coffee"]
    by_customer = listing(mock, "?customerExternalId=cus_2").json()["items"]
    assert [p["name"] for p in by_customer] == ["Evening Tea"]
    assert mock.client.delete(f"/v1/projects/{PROJECT}", headers=auth()).status_code == 200
    archived = listing(mock, "?status=archived").json()["items"]
    assert [p["name"] for p in archived] == ["Acme Coffee"]
    active = listing(mock, "?status=active&search=coffee").json()["items"]
    assert [p["name"] for p in active] == ["Morning COFFEE"]
    assert len(listing(mock).json()["items"]) == 3  # no filter: archived ones too


@pytest.mark.parametrize(
    "query",
    [
        "?limit=0",
        "?limit=201",
        "?limit=x",
        "?status=deleted",
        "?cursor=eyJ9",
        "?cursor=0000000000000",
    ],
)
def test_bad_list_queries_are_422(mock: Mock, query: str) -> None:
    response = listing(mock, query)
    assert response.status_code == 422
    assert response.json()["error"]["message"] == "Invalid query."


def test_any_well_formed_cursor_is_a_position(mock: Mock) -> None:
    assert listing(mock, "?cursor=0").json() == {"items": [], "nextCursor": None}
    everything = listing(mock, "?cursor=ZZZZZZZZZZZZ").json()
    assert [p["name"] for p in everything["items"]] == ["Acme Coffee"]


def test_patch_is_partial_replaces_metadata_whole_and_clears_with_null(mock: Mock) -> None:
    project = create(mock, name="Acme Tea", metadata={"a": 1, "b": 2}, appName="Tea App").json()
    mock.advance(5)
    patched = mock.client.patch(
        f"/v1/projects/{project['id']}",
        headers=auth(),
        json={
            "name": "Acme Tea 2",
            "metadata": {"c": 3},
            "appName": None,
            "timezone": "Asia/Tokyo",
        },
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert body["metadata"] == {"c": 3}
    assert (body["name"], body["appName"], body["timezone"]) == ("Acme Tea 2", None, "Asia/Tokyo")
    assert body["brandVoice"] == project["brandVoice"]  # untouched
    assert body["updatedAt"] == "2026-01-01T00:00:05.000Z"
    assert body["createdAt"] == project["createdAt"]


@pytest.mark.parametrize(
    "field", ["id", "organizationId", "createdAt", "ingestState", "brandContext"]
)
def test_read_only_fields_are_422_saying_read_only(mock: Mock, field: str) -> None:
    response = mock.client.patch(
        f"/v1/projects/{PROJECT}", headers=auth(), json={field: {"appName": "x"}}
    )
    assert response.status_code == 422
    assert response.json()["error"]["details"]["fieldErrors"][field][0].startswith("Read-only")


@pytest.mark.parametrize(
    "body",
    [{}, {"status": "deleted"}, {"name": "ab"}, {"metadata": None}, {"timezone": "Mars/Base"}],
)
def test_bad_patches_are_422_and_change_nothing(mock: Mock, body: dict[str, Any]) -> None:
    before = mock.client.get(f"/v1/projects/{PROJECT}", headers=auth()).json()
    assert (
        mock.client.patch(f"/v1/projects/{PROJECT}", headers=auth(), json=body).status_code == 422
    )
    assert mock.client.get(f"/v1/projects/{PROJECT}", headers=auth()).json() == before


def test_archive_refuses_new_jobs_keeps_data_and_restores_with_patch(mock: Mock) -> None:
    created = mock.create().json()
    archived = mock.client.delete(f"/v1/projects/{PROJECT}", headers=auth())
    assert archived.status_code == 200
    assert archived.json()["status"] == "archived"
    again = mock.client.delete(f"/v1/projects/{PROJECT}", headers=auth())
    assert again.status_code == 200 and again.json() == archived.json()  # idempotent by state
    refused = mock.create()
    assert refused.status_code == 409
    assert refused.json()["error"]["details"] == {
        "subcode": "PROJECT_ARCHIVED",
        "projectId": PROJECT,
    }
    clone = mock.client.post(
        f"/v1/influencers/{created['influencerId']}/clone", headers=auth(), json={"name": "Twin"}
    )
    assert clone.status_code == 409
    listed = mock.client.get(f"/v1/projects/{PROJECT}/influencers", headers=auth()).json()
    assert [i["influencerId"] for i in listed["items"]] == [created["influencerId"]]
    mock.advance(60)
    assert mock.influencer(created["influencerId"]).json()["status"] == "ready"  # jobs go on
    restored = mock.client.patch(
        f"/v1/projects/{PROJECT}", headers=auth(), json={"status": "active"}
    )
    assert restored.json()["status"] == "active"
    assert mock.create().status_code == 202


def test_project_operations_need_their_scopes_and_stay_in_the_organization(mock: Mock) -> None:
    read_only_denied = mock.client.delete(f"/v1/projects/{PROJECT}", headers=auth(GLOBEX))
    assert read_only_denied.status_code == 404
    no_scope = mock.client.get("/v1/projects", headers=auth("lp_test_nope_Xx11"))
    assert no_scope.status_code == 401
    assert listing(mock, key=NO_INFLUENCERS).status_code == 200  # has projects:read
