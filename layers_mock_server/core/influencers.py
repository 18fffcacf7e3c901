"""The influencer as a partner sees it: facts plus whatever its job has reached by now."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .ids import portrait_url
from .jobs import JobFacts, boundary_ms, failure_message, influencer_status, job_state
from .records import InfluencerFacts


def default_gender(target_gender: str) -> str:
    """The documented chain: the project's targetGender when female or male, else female."""
    return target_gender if target_gender in ("female", "male") else "female"


def status_changed_ms(job: JobFacts, now_ms: int) -> int:
    state = job_state(job, now_ms)
    if state.finished_ms is not None:
        return state.finished_ms
    if state.stage >= 2:
        return boundary_ms(job, 2) or job.started_ms
    return job.started_ms


def influencer_view(
    inf: InfluencerFacts, job: JobFacts, now_ms: int, fmt: Callable[[int], str]
) -> dict[str, Any]:
    state = job_state(job, now_ms)
    status = influencer_status(state)
    ready = status == "ready"
    updated = max(inf.created_ms, status_changed_ms(job, now_ms), inf.patched_ms or 0)
    return {
        "influencerId": inf.influencer_id,
        "projectId": inf.project_id,
        "name": inf.name_override or (inf.generated_name if ready else None),
        "imageUrl": portrait_url(inf.influencer_id) if ready else None,
        "gender": inf.gender,
        "ageRange": inf.age_range,
        "brandVoice": inf.brand_voice,
        "language": inf.language,
        "status": status,
        "errorMessage": failure_message(job, state),
        "createdAt": fmt(inf.created_ms),
        "updatedAt": fmt(updated),
    }
