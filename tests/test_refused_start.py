"""A `serve` refused at start-up leaves its `--state` as it found it (SQLite here; Redis in
tests/redis/test_serve_settings.py; memory keeps nothing to leave): its port taken, or the
contract it would serve unusable, is found before anything is written."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient
from support import FULL, PROJECT, auth

from layers_mock_server.cli import main
from layers_mock_server.http import app as http_app
from layers_mock_server.http.app import build_app
from layers_mock_server.settings import Settings, make_deps
from layers_mock_server.spec import SpecError


@pytest.fixture
def taken() -> Iterator[str]:
    """A port another process listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield str(sock.getsockname()[1])


@pytest.fixture
def unusable_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    """The contract fails its start-up check (as a broken install's would)."""

    def broken() -> None:
        raise SpecError("openapi/layers.yaml: broken on purpose")

    monkeypatch.setattr(http_app, "partner_spec", broken)


def files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def refused(argv: list[str], capsys: pytest.CaptureFixture[str], said: str) -> None:
    """Exit code 2, one sentence on stderr, no traceback, no banner."""
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "", out
    assert err.startswith("layers-mock: ") and said in err, err
    assert err.count("\n") == 1 and "Traceback" not in err, err


@pytest.mark.parametrize("failing", ["port in use", "contract"])
def test_a_refused_serve_creates_no_state_file(
    failing: str, taken: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], request: Any
) -> None:
    """A fresh state (with the refused serve's seed) was written before the port was tried:
    a later serve then found a state it never served. Nothing is created now, not even the
    lock file."""
    port = taken if failing == "port in use" else "0"
    if failing == "contract":
        request.getfixturevalue("unusable_contract")
    state = f"sqlite:{tmp_path / 'state.sqlite'}"
    said = f"cannot listen on 127.0.0.1:{taken}" if failing == "port in use" else "on purpose"
    refused(["serve", "--port", port, "--state", state, "--seed", "3"], capsys, said)
    assert files(tmp_path) == {}


@pytest.mark.parametrize("failing", ["port in use", "contract"])
def test_a_refused_serve_leaves_a_state_file_byte_for_byte(
    failing: str, taken: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], request: Any
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
    if failing == "contract":
        request.getfixturevalue("unusable_contract")
    port = taken if failing == "port in use" else "0"
    said = f"cannot listen on 127.0.0.1:{taken}" if failing == "port in use" else "on purpose"
    refused(["serve", "--port", port, "--state", state, "--seed", "2"], capsys, said)
    assert files(tmp_path) == before
