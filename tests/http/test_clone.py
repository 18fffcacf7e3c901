"""POST /v1/influencers/{influencerId}/clone: a new influencer that looks like its source."""

from __future__ import annotations

from typing import Any

import pytest
from support import FULL, GLOBEX, NO_INFLUENCERS, PROJECT, Mock, auth


def clone(mock: Mock, source: str, body: Any, key: str = FULL, **headers: str) -> Any:
    return mock.client.post(
        f"/v1/influencers/{source}/clone", headers=auth(key, **headers), json=body
    )


@pytest.fixture
def source(mock: Mock) -> str:
    created = mock.create(json={"gender": "male", "ageRange": "mature", "prompt": "old sailor"})
    influencer_id: str = created.json()["influencerId"]
    patched = mock.client.patch(
        f"/v1/influencers/{influencer_id}", headers=auth(), json={"brandVoice": "witty"}
    )
    assert patched.status_code == 200
    return influencer_id


def test_clone_starts_a_job_and_copies_the_source_with_overrides(mock: Mock, source: str) -> None:
    mock.advance(10)
    response = clone(mock, source, {"name": "Sailor ES", "overrides": {"language": "es-MX"}})
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert response.headers["location"] == accepted["locationUrl"]
    assert (accepted["kind"], accepted["status"], accepted["stage"]) == (
        "influencer_create",
        "running",
        "queued",
    )
    assert accepted["projectId"] == PROJECT
    assert accepted["influencerId"] != source
    twin = mock.influencer(accepted["influencerId"]).json()
    assert twin["status"] == "pending" and twin["name"] == "Sailor ES"
    assert (twin["gender"], twin["ageRange"], twin["brandVoice"], twin["language"]) == (
        "male",
        "mature",
        "witty",
        "es-MX",
    )
    assert twin["createdAt"] == "2026-01-01T00:00:10.000Z"
    mock.advance(60)
    ready = mock.influencer(accepted["influencerId"]).json()
    assert ready["status"] == "ready" and ready["name"] == "Sailor ES"
    job = mock.job(accepted["jobId"]).json()
    assert job["status"] == "completed" and job["result"] == {"influencerId": ready["influencerId"]}
    listed = mock.client.get(f"/v1/projects/{PROJECT}/influencers", headers=auth()).json()
    assert [i["influencerId"] for i in listed["items"]] == [accepted["influencerId"], source]


def test_clone_follows_prefer_like_a_create(mock: Mock, source: str) -> None:
    response = clone(mock, source, {"name": "Doomed"}, Prefer="outcome=failed; stage=training")
    mock.advance(60)
    assert mock.influencer(response.json()["influencerId"]).json()["status"] == "failed"


def test_clone_is_idempotent_like_a_create(mock: Mock, source: str) -> None:
    first = clone(mock, source, {"name": "Twin"}, **{"Idempotency-Key": "clone-1"})
    again = clone(mock, source, {"name": "Twin"}, **{"Idempotency-Key": "clone-1"})
    assert again.content == first.content
    other = clone(mock, source, {"name": "Other"}, **{"Idempotency-Key": "clone-1"})
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "IDEMPOTENCY_CONFLICT"
    listed = mock.client.get(f"/v1/projects/{PROJECT}/influencers", headers=auth()).json()
    assert len(listed["items"]) == 2


def test_deleted_foreign_or_unknown_source_is_404(mock: Mock, source: str) -> None:
    assert clone(mock, source, {"name": "x"}, key=GLOBEX).status_code == 404
    assert clone(mock, "inf_nope", {"name": "x"}).status_code == 404
    assert mock.client.delete(f"/v1/influencers/{source}", headers=auth()).status_code == 200
    gone = clone(mock, source, {"name": "x"})
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "NOT_FOUND"


def test_clone_needs_influencers_write(mock: Mock, source: str) -> None:
    denied = clone(mock, source, {"name": "x"}, key=NO_INFLUENCERS)
    assert denied.status_code == 403
    assert denied.json()["error"]["details"] == {"requiredScope": "influencers:write"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "x" * 129}, "name"),
        ({"name": 7}, "name"),
        ({"name": "x", "prompt": "no"}, "prompt"),
        ({"name": "x", "overrides": {"prompt": "no"}}, "overrides"),
        ({"name": "x", "overrides": {"gender": "robot"}}, "overrides"),
        ({"name": "x", "overrides": {"language": "not a tag"}}, "overrides"),
        ({"name": "x", "overrides": []}, "overrides"),
    ],
)
def test_strict_body_is_422_and_starts_nothing(
    mock: Mock, source: str, body: dict[str, Any], field: str
) -> None:
    response = clone(mock, source, body)
    assert response.status_code == 422, response.text
    assert field in response.json()["error"]["details"]["fieldErrors"]
    listed = mock.client.get(f"/v1/projects/{PROJECT}/influencers", headers=auth()).json()
    assert len(listed["items"]) == 1


def test_clone_without_a_body_is_422(mock: Mock, source: str) -> None:
    response = mock.client.post(f"/v1/influencers/{source}/clone", headers=auth())
    assert response.status_code == 422
    assert response.json()["error"]["details"]["formErrors"] == ["A JSON body is required."]
