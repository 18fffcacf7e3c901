"""Broken deployments: authentication, scopes, tenancy, identity, validation, idempotency."""

from __future__ import annotations

import json
import re

from conformance.broken_deployments import breaks
from conformance.rewrite import Ctx, Req, Resp, error
from support import FULL, GLOBEX, KILLED, NO_INFLUENCERS

KNOWN_KEYS = {FULL, GLOBEX, KILLED, NO_INFLUENCERS}
WELL_FORMED_ID = re.compile(r"^(inf_|prj_)?[0-9a-f]{8}-[0-9a-f-]{27}$|^job_[0-9A-Z]{26}$")


def is_create(req: Req) -> bool:
    return req.method == "POST" and req.path.endswith("/influencers")


# -- authentication ----------------------------------------------------------------------------
@breaks("auth.missing-key-401")
def unauthenticated_is_403(req: Req, resp: Resp, ctx: Ctx) -> None:
    """Every 401 is sent as 403 FORBIDDEN_SCOPE."""
    if resp.status == 401:
        error(resp, 403, "FORBIDDEN_SCOPE", {"requiredScope": "influencers:write"})


@breaks("auth.malformed-key-401", on="request")
def scheme_optional(req: Req, ctx: Ctx) -> None:
    """A key sent without the `Bearer ` scheme (or with any scheme) is accepted."""
    auth = req.headers.get("authorization", "")
    token = auth.split(" ", 1)[-1].strip(": ")
    if not auth.startswith("Bearer ") and token in KNOWN_KEYS:
        req.headers["authorization"] = f"Bearer {token}"


@breaks("auth.unknown-key-401", on="request")
def any_live_key_writes(req: Req, ctx: Ctx) -> None:
    """Writes are authorized by the key's format only: any lp_ key may create."""
    if req.method == "POST" and req.key.startswith("lp_") and req.key not in KNOWN_KEYS:
        req.headers["authorization"] = f"Bearer {FULL}"


@breaks("auth.x-api-key-rejected", on="request")
def x_api_key_accepted(req: Req, ctx: Ctx) -> None:
    """The legacy `X-Api-Key` header still authenticates."""
    if "x-api-key" in req.headers and "authorization" not in req.headers:
        req.headers["authorization"] = f"Bearer {req.headers['x-api-key']}"


@breaks("auth.killed-key-503")
def killed_key_is_401(req: Req, resp: Resp, ctx: Ctx) -> None:
    """A killed key is answered 401 UNAUTHENTICATED instead of 503 KILL_SWITCH."""
    if resp.status == 503 and req.key == KILLED:
        error(resp, 401, "UNAUTHENTICATED")


# -- scopes, tenancy, identity -------------------------------------------------------------------
@breaks("scope.missing-scope-403", on="request")
def scopes_ignored(req: Req, ctx: Ctx) -> None:
    """Scopes are not enforced on reads of influencers."""
    if req.key == NO_INFLUENCERS and req.method == "GET":
        req.headers["authorization"] = f"Bearer {FULL}"


@breaks("scope.missing-scope-403")
def required_scope_misnamed(req: Req, resp: Resp, ctx: Ctx) -> None:
    """403 names influencers:read, a scope that does not exist."""
    if resp.status == 403:
        error(resp, 403, "FORBIDDEN_SCOPE", {"requiredScope": "influencers:read"})


@breaks("scope.granted-scopes-honoured")
def job_reads_need_write_scope(req: Req, resp: Resp, ctx: Ctx) -> None:
    """Polling a job needs influencers:write instead of jobs:read."""
    if req.key == NO_INFLUENCERS and req.method == "GET" and req.path.startswith("/v1/jobs/"):
        error(resp, 403, "FORBIDDEN_SCOPE", {"requiredScope": "influencers:write"})


@breaks("tenancy.foreign-project-404")
def foreign_project_403(req: Req, resp: Resp, ctx: Ctx) -> None:
    """Another organization's project is 403 (so its existence leaks) instead of 404."""
    if "prj_7b3e9d21" in req.path and resp.status == 404:
        error(resp, 403, "FORBIDDEN_SCOPE", {"requiredScope": "influencers:write"})


@breaks("tenancy.foreign-key-404", on="request")
def jobs_readable_across_organizations(req: Req, ctx: Ctx) -> None:
    """Jobs are looked up by id alone: any organization's key can poll any job."""
    if req.key == GLOBEX and req.method == "GET" and req.path.startswith("/v1/jobs/"):
        req.headers["authorization"] = f"Bearer {FULL}"


@breaks("tenancy.unknown-ids-404")
def malformed_id_422(req: Req, resp: Resp, ctx: Ctx) -> None:
    """An id that does not look like one is 422 VALIDATION instead of a plain 404."""
    parts = req.path.split("/")
    ids = len(parts) > 3 and parts[2] in ("jobs", "influencers", "projects")
    if resp.status == 404 and ids and not WELL_FORMED_ID.match(parts[3]):
        error(resp, 422, "VALIDATION", {"fieldErrors": {"id": ["Malformed."]}, "formErrors": []})


@breaks("tenancy.bare-uuid-accepted", on="request")
def bare_uuid_rejected(req: Req, ctx: Ctx) -> None:
    """Only prefixed ids are found: a bare uuid is an unknown influencer."""
    parts = req.path.split("/")
    if len(parts) == 4 and parts[2] == "influencers" and not parts[3].startswith("inf_"):
        req.path = f"/v1/influencers/x{parts[3]}"


@breaks("identity.whoami-describes-key")
def whoami_workspace_is_a_project(req: Req, resp: Resp, ctx: Ctx) -> None:
    """whoami's workspaceId is the first project's id instead of the organization's."""
    if req.path == "/v1/whoami" and resp.status == 200:
        body = resp.json()
        body["workspaceId"] = "prj_254a4ce1-f4ca-42b1-9e36-17ca45ef3d39"
        resp.set_json(body)


@breaks("identity.whoami-scopes-honest")
def whoami_says_every_scope(req: Req, resp: Resp, ctx: Ctx) -> None:
    """whoami lists ["*"] for every key, whatever the key may really do."""
    if req.path == "/v1/whoami" and resp.status == 200:
        body = resp.json()
        body["scopes"] = ["*"]
        resp.set_json(body)


# -- validation ---------------------------------------------------------------------------------
@breaks("validation.unknown-field-named")
def validation_is_400(req: Req, resp: Resp, ctx: Ctx) -> None:
    """Validation errors are 400 instead of 422."""
    if resp.status == 422:
        resp.status = 400


@breaks("validation.unknown-field-named", on="request")
def unknown_fields_dropped(req: Req, ctx: Ctx) -> None:
    """Unknown create fields are silently dropped (the old lenient parser)."""
    body = req.json()
    if is_create(req) and isinstance(body, dict):
        req.set_json({k: v for k, v in body.items() if k in {"gender", "ageRange", "prompt"}})


@breaks("validation.server-fields-explained")
def generic_unknown_field_message(req: Req, resp: Resp, ctx: Ctx) -> None:
    """Every unknown field gets the same "Unrecognized key." message."""
    body = resp.json()
    if resp.status == 422 and isinstance(body, dict):
        fields = body["error"].get("details", {}).get("fieldErrors", {})
        for name in ("name", "brandVoice", "language"):
            if name in fields and is_create(req):
                fields[name] = ["Unrecognized key."]
        resp.set_json(body)


@breaks("validation.enum-and-length-422", on="request")
def prompt_truncated(req: Req, ctx: Ctx) -> None:
    """A prompt over 60 characters is truncated instead of rejected."""
    body = req.json()
    if is_create(req) and isinstance(body, dict) and isinstance(body.get("prompt"), str):
        body["prompt"] = body["prompt"][:60] or "x"
        req.set_json(body)


@breaks("validation.body-shape-422")
def form_errors_dropped(req: Req, resp: Resp, ctx: Ctx) -> None:
    """Body-level 422s carry no formErrors (only an empty fieldErrors)."""
    body = resp.json()
    if resp.status == 422 and isinstance(body, dict):
        details = body["error"].get("details", {})
        if details.get("formErrors"):
            details["formErrors"] = []
            resp.set_json(body)


@breaks("validation.content-type-422", on="request")
def content_type_ignored(req: Req, ctx: Ctx) -> None:
    """Any Content-Type is parsed as JSON."""
    if req.body and req.headers.get("content-type", "").startswith(("text/", "application/x-www")):
        req.headers["content-type"] = "application/json"


@breaks("validation.valid-create-accepted")
def empty_body_rejected(req: Req, resp: Resp, ctx: Ctx) -> None:
    """A create without a body is 422 "A JSON body is required." (the docs say it is valid)."""
    if is_create(req) and not req.body.strip() and resp.status == 202:
        error(resp, 422, "VALIDATION", {"fieldErrors": {}, "formErrors": ["Body required."]})


@breaks("validation.list-query-422", on="request")
def limit_clamped(req: Req, ctx: Ctx) -> None:
    """A list limit over 100 is clamped to 100 instead of rejected."""
    found = re.search(r"(^|&)limit=(\d+)", req.query)
    if req.method == "GET" and found and int(found.group(2)) > 100:
        req.query = req.query.replace(f"limit={found.group(2)}", "limit=100")


@breaks("validation.patch-body-422", on="request")
def null_gender_ignored(req: Req, ctx: Ctx) -> None:
    """PATCH {"gender": null} is taken as "no change" instead of rejected."""
    body = req.json()
    if (
        req.method == "PATCH"
        and isinstance(body, dict)
        and "gender" in body
        and body["gender"] is None
    ):
        del body["gender"]
        req.set_json(body)


@breaks("validation.delete-body-422", on="request")
def delete_reason_truncated(req: Req, ctx: Ctx) -> None:
    """A DELETE reason over 1,024 characters is truncated instead of rejected."""
    body = req.json()
    if req.method == "DELETE" and isinstance(body, dict) and isinstance(body.get("reason"), str):
        body["reason"] = body["reason"][:1024]
        req.set_json(body)


@breaks("validation.project-body-422", on="request")
def timezone_unchecked(req: Req, ctx: Ctx) -> None:
    """Project timezones are not checked against the IANA database."""
    body = req.json()
    if req.path == "/v1/projects" and isinstance(body, dict) and "/" in str(body.get("timezone")):
        body["timezone"] = "UTC"
        req.set_json(body)


@breaks("validation.idempotency-key-422", on="request")
def long_idempotency_key_truncated(req: Req, ctx: Ctx) -> None:
    """An Idempotency-Key over 255 characters is truncated instead of rejected."""
    key = req.headers.get("idempotency-key")
    if key is not None and len(key) > 255:
        req.headers["idempotency-key"] = key[:255]


# -- idempotency --------------------------------------------------------------------------------
def _scope(req: Req) -> tuple[str, str, str, str]:
    return (req.key, req.method, req.path, req.headers.get("idempotency-key", ""))


@breaks("idempotency.replay-identical", on="request")
def replay_mints_new_job(req: Req, ctx: Ctx) -> None:
    """Idempotency-Key is ignored on create: every retry starts a new job."""
    if is_create(req):
        req.headers.pop("idempotency-key", None)


@breaks("idempotency.replay-identical")
def replay_reuses_request_id(req: Req, resp: Resp, ctx: Ctx) -> None:
    """A replay carries the X-Request-Id of the first answer."""
    if "idempotency-key" in req.headers and resp.status < 300:
        first = ctx.mem.setdefault(_scope(req), resp.headers["x-request-id"])
        resp.headers["x-request-id"] = first


@breaks("idempotency.conflict-409", on="request")
def conflict_becomes_new_request(req: Req, ctx: Ctx) -> None:
    """The same key with another body is treated as a new request instead of 409."""
    key = req.headers.get("idempotency-key")
    if req.method == "POST" and key:
        first = ctx.mem.setdefault(_scope(req), req.body)
        if first != req.body:
            req.headers.pop("idempotency-key")


@breaks("idempotency.body-compared-as-json", on="request")
def bodies_compared_as_bytes(req: Req, ctx: Ctx) -> Resp | None:
    """Bodies are compared byte for byte: the same JSON re-serialized is a 409."""
    if "idempotency-key" not in req.headers:
        return None
    first = ctx.mem.setdefault(_scope(req), req.body)
    if first != req.body and req.json() == json.loads(first or b"null"):
        resp = Resp(409, {"x-request-id": "req_01KDVDNA00000000000000000Z"}, b"")
        error(resp, 409, "IDEMPOTENCY_CONFLICT")
        return resp
    return None


@breaks("idempotency.rejected-not-stored")
def rejections_stored(req: Req, resp: Resp, ctx: Ctx) -> None:
    """A 422 is stored under its Idempotency-Key and replayed to the next request with it."""
    if "idempotency-key" not in req.headers:
        return
    stored = ctx.mem.get(_scope(req))
    if stored is not None:
        resp.status, resp.body = stored
    elif resp.status == 422:
        ctx.mem[_scope(req)] = (resp.status, resp.body)


@breaks("idempotency.scoped-per-key")
def records_per_organization(req: Req, resp: Resp, ctx: Ctx) -> None:
    """Records are kept per organization: another key of the organization gets the replay."""
    key = req.headers.get("idempotency-key")
    if not key or resp.status >= 300:
        return
    first = ctx.mem.setdefault((req.method, req.path, key), (resp.status, resp.body))
    resp.status, resp.body = first


@breaks("idempotency.scoped-per-method-and-path")
def records_per_key_only(req: Req, resp: Resp, ctx: Ctx) -> None:
    """Records are kept per (API key, Idempotency-Key): the path and method are ignored."""
    key = req.headers.get("idempotency-key")
    if not key or resp.status >= 300:
        return
    first = ctx.mem.setdefault((req.key, key), (resp.status, resp.body))
    resp.status, resp.body = first


@breaks("idempotency.delete-retry-replays")
def delete_retry_is_404(req: Req, resp: Resp, ctx: Ctx) -> None:
    """The resource lookup comes before the stored answer: a retried DELETE is 404."""
    if req.method != "DELETE" or "idempotency-key" not in req.headers:
        return
    if ctx.mem.get(req.path):
        error(resp, 404, "NOT_FOUND")
    elif resp.status == 200:
        ctx.mem[req.path] = True


@breaks("idempotency.window-24h", on="request")
def records_live_one_hour(req: Req, ctx: Ctx) -> None:
    """Idempotency records expire after one hour instead of 24."""
    if "idempotency-key" not in req.headers:
        return
    first = ctx.mem.setdefault(_scope(req), ctx.now_s())
    if ctx.now_s() - first > 3600:
        req.headers.pop("idempotency-key")


@breaks("idempotency.window-24h")
def records_never_expire(req: Req, resp: Resp, ctx: Ctx) -> None:
    """Idempotency records never expire: a key replays forever."""
    if "idempotency-key" in req.headers and resp.status < 300:
        stored = ctx.mem.setdefault((*_scope(req), req.body), (resp.status, resp.body))
        resp.status, resp.body = stored


@breaks("identity.whoami-describes-key")
def whoami_key_id_is_the_key(req: Req, resp: Resp, ctx: Ctx) -> None:
    """whoami's apiKeyId is the key itself (so every log that prints it leaks the key)."""
    if req.path == "/v1/whoami" and resp.status == 200:
        body = resp.json()
        body["apiKeyId"] = req.key
        resp.set_json(body)


@breaks("idempotency.replay-identical")
def replay_without_location(req: Req, resp: Resp, ctx: Ctx) -> None:
    """A replayed 202 is rebuilt from the stored body only: its Location header is lost."""
    if is_create(req) and resp.status == 202 and "idempotency-key" in req.headers:
        seen = ctx.mem.setdefault("keys", set())
        if _scope(req) in seen:
            resp.headers.pop("location", None)
        seen.add(_scope(req))
