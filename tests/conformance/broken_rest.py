"""Broken deployments: projects, rate limits, errors and every response."""

from __future__ import annotations

from conformance.broken_deployments import breaks
from conformance.broken_jobs import edit, is_job_read
from conformance.rewrite import Ctx, Req, Resp, error
from support import FULL, STANDARD

RATE = ("x-ratelimit-endpoint-class", "x-ratelimit-limit", "x-ratelimit-remaining")


# -- projects -------------------------------------------------------------------------------------
@breaks("projects.get-row")
def project_status_enabled(req: Req, resp: Resp, ctx: Ctx) -> None:
    """GET project says status "enabled" (the admin UI's word) instead of "active"."""
    one = req.method == "GET" and req.path.startswith("/v1/projects/") and req.path.count("/") == 3
    if one and resp.status == 200:
        edit(resp, status="enabled")


@breaks("projects.create-returns-row", on="request")
def project_language_default_en_us(req: Req, ctx: Ctx) -> None:
    """A project without primaryLanguage defaults to en-US instead of en."""
    body = req.json()
    create = req.method == "POST" and req.path == "/v1/projects" and isinstance(body, dict)
    if create and "primaryLanguage" not in body and "name" in body and "timezone" in body:
        body["primaryLanguage"] = "en-US"
        req.set_json(body)


@breaks("projects.create-idempotent", on="request")
def project_create_ignores_key(req: Req, ctx: Ctx) -> None:
    """POST /v1/projects ignores Idempotency-Key: a retry makes a second project."""
    if req.method == "POST" and req.path == "/v1/projects":
        req.headers.pop("idempotency-key", None)


@breaks("projects.first-influencer", on="request")
def default_gender_always_female(req: Req, ctx: Ctx) -> None:
    """The first influencer's gender ignores the project's targetGender (always female)."""
    body = req.json()
    create = req.method == "POST" and req.path == "/v1/projects" and isinstance(body, dict)
    if create and body.get("targetGender") == "male" and "appDescription" in body:
        body["targetGender"] = "all"
        req.set_json(body)


# -- rate limits -------------------------------------------------------------------------------
@breaks("ratelimits.headers-present")
def rate_headers_missing_on_errors(req: Req, resp: Resp, ctx: Ctx) -> None:
    """The rate-limit headers are set by the success path only: errors lack them."""
    if 400 <= resp.status < 500:
        for name in (*RATE, "x-ratelimit-reset"):
            resp.headers.pop(name, None)


@breaks("ratelimits.endpoint-class")
def cancel_charged_as_read(req: Req, resp: Resp, ctx: Ctx) -> None:
    """A cancel reports the read-light class."""
    if req.method == "POST" and req.path.endswith("/cancel") and RATE[0] in resp.headers:
        resp.headers[RATE[0]] = "read-light"


@breaks("ratelimits.limit-matches-tier")
def write_limit_is_read_limit(req: Req, resp: Resp, ctx: Ctx) -> None:
    """The standard tier's write-light limit header says 120 (the read-light number)."""
    if resp.headers.get(RATE[1]) == "60":
        resp.headers[RATE[1]] = "120"


@breaks("ratelimits.remaining-counts-down")
def remaining_never_moves(req: Req, resp: Resp, ctx: Ctx) -> None:
    """X-RateLimit-Remaining always reports the full limit."""
    if RATE[2] in resp.headers and resp.status != 429:
        resp.headers[RATE[2]] = resp.headers[RATE[1]]


@breaks("ratelimits.429-retry-after")
def retry_after_missing(req: Req, resp: Resp, ctx: Ctx) -> None:
    """A 429 carries no Retry-After."""
    if resp.status == 429:
        resp.headers.pop("retry-after", None)


@breaks("ratelimits.429-retry-after", on="request")
def standard_tier_unlimited(req: Req, ctx: Ctx) -> None:
    """The standard tier is never limited (the limiter only knows pilot and partner)."""
    if req.key == STANDARD and req.method == "PATCH":
        req.headers["authorization"] = f"Bearer {FULL}"  # an unlimited key's bucket


# -- errors ---------------------------------------------------------------------------------------
@breaks("errors.code-matches-status")
def not_found_code_renamed(req: Req, resp: Resp, ctx: Ctx) -> None:
    """404s carry the code RESOURCE_MISSING."""
    if resp.status == 404:
        error(resp, 404, "RESOURCE_MISSING")


@breaks("errors.request-id")
def request_id_constant(req: Req, resp: Resp, ctx: Ctx) -> None:
    """The gateway overwrites X-Request-Id with its own (constant) value."""
    resp.headers["x-request-id"] = "req_00000000000000000000000000"


@breaks("errors.request-id")
def request_id_missing_on_304(req: Req, resp: Resp, ctx: Ctx) -> None:
    """A 304 has no X-Request-Id (the cache answers it)."""
    if resp.status == 304:
        resp.headers.pop("x-request-id", None)


@breaks("errors.envelope")
def not_found_as_text(req: Req, resp: Resp, ctx: Ctx) -> None:
    """A 404 for a job is the framework's plain-text "Not Found"."""
    if resp.status == 404 and req.path.startswith("/v1/jobs/"):
        resp.body = b"Not Found"
        resp.headers["content-type"] = "text/plain"


@breaks("errors.method-not-allowed-405")
def method_not_allowed_without_allow(req: Req, resp: Resp, ctx: Ctx) -> None:
    """405 without the Allow header."""
    if resp.status == 405:
        resp.headers.pop("allow", None)


@breaks("errors.unknown-path-404")
def unknown_path_html(req: Req, resp: Resp, ctx: Ctx) -> None:
    """An unknown path gets the web server's HTML 404 page."""
    if resp.status == 404 and "conformance" in req.path:
        resp.body = b"<html><body><h1>404 Not Found</h1></body></html>"
        resp.headers["content-type"] = "text/html"


@breaks("responses.match-spec")
def extra_field_in_job(req: Req, resp: Resp, ctx: Ctx) -> None:
    """Job envelopes leak an internal field (workerId)."""
    if is_job_read(req, resp):
        edit(resp, workerId="w-7")


@breaks("responses.no-5xx")
def crash_on_unknown_field(req: Req, resp: Resp, ctx: Ctx) -> None:
    """An unknown create field crashes the handler (500 INTERNAL)."""
    if resp.status == 422 and req.method == "POST" and req.path.endswith("/influencers"):
        error(resp, 500, "INTERNAL")


# -- mock steering ------------------------------------------------------------------------------
@breaks("steering.poll-progression", on="request")
def progression_prefer_dropped(req: Req, ctx: Ctx) -> None:
    """The gateway drops `Prefer: progression=`: jobs follow the clock only."""
    prefer = req.headers.get("prefer", "")
    if "progression=" in prefer:
        kept = [p for p in prefer.replace(";", ",").split(",") if "progression=" not in p]
        req.headers["prefer"] = ",".join(kept)


@breaks("steering.injected-faults")
def unknown_preference_rejected(req: Req, resp: Resp, ctx: Ctx) -> None:
    """An unknown preference is a 422 instead of being ignored (RFC 7240 says ignore it)."""
    if "conformance-unknown" in req.headers.get("prefer", ""):
        error(resp, 422, "VALIDATION", {"fieldErrors": {"Prefer": ["Unknown."]}, "formErrors": []})


@breaks("ratelimits.429-retry-after")
def retry_after_in_milliseconds(req: Req, resp: Resp, ctx: Ctx) -> None:
    """Retry-After is sent in milliseconds."""
    if resp.status == 429 and resp.headers.get("retry-after", "").isdigit():
        resp.headers["retry-after"] = str(int(resp.headers["retry-after"]) * 1000)
