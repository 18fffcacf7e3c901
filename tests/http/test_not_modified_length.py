"""A 304 never claims a Content-Length other than its 200's (RFC 9110 §8.6): it sends none."""

from __future__ import annotations

import pytest
from support import Mock


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_a_304_sends_no_content_length_of_zero(mock: Mock, method: str) -> None:
    """A cache that took `content-length: 0` from a 304 would think the job it holds is
    empty; granian strips it from a GET's 304, not from a HEAD's, and uvicorn from neither."""
    job_id = mock.create(json={}).json()["jobId"]
    first = mock.job(job_id)
    again = mock.client.request(
        method,
        f"/v1/jobs/{job_id}",
        headers={"Authorization": first.request.headers["authorization"]}
        | {"If-None-Match": first.headers["etag"]},
    )
    assert again.status_code == 304
    assert again.headers["etag"] == first.headers["etag"]
    assert "content-length" not in again.headers
    assert again.content == b""
