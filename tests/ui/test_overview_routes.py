"""The read-only control routes the dashboard is built on: /_mock/jobs, /_mock/projects, chaos.

Every test runs strict, so each answer is also checked against control.yaml.
"""

from __future__ import annotations

import pytest
from support import FULL, GLOBEX, GLOBEX_PROJECT, PROJECT, Mock, auth, make_mock

from layers_mock_server.core import overview
from layers_mock_server.core.chaos import ChaosProfile

ACME = "org_3f6c2a8e-1b7d-4c59-9e0a-5d4b8c7f1a23"
GLOBEX_ORG = "org_8d1e5f3a-6c2b-4e7d-a9f0-1b3c5d7e9f02"


def jobs(mock: Mock, query: str = "") -> list[dict]:
    response = mock.client.get("/_mock/jobs" + query)
    assert response.status_code == 200, response.text
    return response.json()["items"]


def test_jobs_are_listed_newest_first_with_stage_plan_and_next_boundary(mock: Mock) -> None:
    first = mock.create(json={}).json()["jobId"]
    mock.advance(16)
    failing = mock.create(json={}, headers={"Prefer": "outcome=failed; stage=training"}).json()
    listed = jobs(mock)
    assert [j["jobId"] for j in listed] == [failing["jobId"], first]
    moving = listed[1]
    assert moving["stage"] == "rendering_portrait" and moving["stageIndex"] == 2
    assert moving["stageProgress"] == 0.05  # 1 s into a 20 s stage
    assert moving["nextBoundaryAt"] == "2026-01-01T00:00:35.000Z"
    assert moving["plan"] == {"outcome": "completed", "endStage": None, "progression": "time"}
    assert listed[0]["plan"]["outcome"] == "failed" and listed[0]["plan"]["endStage"] == "training"
    # jumping to the announced boundary shows the next stage
    mock.client.post("/_mock/clock/set", json={"now": moving["nextBoundaryAt"]})
    assert jobs(mock)[1]["stage"] == "training"


def test_the_detail_is_exactly_what_the_partner_reads(mock: Mock) -> None:
    job_id = mock.create(json={}).json()["jobId"]
    mock.advance(61)
    detail = mock.client.get(f"/_mock/jobs/{job_id}").json()
    partner_job = mock.job(job_id).json()
    assert detail["job"] == partner_job
    assert detail["influencer"] == mock.influencer(partner_job["influencerId"]).json()
    assert (
        detail["summary"]["status"] == "completed" and detail["summary"]["nextBoundaryAt"] is None
    )
    mock.client.delete(f"/v1/influencers/{partner_job['influencerId']}", headers=auth())
    gone = mock.client.get(f"/_mock/jobs/{job_id}").json()
    assert gone["influencer"] is None and gone["summary"]["influencerStatus"] == "deleted"


def test_reading_a_poll_progression_job_here_does_not_move_it() -> None:
    mock = make_mock(progression="poll")
    with mock.client:
        job_id = mock.create(json={}, headers={"Prefer": "progression=poll"}).json()["jobId"]
        for _ in range(3):
            mock.client.get("/_mock/jobs")
            mock.client.get(f"/_mock/jobs/{job_id}")
            mock.client.get("/_mock/ui/live")
        assert mock.job(job_id).json()["stage"] == "generating_persona"  # the first real poll


def test_filters_combine_with_and(mock: Mock) -> None:
    acme = mock.create(json={}).json()["jobId"]
    globex = mock.create(key=GLOBEX, project=GLOBEX_PROJECT, json={}).json()["jobId"]
    mock.advance(61)
    failed = mock.create(json={}, headers={"Prefer": "outcome=failed; stage=queued"}).json()
    mock.advance(3)
    assert [j["jobId"] for j in jobs(mock, f"?organizationId={ACME}")] == [failed["jobId"], acme]
    assert [j["jobId"] for j in jobs(mock, f"?projectId={GLOBEX_PROJECT}")] == [globex]
    assert [j["jobId"] for j in jobs(mock, "?status=failed")] == [failed["jobId"]]
    assert jobs(mock, f"?organizationId={GLOBEX_ORG}&status=failed") == []
    # a project of another organization: the intersection is empty, not an error
    assert jobs(mock, f"?organizationId={GLOBEX_ORG}&projectId={PROJECT}") == []
    assert [j["jobId"] for j in jobs(mock, "?limit=1")] == [failed["jobId"]]


def test_a_status_filter_examines_a_bounded_number_of_jobs(
    mock: Mock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(overview, "MAX_SCAN", 3)
    for _ in range(5):
        mock.create(json={})
    body = mock.client.get("/_mock/jobs?status=completed").json()
    assert body == {"now": body["now"], "items": [], "truncated": True}
    found = mock.client.get("/_mock/jobs?status=running&limit=2").json()
    assert len(found["items"]) == 2 and found["truncated"] is False


HOSTILE_LIMITS = [
    ("limit=0", 422),
    ("limit=201", 422),
    ("limit=-1", 422),
    ("limit=1.5", 422),
    ("limit=abc", 422),
    ("limit=99999999999999999999999", 422),
    ("limit=5&limit=abc", 422),  # given twice: named, not one of them picked
]
HOSTILE_FILTERS = [
    ("status=bogus", 422),
    ("status=", 422),
    ("status=RUNNING", 422),
    ("organizationId=", 422),
    ("organizationId=" + "o" * 201, 422),
    ("projectId=", 422),
    ("organizationId=org_nope", 404),
    ("projectId=prj_nope", 404),
    ("projectId=%00", 404),
    ("projectId=%00%ff", 422),  # not UTF-8
    ("%ff%fe=1", 422),
    ("organizationId=%27%3B--%3Cscript%3E", 404),
    ("projectId=prj_254a4ce1-f4ca-42b1-9e36-17ca45ef3d39%0a", 404),
    ("unknown=1", 200),
]


@pytest.mark.parametrize(("query", "status"), HOSTILE_LIMITS)
def test_hostile_limits_are_answered_in_the_envelope(mock: Mock, query: str, status: int) -> None:
    response = mock.client.get(f"/_mock/jobs?{query}")
    assert response.status_code == status, response.text


@pytest.mark.parametrize(("query", "status"), HOSTILE_FILTERS)
def test_hostile_filters_are_answered_in_the_envelope(mock: Mock, query: str, status: int) -> None:
    for path in ("/_mock/jobs", "/_mock/ui", "/_mock/ui/live"):
        response = mock.client.get(f"{path}?{query}")
        expected = 200 if query.endswith("=") and path.startswith("/_mock/ui") else status
        assert response.status_code == expected, (path, response.text)
        if expected >= 400:
            assert response.json()["error"]["requestId"] == response.headers["x-request-id"]


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/_mock/jobs/job_nope", 404),
        ("/_mock/jobs/%00", 404),
        ("/_mock/jobs/" + "j" * 5000, 404),
        ("/_mock/projects?limit=0", 422),
        ("/_mock/projects?limit=1001", 422),
        ("/_mock/projects?organizationId=org_nope", 404),
        ("/_mock/ui/jobs/job_nope", 404),
        ("/_mock/ui/requests/0", 404),
        ("/_mock/ui/requests/-1", 404),
        ("/_mock/ui/requests/1e3", 404),
        ("/_mock/ui/requests/%20", 404),
        ("/_mock/ui/assets/..%2Fpages.py", 404),
        ("/_mock/ui/assets/layers.css%00", 404),
        ("/_mock/ui/assets/__init__.py", 404),
    ],
)
def test_hostile_paths_are_404_or_422(mock: Mock, path: str, status: int) -> None:
    response = mock.client.get(path)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] in ("NOT_FOUND", "VALIDATION")


def test_projects_lists_fixtures_then_created_ones(mock: Mock) -> None:
    created = mock.client.post(
        "/v1/projects", headers=auth(FULL), json={"name": "Side project", "timezone": "UTC"}
    ).json()
    mock.create(json={})
    body = mock.client.get("/_mock/projects").json()
    fixtures = mock.client.get("/_mock/fixtures").json()["organizations"]
    loaded = [p["projectId"] for org in fixtures for p in org["projects"]]
    assert [p["projectId"] for p in body["items"]] == [*loaded, created["id"]]
    counts = {p["name"]: p["influencers"] for p in body["items"]}
    assert counts["Acme Coffee"] == 1 and counts["Side project"] == 0
    only = mock.client.get(f"/_mock/projects?organizationId={GLOBEX_ORG}&limit=1").json()
    assert [p["name"] for p in only["items"]] == ["Globex Studio"] and not only["truncated"]
    assert mock.client.get("/_mock/projects?limit=1").json()["truncated"] is True


def test_chaos_profile_is_readable(mock: Mock) -> None:
    assert mock.client.get("/_mock/chaos").json() == {"profile": None}
    mock.deps.chaos = ChaosProfile.parse({"faults": {"503": 0.25}, "latency": {"ms": 800}})
    assert mock.client.get("/_mock/chaos").json() == {
        "profile": {"faults": {"503": 0.25}, "latency": {"probability": 0.0, "ms": 800}}
    }


def test_read_routes_need_the_admin_token_when_one_is_set(mock: Mock) -> None:
    mock.deps.admin_token = "s3cret"
    for path in ("/_mock/jobs", "/_mock/projects", "/_mock/chaos", "/_mock/jobs/job_x"):
        assert mock.client.get(path).status_code == 401
        assert mock.client.get(path + "?token=s3cret").status_code == 401  # header only
        ok = mock.client.get(path, headers={"Authorization": "bearer s3cret"})
        assert ok.status_code in (200, 404)
