"""The 202 → poll → ready flow over HTTP, on the virtual clock (no sleeping)."""

from __future__ import annotations

import pytest
from support import GLOBEX, GLOBEX_PROJECT, PROJECT, Mock, auth, make_mock


def test_accept_envelope_and_location(mock: Mock) -> None:
    response = mock.create(json={"gender": "male", "prompt": "barista energy"})
    assert response.status_code == 202
    body = response.json()
    assert response.headers["location"] == body["locationUrl"] == f"/v1/jobs/{body['jobId']}"
    assert (body["kind"], body["status"], body["stage"], body["projectId"]) == (
        "influencer_create",
        "running",
        "queued",
        PROJECT,
    )
    assert body["startedAt"] == "2026-01-01T00:00:00.000Z"


def test_influencer_exists_at_once_pending(mock: Mock) -> None:
    influencer_id = mock.create(json={}).json()["influencerId"]
    influencer = mock.influencer(influencer_id).json()
    assert (influencer["status"], influencer["name"], influencer["imageUrl"]) == (
        "pending",
        None,
        None,
    )
    listing = mock.client.get(f"/v1/projects/{PROJECT}/influencers", headers=auth()).json()
    assert [i["influencerId"] for i in listing["items"]] == [influencer_id]


def test_job_walks_the_stage_table_and_influencer_follows(mock: Mock) -> None:
    accepted = mock.create(json={}).json()
    seen = []
    for seconds in (0, 2, 13, 20, 20, 5):
        mock.advance(seconds)
        job = mock.job(accepted["jobId"]).json()
        influencer = mock.influencer(accepted["influencerId"]).json()
        seen.append((job["status"], job["stage"], influencer["status"]))
    assert seen == [
        ("running", "queued", "pending"),
        ("running", "generating_persona", "pending"),
        ("running", "rendering_portrait", "training"),
        ("running", "training", "training"),
        ("running", "finalizing", "training"),
        ("completed", "finalizing", "ready"),
    ]
    job = mock.job(accepted["jobId"]).json()
    assert job["result"] == {"influencerId": accepted["influencerId"]}
    assert (job["progress"], job["startedAt"], job["finishedAt"]) == (
        1.0,
        "2026-01-01T00:00:00.000Z",
        "2026-01-01T00:01:00.000Z",
    )
    influencer = mock.influencer(accepted["influencerId"]).json()
    assert influencer["name"] and influencer["imageUrl"].startswith("https://")
    assert influencer["updatedAt"] == "2026-01-01T00:01:00.000Z"


def test_progress_only_grows(mock: Mock) -> None:
    job_id = mock.create(json={}).json()["jobId"]
    progress = []
    for _ in range(13):
        progress.append(mock.job(job_id).json()["progress"])
        mock.advance(5)
    assert progress == sorted(progress)
    assert progress[0] == 0 and progress[-1] == 1


@pytest.mark.parametrize(
    ("prefer", "status", "stage", "at"),
    [
        ("outcome=failed", "failed", "finalizing", 60),
        ("outcome=failed; stage=training", "failed", "training", 55),
        ("outcome=canceled, stage=queued", "canceled", "queued", 2),
    ],
)
def test_prefer_outcome_decides_the_end(
    mock: Mock, prefer: str, status: str, stage: str, at: int
) -> None:
    accepted = mock.create(json={}, headers={"Prefer": prefer}).json()
    mock.advance(at - 0.001)
    assert mock.job(accepted["jobId"]).json()["status"] == "running"
    mock.advance(0.001)
    job = mock.job(accepted["jobId"]).json()
    assert (job["status"], job["stage"]) == (status, stage)
    assert "result" not in job
    influencer = mock.influencer(accepted["influencerId"]).json()
    assert influencer["status"] == "failed"
    assert influencer["errorMessage"]
    if status == "failed":
        assert job["error"]["code"] == "GENERATION_FAILED"
    else:
        assert "canceled" in influencer["errorMessage"]


def test_etag_changes_exactly_when_the_envelope_changes(mock: Mock) -> None:
    job_id = mock.create(json={}).json()["jobId"]
    first = mock.job(job_id)
    again = mock.job(job_id)
    assert first.headers["etag"] == again.headers["etag"] and first.content == again.content
    unchanged = mock.job(job_id, **{"If-None-Match": first.headers["etag"]})
    assert unchanged.status_code == 304
    assert unchanged.content == b""
    assert unchanged.headers["etag"] == first.headers["etag"]
    mock.advance(3)
    moved = mock.job(job_id, **{"If-None-Match": first.headers["etag"]})
    assert moved.status_code == 200
    assert moved.headers["etag"] != first.headers["etag"]


def test_a_job_minted_again_after_a_reset_is_read_as_it_is_now() -> None:
    """A reset rewinds the id counters, so the next job gets the same id as the first one,
    here in another organization's project: its read shows the new job, never the body or
    ETag rendered for the old record of that id."""
    mock = make_mock()
    job_id = mock.create(json={}).json()["jobId"]
    old = mock.job(job_id)
    assert old.json()["projectId"] == PROJECT
    assert mock.client.post("/_mock/reset").status_code == 200
    again = mock.create(GLOBEX, GLOBEX_PROJECT, json={}).json()["jobId"]
    assert again == job_id
    new = mock.job(job_id, GLOBEX, **{"If-None-Match": old.headers["etag"]})
    assert new.status_code == 200
    assert new.json()["projectId"] == GLOBEX_PROJECT
    assert new.headers["etag"] != old.headers["etag"]
    assert mock.job(job_id).status_code == 404  # Acme's key: not its job any more


def test_cancel_has_three_answers(mock: Mock) -> None:
    early = mock.create(json={}).json()["jobId"]
    late = mock.create(json={}).json()["jobId"]
    response = mock.client.post(f"/v1/jobs/{early}/cancel", headers=auth())
    assert (response.status_code, response.json()) == (202, {"jobId": early, "accepted": True})
    assert mock.job(early).json()["status"] == "canceled"
    response = mock.client.post(f"/v1/jobs/{early}/cancel", headers=auth())
    assert response.status_code == 200
    assert response.json() == {"jobId": early, "accepted": False, "reason": "ALREADY_CANCELED"}
    mock.advance(56)
    response = mock.client.post(f"/v1/jobs/{late}/cancel", headers=auth())
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "CONFLICT"
    assert error["details"] == {
        "subcode": "JOB_CANCEL_UNAVAILABLE",
        "jobId": late,
        "stage": "finalizing",
    }
    mock.advance(4)
    response = mock.client.post(f"/v1/jobs/{late}/cancel", headers=auth())
    assert response.json()["reason"] == "ALREADY_COMPLETED"


def test_poll_progression_each_read_moves_one_stage() -> None:
    mock = make_mock(progression="poll")
    job_id = mock.create(json={}).json()["jobId"]
    stages = [mock.job(job_id).json() for _ in range(6)]
    assert [(j["status"], j["stage"]) for j in stages] == [
        ("running", "generating_persona"),
        ("running", "rendering_portrait"),
        ("running", "training"),
        ("running", "finalizing"),
        ("completed", "finalizing"),
        ("completed", "finalizing"),
    ]


def test_prefer_progression_poll_on_one_job_only(mock: Mock) -> None:
    polled = mock.create(json={}, headers={"Prefer": "progression=poll"}).json()["jobId"]
    timed = mock.create(json={}).json()["jobId"]
    for _ in range(5):
        mock.job(polled)
    assert mock.job(polled).json()["status"] == "completed"
    assert mock.job(timed).json()["stage"] == "queued"


def test_content_length_is_the_body_size_below_and_above_the_precomputed_lengths(
    mock: Mock,
) -> None:
    """Content-Length comes from a table for bodies under 1 KiB and is formatted above it:
    either way it is the size of the body sent."""
    job_id = mock.create(json={}).json()["jobId"]
    for _ in range(8):
        assert mock.create(json={"prompt": "p" * 60}).status_code == 202
    small = mock.job(job_id)
    large = mock.client.get(f"/v1/projects/{PROJECT}/influencers", headers=auth())
    assert len(small.content) < 1024 < len(large.content)
    for response in (small, large):
        assert int(response.headers["content-length"]) == len(response.content)
