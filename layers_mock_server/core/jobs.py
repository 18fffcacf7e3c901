"""Jobs as facts; status, stage and progress are derived from the facts and the clock.

Nothing here moves by itself: a job records when it started, its outcome and any cancel
request, and `job_state(job, now_ms)` answers what a poll at `now_ms` sees. A restart, a
second worker or a clock that jumps a day all see the same truth, in O(1).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

Outcome = Literal["completed", "failed", "canceled"]
Progression = Literal["time", "poll"]
Status = Literal["running", "completed", "failed", "canceled"]

KIND = "influencer_create"
STAGES: tuple[str, ...] = (
    "queued",
    "generating_persona",
    "rendering_portrait",
    "training",
    "finalizing",
)
# Millisecond offset from startedAt at which each stage begins; the last entry is completion.
DEFAULT_SCHEDULE_MS: tuple[int, ...] = (0, 2_000, 15_000, 35_000, 55_000, 60_000)
NOT_CANCELABLE = frozenset({"finalizing"})
DONE = len(STAGES)  # the stage index that means "the schedule has run out"

FAILURE_CODE = "GENERATION_FAILED"
FAILURE_MESSAGES = {
    "queued": "The job could not be scheduled.",
    "generating_persona": "Persona generation failed.",
    "rendering_portrait": "Portrait rendering failed.",
    "training": "Model training failed.",
    "finalizing": "Finalizing the influencer failed.",
}
CANCELED_MESSAGE = "Canceled: the influencer_create job was canceled before it finished."


@dataclass(slots=True)
class JobFacts:
    """What happened to a job. `cancel_ms` and `poll_steps_ms` are the only facts that grow."""

    job_id: str
    org_id: str
    project_id: str
    influencer_id: str
    started_ms: int
    outcome: Outcome = "completed"
    end_stage: int = DONE - 1  # the stage in which a failed/canceled outcome ends the job
    progression: Progression = "time"
    cancel_ms: int | None = None
    poll_steps_ms: list[int] = field(default_factory=list)
    schedule_ms: tuple[int, ...] = DEFAULT_SCHEDULE_MS
    credits: int = 0  # reserved at the start; spent if it completes (credits.py)


class JobState(NamedTuple):
    """A NamedTuple, not a frozen dataclass: built on every job read, and a frozen dataclass's
    __init__ (object.__setattr__ per field) cost 1.7 µs of a ~48 µs GET /v1/jobs/{jobId}."""

    status: Status
    stage: int
    progress: float
    finished_ms: int | None
    changed_ms: int  # when the influencer's status last changed (for updatedAt)


def boundary_ms(job: JobFacts, index: int) -> int | None:
    """When stage `index` began (index DONE: completion), or None if it has not been reached."""
    if job.progression == "poll":
        if index == 0:
            return job.started_ms
        steps = job.poll_steps_ms
        return steps[index - 1] if index <= len(steps) else None
    return job.started_ms + job.schedule_ms[index]


def _stage_at(job: JobFacts, now_ms: int) -> int:
    stage = 0
    if job.progression != "poll":  # time progression: boundary_ms inlined, same comparisons
        offset = now_ms - job.started_ms
        schedule = job.schedule_ms
        for index in range(1, DONE + 1):
            if schedule[index] > offset:
                break
            stage = index
        return stage
    for index in range(1, DONE + 1):
        at = boundary_ms(job, index)
        if at is None or at > now_ms:
            break
        stage = index
    return stage


# fraction -> round(fraction, 3): float rounding to n digits goes through a decimal conversion
# (~1.5 µs), and a job polled under load is read many times within a millisecond, so the
# answer is memoized per fraction (the same float in, the same float out). Bounded (~400 KB
# at most): emptied when full.
_ROUNDED: dict[float, float] = {}
_ROUNDED_MAX = 4096


def _rounded(fraction: float) -> float:
    rounded = _ROUNDED.get(fraction)
    if rounded is None:
        rounded = round(fraction, 3)
        if len(_ROUNDED) >= _ROUNDED_MAX:
            _ROUNDED.clear()
        _ROUNDED[fraction] = rounded
    return rounded


def _progress(job: JobFacts, stage: int, at_ms: int) -> float:
    if job.progression == "poll":
        return _rounded(stage / DONE)
    total = job.schedule_ms[DONE]
    return _rounded(min(max(at_ms - job.started_ms, 0), total) / total)


def end_ms(job: JobFacts) -> int | None:
    """When the job reaches its terminal state, if that moment is already known."""
    natural = boundary_ms(job, job.end_stage + 1 if job.outcome != "completed" else DONE)
    if job.cancel_ms is not None and (natural is None or job.cancel_ms < natural):
        return job.cancel_ms
    return natural


def job_state(job: JobFacts, now_ms: int) -> JobState:
    """Derived, never stored: the same facts and instant always give the same answer."""
    finished = end_ms(job)
    if finished is not None and finished <= now_ms:
        canceled = job.cancel_ms is not None and job.cancel_ms == finished
        status: Status = "canceled" if canceled else job.outcome
        stage = min(_stage_at(job, finished), DONE - 1)
        if status != "completed" and not canceled:
            stage = job.end_stage
        progress = 1.0 if status == "completed" else _progress(job, stage, finished)
        return JobState(status, stage, progress, finished, finished)
    stage = _stage_at(job, now_ms)
    changed = boundary_ms(job, 2) if stage >= 2 else job.started_ms
    return JobState(
        "running", stage, _progress(job, stage, now_ms), None, changed or job.started_ms
    )


def influencer_status(state: JobState) -> str:
    if state.status == "completed":
        return "ready"
    if state.status != "running":
        return "failed"
    return "pending" if state.stage < 2 else "training"


def record_poll(job: JobFacts, now_ms: int) -> bool:
    """In poll progression each read of a running job moves it one stage; True if it moved."""
    if job.progression == "poll" and job_state(job, now_ms).status == "running":
        job.poll_steps_ms.append(now_ms)
        return True
    return False


def job_envelope(job: JobFacts, state: JobState, fmt: Callable[[int], str]) -> dict[str, object]:
    """The GET /v1/jobs/{jobId} body; `fmt` turns mock milliseconds into timestamps."""
    body: dict[str, object] = {
        "jobId": job.job_id,
        "kind": KIND,
        "status": state.status,
        "stage": STAGES[state.stage],
        "progress": state.progress,
        "projectId": job.project_id,
        "influencerId": job.influencer_id,
        "locationUrl": "/v1/jobs/" + job.job_id,
        "startedAt": fmt(job.started_ms),
    }
    if state.finished_ms is not None:
        body["finishedAt"] = fmt(state.finished_ms)
    if state.status == "completed":
        body["result"] = {"influencerId": job.influencer_id}
    elif state.status == "failed":
        body["error"] = {"code": FAILURE_CODE, "message": FAILURE_MESSAGES[STAGES[state.stage]]}
    return body


def failure_message(job: JobFacts, state: JobState) -> str | None:
    if state.status == "canceled":
        return CANCELED_MESSAGE
    if state.status == "failed":
        return FAILURE_MESSAGES[STAGES[state.stage]]
    return None
