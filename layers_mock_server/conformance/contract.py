"""Expected values, copied from CONTRACT.md and the spec's prose, never read from the mock's tables.

If the mock's own tables were the oracle, a bug in a table would be "conformant" by definition.
Every constant here names the contract clause it restates, so a reviewer can check it by eye.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

# "Codes used" (CONTRACT.md, Error envelope): status -> the codes allowed with it.
ERROR_CODES: dict[int, frozenset[str]] = {
    401: frozenset({"UNAUTHENTICATED"}),
    403: frozenset({"FORBIDDEN_SCOPE"}),
    404: frozenset({"NOT_FOUND"}),
    405: frozenset({"METHOD_NOT_ALLOWED"}),
    409: frozenset({"CONFLICT", "IDEMPOTENCY_CONFLICT"}),
    422: frozenset({"VALIDATION"}),
    429: frozenset({"RATE_LIMITED"}),
    402: frozenset({"BILLING_EXHAUSTED"}),
    500: frozenset({"INTERNAL"}),
    501: frozenset({"NOT_SIMULATED"}),
    # STORAGE_UNAVAILABLE: the mock could not keep the effect (a mock decision; spec 503)
    503: frozenset({"KILL_SWITCH", "STORAGE_UNAVAILABLE"}),
}
# The 422 message names where the problem is (spec, components.responses.Validation).
INVALID_BODY, INVALID_QUERY, INVALID_HEADER = "Invalid body.", "Invalid query.", "Invalid header."

# Scopes (Surface table). "*" grants every scope.
INFLUENCERS_WRITE = "influencers:write"
JOBS_READ, JOBS_CANCEL = "jobs:read", "jobs:cancel"
PROJECTS_READ, PROJECTS_WRITE = "projects:read", "projects:write"
CREATE_SCOPE = INFLUENCERS_WRITE

# Rate limits: requests per minute of the tier, per class (CONTRACT.md, Rate limits).
READ, WRITE, LONG = "read-light", "write-light", "long-running"
TIER_LIMITS: dict[str, dict[str, int]] = {
    "standard": {READ: 120, WRITE: 60, LONG: 20},
    "pilot": {READ: 1_200, WRITE: 600, LONG: 60},
    "partner": {READ: 6_000, WRITE: 3_000, LONG: 300},
}
RATE_HEADERS = (
    "X-RateLimit-Endpoint-Class",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
)


@dataclass(frozen=True, slots=True)
class Operation:
    """One row of the Surface table: what a request needs and what it is charged."""

    name: str
    method: str
    pattern: re.Pattern[str]
    scope: str | None  # None: any valid key (whoami)
    rate_class: str  # createProject: long-running only with appDescription


def _op(name: str, method: str, template: str, scope: str | None, rate_class: str) -> Operation:
    regex = re.sub(r"\\\{[A-Za-z]+\\\}", "[^/]+", re.escape(template))
    return Operation(name, method, re.compile(f"^{regex}$"), scope, rate_class)


OPERATIONS: tuple[Operation, ...] = (
    _op("createInfluencer", "POST", "/v1/projects/{p}/influencers", INFLUENCERS_WRITE, LONG),
    _op("listInfluencers", "GET", "/v1/projects/{p}/influencers", INFLUENCERS_WRITE, READ),
    _op("getJob", "GET", "/v1/jobs/{j}", JOBS_READ, READ),
    _op("cancelJob", "POST", "/v1/jobs/{j}/cancel", JOBS_CANCEL, WRITE),
    _op("getInfluencer", "GET", "/v1/influencers/{i}", INFLUENCERS_WRITE, READ),
    _op("patchInfluencer", "PATCH", "/v1/influencers/{i}", INFLUENCERS_WRITE, WRITE),
    _op("deleteInfluencer", "DELETE", "/v1/influencers/{i}", INFLUENCERS_WRITE, WRITE),
    _op("whoami", "GET", "/v1/whoami", None, READ),
    _op("createProject", "POST", "/v1/projects", PROJECTS_WRITE, WRITE),
    _op("getProject", "GET", "/v1/projects/{p}", PROJECTS_READ, READ),
    # The surface around the flow (spec: listProjects, patchProject, deleteProject, clone, credits)
    _op("listProjects", "GET", "/v1/projects", PROJECTS_READ, READ),
    _op("patchProject", "PATCH", "/v1/projects/{p}", PROJECTS_WRITE, WRITE),
    _op("deleteProject", "DELETE", "/v1/projects/{p}", PROJECTS_WRITE, WRITE),
    _op("cloneInfluencer", "POST", "/v1/influencers/{i}/clone", INFLUENCERS_WRITE, LONG),
    _op("getCredits", "GET", "/v1/credits", None, READ),
)
# The methods each known path supports (405 with Allow for any other).
PATH_METHODS: dict[str, frozenset[str]] = {
    "/v1/projects/{p}/influencers": frozenset({"GET", "POST"}),
    "/v1/jobs/{j}": frozenset({"GET"}),
    "/v1/jobs/{j}/cancel": frozenset({"POST"}),
    "/v1/influencers/{i}": frozenset({"GET", "PATCH", "DELETE"}),
    "/v1/whoami": frozenset({"GET"}),
    "/v1/projects": frozenset({"GET", "POST"}),
    "/v1/projects/{p}": frozenset({"GET", "PATCH", "DELETE"}),
    "/v1/influencers/{i}/clone": frozenset({"POST"}),
    "/v1/credits": frozenset({"GET"}),
}


def operation_of(method: str, path: str) -> Operation | None:
    bare = path.split("?", 1)[0]
    for op in OPERATIONS:
        if op.method == method.upper() and op.pattern.match(bare):
            return op
    return None


def rate_class_of(method: str, path: str, body: bytes) -> str | None:
    """createProject is long-running only when appDescription starts an influencer."""
    op = operation_of(method, path)
    if op is None:
        return None
    if op.name == "createProject" and b'"appDescription"' in body:
        return LONG
    return op.rate_class


def grants(scopes: list[str] | tuple[str, ...], scope: str | None) -> bool:
    return scope is None or "*" in scopes or scope in scopes


# Create influencer body (all optional, strict).
GENDERS = ("male", "female", "non_binary")
AGE_RANGES = ("teen", "young_adult", "adult", "mid_adult", "mature", "senior")
BRAND_VOICES = ("authentic", "witty", "professional", "warm", "casual", "educational")
PROMPT_MIN, PROMPT_MAX = 1, 60
BODY_FIELDS = frozenset({"gender", "ageRange", "prompt"})
DEFAULT_AGE_RANGE = "young_adult"
# "the three fields partners most often send by mistake get a message that says why".
EXPLAINED_FIELDS: dict[str, str] = {
    "name": "server-generated",
    "brandVoice": "project",
    "language": "project",
}


def default_gender(target_gender: str | None) -> str:
    """gender = the project's targetGender when it is female or male, else female."""
    return target_gender if target_gender in ("female", "male") else "female"


# PATCH influencer: partial, strict, at least one field; gender cannot be cleared.
PATCH_FIELDS = frozenset({"name", "gender", "ageRange", "brandVoice", "language"})
NAME_MAX = 128
DELETE_REASON_MAX = 1024

# Lists: page size 1 to 100, default 25; newest first. A cursor is 1 to 12 Crockford digits.
LIMIT_MIN, LIMIT_MAX, LIMIT_DEFAULT = 1, 100, 25
CURSOR = re.compile(r"^[0-9A-HJKMNP-TV-Z]{1,12}$")
INFLUENCER_STATUSES = ("pending", "training", "ready", "failed")

# Projects: name 3 to 30, appDescription 100 to 1,000, timezone IANA.
PROJECT_NAME_MIN, PROJECT_NAME_MAX = 3, 30
APP_DESCRIPTION_MIN, APP_DESCRIPTION_MAX = 100, 1000
PROJECT_DEFAULTS = {"primaryLanguage": "en", "brandVoice": "authentic", "targetGender": "all"}
PROJECT_STATUSES = ("active", "archived")
PROJECT_LIMIT_MAX = 200  # listProjects: limit 1 to 200
TAGLINE_MAX = 80
METADATA_MAX_BYTES = 8 * 1024  # "at most 8 KB" (compact UTF-8 JSON, a mock decision)
# PATCH project: the read-only system fields the Layers PATCH page lists.
PROJECT_READ_ONLY = ("id", "organizationId", "createdAt", "ingestState", "brandContext")
ARCHIVED_SUBCODE = "PROJECT_ARCHIVED"

# Clone: name 1 to 128 (required); overrides accepts these four only; strict at both levels.
CLONE_OVERRIDES = frozenset({"gender", "ageRange", "brandVoice", "language"})

# Sub-organizations: the header, and the scope that allows it (`*` includes it).
ORG_HEADER = "X-Layers-Organization"
ORG_ADMIN = "org:admin"
ORG_ID = re.compile(r"^org_[0-9a-f-]{36}$")

# Credits: a job that cannot be paid for is refused with this code (and nothing starts).
BILLING_EXHAUSTED = "BILLING_EXHAUSTED"
SANDBOX_PREFIX = "lp_test_"  # sandbox keys spend no credits (spec: Credits and sandbox keys)

# Layers operations the mock does not simulate (openapi/not-simulated.yaml): method, path
# template, operationId. Each answers 501 NOT_SIMULATED, whatever the key.
NOT_SIMULATED = (
    ("GET", "/v1/audit-log", "listAuditLog"),
    ("GET", "/v1/credits/events", "listCreditEvents"),
    ("GET", "/v1/projects/{projectId}/content", "listContent"),
)

# Idempotency-Key: 1 to 255 printable characters; records live 24 hours of mock time.
IDEMPOTENCY_KEY_MAX = 255
IDEMPOTENCY_KEY = re.compile(r"^[\x20-\x7E]{1,255}$")
IDEMPOTENCY_WINDOW_S = 24 * 3600

# Job lifecycle: status order (only running is non-terminal) and stage order.
JOB_STATUSES = ("running", "completed", "failed", "canceled")
TERMINAL = frozenset({"completed", "failed", "canceled"})
STAGES = ("queued", "generating_persona", "rendering_portrait", "training", "finalizing")
CANCELABLE = frozenset(STAGES[:4])
# When each stage begins, seconds after startedAt (default simulated timings), and completion.
STAGE_BEGINS_S = {"queued": 0, "generating_persona": 2, "rendering_portrait": 15}
STAGE_BEGINS_S |= {"training": 35, "finalizing": 55}
COMPLETES_AFTER_S = 60
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
# cancel of a terminal job: 200 {accepted: false, reason}.
CANCEL_REASONS = {
    "completed": "ALREADY_COMPLETED",
    "failed": "ALREADY_FAILED",
    "canceled": "ALREADY_CANCELED",
}
CANCEL_SUBCODE = "JOB_CANCEL_UNAVAILABLE"

JOB_ID = re.compile(r"^job_[0-9A-HJKMNP-TV-Z]{26}$")
REQUEST_ID = re.compile(r"^req_[0-9A-HJKMNP-TV-Z]{26}$")
INFLUENCER_ID = re.compile(r"^inf_[0-9a-f-]{36}$")
PROJECT_ID = re.compile(r"^prj_[0-9a-f-]{36}$")
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
STRONG_ETAG = re.compile(r'^"[^"]+"$')


def create_path(project_id: str) -> str:
    return f"/v1/projects/{project_id}/influencers"


def job_path(job_id: str) -> str:
    return f"/v1/jobs/{job_id}"


def cancel_path(job_id: str) -> str:
    return f"/v1/jobs/{job_id}/cancel"


def influencer_path(influencer_id: str) -> str:
    return f"/v1/influencers/{influencer_id}"


def project_path(project_id: str) -> str:
    return f"/v1/projects/{project_id}"


def clone_path(influencer_id: str) -> str:
    return f"/v1/influencers/{influencer_id}/clone"


PROJECTS, CREDITS, WHOAMI = "/v1/projects", "/v1/credits", "/v1/whoami"


def bare(resource_id: str) -> str:
    """`prj_<uuid>` and `<uuid>` name the same resource."""
    for prefix in ("prj_", "inf_"):
        if resource_id.startswith(prefix):
            return resource_id[len(prefix) :]
    return resource_id


def parse_time(text: object) -> float | None:
    """Seconds since the epoch of an ISO-8601 timestamp, or None when it is not one."""
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def implied_influencer_status(job: dict[str, object]) -> str:
    """What the influencer's status must be, given one job envelope."""
    status = str(job.get("status"))
    if status in TERMINAL:
        return TERMINAL_INFLUENCER[status]
    return STAGE_INFLUENCER.get(str(job.get("stage")), "pending")
