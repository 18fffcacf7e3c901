"""The ceiling: a bare Starlette app of the same shape as the two benchmarked operations.

POST /v1/projects/{projectId}/influencers reads the body and answers a 202 JSON of the mock's
size; GET /v1/jobs/{jobId} answers a 200 JSON. bench/on_engine.py serves it on the same engine
as the mock row it is compared with (`python bench/on_engine.py bare granian --port 0`).
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

JOB_ID = "job_01KB85FD00M9S346Q3D25VT4F5"
PROJECT_ID = "prj_254a4ce1-f4ca-42b1-9e36-17ca45ef3d39"
INFLUENCER_ID = "inf_f7c07d4b-79d5-48e8-baf5-2d4a9749d43b"


async def create(request: Request) -> JSONResponse:
    await request.body()
    body = {
        "jobId": JOB_ID,
        "kind": "influencer_create",
        "status": "running",
        "stage": "queued",
        "projectId": request.path_params["projectId"],
        "influencerId": INFLUENCER_ID,
        "locationUrl": "/v1/jobs/" + JOB_ID,
        "startedAt": "2026-01-01T00:00:00.000Z",
    }
    return JSONResponse(body, 202, {"location": body["locationUrl"]})


async def get_job(request: Request) -> JSONResponse:
    job_id = request.path_params["jobId"]
    body = {
        "jobId": job_id,
        "kind": "influencer_create",
        "status": "running",
        "stage": "queued",
        "progress": 0.0,
        "projectId": PROJECT_ID,
        "influencerId": INFLUENCER_ID,
        "locationUrl": "/v1/jobs/" + job_id,
        "startedAt": "2026-01-01T00:00:00.000Z",
    }
    return JSONResponse(body, 200, {"etag": '"0123456789abcdef0123"'})


app = Starlette(
    routes=[
        Route("/v1/projects/{projectId}/influencers", create, methods=["POST"]),
        Route("/v1/jobs/{jobId}", get_job, methods=["GET"]),
    ]
)
