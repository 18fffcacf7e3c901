"""Projects over the API: POST /v1/projects and GET /v1/projects/{projectId}."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support import FULL, GLOBEX, SEED, Mock, auth, make_mock

from layers_mock_server.core.fixtures import load_fixtures

DESCRIPTION = "A loyalty app for neighbourhood coffee shops: stamp cards, pre-orders and " + (
    "seasonal drinks that regulars can vote on every month."
)
assert 100 <= len(DESCRIPTION) <= 1000


def create_project(mock: Mock, body: dict[str, Any], key: str = FULL, **headers: str) -> Any:
    return mock.client.post("/v1/projects", headers=auth(key, **headers), json=body)


def test_create_project_answers_201_and_the_row_reads_back(mock: Mock) -> None:
    body = {
        "name": "Acme Tea",
        "timezone": "Europe/Paris",
        "primaryLanguage": "fr",
        "customerExternalId": "cus_42",
        "appName": "Tea Time",
        "brandVoice": "witty",
        "targetGender": "male",
        "metadata": {"tier": "gold"},
    }
    created = create_project(mock, body)
    assert created.status_code == 201, created.text
    project = created.json()
    assert project["id"].startswith("prj_")
    assert project["organizationId"] == "org_3f6c2a8e-1b7d-4c59-9e0a-5d4b8c7f1a23"
    assert {k: project[k] for k in body} == body
    assert project["appDescription"] is None
    read = mock.client.get(f"/v1/projects/{project['id']}", headers=auth())
    assert read.status_code == 200
    assert read.json() == project
    bare = mock.client.get(f"/v1/projects/{project['id'].removeprefix('prj_')}", headers=auth())
    assert bare.json() == project


def test_create_project_defaults(mock: Mock) -> None:
    project = create_project(mock, {"name": "Min", "timezone": "UTC"}).json()
    assert (project["primaryLanguage"], project["targetGender"]) == ("en", "all")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "ab", "timezone": "UTC"}, "name"),
        ({"name": "x" * 31, "timezone": "UTC"}, "name"),
        ({"name": "Acme Tea", "timezone": "Mars/Olympus_Mons"}, "timezone"),
        ({"name": "Acme Tea", "timezone": "UTC", "appDescription": "x" * 99}, "appDescription"),
        ({"name": "Acme Tea", "timezone": "UTC", "appDescription": "x" * 1001}, "appDescription"),
        ({"timezone": "UTC"}, "name"),
        ({"name": "Acme Tea"}, "timezone"),
    ],
)
def test_invalid_project_is_422_naming_the_field_and_creates_nothing(
    mock: Mock, body: dict[str, Any], field: str
) -> None:
    response = create_project(mock, body)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "VALIDATION"
    assert field in error["details"]["fieldErrors"]
    assert mock.deps.sim.state.mint.counters.get("prj", 0) == 0  # nothing minted, nothing stored
    assert len(mock.deps.sim.state.projects) == len(load_fixtures().projects)  # fixtures only


def test_boundary_lengths_are_accepted(mock: Mock) -> None:
    for body in (
        {"name": "abc", "timezone": "UTC", "appDescription": "x" * 100},
        {"name": "x" * 30, "timezone": "Asia/Kolkata", "appDescription": "x" * 1000},
    ):
        assert create_project(mock, body).status_code == 201


def test_create_project_is_idempotent(mock: Mock) -> None:
    body = {"name": "Acme Tea", "timezone": "UTC", "appDescription": DESCRIPTION}
    first = create_project(mock, body, **{"Idempotency-Key": "prj-1"})
    again = create_project(mock, body, **{"Idempotency-Key": "prj-1"})
    assert first.status_code == again.status_code == 201
    assert again.content == first.content
    assert first.headers["x-request-id"] != again.headers["x-request-id"]
    listing = mock.client.get(f"/v1/projects/{first.json()['id']}/influencers", headers=auth())
    assert len(listing.json()["items"]) == 1  # the replay started no second influencer
    other = create_project(mock, {**body, "name": "Other"}, **{"Idempotency-Key": "prj-1"})
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "IDEMPOTENCY_CONFLICT"


def test_project_of_another_organization_is_404(mock: Mock) -> None:
    project = create_project(mock, {"name": "Acme Tea", "timezone": "UTC"}).json()
    for path in (f"/v1/projects/{project['id']}", f"/v1/projects/{project['id']}/influencers"):
        response = mock.client.get(path, headers=auth(GLOBEX))
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "NOT_FOUND"
    created = mock.create(GLOBEX, project["id"])
    assert created.status_code == 404


SCOPED_FIXTURES = """
organizations:
  - organizationId: org_3f6c2a8e-1b7d-4c59-9e0a-5d4b8c7f1a23
    name: Acme Growth
    projects:
      - projectId: prj_254a4ce1-f4ca-42b1-9e36-17ca45ef3d39
        name: Acme Coffee
    keys:
      - key: lp_test_readonly_Aa11Bb22Cc33Dd44
        apiKeyId: key_aaaaaaaa-1b7d-4c59-9e0a-5d4b8c7f1a23
        scopes: ["projects:read"]
        rateLimitTier: unlimited
      - key: lp_test_writeonly_Ee55Ff66Gg77Hh88
        apiKeyId: key_bbbbbbbb-1b7d-4c59-9e0a-5d4b8c7f1a23
        scopes: ["projects:write"]
        rateLimitTier: unlimited
"""
READ_ONLY = "lp_test_readonly_Aa11Bb22Cc33Dd44"
WRITE_ONLY = "lp_test_writeonly_Ee55Ff66Gg77Hh88"


def test_projects_read_and_write_scopes(tmp_path: Path) -> None:
    path = tmp_path / "fixtures.yaml"
    path.write_text(SCOPED_FIXTURES, encoding="utf-8")
    mock = make_mock(SEED, fixtures=load_fixtures(path))
    with mock.client:
        refused = create_project(mock, {"name": "Acme Tea", "timezone": "UTC"}, READ_ONLY)
        assert refused.status_code == 403
        assert refused.json()["error"]["details"]["requiredScope"] == "projects:write"
        created = create_project(mock, {"name": "Acme Tea", "timezone": "UTC"}, WRITE_ONLY)
        assert created.status_code == 201
        path_ = f"/v1/projects/{created.json()['id']}"
        assert mock.client.get(path_, headers=auth(READ_ONLY)).status_code == 200
        denied = mock.client.get(path_, headers=auth(WRITE_ONLY))
        assert denied.status_code == 403
        assert denied.json()["error"]["details"]["requiredScope"] == "projects:read"


def test_app_description_starts_the_first_influencer_at_once(mock: Mock) -> None:
    body = {
        "name": "Acme Gym",
        "timezone": "UTC",
        "targetGender": "male",
        "appDescription": DESCRIPTION,
    }
    project = create_project(mock, body).json()
    listing = mock.client.get(f"/v1/projects/{project['id']}/influencers", headers=auth())
    [first] = listing.json()["items"]
    assert first["status"] == "pending"
    assert first["gender"] == "male"  # the project's targetGender decides
    assert (first["brandVoice"], first["language"]) == ("authentic", "en")
    job_id = mock.deps.sim.state.influencers[first["influencerId"]].job_id
    job = mock.job(job_id).json()
    assert (job["status"], job["stage"], job["influencerId"]) == (
        "running",
        "queued",
        first["influencerId"],
    )
    mock.advance(15)
    assert mock.influencer(first["influencerId"]).json()["status"] == "training"
    mock.advance(45)
    job = mock.job(job_id).json()
    assert job["status"] == "completed"
    assert job["finishedAt"] == "2026-01-01T00:01:00.000Z"
    ready = mock.influencer(first["influencerId"]).json()
    assert ready["status"] == "ready"
    assert ready["name"] and ready["imageUrl"]


@pytest.mark.parametrize(("target", "gender"), [("female", "female"), ("all", "female")])
def test_first_influencer_gender_follows_target_gender(
    mock: Mock, target: str, gender: str
) -> None:
    body = {
        "name": "Acme Gym",
        "timezone": "UTC",
        "targetGender": target,
        "appDescription": DESCRIPTION,
    }
    project = create_project(mock, body).json()
    listing = mock.client.get(f"/v1/projects/{project['id']}/influencers", headers=auth())
    assert [i["gender"] for i in listing.json()["items"]] == [gender]


def test_without_app_description_no_influencer_starts(mock: Mock) -> None:
    project = create_project(mock, {"name": "Acme Tea", "timezone": "UTC"}).json()
    listing = mock.client.get(f"/v1/projects/{project['id']}/influencers", headers=auth())
    assert listing.json() == {"items": [], "nextCursor": None}


def test_first_influencer_honours_prefer_outcome(mock: Mock) -> None:
    body = {"name": "Acme Gym", "timezone": "UTC", "appDescription": DESCRIPTION}
    project = create_project(mock, body, Prefer="outcome=failed; stage=queued").json()
    [first] = mock.client.get(f"/v1/projects/{project['id']}/influencers", headers=auth()).json()[
        "items"
    ]
    mock.advance(2)
    failed = mock.influencer(first["influencerId"]).json()
    assert failed["status"] == "failed"
    assert failed["errorMessage"]


def test_api_created_project_is_as_real_as_a_fixture_project(mock: Mock) -> None:
    body = {
        "name": "Acme Tea",
        "timezone": "UTC",
        "brandVoice": "educational",
        "primaryLanguage": "de",
    }
    project = create_project(mock, body).json()
    created = mock.create(project=project["id"], json={"gender": "non_binary"})
    assert created.status_code == 202, created.text
    envelope = created.json()
    assert envelope["projectId"] == project["id"]
    influencer = mock.influencer(envelope["influencerId"]).json()
    assert (influencer["brandVoice"], influencer["language"]) == ("educational", "de")
    listing = mock.client.get(f"/v1/projects/{project['id']}/influencers", headers=auth())
    assert [i["influencerId"] for i in listing.json()["items"]] == [envelope["influencerId"]]
    patched = mock.client.patch(
        f"/v1/influencers/{envelope['influencerId']}", headers=auth(), json={"brandVoice": "casual"}
    )
    assert patched.status_code == 200
    mock.advance(60)
    assert mock.job(envelope["jobId"]).json()["status"] == "completed"
    deleted = mock.client.delete(f"/v1/influencers/{envelope['influencerId']}", headers=auth())
    assert deleted.status_code == 200


@pytest.mark.parametrize("timezone", ["Mars/Olympus", "europe/paris", "", "UTC+2"])
def test_a_bad_timezone_is_a_short_422_not_the_whole_list(mock: Mock, timezone: str) -> None:
    response = create_project(mock, {"name": "Acme Tea", "timezone": timezone})
    assert response.status_code == 422
    (message,) = response.json()["error"]["details"]["fieldErrors"]["timezone"]
    assert message.startswith("Must be one of the ") and "such as " in message
    assert "Africa/" in message and "Europe/Paris" not in message.split("such as")[0]
    assert len(response.content) < 600  # it was about 10 KB: the whole tz database


def test_a_short_enum_is_still_listed_whole(mock: Mock) -> None:
    response = create_project(mock, {"name": "Acme Tea", "timezone": "UTC", "targetGender": "x"})
    (message,) = response.json()["error"]["details"]["fieldErrors"]["targetGender"]
    assert message == "Must be one of: all, female, male."
