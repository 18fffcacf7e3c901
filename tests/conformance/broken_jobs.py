"""Broken deployments: the 202, polling, ETag, lifecycle, cancel, influencers and lists."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from conformance.broken_auth import is_create
from conformance.broken_deployments import breaks
from conformance.rewrite import Ctx, Req, Resp, error


def is_job_read(req: Req, resp: Resp) -> bool:
    return (
        req.method == "GET"
        and req.path.startswith("/v1/jobs/")
        and req.path.count("/") == 3
        and resp.status == 200
    )


def is_influencer_read(req: Req, resp: Resp) -> bool:
    return req.method == "GET" and req.path.startswith("/v1/influencers/") and resp.status == 200


def is_list(req: Req, resp: Resp) -> bool:
    return req.method == "GET" and req.path.endswith("/influencers") and resp.status == 200


def shift(stamp: str, seconds: float) -> str:
    """A timestamp moved by `seconds`, in the contract's format."""
    moved = datetime.fromisoformat(stamp.replace("Z", "+00:00")) + timedelta(seconds=seconds)
    return (
        moved.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moved.microsecond // 1000:03d}Z"
    )


def seconds_since(stamp: str, ctx: Ctx) -> float:
    return ctx.now_s() - datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def edit(resp: Resp, **changes: Any) -> dict[str, Any]:
    body = resp.json()
    for key, value in changes.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    resp.set_json(body)
    return body


# -- the 202 and polling -------------------------------------------------------------------------
@breaks("jobs.accepted-envelope")
def location_url_missing(req: Req, resp: Resp, ctx: Ctx) -> None:
    """The 202 has no locationUrl (only the Location header)."""
    if is_create(req) and resp.status == 202:
        edit(resp, locationUrl=None)


@breaks("jobs.pollable-at-once")
def job_404_at_first(req: Req, resp: Resp, ctx: Ctx) -> None:
    """Eventual consistency: the first poll of a new job is 404."""
    if is_job_read(req, resp) and req.path not in ctx.mem:
        ctx.mem[req.path] = True
        error(resp, 404, "NOT_FOUND")


@breaks("jobs.envelope-matches-accept")
def started_at_is_poll_time(req: Req, resp: Resp, ctx: Ctx) -> None:
    """Polls report startedAt as the moment the worker picked the job up (2 s later)."""
    if is_job_read(req, resp):
        body = resp.json()
        if body["stage"] != "queued":
            edit(resp, startedAt=shift(body["startedAt"], 2))


@breaks("jobs.status-monotonic")
def status_goes_backwards(req: Req, resp: Resp, ctx: Ctx) -> None:
    """Every second read of a finished job says it is still training (a stale replica)."""
    if is_job_read(req, resp) and resp.json()["status"] != "running":
        ctx.mem[req.path] = ctx.mem.get(req.path, 0) + 1
        if ctx.mem[req.path] % 2 == 0:
            edit(resp, finishedAt=None, result=None, error=None)
            edit(resp, status="running", stage="training", progress=0.5)


@breaks("jobs.status-monotonic")
def progress_goes_down(req: Req, resp: Resp, ctx: Ctx) -> None:
    """Progress is recomputed per stage and drops at each stage boundary."""
    if is_job_read(req, resp) and resp.json()["status"] == "running":
        body = resp.json()
        edit(
            resp, progress=0.0 if body["stage"] in ("training", "finalizing") else body["progress"]
        )


@breaks("jobs.running-envelope")
def running_has_finished_at(req: Req, resp: Resp, ctx: Ctx) -> None:
    """A running job reports finishedAt (its estimated end)."""
    if is_job_read(req, resp) and resp.json()["status"] == "running":
        edit(resp, finishedAt=resp.json()["startedAt"])


@breaks("jobs.completed-envelope")
def result_names_the_job(req: Req, resp: Resp, ctx: Ctx) -> None:
    """A completed job's result points at a copy of the influencer, not the one created."""
    if is_job_read(req, resp) and resp.json()["status"] == "completed":
        edit(resp, result={"influencerId": "inf_00000000-0000-4000-8000-000000000001"})


@breaks("jobs.failed-envelope")
def error_missing_on_failed(req: Req, resp: Resp, ctx: Ctx) -> None:
    """A failed job reports no error object."""
    if is_job_read(req, resp) and resp.json()["status"] == "failed":
        edit(resp, error=None)


@breaks("jobs.canceled-envelope")
def canceled_with_error(req: Req, resp: Resp, ctx: Ctx) -> None:
    """A canceled job carries an error {code: CANCELED}."""
    if is_job_read(req, resp) and resp.json()["status"] == "canceled":
        edit(resp, error={"code": "CANCELED", "message": "Canceled."})


@breaks("jobs.timestamps-ordered")
def finished_before_started(req: Req, resp: Resp, ctx: Ctx) -> None:
    """finishedAt is written in local time, an hour before startedAt."""
    if is_job_read(req, resp) and "finishedAt" in resp.json():
        edit(resp, finishedAt=shift(resp.json()["startedAt"], -3600))


# -- ETag -----------------------------------------------------------------------------------------
@breaks("jobs.etag-strong")
def etag_never_changes(req: Req, resp: Resp, ctx: Ctx) -> None:
    """The ETag is a constant."""
    if req.path.startswith("/v1/jobs/") and "etag" in resp.headers:
        resp.headers["etag"] = '"static"'


@breaks("jobs.etag-strong")
def etag_weak(req: Req, resp: Resp, ctx: Ctx) -> None:
    """The ETag is weak (W/), which If-None-Match on a job must not need."""
    if req.path.startswith("/v1/jobs/") and "etag" in resp.headers:
        resp.headers["etag"] = "W/" + resp.headers["etag"]


@breaks("jobs.etag-strong")
def etag_changes_every_read(req: Req, resp: Resp, ctx: Ctx) -> None:
    """The ETag hashes the response time too, so it changes on every read."""
    if is_job_read(req, resp):
        ctx.mem["n"] = ctx.mem.get("n", 0) + 1
        resp.headers["etag"] = f'"{ctx.mem["n"]}"'


@breaks("jobs.if-none-match-304", on="request")
def if_none_match_ignored(req: Req, ctx: Ctx) -> None:
    """If-None-Match is ignored: always a full 200."""
    req.headers.pop("if-none-match", None)


@breaks("jobs.stale-etag-200")
def any_tag_is_304(req: Req, resp: Resp, ctx: Ctx) -> None:
    """Any If-None-Match is answered 304, whatever tag it carries."""
    if is_job_read(req, resp) and "if-none-match" in req.headers:
        resp.status, resp.body = 304, b""
        resp.headers.pop("content-type", None)


# -- cancel -------------------------------------------------------------------------------------
def is_cancel(req: Req) -> bool:
    return req.method == "POST" and req.path.endswith("/cancel")


def _accepted(req: Req, resp: Resp) -> None:
    resp.status = 202
    resp.set_json({"jobId": req.path.split("/")[3], "accepted": True})


@breaks("jobs.cancel-finalizing-409")
def finalizing_cancel_accepted(req: Req, resp: Resp, ctx: Ctx) -> None:
    """A cancel in finalizing is 202 (and then silently ignored)."""
    if is_cancel(req) and resp.status == 409:
        _accepted(req, resp)


@breaks("jobs.cancel-terminal-200")
def finished_cancel_accepted(req: Req, resp: Resp, ctx: Ctx) -> None:
    """A cancel of a finished job is 202 accepted."""
    if is_cancel(req) and resp.status == 200:
        _accepted(req, resp)


@breaks("jobs.cancel-answer-agrees")
def reason_always_completed(req: Req, resp: Resp, ctx: Ctx) -> None:
    """A refused cancel always says ALREADY_COMPLETED, whatever the job's status."""
    if is_cancel(req) and resp.status == 200:
        edit(resp, reason="ALREADY_COMPLETED")


@breaks("jobs.cancel-accepted", on="request")
def cancel_not_forwarded(req: Req, ctx: Ctx) -> Resp | None:
    """The cancel is acknowledged by the gateway but never reaches the worker."""
    if not is_cancel(req):
        return None
    resp = Resp(202, {"x-request-id": "req_01KDVDNA0000000000000000CA"}, b"")
    _accepted(req, resp)
    return resp


@breaks("jobs.cancel-accepted")
def canceled_influencer_says_failed(req: Req, resp: Resp, ctx: Ctx) -> None:
    """A canceled job's influencer says "Generation failed." without saying it was canceled."""
    if is_influencer_read(req, resp) and "anceled" in str(resp.json().get("errorMessage")):
        edit(resp, errorMessage="Generation failed.")


@breaks("jobs.cancel-in-each-stage")
def cancel_refused_while_rendering(req: Req, resp: Resp, ctx: Ctx) -> None:
    """A cancel while rendering the portrait is refused with 409 CONFLICT."""
    if is_create(req) and resp.status == 202:
        ctx.mem[resp.json()["jobId"]] = resp.json()["startedAt"]
    started = ctx.mem.get(req.path.split("/")[3]) if is_cancel(req) else None
    if started and resp.status == 202 and 15 <= seconds_since(started, ctx) < 35:
        error(resp, 409, "CONFLICT", {"subcode": "JOB_CANCEL_UNAVAILABLE"})


@breaks("steering.prefer-outcome", on="request")
def prefer_stage_ignored(req: Req, ctx: Ctx) -> None:
    """`Prefer: stage=` is dropped by the gateway: failures always happen while finalizing."""
    prefer = req.headers.get("prefer", "")
    if "stage=" in prefer:
        kept = [p for p in prefer.replace(";", ",").split(",") if "stage=" not in p]
        req.headers["prefer"] = ",".join(kept)


@breaks("steering.stage-timings")
def finalizing_five_seconds_early(req: Req, resp: Resp, ctx: Ctx) -> None:
    """The finalizing stage starts at 50 s instead of 55 s."""
    training = is_job_read(req, resp) and resp.json()["stage"] == "training"
    if training and seconds_since(resp.json()["startedAt"], ctx) >= 50:
        edit(resp, stage="finalizing")


# -- influencers ----------------------------------------------------------------------------------
@breaks("influencers.exists-at-once")
def influencer_404_while_pending(req: Req, resp: Resp, ctx: Ctx) -> None:
    """A pending influencer is not readable yet (404 until the persona exists)."""
    if is_influencer_read(req, resp) and resp.json().get("status") == "pending":
        error(resp, 404, "NOT_FOUND")


@breaks("influencers.listed-at-once")
def list_lags(req: Req, resp: Resp, ctx: Ctx) -> None:
    """The list is served from a replica a few seconds behind: new influencers are missing."""
    if is_list(req, resp):
        body = resp.json()
        body["items"] = [i for i in body["items"] if i["status"] != "pending"]
        resp.set_json(body)


@breaks("influencers.status-follows-job")
def influencer_training_late(req: Req, resp: Resp, ctx: Ctx) -> None:
    """The influencer becomes training only when the job reaches stage training."""
    if is_job_read(req, resp):
        ctx.mem[resp.json()["influencerId"]] = resp.json()["stage"]
    training = is_influencer_read(req, resp) and resp.json()["status"] == "training"
    if training and ctx.mem.get(resp.json()["influencerId"]) == "rendering_portrait":
        edit(resp, status="pending")


@breaks("influencers.status-follows-job")
def not_ready_after_completion(req: Req, resp: Resp, ctx: Ctx) -> None:
    """The influencer stays training after its job completed (the ready event is lost)."""
    if is_influencer_read(req, resp) and resp.json()["status"] == "ready":
        edit(resp, status="training", name=None, imageUrl=None)


@breaks("influencers.fields-follow-status")
def ready_without_image(req: Req, resp: Resp, ctx: Ctx) -> None:
    """A ready influencer's imageUrl is not filled in yet."""
    if is_influencer_read(req, resp) and resp.json()["status"] == "ready":
        edit(resp, imageUrl=None)


@breaks("influencers.record-matches-create")
def brand_voice_not_inherited(req: Req, resp: Resp, ctx: Ctx) -> None:
    """New influencers get the default brandVoice instead of the project's."""
    if is_influencer_read(req, resp) and resp.json()["brandVoice"] == "casual":
        edit(resp, brandVoice="authentic")


@breaks("influencers.timestamps-ordered")
def updated_at_is_created_at(req: Req, resp: Resp, ctx: Ctx) -> None:
    """updatedAt is written a second before createdAt (two clocks, one skewed)."""
    if is_influencer_read(req, resp):
        edit(resp, updatedAt=shift(resp.json()["createdAt"], -1))


@breaks("influencers.patch-applies", on="request")
def patch_resets_omitted(req: Req, ctx: Ctx) -> None:
    """PATCH is a PUT in disguise: an omitted ageRange is cleared."""
    body = req.json()
    if req.method == "PATCH" and isinstance(body, dict) and "ageRange" not in body:
        body["ageRange"] = None
        req.set_json(body)


@breaks("influencers.patch-clears-age-range", on="request")
def null_age_range_ignored(req: Req, ctx: Ctx) -> None:
    """PATCH {"ageRange": null} is read as "no change"."""
    body = req.json()
    if req.method == "PATCH" and isinstance(body, dict) and body.get("ageRange", 1) is None:
        del body["ageRange"]
        req.set_json(body or {"brandVoice": "casual"})


@breaks("influencers.patch-name-sticks")
def completion_renames(req: Req, resp: Resp, ctx: Ctx) -> None:
    """Completion writes the generated name over a PATCHed one."""
    if is_influencer_read(req, resp) and resp.json()["status"] == "ready":
        edit(resp, name="Generated Name")


# -- lists --------------------------------------------------------------------------------------
def _page(resp: Resp) -> list[dict[str, Any]]:
    return resp.json()["items"]


@breaks("lists.pages-complete")
def cursor_repeats_item(req: Req, resp: Resp, ctx: Ctx) -> None:
    """The cursor points at the last item of the page instead of after it."""
    if is_list(req, resp) and "cursor=" in req.query:
        last = ctx.mem.get("last")
        if last is not None:
            body = resp.json()
            body["items"] = [last, *body["items"]][: len(body["items"])]
            resp.set_json(body)
    if is_list(req, resp) and _page(resp):
        ctx.mem["last"] = _page(resp)[-1]


@breaks("lists.pages-complete")
def cursor_skips_item(req: Req, resp: Resp, ctx: Ctx) -> None:
    """Off by one: each next page starts one item too far."""
    if is_list(req, resp) and "cursor=" in req.query:
        body = resp.json()
        body["items"] = body["items"][1:]
        resp.set_json(body)


@breaks("lists.status-filter", on="request")
def status_filter_ignored(req: Req, ctx: Ctx) -> None:
    """The status query parameter is ignored."""
    if req.method == "GET" and req.path.endswith("/influencers"):
        req.query = "&".join(p for p in req.query.split("&") if not p.startswith("status="))


@breaks("lists.newest-first")
def oldest_first(req: Req, resp: Resp, ctx: Ctx) -> None:
    """Pages are ordered oldest first."""
    if is_list(req, resp):
        body = resp.json()
        body["items"] = sorted(body["items"], key=lambda i: i["createdAt"])
        resp.set_json(body)


@breaks("lists.items-match-records")
def list_items_stale(req: Req, resp: Resp, ctx: Ctx) -> None:
    """List items come from a cache written at creation: status pending, no name or image."""
    if is_list(req, resp):
        body = resp.json()
        for item in body["items"]:
            item.update(status="pending", name=None, imageUrl=None, errorMessage=None)
        resp.set_json(body)


# -- delete --------------------------------------------------------------------------------------
@breaks("influencers.delete-archives")
def delete_without_deleted_at(req: Req, resp: Resp, ctx: Ctx) -> None:
    """The DELETE answer says status "archived" (the UI's word) instead of "deleted"."""
    if req.method == "DELETE" and resp.status == 200:
        edit(resp, status="archived")


@breaks("influencers.deleted-is-gone")
def deleted_still_listed(req: Req, resp: Resp, ctx: Ctx) -> None:
    """Soft-deleted influencers are still listed."""
    if req.method == "DELETE" and resp.status == 200:
        ctx.mem["gone"] = ctx.mem.get("last_record", {}).get(req.path.split("/")[-1])
    if is_influencer_read(req, resp):
        ctx.mem.setdefault("last_record", {})[req.path.split("/")[-1]] = resp.json()
    if is_list(req, resp) and ctx.mem.get("gone"):
        body = resp.json()
        body["items"] = [ctx.mem["gone"], *body["items"]]
        resp.set_json(body)


@breaks("influencers.delete-twice-404")
def delete_twice_200(req: Req, resp: Resp, ctx: Ctx) -> None:
    """Deleting again answers the first 200 (idempotent without a key)."""
    if req.method != "DELETE":
        return
    if resp.status == 200:
        ctx.mem[req.path] = (resp.status, resp.body)
    elif resp.status == 404 and req.path in ctx.mem:
        resp.status, resp.body = ctx.mem[req.path]


@breaks("influencers.fields-follow-status")
def name_before_ready(req: Req, resp: Resp, ctx: Ctx) -> None:
    """The persona's name shows while the portrait is still training."""
    if is_influencer_read(req, resp) and resp.json()["status"] == "training":
        edit(resp, name="Early Name")


@breaks("lists.items-in-project")
def list_leaks_other_projects(req: Req, resp: Resp, ctx: Ctx) -> None:
    """The project filter is lost on the list query: another project's influencer shows."""
    if is_list(req, resp) and _page(resp):
        body = resp.json()
        stranger = {**body["items"][0], "projectId": "prj_7b3e9d21-4a5c-4f6e-8d9b-0c1a2e3f4b5d"}
        body["items"] = [*body["items"], stranger]
        resp.set_json(body)


@breaks("idempotency.every-retry-replays", on="request")
def cancel_ignores_idempotency_key(req: Req, ctx: Ctx) -> None:
    """Cancel is not idempotent: a retry with the same key is evaluated afresh."""
    if is_cancel(req):
        req.headers.pop("idempotency-key", None)
