"""A CI job's flags as a stranger writes them: a budget that is not a budget, or a failure file
that is not one, is a usage error in one sentence and exit 2, before anything is sent. Exit 1
means "the deployment broke the contract": a runner that crashed on its own input must never
say that, and a traceback is not a sentence."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from support import FULL, PROJECT

from layers_mock_server.cli import main


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--max-creates", "-3"),  # was: 'internal error of the runner: BudgetSpent'
        ("--max-creates", "2.5"),
        ("--max-projects", "-1"),  # was: accepted, a run as if 0
        ("--max-time", "-5"),  # was: 'internal error of the runner: TimeUp'
        ("--max-time", "0"),
        ("--max-time", "nan"),  # was: every clause NOT CHECKED, exit 3
        ("--rate-limit", "0"),  # was: accepted, as if no limit
        ("--rate-limit", "-1"),
        ("--rate-limit", "nan"),
        ("--rate-limit", "inf"),
        ("--examples", "0"),  # was: accepted, the engines judged nothing and PASSed
        ("--examples", "-1"),
    ],
)
def test_a_budget_that_is_not_one_is_a_usage_error(
    flag: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["conform", "--quiet", "--only", "auth.missing-key-401", flag, value])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"layers-mock conform: error: argument {flag}: '{value}' is not ")
    assert len(err.strip().splitlines()) == 1


def test_budgets_at_their_bounds_are_accepted() -> None:
    flags = ["--max-creates", "0", "--max-projects", "0", "--examples", "1", "--rate-limit", "1000"]
    assert main(["conform", "--quiet", "--only", "auth.missing-key-401", *flags]) == 0


@pytest.mark.parametrize(
    ("content", "sentence"),
    [
        (None, "cannot read"),  # was: a FileNotFoundError traceback, exit 1
        (b"nope", "not a saved failure"),  # was: a JSONDecodeError traceback, exit 1
        (b"\xff\xfe", "not a saved failure"),  # not UTF-8
        (b"[]", "not a saved failure"),  # was: AttributeError, exit 1
        (b'{"clause": "x"}', "not a saved failure"),  # was: KeyError 'steps', exit 1
        (b'{"clause": "x", "steps": [{"kind": "http"}]}', "not a saved failure"),  # KeyError
        (b'{"clause": "x", "steps": [7]}', "not a saved failure"),
        (b'{"clause": "x", "seed": "abc", "steps": []}', "not a saved failure"),
        (b'{"clause": "x", "seed": -1, "steps": []}', "not a saved failure"),
    ],
)
def test_a_replay_file_that_is_not_a_saved_failure_exits_2_in_one_sentence(
    content: bytes | None, sentence: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "failure.json"
    if content is not None:
        path.write_bytes(content)
    report = tmp_path / "r.json"
    assert main(["conform", "--quiet", "--replay", str(path), "--json", str(report)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"layers-mock conform: --replay {path}: {sentence}")
    assert len(err.strip().splitlines()) == 1
    assert json.loads(report.read_text())["exitCode"] == 2


def _one_step(headers: dict[str, str]) -> bytes:
    step = {"kind": "request", "method": "GET", "path": "/v1/whoami", "headers": headers}
    step |= {"body": "", "status": 200, "response": "{}"}
    return json.dumps({"clause": "x", "reason": "r", "seed": 0, "steps": [step]}).encode()


def test_a_replay_the_deployment_does_not_answer_exits_2_not_reproduced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It ended in a TargetUnreachable traceback and exit 1: 'the failure came back'."""
    path = tmp_path / "failure.json"
    path.write_bytes(_one_step({"Authorization": "Bearer ${LAYERS_API_KEY}"}))
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, never listening: refused, and no one else's
        url = f"http://127.0.0.1:{closed.getsockname()[1]}"
        flags = ["--base-url", url, "--api-key", FULL, "--project-id", PROJECT]
        code = main(["conform", "--quiet", "--replay", str(path), *flags])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"layers-mock conform: --replay {path}: cannot reach the target: ")
    assert len(err.strip().splitlines()) == 1


def test_a_replay_step_that_cannot_be_sent_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A header httpx cannot encode raised UnicodeEncodeError out of the command (exit 1)."""
    path = tmp_path / "failure.json"
    path.write_bytes(_one_step({"X-Note": "caf\xe9"}))
    assert main(["conform", "--quiet", "--replay", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"layers-mock conform: --replay {path}: a step cannot be sent: ")
    assert len(err.strip().splitlines()) == 1


def test_an_admin_token_and_a_tenant_key_together_are_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The run used the tenant key and dropped the token without a word (the testing API's
    connect() refuses the pair): which clock it moves must not be a guess."""
    flags = ["--base-url", "http://127.0.0.1:9", "--api-key", FULL, "--project-id", PROJECT]
    flags += ["--control-plane", "--admin-token", "s3cret", "--tenant-key", FULL]
    assert main(["conform", "--quiet", *flags]) == 2
    err = capsys.readouterr().err
    assert err == (
        "layers-mock conform: --admin-token and --tenant-key go apart: the operator's token "
        "moves the server's clock, a tenant key its organization's; give one\n"
    )
