"""The `Prefer` header: whatever bytes a client sends, a 422 or a preference, never a 500."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import PROJECT, auth, make_mock

from layers_mock_server.core.errors import ApiError
from layers_mock_server.core.prefer import MAX_LATENCY_MS, parse_prefer

NAMES = st.sampled_from(["latency", "outcome", "fault", "stage", "progression", "LATENCY", "x"])
PREFERENCE = st.builds(lambda n, v: f"{n}={v}", NAMES, st.text(max_size=12)) | st.text(max_size=30)
HEADER = st.lists(PREFERENCE, max_size=4).map(", ".join)


@pytest.mark.parametrize(
    "value", ["²", "١٢", "1²", "٣", "\uff11\uff10", "+5", "-0", " 5x", "1e3", "0x10"]
)
def test_a_non_ascii_or_signed_latency_is_a_422(value: str) -> None:
    with pytest.raises(ApiError) as refused:
        parse_prefer(f"latency={value}")
    assert refused.value.status == 422
    assert "latency" in refused.value.details["fieldErrors"]["Prefer"][0]  # type: ignore[index]


def test_ascii_latency_still_parses() -> None:
    assert parse_prefer("latency=0").latency_ms == 0
    assert parse_prefer(f'latency="{MAX_LATENCY_MS}"').latency_ms == MAX_LATENCY_MS
    with pytest.raises(ApiError):
        parse_prefer(f"latency={MAX_LATENCY_MS + 1}")
    with pytest.raises(ApiError):
        parse_prefer("latency=" + "9" * 5000)  # no int() of an unbounded string


@settings(max_examples=300, deadline=None, derandomize=True)
@given(HEADER)
def test_any_prefer_text_is_parsed_or_refused(header: str) -> None:
    status = 200
    try:
        parse_prefer(header)
    except ApiError as exc:
        status = exc.status
    assert status in (200, 422)


def _wire(value: str) -> bytes:
    """Latin-1 where it can (a server decodes header bytes so: b"\xb2" is "²"), else UTF-8."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8")


def test_a_superscript_latency_over_http_is_a_422() -> None:
    mock = make_mock()
    raw = [(k.encode(), _wire(v)) for k, v in auth(Prefer="latency=²").items()]
    answer = mock.client.post(f"/v1/projects/{PROJECT}/influencers", json={}, headers=raw)
    assert answer.status_code == 422, answer.text
    assert "latency" in answer.json()["error"]["details"]["fieldErrors"]["Prefer"][0]


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(HEADER.filter(lambda h: "\r" not in h and "\n" not in h and "\x00" not in h))
def test_any_prefer_header_over_http_is_never_a_500(header: str) -> None:
    mock = make_mock()
    headers = {**auth(), "Prefer": header.strip()}
    raw = [(k.encode(), _wire(v)) for k, v in headers.items()]
    answer = mock.client.post(f"/v1/projects/{PROJECT}/influencers", json={}, headers=raw)
    if answer.status_code == 500:  # only an injected fault=500 may answer 500
        assert answer.json()["error"]["code"] == "INTERNAL" and "fault=500" in header.lower()


def test_a_preference_given_twice_is_taken_the_first_time_as_rfc_7240_says() -> None:
    """RFC 7240 section 2: only the first instance of a preference is considered, the others
    ignored without an error. The last one won, so `outcome=failed, outcome=completed` (or a
    client library adding a second Prefer header) completed the job it was asked to fail."""
    assert parse_prefer("outcome=failed, outcome=completed").outcome == "failed"
    assert parse_prefer("outcome=failed; stage=training; stage=queued").stage == "training"
    assert parse_prefer("latency=5, latency=abc").latency_ms == 5  # a later one is not looked at


def test_two_prefer_headers_are_one_list_whose_first_preference_counts() -> None:
    mock = make_mock()
    raw = [(k.encode(), v.encode()) for k, v in auth().items()]
    raw += [(b"Prefer", b"outcome=failed; stage=training"), (b"Prefer", b"outcome=completed")]
    job = mock.client.post(f"/v1/projects/{PROJECT}/influencers", json={}, headers=raw).json()
    assert mock.client.post("/_mock/clock/advance", json={"seconds": 60}).status_code == 200
    polled = mock.client.get(f"/v1/jobs/{job['jobId']}", headers=auth()).json()
    assert (polled["status"], polled["stage"]) == ("failed", "training")
