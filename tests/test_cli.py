"""`layers-mock serve`: the banner, a real answer on 127.0.0.1, a clean Ctrl-C, clear errors."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from mockserver.cli import main


def start(*flags: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "mockserver.cli", "serve", "--port", "0", *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_serve_prints_banner_answers_and_stops_cleanly_on_ctrl_c() -> None:
    process = start("--clock", "virtual", "--seed", "42", "--strict")
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith("layers-mock listening on http://127.0.0.1:")
        base = first.split()[-1]
        banner: list[str] = []
        while len(banner) < 40 and "curl -s -X POST" not in "".join(banner):
            banner.append(process.stdout.readline())  # up to the example, however many keys
        text = "".join(banner)
        assert "seed 42" in text and "clock virtual" in text
        assert "lp_test_acmefull_Zx81Qm4TnR7vKp2W" in text and "curl -s -X POST" in text
        assert httpx.get(f"{base}/_mock/health", timeout=10).json() == {"status": "ok"}
        created = httpx.post(
            f"{base}/v1/projects/prj_254a4ce1-f4ca-42b1-9e36-17ca45ef3d39/influencers",
            headers={"Authorization": "Bearer lp_test_acmefull_Zx81Qm4TnR7vKp2W"},
            timeout=10,
        )
        assert created.status_code == 202
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=20)
    assert process.returncode == 0
    assert "Traceback" not in stderr


def test_bad_fixture_file_is_a_clear_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("organizations:\n  - name: No id\n")
    assert main(["serve", "--fixtures", str(broken), "--port", "0"]) == 2
    assert "missing `organizationId`" in capsys.readouterr().err


def test_bad_state_spec_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--state", "postgres://x", "--port", "0"]) == 2
    assert "--state must be memory or sqlite:PATH" in capsys.readouterr().err
