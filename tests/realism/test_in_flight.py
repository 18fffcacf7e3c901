"""A reset or an import while requests wait in flight (issue 9, D5).

A PATCH delayed by `Prefer: latency` and a reset while it waits gave 500 (the influencer it
had looked up was gone); a delayed create answered 202 and wrote into the state the reset had
just replaced (readable, but missing from the list). A request that resumes after the state was
replaced looks its resources up again in the new state.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from support import FULL, PROJECT, Mock, auth, http_scope


async def call(
    app: Any, method: str, path: str, headers: dict[str, str], body: Any = None, seen: Any = None
) -> tuple[int, Any]:
    """One request through the ASGI app; `seen` is set once the app has read the body (from
    then on the pipeline runs without a pause until its latency wait)."""
    raw = b"" if body is None else orjson.dumps(body)
    all_headers = {**headers, "content-type": "application/json", "content-length": str(len(raw))}
    listed = [(k.lower().encode(), v.encode()) for k, v in all_headers.items()]
    scope = http_scope(method, path, listed)
    answer: dict[str, Any] = {}

    async def receive() -> dict[str, Any]:
        if seen is not None:
            seen.set()
        return {"type": "http.request", "body": raw, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
        elif message.get("body"):
            answer["body"] = orjson.loads(message["body"])

    await app(scope, receive, send)
    return answer["status"], answer.get("body")


def test_a_patch_waiting_through_a_reset_finds_the_influencer_gone(mock: Mock) -> None:
    influencer = mock.create(json={}).json()["influencerId"]
    app = mock.client.app

    async def scenario() -> tuple[int, Any]:
        waiting = asyncio.Event()
        patch = asyncio.create_task(
            call(
                app,
                "PATCH",
                f"/v1/influencers/{influencer}",
                auth(FULL, Prefer="latency=300"),
                {"name": "Late"},
                waiting,
            )
        )
        await waiting.wait()
        reset, _ = await call(app, "POST", "/_mock/reset", {}, {})
        assert reset == 200
        return await patch

    status, body = asyncio.run(scenario())
    assert status == 404, body
    assert body["error"]["code"] == "NOT_FOUND"


def test_a_create_waiting_through_a_reset_lands_in_the_new_state(mock: Mock) -> None:
    app = mock.client.app

    async def scenario() -> tuple[int, Any]:
        waiting = asyncio.Event()
        create = asyncio.create_task(
            call(
                app,
                "POST",
                f"/v1/projects/{PROJECT}/influencers",
                auth(FULL, Prefer="latency=300"),
                {},
                waiting,
            )
        )
        await waiting.wait()
        await call(app, "POST", "/_mock/reset", {}, {})
        return await create

    status, body = asyncio.run(scenario())
    assert status == 202
    listing = mock.client.get(f"/v1/projects/{PROJECT}/influencers", headers=auth()).json()
    assert [i["influencerId"] for i in listing["items"]] == [body["influencerId"]]
    assert mock.client.get(f"/v1/jobs/{body['jobId']}", headers=auth()).status_code == 200
