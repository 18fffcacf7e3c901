"""Expected values, copied from CONTRACT.md and the seed docs, never read from the mock's tables.

If the mock's own tables were the oracle, a bug in a table would be "conformant" by definition.
Every constant here cites the contract clause it restates, so a reviewer can check it by eye.
"""

from __future__ import annotations

import re

# "Codes used" (CONTRACT.md, Error envelope): status -> the codes allowed with it.
ERROR_CODES: dict[int, frozenset[str]] = {
    401: frozenset({"UNAUTHENTICATED"}),
    403: frozenset({"FORBIDDEN_SCOPE"}),
    404: frozenset({"NOT_FOUND"}),
    405: frozenset({"METHOD_NOT_ALLOWED"}),
    409: frozenset({"CONFLICT", "IDEMPOTENCY_CONFLICT"}),
    422: frozenset({"VALIDATION"}),
    429: frozenset({"RATE_LIMITED"}),
    500: frozenset({"INTERNAL"}),
    503: frozenset({"KILL_SWITCH"}),
}

# Surface table: the scope createInfluencer needs.
CREATE_SCOPE = "influencers:write"

# Create influencer body (all optional, strict).
GENDERS = ("male", "female", "non_binary")
AGE_RANGES = ("teen", "young_adult", "adult", "mid_adult", "mature", "senior")
PROMPT_MIN, PROMPT_MAX = 1, 60
BODY_FIELDS = frozenset({"gender", "ageRange", "prompt"})
# "the three fields partners most often send by mistake get a message that says why".
EXPLAINED_FIELDS: dict[str, str] = {
    "name": "server-generated",
    "brandVoice": "project",
    "language": "project",
}

# Idempotency-Key: 1 to 255 printable characters.
IDEMPOTENCY_KEY_MAX = 255

# Job lifecycle: status order (only running is non-terminal) and stage order.
JOB_STATUSES = ("running", "completed", "failed", "canceled")
TERMINAL = frozenset({"completed", "failed", "canceled"})
STAGES = ("queued", "generating_persona", "rendering_portrait", "training", "finalizing")
# The influencer status each stage implies, and what each terminal status implies.
STAGE_INFLUENCER = {
    "queued": "pending",
    "generating_persona": "pending",
    "rendering_portrait": "training",
    "training": "training",
    "finalizing": "training",
}
TERMINAL_INFLUENCER = {"completed": "ready", "failed": "failed", "canceled": "failed"}
INFLUENCER_RANK = {"pending": 0, "training": 1, "ready": 2, "failed": 2}
# Default simulated time at which the job completes (seconds after startedAt).
COMPLETES_AFTER_S = 60

JOB_ID = re.compile(r"^job_[0-9A-HJKMNP-TV-Z]{26}$")
REQUEST_ID = re.compile(r"^req_[0-9A-HJKMNP-TV-Z]{26}$")


def create_path(project_id: str) -> str:
    return f"/v1/projects/{project_id}/influencers"


def job_path(job_id: str) -> str:
    return f"/v1/jobs/{job_id}"


def influencer_path(influencer_id: str) -> str:
    return f"/v1/influencers/{influencer_id}"


def implied_influencer_status(job: dict[str, object]) -> str:
    """What the influencer's status must be, given one job envelope."""
    status = str(job.get("status"))
    if status in TERMINAL:
        return TERMINAL_INFLUENCER[status]
    return STAGE_INFLUENCER.get(str(job.get("stage")), "pending")
