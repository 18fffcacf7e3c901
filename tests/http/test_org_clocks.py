"""A clock per organization: one organization's time moves without anyone else's (issue 12).

Everything here runs strict: every answer, control plane included, is checked against the spec.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient
from support import (
    CHILD_ORG,
    CHILD_PROJECT,
    FULL,
    GLOBEX,
    GLOBEX_PROJECT,
    NORTH_ADMIN,
    NORTH_ORG,
    PROJECT,
    SEED,
    STANDARD,
    Mock,
    auth,
    make_mock,
)

from layers_mock_server.http.app import build_app
from layers_mock_server.settings import Settings, make_deps

ACME = "org_3f6c2a8e-1b7d-4c59-9e0a-5d4b8c7f1a23"
GLOBEX_ORG = "org_8d1e5f3a-6c2b-4e7d-a9f0-1b3c5d7e9f02"
START = "2026-01-01T00:00:00.000Z"
DAY = 86_400


@pytest.fixture
def mock() -> Mock:
    return make_mock()


def clock_of(mock: Mock, org: str) -> dict:
    answer = mock.client.get(f"/_mock/organizations/{org}/clock")
    assert answer.status_code == 200, answer.text
    return answer.json()


def advance(mock: Mock, org: str, seconds: float) -> dict:
    answer = mock.client.post(
        f"/_mock/organizations/{org}/clock/advance", json={"seconds": seconds}
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def status(mock: Mock, job_id: str, key: str = FULL) -> tuple[str, str]:
    body = mock.job(job_id, key).json()
    return body["status"], body["stage"]


def test_advancing_one_organization_by_a_day_leaves_the_others_jobs_where_they_were(
    mock: Mock,
) -> None:
    ours = mock.create(FULL, PROJECT, json={}).json()["jobId"]
    theirs = mock.create(GLOBEX, GLOBEX_PROJECT, json={}).json()["jobId"]
    mock.advance(16)  # the server clock: both move, both are past the first stage
    before = status(mock, ours)
    assert before == status(mock, theirs, GLOBEX) and before[0] == "running"

    moved = advance(mock, GLOBEX_ORG, DAY)
    assert moved == {
        "organizationId": GLOBEX_ORG,
        "now": "2026-01-02T00:00:16.000Z",
        "detached": True,
    }
    assert status(mock, theirs, GLOBEX)[0] == "completed"
    assert status(mock, ours) == before  # Acme's job stands where it was
    assert mock.client.get("/_mock/clock").json()["now"] == "2026-01-01T00:00:16.000Z"
    assert clock_of(mock, ACME) == {
        "organizationId": ACME,
        "now": "2026-01-01T00:00:16.000Z",
        "detached": False,
    }


def test_the_server_clock_moves_following_organizations_only(mock: Mock) -> None:
    advance(mock, GLOBEX_ORG, 10)
    mock.advance(100)
    assert clock_of(mock, ACME)["now"] == "2026-01-01T00:01:40.000Z"
    assert clock_of(mock, GLOBEX_ORG)["now"] == "2026-01-01T00:00:10.000Z"
    # set on the server clock too: the detached organization stays put
    assert mock.client.post("/_mock/clock/set", json={"now": "2026-03-01T00:00:00.000Z"}).is_success
    assert clock_of(mock, GLOBEX_ORG)["now"] == "2026-01-01T00:00:10.000Z"


def test_timestamps_of_a_detached_organization_are_its_own(mock: Mock) -> None:
    mock.client.post(
        f"/_mock/organizations/{GLOBEX_ORG}/clock/set", json={"now": "2026-06-01T12:00:00.000Z"}
    )
    project = mock.client.post(
        "/v1/projects", headers=auth(GLOBEX), json={"name": "Summer", "timezone": "UTC"}
    ).json()
    assert project["createdAt"] == project["updatedAt"] == "2026-06-01T12:00:00.000Z"
    job = mock.create(GLOBEX, GLOBEX_PROJECT, json={}).json()
    assert job["startedAt"] == "2026-06-01T12:00:00.000Z"
    influencer = mock.influencer(job["influencerId"], GLOBEX).json()
    assert influencer["createdAt"] == "2026-06-01T12:00:00.000Z"
    # the control plane's views of its jobs use its clock too
    listed = mock.client.get(f"/_mock/jobs?organizationId={GLOBEX_ORG}").json()
    assert listed["now"] == "2026-06-01T12:00:00.000Z"
    assert mock.create(FULL, PROJECT, json={}).json()["startedAt"] == START


def test_rate_limit_windows_follow_the_keys_organization(mock: Mock) -> None:
    advance(mock, ACME, 0)  # Acme has its own clock, standing at the start
    for _ in range(20):
        assert mock.create(STANDARD, json={}).status_code == 202
    limited = mock.create(STANDARD, json={})
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "60"
    mock.advance(120)  # the server's minute passes; Acme's does not
    again = mock.create(STANDARD, json={})
    assert again.status_code == 429 and again.headers["x-ratelimit-reset"] == "60"
    advance(mock, ACME, 60)
    assert mock.create(STANDARD, json={}).status_code == 202


def test_idempotency_expiry_follows_the_organizations_clock(mock: Mock) -> None:
    advance(mock, ACME, 0)
    first = mock.create(json={}, headers={"Idempotency-Key": "k1"})
    mock.advance(2 * DAY)  # the server's days pass; the record is Acme's, on Acme's clock
    assert mock.create(json={}, headers={"Idempotency-Key": "k1"}).content == first.content
    advance(mock, ACME, DAY)
    fresh = mock.create(json={}, headers={"Idempotency-Key": "k1"})
    assert fresh.status_code == 202
    assert fresh.json()["jobId"] != first.json()["jobId"]


def test_a_parent_acting_in_a_child_keeps_its_records_on_the_childs_clock(mock: Mock) -> None:
    headers = {"X-Layers-Organization": CHILD_ORG, "Idempotency-Key": "p1"}
    first = mock.create(NORTH_ADMIN, CHILD_PROJECT, json={}, headers=headers)
    assert first.status_code == 202 and first.json()["startedAt"] == START
    advance(mock, NORTH_ORG, 2 * DAY)  # the parent's days: the child's records stand
    assert mock.create(NORTH_ADMIN, CHILD_PROJECT, json={}, headers=headers).content == (
        first.content
    )
    advance(mock, CHILD_ORG, DAY)
    again = mock.create(NORTH_ADMIN, CHILD_PROJECT, json={}, headers=headers)
    assert again.status_code == 202
    assert again.json()["startedAt"] == "2026-01-02T00:00:00.000Z"  # the child's instant
    assert again.json()["jobId"] != first.json()["jobId"]


def test_following_the_server_clock_again_never_runs_time_backwards(mock: Mock) -> None:
    advance(mock, GLOBEX_ORG, 60)
    refused = mock.client.post(f"/_mock/organizations/{GLOBEX_ORG}/clock/reset")
    assert refused.status_code == 422
    error = refused.json()["error"]
    assert error["message"] == "The organization's clock cannot follow the server clock yet."
    assert "behind this organization's" in error["details"]["formErrors"][0]
    assert clock_of(mock, GLOBEX_ORG)["detached"] is True  # nothing changed
    mock.advance(90)
    followed = mock.client.post(f"/_mock/organizations/{GLOBEX_ORG}/clock/reset")
    assert followed.json() == {
        "organizationId": GLOBEX_ORG,
        "now": "2026-01-01T00:01:30.000Z",
        "detached": False,
    }
    mock.advance(1)
    assert clock_of(mock, GLOBEX_ORG)["now"] == "2026-01-01T00:01:31.000Z"


def test_resets_return_organization_clocks_to_the_server_clock(mock: Mock) -> None:
    advance(mock, GLOBEX_ORG, DAY)
    advance(mock, ACME, 5)
    reset = mock.client.post("/_mock/reset", json={"organizationId": GLOBEX_ORG})
    assert reset.status_code == 200
    assert clock_of(mock, GLOBEX_ORG) == {
        "organizationId": GLOBEX_ORG,
        "now": START,
        "detached": False,
    }
    assert clock_of(mock, ACME)["detached"] is True  # another organization's reset: untouched
    assert mock.client.post("/_mock/reset", json={}).status_code == 200
    assert clock_of(mock, ACME) == {"organizationId": ACME, "now": START, "detached": False}


def test_the_bare_uuid_names_the_organization_too(mock: Mock) -> None:
    assert clock_of(mock, GLOBEX_ORG.removeprefix("org_"))["organizationId"] == GLOBEX_ORG


@pytest.mark.parametrize(
    "org",
    [
        "org_00000000-0000-4000-8000-000000000000",  # well formed, unknown
        "nope",
        "org_",
        "org_3f6c2a8e-1b7d-4c59-9e0a-5d4b8c7f1a2",  # one digit short
        "%00",
        "org_3f6c2a8e-1b7d-4c59-9e0a-5d4b8c7f1a23%20",
        "x" * 200,
        "ORG_3F6C2A8E-1B7D-4C59-9E0A-5D4B8C7F1A23",
    ],
)
def test_an_unknown_or_malformed_organization_is_404_on_every_clock_route(
    mock: Mock, org: str
) -> None:
    base = f"/_mock/organizations/{org}/clock"
    answers = [
        mock.client.get(base),
        mock.client.post(base + "/advance", json={"seconds": 1}),
        mock.client.post(base + "/set", json={"now": "2026-02-01T00:00:00.000Z"}),
        mock.client.post(base + "/reset"),
    ]
    for answer in answers:
        assert answer.status_code == 404, answer.text
        assert answer.json()["error"]["message"] == "Organization not found."
    assert mock.deps.sim.state.clocks.detached == {}


@pytest.mark.parametrize(
    "seconds",
    [-1, -0.001, "60", True, False, None, [1], {"s": 1}, 253_402_300_800.5, 10**30, 1e308],
)
def test_a_bad_advance_is_422_and_moves_nothing(mock: Mock, seconds: object) -> None:
    answer = mock.client.post(
        f"/_mock/organizations/{ACME}/clock/advance", json={"seconds": seconds}
    )
    assert answer.status_code == 422, answer.text
    assert clock_of(mock, ACME) == {"organizationId": ACME, "now": START, "detached": False}


def test_an_advance_past_the_end_of_time_is_422_and_moves_nothing(mock: Mock) -> None:
    advance(mock, ACME, 253_402_300_799.999 - 1_767_225_600)  # to the last instant exactly
    assert clock_of(mock, ACME)["now"] == "9999-12-31T23:59:59.999Z"
    past = mock.client.post(f"/_mock/organizations/{ACME}/clock/advance", json={"seconds": 0.001})
    assert past.status_code == 422
    assert clock_of(mock, ACME)["now"] == "9999-12-31T23:59:59.999Z"
    assert mock.create(json={}).status_code == 202  # and it still answers partner requests


@pytest.mark.parametrize(
    "now",
    [
        "2025-12-31T23:59:59.999Z",  # before the organization's now
        "1969-12-31T23:59:59Z",
        "2026-02-01T00:00:00",  # no offset
        "next tuesday",
        "",
        "2026-02-30T00:00:00Z",
        "9999-12-31T23:59:59.999-01:00",  # past the last instant
        12345,
        None,
        True,
    ],
)
def test_a_bad_set_is_422_and_moves_nothing(mock: Mock, now: object) -> None:
    answer = mock.client.post(f"/_mock/organizations/{ACME}/clock/set", json={"now": now})
    assert answer.status_code == 422, answer.text
    assert clock_of(mock, ACME)["detached"] is False


def test_a_set_in_another_format_is_told_the_format(mock: Mock) -> None:
    """`…:00Z` (no milliseconds) is refused with the format the clock wants, not only "wrong"."""
    for base in (f"/_mock/organizations/{ACME}/clock", "/_mock/clock"):
        answer = mock.client.post(f"{base}/set", json={"now": "2026-02-01T00:00:00Z"})
        assert answer.status_code == 422, answer.text
        message = answer.json()["error"]["details"]["fieldErrors"]["now"][0]
        assert message == r"Must match ^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$."


def test_extra_or_missing_fields_are_422(mock: Mock) -> None:
    base = f"/_mock/organizations/{ACME}/clock"
    assert mock.client.post(base + "/advance", json={}).status_code == 422
    assert mock.client.post(base + "/advance", json={"seconds": 1, "x": 1}).status_code == 422
    assert mock.client.post(base + "/set", json={"seconds": 1}).status_code == 422
    assert mock.client.post(base + "/advance", content=b"{").status_code == 422
    assert clock_of(mock, ACME)["detached"] is False


def test_a_detached_clock_survives_a_restart_and_travels_in_an_export(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    settings = Settings(clock="virtual", seed=SEED, state=f"sqlite:{path}", strict=True)
    with TestClient(build_app(make_deps(settings))) as client:
        job = client.post(f"/v1/projects/{GLOBEX_PROJECT}/influencers", headers=auth(GLOBEX))
        client.post(f"/_mock/organizations/{GLOBEX_ORG}/clock/advance", json={"seconds": DAY})
        exported = client.get("/_mock/state").json()
    assert exported["format"] == "layers-mock/state@2"
    assert exported["clock"]["organizations"] == {GLOBEX_ORG: 1_767_225_600_000 + DAY * 1000}
    with TestClient(build_app(make_deps(settings))) as client:
        clock = client.get(f"/_mock/organizations/{GLOBEX_ORG}/clock").json()
        assert clock == {
            "organizationId": GLOBEX_ORG,
            "now": "2026-01-02T00:00:00.000Z",
            "detached": True,
        }
        polled = client.get(f"/v1/jobs/{job.json()['jobId']}", headers=auth(GLOBEX)).json()
        assert polled["status"] == "completed"
        assert client.get(f"/_mock/organizations/{ACME}/clock").json()["detached"] is False
    fresh = make_mock()
    assert fresh.client.put("/_mock/state", json=exported).status_code == 200
    assert clock_of(fresh, GLOBEX_ORG)["now"] == "2026-01-02T00:00:00.000Z"
    assert clock_of(fresh, ACME)["detached"] is False


@pytest.mark.parametrize(
    ("clocks", "problem"),
    [
        ({"org_00000000-0000-4000-8000-000000000000": 0}, "unknown organization"),
        ({GLOBEX_ORG: -1}, "clock.organizations"),
        ({GLOBEX_ORG: 253_402_300_800_000}, "clock.organizations"),
        ({GLOBEX_ORG: "soon"}, "clock.organizations"),
        ({GLOBEX_ORG: 1.5}, "clock.organizations"),
        ({"": 0}, "clock.organizations"),
        ([GLOBEX_ORG], "clock.organizations"),
    ],
)
def test_an_import_with_a_bad_organization_clock_is_422_and_changes_nothing(
    mock: Mock, clocks: object, problem: str
) -> None:
    document = mock.client.get("/_mock/state").json()
    document["clock"]["organizations"] = clocks
    answer = mock.client.put("/_mock/state", json=document)
    assert answer.status_code == 422, answer.text
    assert problem in " ".join(answer.json()["error"]["details"]["formErrors"])
    assert mock.deps.sim.state.clocks.detached == {}


def test_a_running_job_at_the_end_of_time_reads_on_the_control_plane_without_a_500(
    mock: Mock,
) -> None:
    # An organization's clock set to the last instant: its job's next stage would be past it.
    answer = mock.client.post(
        f"/_mock/organizations/{ACME}/clock/set", json={"now": "9999-12-31T23:59:59.999Z"}
    )
    assert answer.status_code == 200, answer.text
    job_id = mock.create(FULL, PROJECT, json={}).json()["jobId"]
    detail = mock.client.get(f"/_mock/jobs/{job_id}")
    assert detail.status_code == 200, detail.text
    assert detail.json()["summary"]["status"] == "running"
    assert detail.json()["summary"]["nextBoundaryAt"] is None  # never reached: time ends first
    listed = mock.client.get("/_mock/jobs")
    assert listed.status_code == 200, listed.text
    assert mock.client.get("/_mock/ui").status_code == 200
