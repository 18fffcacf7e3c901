"""The testing API's clock per organization: `mock.organization(...)` (issue 12)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from layers_mock import LayersMock, LayersMockError

START = datetime(2026, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)


@pytest.fixture(scope="module")
def shared() -> Iterator[LayersMock]:
    with LayersMock() as mock:
        yield mock


@pytest.fixture
def mock(shared: LayersMock) -> LayersMock:
    shared.reset()
    return shared


def test_a_day_for_one_organization_leaves_the_others_jobs_where_they_were(
    mock: LayersMock,
) -> None:
    ours, theirs = mock.client(), mock.client("foreign")
    mine = ours.post(f"/v1/projects/{mock.project}/influencers", json={}).json()["jobId"]
    other = theirs.post(f"/v1/projects/{mock.foreign_project}/influencers", json={}).json()
    foreign = mock.organization("foreign")
    assert foreign.detached is False and foreign.now == START
    assert foreign.advance(DAY) == START + DAY
    assert theirs.get(f"/v1/jobs/{other['jobId']}").json()["status"] == "completed"
    assert ours.get(f"/v1/jobs/{mine}").json()["stage"] == "queued"
    assert mock.now == START and foreign.detached is True
    mock.advance(2 * DAY)
    assert foreign.follow_server_clock() == START + 2 * DAY
    assert foreign.detached is False


def test_an_organization_by_id_set_clock_and_its_own_reset(mock: LayersMock) -> None:
    full = mock.organization("full")
    same = mock.organization(full.id)
    assert repr(same) == f"Organization({full.id!r})"
    assert same.set_clock("2026-03-01T10:00:00Z") == datetime(2026, 3, 1, 10, tzinfo=UTC)
    assert full.now == datetime(2026, 3, 1, 10, tzinfo=UTC)
    created = mock.client().post(f"/v1/projects/{mock.project}/influencers", json={})
    assert created.json()["startedAt"] == "2026-03-01T10:00:00.000Z"
    full.reset()
    assert full.detached is False and full.now == START
    assert mock.client().get(f"/v1/jobs/{created.json()['jobId']}").status_code == 404


def test_bad_clock_moves_raise_and_change_nothing(mock: LayersMock) -> None:
    org = mock.organization("foreign")
    org.advance(60)
    with pytest.raises(LayersMockError, match="at least 0"):
        org.advance(-1)
    with pytest.raises(LayersMockError, match="Cannot set the clock"):
        org.set_clock(START)
    with pytest.raises(LayersMockError, match="aware datetime"):
        org.set_clock(datetime(2027, 1, 1))
    with pytest.raises(LayersMockError, match="not an ISO-8601 instant"):
        org.set_clock("soon")
    with pytest.raises(LayersMockError, match="behind this organization's"):
        org.follow_server_clock()
    with pytest.raises(LayersMockError):
        org.advance(10**30)
    assert org.now == START + timedelta(seconds=60)
    with pytest.raises(LayersMockError, match="no 'nobody' key"):
        mock.organization("nobody")
    with pytest.raises(LayersMockError, match="Organization not found"):
        _ = mock.organization("org_00000000-0000-4000-8000-000000000000").now
    with pytest.raises(LayersMockError, match="belongs to no organization"):
        mock.organization("lp_test_unknown_key")


def test_an_organizations_sub_millisecond_advances_add_up(mock: LayersMock) -> None:
    """As the mock's own handle does: the mock refuses a move below its millisecond (a 422
    naming `seconds`), so the handle carries it instead of raising or losing it."""
    org = mock.organization("foreign")
    for _ in range(10):
        org.advance(0.00015)
    assert org.now - START == timedelta(milliseconds=1)
    assert org.advance(timedelta(microseconds=500)) - START == timedelta(milliseconds=2)
    org.advance(0.0007)  # 0.7 ms waits for more ...
    org.set_clock(START + timedelta(seconds=1))
    assert org.advance(0.0004) == START + timedelta(seconds=1)  # ... and went with the jump
    with pytest.raises(LayersMockError, match="seconds: Must be at least 0"):
        org.advance(-0.0001)
