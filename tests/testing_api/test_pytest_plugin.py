"""The pytest plugin, run the way a partner's suite runs it: a fresh pytest session, in a
process of its own (pytester's subprocess run).

In-process, pytester drops after each inner session the modules first imported during it:
httpcore, which httpx imports only with its first client, went, and httpx went on mapping
errors with the dropped module's classes, so in any later test a refused connection or a
dropped answer raised a bare httpcore error instead of httpx's (a test order where these ran
first failed seven tests elsewhere)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import PARTNER_PYTEST

PARTNER_SUITE = Path(__file__).with_name("partner_suite.py").read_text()

# Records, after each test, every answer the mock gave it, to compare runs byte for byte.
RECORDER = """
import json, os
import pytest

@pytest.fixture(autouse=True)
def _record(request, layers_mock):
    yield
    answers = [f"{r} {r.response_body}" for r in layers_mock.requests()]
    with open(os.environ["ANSWERS_FILE"], "a") as out:
        out.write(json.dumps([request.node.name, answers]) + "\\n")
"""


def test_a_partner_suite_passes_identically_three_times(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pytester.makepyfile(test_partner=PARTNER_SUITE)
    pytester.makeconftest(RECORDER)
    runs = []
    for n in range(3):
        answers = tmp_path / f"run{n}.jsonl"
        monkeypatch.setenv("ANSWERS_FILE", str(answers))
        result = pytester.runpytest_subprocess(*PARTNER_PYTEST, "-W", "error")
        result.assert_outcomes(passed=5)
        runs.append(answers.read_text())
    assert runs[0] == runs[1] == runs[2]
    recorded = dict(json.loads(line) for line in runs[0].splitlines())
    assert len(recorded) == 5 and all(recorded.values())  # every test talked to the mock


def test_each_test_starts_from_a_fresh_mock(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from datetime import datetime, timezone

        START = datetime(2026, 1, 1, tzinfo=timezone.utc)

        def test_dirty_everything(layers_mock):
            layers_mock.client().post(f"/v1/projects/{layers_mock.project}/influencers")
            layers_mock.advance(3600)
            layers_mock.rules.add(operation="whoami", fault="503")

        def test_sees_none_of_it(layers_mock):
            assert layers_mock.now == START
            assert layers_mock.requests() == [] and layers_mock.rules.list() == []
            assert layers_mock.client().get("/v1/whoami").status_code == 200
        """
    )
    pytester.runpytest_subprocess(*PARTNER_PYTEST).assert_outcomes(passed=2)


def test_the_marker_sets_seed_clock_and_progression(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        def first_job(mock):
            return mock.client().post(f"/v1/projects/{mock.project}/influencers").json()

        def test_default_seed(layers_mock):
            assert first_job(layers_mock)["jobId"] == "job_01KDVDNA00AXST9X6Z27ZCYT55"

        @pytest.mark.layers_mock(seed=3)
        def test_another_seed(layers_mock):
            assert layers_mock.seed == 3  # the session's mock, reset with the marker's seed
            assert first_job(layers_mock)["jobId"] != "job_01KDVDNA00AXST9X6Z27ZCYT55"

        @pytest.mark.layers_mock(progression="poll")
        def test_each_poll_moves_a_stage(layers_mock):
            api = layers_mock.client()
            job = first_job(layers_mock)["jobId"]
            stages = [api.get(f"/v1/jobs/{job}").json()["stage"] for _ in range(3)]
            assert stages == ["generating_persona", "rendering_portrait", "training"]
            assert layers_mock.progression == "poll"

        @pytest.mark.layers_mock(clock="wall", seed=1)
        def test_a_wall_clock(layers_mock):
            assert layers_mock.clock == "wall"

        @pytest.mark.layers_mock(clock="wall", speed=60, strict=False)
        def test_speed_and_strict_as_layers_mock_takes_them(layers_mock):
            clock = layers_mock.client().get("/_mock/clock").json()
            assert (clock["mode"], clock["speed"]) == ("wall", 60.0)

        @pytest.mark.layers_mock(sped=2)
        def test_unknown_option(layers_mock):
            pass
        """
    )
    result = pytester.runpytest_subprocess(*PARTNER_PYTEST)
    result.assert_outcomes(passed=5, errors=1)
    result.stdout.fnmatch_lines(
        ["*layers_mock takes keywords seed, clock, progression, fixtures, speed, strict; got sped*"]
    )


def test_the_marker_takes_every_keyword_layers_mock_takes() -> None:
    """The marker refused `speed`: its list had fallen behind LayersMock's signature."""
    import inspect

    from layers_mock import LayersMock
    from layers_mock.pytest_plugin import OPTIONS

    parameters = inspect.signature(LayersMock).parameters
    assert {name: p.default for name, p in parameters.items()} == OPTIONS


def test_one_server_per_session_reset_for_each_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import httpx

        URLS = []

        def test_first(layers_mock_server):
            URLS.append(layers_mock_server.base_url)
            answer = httpx.post(
                f"{layers_mock_server.base_url}/v1/projects/{layers_mock_server.project}/influencers",
                headers={"Authorization": f"Bearer {layers_mock_server.keys.full}"},
            )
            assert answer.status_code == 202

        def test_second(layers_mock_server, layers_mock):
            assert layers_mock is layers_mock_server  # both fixtures: one mock, the served one
            assert URLS == [layers_mock_server.base_url]  # the same server
            assert layers_mock_server.requests() == []  # but reset
            assert layers_mock_server.client().get("/v1/whoami").status_code == 200
        """
    )
    pytester.runpytest_subprocess(*PARTNER_PYTEST).assert_outcomes(passed=2)
