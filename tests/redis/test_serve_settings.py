"""Start-up on a shared sandbox: a refused `serve` leaves the sandbox as it found it, a refusal
counts the processes that answer requests, and every flag that changes an answer or what is
recorded must agree between the serves of one sandbox (stores/redis_serving.py)."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from redis_served import LIVENESS_S, Serve, marks, refused_with
from redisd import RedisServer
from refusals import Cause, refused
from support import FULL, PROJECT, SEED, auth

from layers_mock_server import cli
from layers_mock_server.settings import Settings, make_deps

CREATE = f"/v1/projects/{PROJECT}/influencers"


@pytest.fixture(autouse=True)
def never_serving(monkeypatch: pytest.MonkeyPatch) -> None:
    """A `serve` run in the test's process that was not refused fails the test at its banner
    instead of serving for ever."""

    def banner(*args: Any, **kwargs: Any) -> str:
        raise AssertionError("this serve was not refused")

    monkeypatch.setattr(cli, "banner", banner)


def sandbox_keys(url: str) -> dict[bytes, bytes]:
    """Every key of the sandbox, as DUMP (its type and value, not its expiry)."""
    name = url.partition("sandbox=")[2]
    with contextlib.closing(redis.Redis.from_url(url.partition("?")[0])) as client:
        keys = client.keys(f"{{lm:{name}}}:*")
        return {key: client.dump(key) for key in sorted(keys)}


def test_a_refused_serve_writes_nothing_to_a_fresh_sandbox(
    redis_server: RedisServer,
    failing: Cause,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Its port taken (or its contract unusable), a serve wrote the sandbox's fresh state
    with its own seed, and recorded its settings, before it found out: the next serve then
    resumed a sandbox no one served. Now it leaves no key at all."""
    url = redis_server.sandbox()
    argv = ["--state", url, "--clock", "wall", "--seed", "3"]
    refused(argv, failing, capsys)
    assert sandbox_keys(url) == {}


def test_a_refused_serve_leaves_a_sandbox_key_for_key(
    redis_server: RedisServer,
    failing: Cause,
    capsys: pytest.CaptureFixture[str],
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
    argv = ["--state", url, "--clock", "wall", "--seed", "3"]
    refused(argv, failing, capsys)
    assert sandbox_keys(url) == before
    assert marks(url) == {}


def test_a_refusal_counts_the_workers_that_answer_not_the_main_process(
    redis_server: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """`serve --workers 2` keeps three marks while its workers start and for a while after:
    its main process's (it stands for the workers until they have theirs) and each worker's.
    A refusal said "3 live workers"; it says 2, the processes that answer requests."""
    url = redis_server.sandbox()
    server = Serve("--state", url, "--workers", "2")
    try:
        deadline = time.monotonic() + LIVENESS_S
        while len(marks(url)) < 3:  # the main process's, and each worker's
            assert time.monotonic() < deadline, marks(url)
        err = refused_with(url, capsys, "--seed", "8")
        assert " is served by 2 live workers with other settings: --seed 7 (asked for 8); " in err
    finally:
        assert server.stop() == 0


def test_a_main_process_counts_until_its_workers_have_marks_and_serves_add_up(
    redis_server: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """The count, mark by mark (a mark is "leader worker"; a main process's, or a serve of one
    process, names itself twice): a main process alone stands for the workers it is starting
    (1); once its workers have marks it is not counted; two serves add up."""
    url = redis_server.sandbox()
    live = make_deps(Settings(state=url, clock="virtual", seed=SEED))
    try:
        (lead,) = marks(url)
        leader = lead.split()[0].decode()
        err = refused_with(url, capsys, "--seed", "8")
        assert " is served by 1 live worker with other settings: " in err, err
        far = marks(url)[lead]
        name = url.partition("sandbox=")[2]
        with contextlib.closing(redis.Redis.from_url(url.partition("?")[0])) as client:
            client.zadd(f"{{lm:{name}}}:workers", {f"{leader} w1": far, f"{leader} w2": far})
            err = refused_with(url, capsys, "--seed", "8")
            assert " is served by 2 live workers with other settings: " in err, err
            client.zadd(f"{{lm:{name}}}:workers", {"other other": far})
            err = refused_with(url, capsys, "--seed", "8")
            assert " is served by 3 live workers with other settings: " in err, err
    finally:
        live.sim.store.close()  # type: ignore[union-attr]


# -- the flags that change an answer, or what is recorded, must agree ---------------------------

CHAOS = "faults: {'503': 0.5}\nlatency: {probability: 0.1, ms: 5}\n"


def stored(url: str) -> dict[bytes, bytes]:
    """The settings the sandbox records (HGETALL of its `serving` hash)."""
    name = url.partition("sandbox=")[2]
    with contextlib.closing(redis.Redis.from_url(url.partition("?")[0])) as client:
        return client.hgetall(f"{{lm:{name}}}:serving")  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("live", "asked", "said"),
    [
        ({}, ["--strict"], "--strict off (asked for on)"),
        ({"strict": True}, [], "--strict on (asked for off)"),
        ({}, ["--journal-bodies"], "--journal-bodies off (asked for on)"),
        ({}, ["--chaos", "{chaos}"], "--chaos none (asked for {chaos} (content "),
        ({"chaos": "{chaos}"}, [], "--chaos {chaos} (content "),
        ({}, ["--admin-token", "tok-asked-9"], "--admin-token none (asked for a token)"),
        ({"admin_token": "tok-live-1"}, [], "--admin-token a token (asked for none)"),
        ({"admin_token": "tok-live-1"}, ["--admin-token", "tok-asked-9"], "--admin-token: "),
    ],
)
def test_every_flag_that_changes_an_answer_or_the_journal_must_agree(
    redis_server: RedisServer,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    live: dict[str, Any],
    asked: list[str],
    said: str,
) -> None:
    """--strict (a response the spec does not describe: a 500 or not), --chaos (background
    faults), --journal-bodies (what /_mock/requests keeps) and --admin-token (401 or not)
    made two serves of one sandbox answer one request two ways: each is refused like --seed,
    named with both values; a token never in clear, neither in the message nor in Redis."""
    chaos = tmp_path / "chaos.yaml"
    chaos.write_text(CHAOS)
    url = redis_server.sandbox()
    settings = {k: chaos if v == "{chaos}" else v for k, v in live.items()}
    deps = make_deps(Settings(state=url, clock="virtual", seed=SEED, **settings))
    try:
        flags = [str(chaos) if flag == "{chaos}" else flag for flag in asked]
        err = refused_with(url, capsys, *flags)
        assert f"with other settings: {said.replace('{chaos}', str(chaos))}" in err, err
        assert "--seed" not in err and "--clock" not in err, err
        for secret in ("tok-live-1", "tok-asked-9"):
            assert secret not in err, err
            assert all(secret.encode() not in value for value in stored(url).values())
    finally:
        deps.sim.store.close()  # type: ignore[union-attr]


def test_the_same_flags_join_and_every_difference_is_named_in_one_sentence(
    redis_server: RedisServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A copy of the chaos profile is the same profile, one token the same token: both join.
    A serve that differs in everything is refused in one sentence naming each flag."""
    chaos, copy = tmp_path / "chaos.yaml", tmp_path / "copy.yaml"
    chaos.write_text(CHAOS)
    copy.write_text("# the same profile\n" + CHAOS)
    url = redis_server.sandbox()
    same = {"state": url, "clock": "virtual", "seed": SEED, "strict": True}
    same |= {"journal_bodies": True, "admin_token": "tok-live-1"}
    deps = make_deps(Settings(**same, chaos=chaos))
    try:
        joined = make_deps(Settings(**same, chaos=copy))
        joined.sim.store.close()  # type: ignore[union-attr]
        err = refused_with(url, capsys, "--seed", "8", "--admin-token", "tok-asked-9")
        for flag in ("--seed", "--chaos", "--strict", "--journal-bodies", "--admin-token"):
            assert f" {flag} " in err or f" {flag}: " in err, (flag, err)
        assert "tok-live-1" not in err and "tok-asked-9" not in err, err
    finally:
        deps.sim.store.close()  # type: ignore[union-attr]
