"""Attacks on a shared sandbox's start-up checks (stores/redis_serving.py): hostile flag and
recorded values, a serve killed with -9 mid start-up, two serves started at one instant with
other settings, and a restart with new flags once every worker stopped."""

from __future__ import annotations

import contextlib
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from redis_served import LIVENESS_S, Serve, marks, refused_with, run_out
from redisd import RedisServer
from support import FULL, HTTP_TIMEOUT_S, SEED, auth

from layers_mock_server import cli
from layers_mock_server.settings import Settings, make_deps


@pytest.fixture(autouse=True)
def never_serving(monkeypatch: pytest.MonkeyPatch) -> None:
    """A `serve` in the test's process that was not refused fails at its banner."""

    def banner(*args: Any, **kwargs: Any) -> str:
        raise AssertionError("this serve was not refused")

    monkeypatch.setattr(cli, "banner", banner)


def serving_key(url: str) -> str:
    return f"{{lm:{url.partition('sandbox=')[2]}}}:serving"


def test_recorded_settings_of_any_shape_are_shown_in_one_line_never_a_traceback(
    redis_server: RedisServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """What Redis holds was written by another serve, perhaps another version, or by hand: a
    speed that is no number, a source path with a line break, a value missing. The refusal
    is still one line that names them."""
    url = redis_server.sandbox()
    live = make_deps(Settings(state=url, clock="virtual", seed=SEED))
    try:
        with contextlib.closing(redis.Redis.from_url(url.partition("?")[0])) as client:
            client.hset(serving_key(url), mapping={"speed": "fast\nest", "fixtures": "x" * 64})
            client.hset(serving_key(url), "fixtures-from", "/tmp/a\nb.yaml")
            client.hdel(serving_key(url), "strict")
        err = refused_with(url, capsys)
        assert "--speed fast\\nest (asked for 1)" in err, err
        assert "--fixtures /tmp/a\\nb.yaml (content xxxxxxxxxxxx)" in err, err
        assert "--strict (not recorded) (asked for off)" in err, err
    finally:
        live.sim.store.close()  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "token",
    ["t" * 100_000, "tøken-✓-ñ", "';redis.call('FLUSHALL')--", "%00\\x00%s%n"],
    ids=["long", "unicode", "lua", "format"],
)
def test_a_hostile_admin_token_is_compared_and_never_stored_or_shown(
    redis_server: RedisServer, capsys: pytest.CaptureFixture[str], token: str
) -> None:
    """Long, non-ASCII, a Lua or format string: the same token joins, another is refused
    without either in the message; Redis holds only a digest (64 hex digits)."""
    url = redis_server.sandbox()
    live = make_deps(Settings(state=url, clock="virtual", seed=SEED, admin_token=token))
    try:
        joined = make_deps(Settings(state=url, clock="virtual", seed=SEED, admin_token=token))
        joined.sim.store.close()  # type: ignore[union-attr]
        err = refused_with(url, capsys, "--admin-token", token + "2")
        assert "--admin-token: another token (compared by a keyed digest, neither is " in err
        assert token not in err, err
        with contextlib.closing(redis.Redis.from_url(url.partition("?")[0])) as client:
            recorded = client.hget(serving_key(url), "admin-token")
            assert recorded is not None and len(recorded) == 64
            assert all(token.encode() not in value for value in client.hvals(serving_key(url)))
            assert client.dbsize() > 0  # the token ran nowhere
    finally:
        live.sim.store.close()  # type: ignore[union-attr]


def test_a_generated_token_is_told_to_take_the_live_workers_one(
    redis_server: RedisServer,
) -> None:
    """Off loopback, a serve without --admin-token generates its own: it differs from the
    live workers', so it is refused, and told how to join."""
    url = redis_server.sandbox()
    live = make_deps(Settings(state=url, clock="virtual", admin_token="theirs"))
    try:
        with pytest.raises(ValueError, match="--admin-token: another token") as refused:
            make_deps(
                Settings(state=url, clock="virtual", admin_token="mine", admin_token_generated=True)
            )
        assert "this serve generated its own: give it theirs (their banner's) with " in str(
            refused.value
        )
    finally:
        live.sim.store.close()  # type: ignore[union-attr]


# `serve` killed with -9 after its settings and mark were recorded, before it read or wrote
# the sandbox (its first look).
KILLED_IN_START_UP = """import os, signal, sys
from layers_mock_server.stores.redis import RedisStore
def first_look(self):
    os.kill(os.getpid(), signal.SIGKILL)
RedisStore._first_look = first_look
from layers_mock_server.cli import main
sys.exit(main(sys.argv[1:]))"""


def test_a_serve_killed_mid_start_up_holds_the_sandbox_until_its_mark_runs_out(
    redis_server: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """Its mark counts as live (it could have been a serve about to answer): other flags
    are refused; once it ran out they are taken, and the sandbox (never written) starts
    fresh with them."""
    url = redis_server.sandbox()
    command = [sys.executable, "-c", KILLED_IN_START_UP, "serve", "--port", "0"]
    command += ["--state", url, "--clock", "virtual", "--seed", str(SEED), "--strict"]
    done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == -9, done
    assert len(marks(url)) == 1
    err = refused_with(url, capsys)
    assert " 1 live worker with other settings: --strict on (asked for off); " in err, err
    run_out(url)
    taking = Serve("--state", url, "--seed", "8")
    try:
        seed = httpx.get(taking.url + "/_mock/seed", timeout=LIVENESS_S).json()
        assert seed == {"seed": 8}
    finally:
        assert taking.stop() == 0


def first_line(proc: subprocess.Popen[str], lines: queue.Queue[tuple[int, str]]) -> None:
    assert proc.stdout is not None
    lines.put((proc.pid, proc.stdout.readline()))


def test_two_serves_started_at_one_instant_with_other_settings_one_wins(
    redis_server: RedisServer,
) -> None:
    """Two serves with other seeds and tokens, started together on a fresh sandbox: exactly
    one serves, the other is refused with the sentence (exit code 2, nothing on stdout, no
    traceback), whichever CLAIM Redis ran first."""
    url = redis_server.sandbox()
    base = [sys.executable, "-m", "layers_mock_server.cli", "serve", "--port", "0"]
    base += ["--state", url, "--clock", "virtual"]
    procs = [
        subprocess.Popen(
            [*base, "--seed", seed, "--admin-token", f"tok-{seed}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in ("1", "2")
    ]
    lines: queue.Queue[tuple[int, str]] = queue.Queue()
    for proc in procs:
        threading.Thread(target=first_line, args=(proc, lines), daemon=True).start()
    try:
        first = dict(lines.get(timeout=LIVENESS_S) for _ in procs)
        (winner,) = [p for p in procs if first[p.pid].startswith("layers-mock listening on ")]
        (loser,) = [p for p in procs if p is not winner]
        assert first[loser.pid] == ""  # EOF: it printed nothing
        assert loser.wait(timeout=LIVENESS_S) == 2
        assert loser.stderr is not None
        err = loser.stderr.read()
        assert err.count("\n") == 1 and "Traceback" not in err, err
        assert " is served by 1 live worker with other settings: --seed " in err, err
        assert "--admin-token: another token" in err and "tok-" not in err, err
        url_of_winner = first[winner.pid].split()[-1]
        token = f"tok-{winner.args[-3]}"
        answer = httpx.get(url_of_winner + "/_mock/seed", headers=auth(token), timeout=LIVENESS_S)
        assert answer.json() == {"seed": int(winner.args[-3])}
        assert len(marks(url)) == 1
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
            proc.wait(timeout=LIVENESS_S)
    assert marks(url) == {}


def test_a_restart_with_new_flags_after_every_worker_stopped_is_taken(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """A `--workers 2` serve with --strict, --journal-bodies, --chaos and a token (its
    workers not refused by their own main process), stopped; a serve with none of them is
    taken: its control plane is open, its journal keeps no bodies, it has no chaos."""
    url = redis_server.sandbox()
    chaos = tmp_path / "chaos.yaml"
    chaos.write_text("latency: {probability: 0.5, ms: 1}\n")
    flags = ["--strict", "--journal-bodies", "--admin-token", "tok-1", "--chaos", str(chaos)]
    first = Serve("--state", url, *flags, "--workers", "2")
    try:
        for _ in range(4):  # (over both workers, as the kernel spreads the connections)
            answer = httpx.get(first.url + "/_mock/chaos", timeout=LIVENESS_S)
            assert answer.status_code == 401  # the token guards it
            answer = httpx.get(
                first.url + "/_mock/chaos", headers=auth("tok-1"), timeout=HTTP_TIMEOUT_S
            )
            assert answer.json()["profile"]["latency"] == {"probability": 0.5, "ms": 1}
    finally:
        assert first.stop() == 0
    assert marks(url) == {}
    taking = Serve("--state", url)
    try:
        httpx.get(taking.url + "/v1/whoami", headers=auth(FULL), timeout=LIVENESS_S)
        journal = httpx.get(taking.url + "/_mock/requests", timeout=LIVENESS_S)
        assert journal.status_code == 200  # open: no token now
        (entry,) = journal.json()["items"]
        assert "request" not in entry and "response" not in entry  # no bodies now
        answer = httpx.get(taking.url + "/_mock/chaos", timeout=LIVENESS_S)
        assert answer.json() == {"profile": None}
    finally:
        assert taking.stop() == 0


def test_settings_recorded_by_an_older_version_are_said_to_be_unrecorded(
    redis_server: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """A sandbox served by a version that compared only five flags: the others are "(not
    recorded)" in the refusal (a token's value still never shown), until its workers stop."""
    url = redis_server.sandbox()
    live = make_deps(Settings(state=url, clock="virtual", seed=SEED))
    try:
        with contextlib.closing(redis.Redis.from_url(url.partition("?")[0])) as client:
            client.hdel(serving_key(url), "chaos", "strict", "journal-bodies", "admin-token")
        err = refused_with(url, capsys, "--admin-token", "tok-new")
        assert "--chaos (not recorded) (asked for none), " in err, err
        assert "--admin-token (not recorded) (asked for a token); " in err, err
        assert "tok-new" not in err
    finally:
        live.sim.store.close()  # type: ignore[union-attr]
