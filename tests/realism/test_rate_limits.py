"""Rate limits per key tier and endpoint class, on the mock clock (CONTRACT, Rate limits)."""

from __future__ import annotations

import httpx
from support import FULL, KILLED, NO_JOBS, PROJECT, STANDARD, Mock, auth

RATE_HEADERS = (
    "x-ratelimit-endpoint-class",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
)
WINDOW_S = 60  # the mock clock starts on a minute: its first window resets in 60 s


def quota(response: httpx.Response) -> tuple[str, int, int, int]:
    h = response.headers
    return (
        h["x-ratelimit-endpoint-class"],
        int(h["x-ratelimit-limit"]),
        int(h["x-ratelimit-remaining"]),
        int(h["x-ratelimit-reset"]),
    )


def test_standard_long_running_bucket_runs_out_at_20_and_refills_after_a_minute(mock: Mock) -> None:
    for n in range(20):
        response = mock.create(STANDARD)
        assert response.status_code == 202
        assert quota(response) == ("long-running", 20, 19 - n, WINDOW_S)
    refused = mock.create(STANDARD)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "RATE_LIMITED"
    assert refused.headers["retry-after"] == "60"
    assert quota(refused) == ("long-running", 20, 0, WINDOW_S)
    listing = mock.client.get(f"/v1/projects/{PROJECT}/influencers?limit=100", headers=auth())
    assert len(listing.json()["items"]) == 20  # the refused create made nothing
    mock.advance(59.5)
    late = mock.create(STANDARD)
    assert late.status_code == 429
    assert late.headers["retry-after"] == "1"  # whole seconds, rounded up, never 0
    assert late.headers["x-ratelimit-reset"] == "1"  # seconds to wait, not an instant
    mock.advance(0.5)
    refilled = mock.create(STANDARD)
    assert refilled.status_code == 202
    assert quota(refilled) == ("long-running", 20, 19, WINDOW_S)


def test_buckets_of_one_key_are_independent(mock: Mock) -> None:
    for _ in range(20):
        assert mock.create(STANDARD).status_code == 202
    assert mock.create(STANDARD).status_code == 429
    read = mock.client.get("/v1/whoami", headers=auth(STANDARD))
    assert read.status_code == 200
    assert quota(read)[:3] == ("read-light", 120, 119)
    influencer = mock.client.get(f"/v1/projects/{PROJECT}/influencers", headers=auth(STANDARD))
    inf_id = influencer.json()["items"][0]["influencerId"]
    for n in range(60):
        patched = mock.client.patch(
            f"/v1/influencers/{inf_id}", headers=auth(STANDARD), json={"brandVoice": "casual"}
        )
        assert patched.status_code == 200
        assert quota(patched)[:3] == ("write-light", 60, 59 - n)
    refused = mock.client.delete(f"/v1/influencers/{inf_id}", headers=auth(STANDARD))
    assert refused.status_code == 429
    assert quota(refused)[:3] == ("write-light", 60, 0)
    # still there: a 429 happens before the operation
    assert mock.influencer(inf_id).status_code == 200
    assert quota(mock.client.get("/v1/whoami", headers=auth(STANDARD)))[:3] == (
        "read-light",
        120,
        117,
    )


def test_read_light_bucket_is_120_and_per_key(mock: Mock) -> None:
    for _ in range(120):
        assert mock.client.get("/v1/whoami", headers=auth(STANDARD)).status_code == 200
    refused = mock.client.get("/v1/whoami", headers=auth(STANDARD))
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    assert mock.create(STANDARD).status_code == 202  # long-running is untouched
    other_key = mock.client.get("/v1/whoami", headers=auth(FULL))
    assert other_key.status_code == 200  # another key, another bucket (and the unlimited tier)
    assert quota(other_key)[:2] == ("read-light", 1_000_000)


def test_project_create_is_long_running_only_with_app_description(mock: Mock) -> None:
    plain = mock.client.post(
        "/v1/projects", headers=auth(STANDARD), json={"name": "abc", "timezone": "UTC"}
    )
    assert quota(plain)[:3] == ("write-light", 60, 59)
    spawning = mock.client.post(
        "/v1/projects",
        headers=auth(STANDARD),
        json={"name": "abc", "timezone": "UTC", "appDescription": "d" * 100},
    )
    assert quota(spawning)[:3] == ("long-running", 20, 19)


def test_every_response_after_authentication_carries_the_four_headers(mock: Mock) -> None:
    c = mock.client
    created = mock.create(STANDARD)
    responses = {
        "202": created,
        "200": c.get(f"/v1/jobs/{created.json()['jobId']}", headers=auth(STANDARD)),
        "304": c.get(
            f"/v1/jobs/{created.json()['jobId']}",
            headers=auth(STANDARD, **{"If-None-Match": '"x"'}),
        ),
        "403": c.get("/v1/jobs/job_01KDVDNA00GG6P2NSQ0GYFKZYK", headers=auth(NO_JOBS)),
        "404": c.get("/v1/jobs/job_nope", headers=auth(STANDARD)),
        "422": mock.create(STANDARD, json={"gender": "robot"}),
        "500": c.get("/v1/whoami", headers=auth(STANDARD, Prefer="fault=500")),
    }
    etag = responses["200"].headers["etag"]
    responses["304"] = c.get(
        f"/v1/jobs/{created.json()['jobId']}", headers=auth(STANDARD, **{"If-None-Match": etag})
    )
    for status, response in responses.items():
        assert str(response.status_code) == status, response.text
        missing = [h for h in RATE_HEADERS if h not in response.headers]
        assert not missing, f"{status} lacks {missing}"
    # Before authentication there is no key, hence no bucket to report.
    for key in (None, "lp_test_unknown_0000000000000000", KILLED):
        headers = auth(key) if key else {}
        response = c.get("/v1/whoami", headers=headers)
        assert response.status_code in (401, 503)
        assert not any(h in response.headers for h in RATE_HEADERS)
