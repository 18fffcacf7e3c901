"""`layers-mock serve`: the banner, a real answer on 127.0.0.1, a clean Ctrl-C, clear errors."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from support import HTTP_TIMEOUT_S

from layers_mock_server import __version__, cli
from layers_mock_server.cli import banner, main
from layers_mock_server.settings import Settings

PROJECT = "prj_254a4ce1-f4ca-42b1-9e36-17ca45ef3d39"


def start(*flags: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "layers_mock_server.cli", "serve", "--port", "0", *flags],
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
    assert "--state must be memory, sqlite:PATH or redis://HOST:PORT/DB" in capsys.readouterr().err


def test_version_and_help_show_defaults_and_examples(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as version:
        main(["--version"])
    assert version.value.code == 0 and capsys.readouterr().out == f"layers-mock {__version__}\n"
    for command, default in (("serve", "(default: 4010)"), ("conform", "(default: 600.0)")):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = capsys.readouterr().out
        assert default in text and "examples:\n  layers-mock " + command in text


def test_conform_help_gives_every_exit_code_the_runner_ends_with(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A CI author reads the exit codes in --help: exit 3 is also a run that judged nothing."""
    with pytest.raises(SystemExit):
        main(["conform", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "3 clauses were NOT CHECKED and --fail-on-not-checked was given" in text
    assert "or every clause of the run was NOT CHECKED" in text


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["serve", "--port", "70000"], "argument --port: '70000' is not a port"),
        (["serve", "--port", "-1"], "is not a port"),
        (["serve", "--port", "http"], "is not a port"),
        (["serve", "--seed", "-3"], "is not a seed"),
        (["serve", "--seed", str(2**64)], "is not a seed"),
        (["serve", "--speed", "0"], "is not a speed"),
        (["serve", "--speed", "inf"], "is not a speed"),
        (["serve", "--clock", "sundial"], "invalid choice: 'sundial'"),
        (["serve", "--bogus"], "unrecognized arguments: --bogus"),
        (["conform", "--examples", "many"], "is not a number of examples"),
        (["conform", "--patience", "nan"], "'nan' is not a number of seconds above 0"),
        (["conform", "--poll-interval", "0"], "'0' is not a number of seconds above 0"),
        (["launch"], "invalid choice: 'launch'"),
        ([], "the following arguments are required"),
    ],
)
def test_a_bad_flag_is_one_clear_line_and_exit_2(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert err.count("\n") == 1 and says in err and "--help" in err, err


def test_an_unusable_state_file_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--port", "0", "--state", f"sqlite:{tmp_path}/no/such/dir.db"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("layers-mock: --state sqlite:") and err.count("\n") == 1


def test_a_fixture_file_of_the_wrong_shape_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    odd = tmp_path / "odd.yaml"
    odd.write_text("organizations: [1, 2]\n")
    assert main(["serve", "--fixtures", str(odd), "--port", "0"]) == 2
    assert "not a fixtures document" in capsys.readouterr().err


def test_conform_without_its_engines_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "conform_engines_missing", lambda: True)
    assert main(["conform", "--list"]) == 2
    assert capsys.readouterr().err == f"{cli.CONFORM_EXTRA}\n"


def test_the_banner_shows_speed_only_on_a_wall_clock() -> None:
    keys = [("lp_test_x_y", "org", "*")]
    virtual = banner(Settings(clock="virtual", speed=60), keys, None)
    wall = banner(Settings(clock="wall", speed=60), keys, None)
    assert "clock virtual ·" in virtual and "speed" not in virtual
    assert "clock wall (speed 60) ·" in wall
    assert "fixtures default (shipped with layers-mock)" in wall


def test_the_banner_brackets_an_ipv6_address_so_its_urls_can_be_pasted() -> None:
    """`serve --host ::1` printed `http://::1:4010`, which no browser or curl accepts: the
    listening line, the dashboard link and the sample curl all carry the address in brackets."""
    keys = [("lp_test_x_y", "org", "*")]
    shown = banner(Settings(host="::1", port=4010), keys, PROJECT)
    assert shown.splitlines()[0] == "layers-mock listening on http://[::1]:4010"
    assert "  dashboard: http://[::1]:4010/_mock/ui" in shown
    assert f"curl -s -X POST http://[::1]:4010/v1/projects/{PROJECT}/influencers" in shown
    assert "http://::1" not in shown
    assert "listening on http://127.0.0.1:4010" in banner(Settings(), keys, None)


@pytest.mark.parametrize(
    ("host", "listening", "link"),
    [
        ("0.0.0.0", "http://0.0.0.0:4010", "http://127.0.0.1:4010"),
        ("::", "http://[::]:4010", "http://[::1]:4010"),
    ],
)
def test_the_banner_of_a_serve_on_every_interface_links_to_loopback(
    host: str, listening: str, link: str
) -> None:
    """`serve --host 0.0.0.0` (the README's Redis example) printed its dashboard link and
    sample curl as http://0.0.0.0:4010/...: an address to listen on, not one to reach (RFC 1122
    §3.2.1.3), which not every client connects to. The first line still says where it listens;
    the links go to loopback, which every interface includes."""
    keys = [("lp_test_x_y", "org", "*")]
    shown = banner(Settings(host=host, port=4010, admin_token="t"), keys, PROJECT)
    assert shown.splitlines()[0] == f"layers-mock listening on {listening}"
    assert f"  dashboard: {link}/_mock/ui?token=t" in shown
    assert f"curl -s -X POST {link}/v1/projects/{PROJECT}/influencers" in shown
    assert shown.count(listening) == 1


def test_the_banner_names_the_state_and_the_workers_and_never_a_password() -> None:
    """A user starting a second `serve` on the same Redis checks, from the banner, which
    sandbox and how many workers answer; a Redis password never reaches the terminal."""
    keys = [("lp_test_x_y", "org", "*")]
    url = "redis://:hunter2@127.0.0.1:6390/0?sandbox=team-a"
    shared = banner(Settings(state=url), keys, None, workers=2)
    assert "  state redis://:***@127.0.0.1:6390/0?sandbox=team-a · 2 workers" in shared
    assert "hunter2" not in shared
    assert "  state memory · 1 worker" in banner(Settings(), keys, None)


def test_the_banner_shows_the_seed_of_state_that_existed_not_a_new_seed_flag() -> None:
    """A restart with another --seed on a kept state (sqlite:, redis://) mints ids from the
    state's seed: the banner says which, and how the flag's seed is taken."""
    keys = [("lp_test_x_y", "org", "*")]
    kept = banner(Settings(seed=9), keys, None, state_seed=7)
    assert '  seed 7 (the state\'s; --seed 9 applies with POST /_mock/reset {"seed": 9}) ·' in kept
    assert "  seed 9 · " in banner(Settings(seed=9), keys, None, state_seed=9)


def test_log_requests_prints_a_line_per_request_and_the_journal_keeps_bodies() -> None:
    process = start("--clock", "virtual", "--log-requests", "--journal-bodies", "--strict")
    try:
        assert process.stdout is not None
        base = process.stdout.readline().split()[-1]
        while "barista energy" not in process.stdout.readline():  # the banner ends with a curl
            pass
        auth = {"Authorization": "Bearer lp_test_acmefull_Zx81Qm4TnR7vKp2W"}
        created = httpx.post(
            f"{base}/v1/projects/{PROJECT}/influencers",
            headers=auth,
            json={"prompt": "hi"},
            timeout=HTTP_TIMEOUT_S,
        )
        httpx.get(
            f"{base}/v1/whoami", headers={**auth, "Prefer": "fault=503"}, timeout=HTTP_TIMEOUT_S
        )
        httpx.get(f"{base}/nowhere?x=1", timeout=HTTP_TIMEOUT_S)
        journal = httpx.get(f"{base}/_mock/requests", timeout=HTTP_TIMEOUT_S).json()["items"]
        lines = [process.stdout.readline() for _ in range(4)]
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=20)
    request_id = created.headers["x-request-id"]
    assert lines[0].startswith("2026-01-01T00:00:00.000Z  202  POST /v1/projects/")
    assert request_id in lines[0] and " ms  " in lines[0]
    assert "  503  GET /v1/whoami  " in lines[1] and lines[1].rstrip().endswith("fault=503")
    assert "  404  GET /nowhere?x=1  " in lines[2]
    assert "  200  GET /_mock/requests  " in lines[3]
    assert journal[1]["request"]["body"] == '{"prompt":"hi"}'
    assert journal[1]["request"]["headers"]["authorization"] == "Bearer lp_test_acmefull_***"
    assert journal[1]["response"]["headers"]["x-request-id"] == request_id


def test_serve_refuses_an_empty_admin_token(capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 9, D14: an empty token off loopback printed no token and admitted `Bearer `."""
    code = main(["serve", "--host", "0.0.0.0", "--port", "0", "--admin-token", ""])
    assert code == 2
    assert "--admin-token" in capsys.readouterr().err
