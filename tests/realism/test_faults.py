"""Faults and outcomes on demand with the RFC 7240 Prefer header (issue 4, Faults)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx
import pytest
from support import FULL, PROJECT, Mock, auth

from layers_mock_server.http.pipeline import OperationPipeline

LIVENESS_S = 10  # bounds a wait only a hung server reaches; nothing here waits on a timer


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [("503", 503, "KILL_SWITCH"), ("500", 500, "INTERNAL"), ("429", 429, "RATE_LIMITED")],
)
def test_prefer_fault_answers_the_contract_envelope_and_does_nothing(
    mock: Mock, fault: str, status: int, code: str
) -> None:
    response = mock.create(headers={"Prefer": f"fault={fault}"})
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == code
    assert error["requestId"] == response.headers["x-request-id"]
    assert error["details"]["injected"] is True
    if fault == "429":
        assert response.headers["retry-after"] == "1"
    listing = mock.client.get(f"/v1/projects/{PROJECT}/influencers", headers=auth())
    assert listing.json()["items"] == []  # an injected error happens instead of the operation
    [entry] = mock.client.get("/_mock/requests?method=POST").json()["items"]
    assert (entry["status"], entry["injected"]) == (status, f"fault={fault}")


def test_journal_marks_only_injected_responses(mock: Mock) -> None:
    mock.client.get("/v1/whoami", headers=auth())
    mock.client.get("/v1/whoami", headers=auth(Prefer="fault=500"))
    mock.client.get("/v1/whoami", headers=auth(Prefer="respond-async, wait=5"))  # unknown: ignored
    items = mock.client.get("/_mock/requests").json()["items"]
    assert [(e["status"], e["injected"]) for e in items] == [
        (200, None),
        (500, "fault=500"),
        (200, None),
    ]


def test_a_bad_value_of_a_known_preference_is_422(mock: Mock) -> None:
    response = mock.create(headers={"Prefer": "fault=418"})
    assert response.status_code == 422
    assert "Prefer" in response.json()["error"]["details"]["fieldErrors"]


def test_outcome_failed_at_stage_training_fails_at_55_seconds(mock: Mock) -> None:
    created = mock.create(headers={"Prefer": "outcome=failed; stage=training"}).json()
    job_id, inf_id = created["jobId"], created["influencerId"]
    mock.advance(54.999)
    running = mock.job(job_id).json()
    assert (running["status"], running["stage"]) == ("running", "training")
    assert mock.influencer(inf_id).json()["status"] == "training"
    mock.advance(0.001)
    failed = mock.job(job_id).json()
    assert (failed["status"], failed["stage"]) == ("failed", "training")
    assert failed["finishedAt"] == "2026-01-01T00:00:55.000Z"
    assert failed["error"] == {"code": "GENERATION_FAILED", "message": "Model training failed."}
    assert "result" not in failed
    influencer = mock.influencer(inf_id).json()
    assert influencer["status"] == "failed"
    assert influencer["errorMessage"] == "Model training failed."
    assert influencer["name"] is None and influencer["imageUrl"] is None
    mock.advance(3600)
    assert mock.job(job_id).json() == failed  # terminal: nothing moves any more


def test_outcome_canceled_ends_canceled(mock: Mock) -> None:
    created = mock.create(headers={"Prefer": "outcome=canceled, stage=generating_persona"}).json()
    mock.advance(15)
    job = mock.job(created["jobId"]).json()
    assert job["status"] == "canceled"
    assert "canceled" in mock.influencer(created["influencerId"]).json()["errorMessage"]


def test_latency_is_awaited_without_blocking_other_requests(
    live: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 1.5 s answer in flight must not hold up the fast requests sent after it arrived.

    The latency's wait is held until the fast ones are answered (not 1.5 s of real time that
    five round trips on a loaded machine could outlast): a server that blocked on it, or
    served nothing else meanwhile, answers the slow one first or the fast ones never."""
    asked: list[float] = []
    released = threading.Event()

    async def held(seconds: float) -> None:
        asked.append(seconds)
        await asyncio.to_thread(released.wait, LIVENESS_S)

    monkeypatch.setattr(OperationPipeline, "nap", staticmethod(held))

    async def scenario() -> list[str]:
        done: list[str] = []
        async with (
            httpx.AsyncClient(base_url=live.url, timeout=LIVENESS_S) as slow_client,
            httpx.AsyncClient(base_url=live.url, timeout=LIVENESS_S) as fast_client,
        ):

            async def slow() -> httpx.Response:
                response = await slow_client.get(
                    "/v1/whoami", headers=auth(FULL, Prefer="latency=1500")
                )
                done.append("slow")
                return response

            task = asyncio.create_task(slow())
            arrived = await asyncio.to_thread(live.slow_arrived.wait, LIVENESS_S)
            assert arrived, "the slow request never reached the server"
            for n in range(5):
                fast = await fast_client.get("/v1/whoami", headers=auth(FULL))
                assert fast.status_code == 200
                done.append(f"fast{n}")
            assert not task.done()
            released.set()
            slow_response = await asyncio.wait_for(task, LIVENESS_S)
            assert slow_response.status_code == 200
        return done

    order = asyncio.run(scenario())
    assert order == ["fast0", "fast1", "fast2", "fast3", "fast4", "slow"]
    assert asked == [1.5]  # the wait the slow request asked for, in seconds
    journal = live.deps.journal.query()[0]
    assert journal[0]["injected"] == "latency=1500"  # newest first: the slow one finished last
    assert all(e["injected"] is None for e in journal[1:])


def test_drop_closes_the_connection_without_an_answer(live: Any) -> None:
    with httpx.Client(base_url=live.url, timeout=10) as client:
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            client.post(
                f"/v1/projects/{PROJECT}/influencers", headers=auth(FULL, Prefer="fault=drop")
            )
        after = client.get("/v1/whoami", headers=auth(FULL))
        assert after.status_code == 200  # the server itself is fine
    entries = live.deps.journal.query()[0]
    assert [(e["status"], e["injected"]) for e in entries] == [(200, None), (0, "fault=drop")]
    assert live.deps.sim.state.influencers == {}  # dropped before the operation
