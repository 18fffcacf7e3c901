"""The runner against the real mock: PASS with no false alarm, in-process and over HTTP,
deterministic with a seed, and the CLI's reports and exit codes."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from conformance.serving import mock_app, serve
from support import FULL, GLOBEX_PROJECT, NO_INFLUENCERS, PROJECT

from mockserver.cli import main
from mockserver.conformance.report import FAIL, NOT_CHECKED, PASS
from mockserver.conformance.runner import ALL_CLAUSES, Options, run
from mockserver.conformance.target import Identities, TargetUnreachable

IDS = Identities(FULL, PROJECT, NO_INFLUENCERS, GLOBEX_PROJECT)


def test_default_profile_passes_the_mock_in_process() -> None:
    report, _ = run(Options(seed=3))
    assert {v.status for v in report.verdicts.values()} == {PASS}, report.table()
    assert set(report.verdicts) == set(ALL_CLAUSES)
    assert report.requests > 300
    assert report.exit_code() == 0


def test_same_seed_same_requests_and_verdicts() -> None:
    first, _ = run(Options(seed=11, examples=5))
    second, _ = run(Options(seed=11, examples=5))
    assert first.sequence_digest == second.sequence_digest
    assert first.requests == second.requests
    assert {k: v.status for k, v in first.verdicts.items()} == {
        k: v.status for k, v in second.verdicts.items()
    }


def test_passes_the_mock_over_http() -> None:
    with serve(mock_app()) as url:
        report, _ = run(Options(base_url=url, identities=IDS, max_creates=50, examples=6))
    assert {v.status for v in report.verdicts.values()} == {PASS}, report.table()


def test_without_scopeless_key_the_403_clause_is_not_checked() -> None:
    ids = Identities(FULL, PROJECT, None, GLOBEX_PROJECT)
    with serve(mock_app()) as url:
        report, _ = run(Options(base_url=url, identities=ids, only=["scope."], max_creates=5))
    verdict = report.verdicts["scope.forbidden-403"]
    assert verdict.status == NOT_CHECKED
    assert "--scopeless-key" in verdict.reason


def test_budget_caps_real_job_starts() -> None:
    """Against a URL the default budget is 5 creates, whatever the clauses would like."""
    with serve(mock_app()) as url:
        report, _ = run(Options(base_url=url, identities=IDS, examples=3))
    assert report.creates <= 5
    assert not report.failed, report.table()


def test_cli_writes_reports_and_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "conform",
            "--quiet",
            "--examples",
            "3",
            "--json",
            str(tmp_path / "r.json"),
            "--junit",
            str(tmp_path / "r.xml"),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "auth.missing-key-401" in out
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["exitCode"] == 0
    assert {c["verdict"] for c in data["clauses"]} == {PASS}
    suite = ET.parse(tmp_path / "r.xml").getroot().find("testsuite")
    assert suite is not None
    assert suite.get("failures") == "0"
    assert int(suite.get("tests", "0")) == len(ALL_CLAUSES)


def test_cli_usage_error_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("LAYERS_API_KEY", raising=False)
    monkeypatch.delenv("LAYERS_PROJECT_ID", raising=False)
    assert main(["conform", "--base-url", "http://127.0.0.1:9"]) == 2
    assert "--api-key" in capsys.readouterr().err
    assert main(["conform", "--only", "no.such-clause"]) == 2


def test_cli_connection_error_exits_2(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keys from the environment; a closed loopback port is a connection error, not a FAIL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now: connection refused at once
    monkeypatch.setenv("LAYERS_API_KEY", FULL)
    monkeypatch.setenv("LAYERS_PROJECT_ID", PROJECT)
    assert main(["conform", "--quiet", "--base-url", f"http://127.0.0.1:{port}"]) == 2
    with pytest.raises(TargetUnreachable):
        run(Options(base_url=f"http://127.0.0.1:{port}", identities=IDS))


def test_failure_report_has_request_response_and_curl_without_the_key() -> None:
    from conformance.broken_deployments import broken

    report, target = run(Options(app=broken("401-becomes-403", mock_app()), only=["auth.missing"]))
    verdict = report.verdicts["auth.missing-key-401"]
    assert verdict.status == FAIL
    text = report.failures_text(target.secrets)
    assert "reproduce: curl" in text
    assert "< 403" in text
    assert FULL not in text


def test_max_time_leaves_clauses_not_checked_with_the_reason() -> None:
    report, _ = run(Options(max_time=0.0, only=["auth.", "tenancy."]))
    assert {v.status for v in report.verdicts.values()} == {NOT_CHECKED}
    assert all("--max-time" in v.reason for v in report.verdicts.values())
    assert report.exit_code() == 0


def test_429_is_retried_after_its_retry_after() -> None:
    """A throttled request is sent again after Retry-After (slept through an injected sleep)."""
    from conformance.broken_deployments import Rewrite, _error

    def throttle_once(req, resp, mem) -> None:  # type: ignore[no-untyped-def]
        if req.path == "/v1/whoami" and not mem.get("done"):
            mem["done"] = True
            _error(resp, 429, "RATE_LIMITED")
            resp.headers["retry-after"] = "7"

    slept: list[float] = []
    app = Rewrite(mock_app(), None, throttle_once)
    report, _ = run(Options(app=app, only=["auth.missing-key-401"], sleep=slept.append))
    assert slept == [7.0]
    assert report.verdicts["auth.missing-key-401"].status == PASS
