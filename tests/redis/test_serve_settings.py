"""Start-up on a shared sandbox: a refused `serve` leaves the sandbox as it found it, a refusal
counts the processes that answer requests, and every flag that changes an answer or what is
recorded must agree between the serves of one sandbox (stores/redis_serving.py)."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis
from redis_served import LIVENESS_S, Serve, marks, refused_with
from redisd import RedisServer
from support import FULL, PROJECT, auth

from layers_mock_server.cli import main
from layers_mock_server.http import app as http_app
from layers_mock_server.spec import SpecError

CREATE = f"/v1/projects/{PROJECT}/influencers"


def sandbox_keys(url: str) -> dict[bytes, bytes]:
    """Every key of the sandbox, as DUMP (its type and value, not its expiry)."""
    name = url.partition("sandbox=")[2]
    with contextlib.closing(redis.Redis.from_url(url.partition("?")[0])) as client:
        keys = client.keys(f"{{lm:{name}}}:*")
        return {key: client.dump(key) for key in sorted(keys)}


@pytest.fixture
def taken() -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield str(sock.getsockname()[1])


def broken_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> None:
        raise SpecError("openapi/layers.yaml: broken on purpose")

    monkeypatch.setattr(http_app, "partner_spec", broken)


def refused_start(url: str, port: str, capsys: pytest.CaptureFixture[str], said: str) -> None:
    argv = ["serve", "--port", port, "--state", url, "--clock", "wall", "--seed", "3"]
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("layers-mock: ") and said in err, err
    assert err.count("\n") == 1 and "Traceback" not in err, err


@pytest.mark.parametrize("failing", ["port in use", "contract"])
def test_a_refused_serve_writes_nothing_to_a_fresh_sandbox(
    redis_server: RedisServer,
    taken: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    failing: str,
) -> None:
    """Its port taken (or its contract unusable), a serve wrote the sandbox's fresh state
    with its own seed, and recorded its settings, before it found out: the next serve then
    resumed a sandbox no one served. Now it leaves no key at all."""
    url = redis_server.sandbox()
    if failing == "contract":
        broken_contract(monkeypatch)
    said = f"cannot listen on 127.0.0.1:{taken}" if failing == "port in use" else "on purpose"
    refused_start(url, taken if failing == "port in use" else "0", capsys, said)
    assert sandbox_keys(url) == {}


@pytest.mark.parametrize("failing", ["port in use", "contract"])
def test_a_refused_serve_leaves_a_sandbox_key_for_key(
    redis_server: RedisServer,
    taken: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    failing: str,
) -> None:
    """A sandbox that holds state (seed 7, one influencer), its serve stopped: a serve with
    other flags that cannot start changes none of its keys (not its recorded settings, not
    its request-id counters)."""
    url = redis_server.sandbox()
    server = Serve("--state", url)
    try:
        created = httpx.post(server.url + CREATE, headers=auth(FULL), json={}, timeout=LIVENESS_S)
        assert created.status_code == 202, created.text
    finally:
        assert server.stop() == 0
    before = sandbox_keys(url)
    if failing == "contract":
        broken_contract(monkeypatch)
    said = f"cannot listen on 127.0.0.1:{taken}" if failing == "port in use" else "on purpose"
    refused_start(url, taken if failing == "port in use" else "0", capsys, said)
    assert sandbox_keys(url) == before
    assert marks(url) == {}


def unused(*args: Any) -> None:  # pragma: no cover - keeps refused_with imported for later
    refused_with(*args)
