"""The chaos profile (`--chaos PATH`): seeded background faults (issue 4, Faults)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient
from support import FULL, PROJECT, SEED, auth

from layers_mock_server.core.chaos import ChaosError, ChaosProfile
from layers_mock_server.core.clock import Clock
from layers_mock_server.core.fixtures import load_fixtures
from layers_mock_server.core.simulator import Simulator
from layers_mock_server.deps import Deps
from layers_mock_server.http.app import build_app
from layers_mock_server.settings import Settings, make_deps

PROFILE = """\
faults: {"429": 0.15, "500": 0.1, "503": 0.15}
latency: {probability: 0.2, ms: 1}
"""


def journal_of_a_run(profile: Path, seed: int) -> list[dict[str, Any]]:
    """The same request sequence against a fresh server with this profile and seed."""
    chaos = ChaosProfile.load(profile)
    deps = Deps(sim=Simulator(load_fixtures(), Clock("virtual"), seed), strict=True, chaos=chaos)
    with TestClient(build_app(deps)) as client:
        for n in range(30):
            client.post(f"/v1/projects/{PROJECT}/influencers", headers=auth(FULL), json={})
            client.get("/v1/whoami", headers=auth(FULL, **{"X-Trace": str(n)}))
        return client.get("/_mock/requests?limit=1000").json()["items"]


@pytest.fixture
def profile(tmp_path: Path) -> Path:
    path = tmp_path / "chaos.yaml"
    path.write_text(PROFILE, encoding="utf-8")
    return path


def test_same_seed_injects_the_same_faults_into_the_same_requests(profile: Path) -> None:
    first = journal_of_a_run(profile, SEED)
    second = journal_of_a_run(profile, SEED)
    assert first == second
    injected = [e for e in first if e["injected"]]
    assert 10 <= len(injected) <= 50  # about 40 % of 60 requests
    for entry in injected:
        marks = dict(m.split("=") for m in entry["injected"].removeprefix("chaos:").split(","))
        assert entry["status"] == int(marks.get("fault", entry["status"]))
    assert any("latency=1" in e["injected"] for e in injected)
    assert {e["status"] for e in first} >= {202, 200, 429, 500, 503}
    assert all(e["status"] in (200, 202) for e in first if not e["injected"])


def test_another_seed_injects_other_faults(profile: Path) -> None:
    def pattern(seed: int) -> list[str | None]:
        return [e["injected"] for e in journal_of_a_run(profile, seed)]

    assert pattern(SEED) != pattern(SEED + 1)


def test_prefer_fault_wins_over_chaos(profile: Path, tmp_path: Path) -> None:
    always = tmp_path / "always.yaml"
    always.write_text('faults: {"503": 1.0}\n', encoding="utf-8")
    deps = Deps(
        sim=Simulator(load_fixtures(), Clock("virtual"), SEED),
        strict=True,
        chaos=ChaosProfile.load(always),
    )
    with TestClient(build_app(deps)) as client:
        assert client.get("/v1/whoami", headers=auth(FULL)).status_code == 503
        assert client.get("/v1/whoami", headers=auth(FULL, Prefer="fault=500")).status_code == 500
        assert client.get("/_mock/health").status_code == 200  # the control plane is never chaotic


def test_settings_load_the_profile_and_reject_a_bad_one(profile: Path, tmp_path: Path) -> None:
    deps = make_deps(Settings(clock="virtual", chaos=profile))
    assert deps.chaos == ChaosProfile({"429": 0.15, "500": 0.1, "503": 0.15}, 0.2, 1)
    bad = tmp_path / "bad.yaml"
    bad.write_text('faults: {"418": 0.5}\n', encoding="utf-8")
    with pytest.raises(ChaosError):
        make_deps(Settings(clock="virtual", chaos=bad))
    too_much = tmp_path / "too-much.yaml"
    too_much.write_text('faults: {"500": 0.7, "503": 0.7}\n', encoding="utf-8")
    with pytest.raises(ChaosError):
        ChaosProfile.load(too_much)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ('faults:\n  - {operation: getJob, fault: "503"}\n', "faults must be a mapping"),
        ("faults: 5\n", "faults must be a mapping"),
        ("latency: 5\n", "latency must be a mapping"),
        ('faults: {"503": "often"}\n', "faults.503 must be"),
        ('faults: {"503": true}\n', "faults.503 must be"),
        ('latency: {probability: "x", ms: 5}\n', "latency needs probability"),
        ("latency: {probability: 0.1, ms: 1.5}\n", "latency needs probability"),
        ("latency: {probability: 0.1, ms: 5, jitter: 3}\n", "latency takes"),
    ],
)
def test_a_malformed_profile_is_one_sentence_naming_the_entry_never_a_traceback(
    tmp_path: Path, text: str, named: str
) -> None:
    """`serve --chaos` with a profile shaped unlike the README's (a list of rules, a number, a
    word for a probability) printed a Python traceback (AttributeError) or a message naming
    neither the file nor the entry ("could not convert string to float: 'x'"), or ignored an
    entry it does not know. A ChaosError is what `serve` prints as its one sentence (exit 2)."""
    path = tmp_path / "chaos.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ChaosError) as refused:
        ChaosProfile.load(path)
    assert str(refused.value).startswith(f"{path}: ") and named in str(refused.value)
    with pytest.raises(ChaosError):
        make_deps(Settings(clock="virtual", chaos=path))
