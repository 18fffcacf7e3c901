"""A `serve` refused at start-up leaves its `--state` as it found it (SQLite here; Redis in
tests/redis/test_serve_settings.py; memory keeps nothing to leave): its port taken, or the
contract it would serve unusable, is found before anything is written."""

from __future__ import annotations

from pathlib import Path

import pytest
from refusals import Cause, refused
from starlette.testclient import TestClient
from support import FULL, PROJECT, auth

from layers_mock_server.http.app import build_app
from layers_mock_server.settings import Settings, make_deps


def files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_a_refused_serve_creates_no_state_file(
    failing: Cause, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A fresh state (with the refused serve's seed) was written before the port was tried:
    a later serve then found a state it never served. Nothing is created now, not even the
    lock file."""
    state = f"sqlite:{tmp_path / 'state.sqlite'}"
    refused(["--state", state, "--seed", "3"], failing, capsys)
    assert files(tmp_path) == {}


def test_a_refused_serve_leaves_a_state_file_byte_for_byte(
    failing: Cause, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file that holds a sandbox (seed 1, one influencer) is not opened by a serve that
    cannot start: every byte of it, its WAL and its lock file stays as it was."""
    state = f"sqlite:{tmp_path / 'state.sqlite'}"
    deps = make_deps(Settings(state=state, seed=1, clock="virtual"))
    with TestClient(build_app(deps)) as client:
        created = client.post(f"/v1/projects/{PROJECT}/influencers", headers=auth(FULL), json={})
        assert created.status_code == 202, created.text
    deps.sim.store.close()  # type: ignore[union-attr]
    before = files(tmp_path)
    refused(["--state", state, "--seed", "2"], failing, capsys)
    assert files(tmp_path) == before
