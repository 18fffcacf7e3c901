"""The list index (core/listing.py) answers exactly what a scan of the list would, at any time.

A Hypothesis run drives the simulator with creates of every kind of job, clock moves, cancels,
polls and deletes, and compares every page (any status, limit and cursor) with a brute-force
scan of the influencers' derived statuses.
"""

from __future__ import annotations

import contextlib
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from layers_mock_server.core.clock import Clock
from layers_mock_server.core.errors import ApiError
from layers_mock_server.core.fixtures import load_fixtures
from layers_mock_server.core.jobs import STAGES
from layers_mock_server.core.listing import decode_cursor, encode_cursor
from layers_mock_server.core.simulator import JobPlan, Simulator

PROJECT = "prj_254a4ce1-f4ca-42b1-9e36-17ca45ef3d39"
STATUSES = (None, "pending", "training", "ready", "failed")

plans = st.builds(
    JobPlan,
    outcome=st.sampled_from(["completed", "failed", "canceled"]),
    end_stage=st.integers(0, len(STAGES) - 1),
    progression=st.sampled_from(["time", "time", "poll"]),
)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("create"), plans),
        # whole seconds hit the stage boundaries exactly; odd milliseconds fall between them
        st.tuples(
            st.just("advance"),
            st.one_of(
                st.sampled_from([1, 2, 5, 13, 15, 20, 35, 55, 60]), st.integers(0, 70_000)
            ).map(lambda n: n * 1000 if n <= 60 else n),
        ),
        st.tuples(st.just("cancel"), st.integers(0, 50)),
        st.tuples(st.just("poll"), st.integers(0, 50)),
        st.tuples(st.just("delete"), st.integers(0, 50)),
        st.tuples(st.just("check"), st.sampled_from(STATUSES)),
    ),
    max_size=40,
)


def scan(sim: Simulator, status: str | None) -> list[str]:
    project = sim.state.projects[PROJECT]
    out = []
    for influencer_id in reversed(project.influencer_ids):
        inf = sim.state.influencers[influencer_id]
        if inf.deleted_ms is None:
            view = sim.influencer_body(inf)
            if status is None or view["status"] == status:
                out.append(influencer_id)
    return out


def pages(sim: Simulator, status: str | None, limit: int) -> list[str]:
    project = sim.state.projects[PROJECT]
    seen: list[str] = []
    cursor = None
    for _ in range(200):
        page: dict[str, Any] = sim.list_influencers(project, limit, cursor, status)
        assert len(page["items"]) <= limit
        seen += [item["influencerId"] for item in page["items"]]
        assert all(status is None or item["status"] == status for item in page["items"])
        cursor = page["nextCursor"]
        if cursor is None:
            return seen
    raise AssertionError("the pages never ended")


@settings(max_examples=60, deadline=None)
@given(steps=steps, limit=st.integers(1, 4))
def test_every_page_matches_a_scan(steps: list[tuple[str, Any]], limit: int) -> None:
    clock = Clock("virtual")
    sim = Simulator(load_fixtures(), clock, seed=1)
    project = sim.state.projects[PROJECT]
    for action, arg in steps:
        ids = project.influencer_ids
        if action == "create":
            sim.create_influencer(project, {}, arg)
        elif action == "advance":
            clock.advance(arg / 1000)
        elif action == "check":
            assert pages(sim, arg, limit) == scan(sim, arg)
        elif ids:
            inf = sim.state.influencers[ids[arg % len(ids)]]
            if inf.deleted_ms is not None:
                continue
            job = sim.state.jobs[inf.job_id]
            if action == "cancel":
                with contextlib.suppress(ApiError):  # finalizing: not cancelable
                    sim.cancel_job(job)
            elif action == "poll":
                sim.job_body(job)
            else:
                sim.delete_influencer(inf)
    for status in STATUSES:
        assert pages(sim, status, limit) == scan(sim, status)


@given(st.integers(0, 32**12 - 1))
def test_every_cursor_round_trips(position: int) -> None:
    assert decode_cursor(encode_cursor(position)) == position


def test_a_rebuilt_index_answers_like_the_live_one() -> None:
    clock = Clock("virtual")
    sim = Simulator(load_fixtures(), clock, seed=1)
    project = sim.state.projects[PROJECT]
    for n in range(30):
        sim.create_influencer(project, {}, JobPlan("failed" if n % 3 else "completed", n % 5))
        clock.advance(7)
    live = {status: scan(sim, status) for status in STATUSES}
    sim.state.listings.clear()  # as after an import or a restart on a durable store
    assert {status: pages(sim, status, 4) for status in STATUSES} == live


def test_pages_match_a_scan_on_every_stage_boundary() -> None:
    """At the very millisecond a job changes stage, and one either side of it."""
    clock = Clock("virtual")
    sim = Simulator(load_fixtures(), clock, seed=1)
    project = sim.state.projects[PROJECT]
    for outcome, stage in [("completed", 4), ("failed", 0), ("failed", 2), ("canceled", 3)]:
        sim.create_influencer(project, {}, JobPlan(outcome, stage))  # type: ignore[arg-type]
    elapsed = 0
    for boundary in (2_000, 15_000, 35_000, 55_000, 60_000):
        for at in (boundary - 1, boundary, boundary + 1):
            clock.advance((at - elapsed) / 1000)
            elapsed = at
            for status in STATUSES:
                assert pages(sim, status, 2) == scan(sim, status), (at, status)
