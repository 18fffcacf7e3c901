"""A partner's own test suite, written as a partner would against layers-mock's pytest plugin.

Not collected by our suite (the file name does not start with test_): the plugin's tests copy
it into a fresh pytest run (pytester), and the wheel test runs it from a clean virtual
environment. The client under test polls every 5 s with an injected `sleep` (the mock's, in
every test), so the mock's clock does the waiting: the whole file runs in milliseconds, with
no real sleep.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx


class InfluencerClient:
    """The partner's code under test: create an influencer, wait until its job ends."""

    def __init__(self, http: httpx.Client, sleep: Callable[[float], object]) -> None:
        self.http = http
        self.sleep = sleep

    def create(
        self, project_id: str, headers: dict[str, str] | None = None, **body: Any
    ) -> httpx.Response:
        return self.http.post(f"/v1/projects/{project_id}/influencers", json=body, headers=headers)

    def wait_until_done(
        self, job_id: str, poll_every_s: float = 5.0, patience_s: float = 600.0
    ) -> dict[str, Any]:
        waited = 0.0
        while True:
            job: dict[str, Any] = self.http.get(f"/v1/jobs/{job_id}").raise_for_status().json()
            if job["status"] != "running" or waited >= patience_s:
                return job
            self.sleep(poll_every_s)
            waited += poll_every_s


def test_create_and_wait_until_ready(layers_mock):
    client = InfluencerClient(layers_mock.client(), sleep=layers_mock.sleep)
    job = client.create(layers_mock.project, gender="female", prompt="barista energy").json()
    done = client.wait_until_done(job["jobId"])
    assert done["status"] == "completed"
    influencer = client.http.get(f"/v1/influencers/{job['influencerId']}").json()
    assert influencer["status"] == "ready" and influencer["name"]
    layers_mock.assert_called("GET", f"/v1/jobs/{job['jobId']}", times=13)  # 0 s, 5 s, ... 60 s


def test_a_422_names_the_field(layers_mock):
    client = InfluencerClient(layers_mock.client(), sleep=layers_mock.sleep)
    response = client.create(layers_mock.project, name="Ava")
    assert response.status_code == 422
    assert "name" in response.json()["error"]["details"]["fieldErrors"]


def test_a_retry_with_the_same_key_replays(layers_mock):
    client = InfluencerClient(layers_mock.client(), sleep=layers_mock.sleep)
    key = {"Idempotency-Key": "onboarding-42"}
    first = client.create(layers_mock.project, headers=key, gender="male")
    again = client.create(layers_mock.project, headers=key, gender="male")
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json() == first.json()
    listed = client.http.get(f"/v1/projects/{layers_mock.project}/influencers").json()
    assert len(listed["items"]) == 1


def test_a_job_fails_when_asked_to(layers_mock):
    client = InfluencerClient(layers_mock.client(), sleep=layers_mock.sleep)
    failing = layers_mock.prefer(outcome="failed", stage="training")
    job = client.create(layers_mock.project, headers=failing).json()
    done = client.wait_until_done(job["jobId"])
    assert done["status"] == "failed" and done["stage"] == "training"
    assert done["error"]["code"] == "GENERATION_FAILED"


def test_a_429_says_when_to_retry(layers_mock):
    client = InfluencerClient(layers_mock.client("standard"), sleep=layers_mock.sleep)
    answers = [client.create(layers_mock.project) for _ in range(21)]
    assert [a.status_code for a in answers] == [202] * 20 + [429]
    retry_after = int(answers[-1].headers["Retry-After"])
    assert 1 <= retry_after <= 60
    client.sleep(retry_after)
    assert client.create(layers_mock.project).status_code == 202
