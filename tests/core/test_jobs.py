"""The job lifecycle as a pure function of facts and time (CONTRACT.md, Job lifecycle)."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from layers_mock_server.core.jobs import (
    STAGES,
    JobFacts,
    influencer_status,
    job_state,
    record_poll,
)

START = 1_000_000


def job(**facts: object) -> JobFacts:
    return JobFacts("job_X", "org", "prj", "inf", START, **facts)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("seconds", "stage", "influencer"),
    [
        (0, "queued", "pending"),
        (1.999, "queued", "pending"),
        (2, "generating_persona", "pending"),
        (15, "rendering_portrait", "training"),
        (35, "training", "training"),
        (55, "finalizing", "training"),
        (59.999, "finalizing", "training"),
    ],
)
def test_stage_table(seconds: float, stage: str, influencer: str) -> None:
    state = job_state(job(), START + int(seconds * 1000))
    assert state.status == "running"
    assert STAGES[state.stage] == stage
    assert influencer_status(state) == influencer


def test_completes_at_sixty_seconds_with_full_progress() -> None:
    state = job_state(job(), START + 60_000)
    assert (state.status, state.progress, state.finished_ms) == ("completed", 1.0, START + 60_000)
    assert influencer_status(state) == "ready"


def test_failed_outcome_ends_in_its_stage() -> None:
    facts = job(outcome="failed", end_stage=STAGES.index("training"))
    assert job_state(facts, START + 54_999).status == "running"
    state = job_state(facts, START + 55_000)
    assert (state.status, STAGES[state.stage]) == ("failed", "training")
    assert influencer_status(state) == "failed"


def test_cancel_takes_effect_at_its_instant_and_keeps_the_stage() -> None:
    facts = job(cancel_ms=START + 20_000)
    state = job_state(facts, START + 25_000)
    assert (state.status, STAGES[state.stage], state.finished_ms) == (
        "canceled",
        "rendering_portrait",
        START + 20_000,
    )


def test_poll_progression_moves_one_stage_per_read() -> None:
    facts = job(progression="poll")
    seen = []
    for n in range(7):
        record_poll(facts, START + n)
        state = job_state(facts, START + n)
        seen.append(state.status if state.status != "running" else STAGES[state.stage])
    assert seen == [*STAGES[1:], "completed", "completed", "completed"]


@settings(max_examples=200, derandomize=True, database=None)
@given(
    times=st.lists(st.integers(min_value=0, max_value=120_000), min_size=2, max_size=30),
    outcome=st.sampled_from(["completed", "failed", "canceled"]),
    end_stage=st.integers(min_value=0, max_value=4),
    cancel_at=st.none() | st.integers(min_value=0, max_value=120_000),
)
def test_status_stage_and_progress_never_go_back(
    times: list[int], outcome: str, end_stage: int, cancel_at: int | None
) -> None:
    facts = job(
        outcome=outcome,
        end_stage=end_stage,
        cancel_ms=None if cancel_at is None else START + cancel_at,
    )
    rank = {"running": 0, "completed": 1, "failed": 1, "canceled": 1}
    states = [job_state(facts, START + t) for t in sorted(times)]
    for before, after in pairwise(states):
        assert rank[before.status] <= rank[after.status]
        assert before.progress <= after.progress
        assert 0 <= after.progress <= 1
        if before.status != "running":
            assert after == before  # a terminal job never changes again
