"""What QA and CI get from a run: the reports (JSON, JUnit, HTML in the dashboard's look,
Markdown), the progress line, failure files that `--replay` re-sends, the example database,
and the budgets honoured over HTTP (--rate-limit, Retry-After, --max-creates as a ceiling)."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest
from conformance.broken_deployments import broken
from conformance.rewrite import Ctx, Req, Resp, Rewrite, error
from conformance.serving import IDS, focused, mock_app, serve
from support import FULL, PROJECT

from layers_mock_server.cli import main
from layers_mock_server.conformance import stopping
from layers_mock_server.conformance.command import _terminated_as_interrupted
from layers_mock_server.conformance.exchange import Exchange
from layers_mock_server.conformance.report import FAIL, NOT_CHECKED, PASS, RunReport, Verdict
from layers_mock_server.conformance.report_html import render_html
from layers_mock_server.conformance.runner import Options, run
from layers_mock_server.ui.assets import stylesheet


def test_failure_reports_carry_request_response_curl_and_seed(tmp_path: Path) -> None:
    with serve(broken("etag-weak", mock_app())) as url:
        code = main(
            [
                "conform",
                "--quiet",
                "--base-url",
                url,
                "--api-key",
                FULL,
                "--project-id",
                PROJECT,
                "--control-plane",
                "--seed",
                "4",
                "--only",
                "jobs.etag-strong",
                "--html",
                str(tmp_path / "r.html"),
                "--markdown",
                str(tmp_path / "r.md"),
                "--json",
                str(tmp_path / "r.json"),
                "--junit",
                str(tmp_path / "r.xml"),
            ]
        )
    assert code == 1
    page = (tmp_path / "r.html").read_text()
    assert "<style>" in page and "<script" not in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # nothing from the network
    assert "FAIL jobs.etag-strong" in page
    assert "reproduce: curl" in page and "--seed 4 --only jobs.etag-strong" in page
    assert FULL not in page and "${LAYERS_API_KEY}" in page
    md = (tmp_path / "r.md").read_text()
    assert "| `jobs.etag-strong` | ❌ FAIL |" in md and "reproduce: curl" in md
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["seed"] == 4 and data["partial"] is False
    assert data["clauses"][0]["evidence"]["response"]["status"] == 200
    assert set(data["requestsByStatus"]) >= {"200", "202"}
    assert data["jobsStarted"] >= 1
    suite = ET.parse(tmp_path / "r.xml").getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "1"


def test_progress_is_a_live_line_on_a_terminal_and_plain_lines_otherwise() -> None:
    plain, live = io.StringIO(), io.StringIO()
    run(Options(only=["auth.x-api"], progress=plain))
    run(Options(only=["auth.x-api"], progress=live, live=True))
    assert "\r" not in plain.getvalue()
    assert "conform: PASS        auth.x-api-key-rejected" in plain.getvalue()
    assert "\r[conform]" in live.getvalue() or "\r" in live.getvalue()


def test_the_live_line_under_only_labels_a_clause_run_for_evidence() -> None:
    """--only jobs.etag-strong showed `[conform] jobs.if-none-match-304`, a clause not asked for."""
    live = io.StringIO()
    run(Options(only=["jobs.etag-strong"], progress=live, live=True, now=_ticking()))
    labels = set(re.findall(r"\[conform\] (\S+(?: \S+)?)\s{2,}", live.getvalue()))
    assert labels, live.getvalue()
    assert all(
        x in ("preflight", "sample job", "jobs.etag-strong") or x.startswith("evidence: ")
        for x in labels
    ), labels


def _ticking() -> Any:
    """A clock that moves 1 s per read, so the live line (at most every 0.2 s) is written."""
    ticks = iter(range(10**6))
    return lambda: float(next(ticks))


def test_the_seed_is_printed(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["conform", "--seed", "9", "--only", "auth.x-api"]) == 0
    captured = capsys.readouterr()
    assert "seed 9" in captured.err
    assert "seed 9" in captured.out


def test_a_saved_failure_replays_exactly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with serve(broken("delete-twice-200", mock_app())) as url:
        options = focused(url, "influencers.delete-twice-404")
        options.failures_dir = tmp_path
        report, _ = run(options)
        [saved] = list(tmp_path.glob("*.json"))
        assert report.verdicts["influencers.delete-twice-404"].replay_file == str(saved)
        steps = json.loads(saved.read_text())["steps"]
        assert [s["method"] for s in steps][-2:] == ["DELETE", "DELETE"]
        assert "${LAYERS_API_KEY}" in json.dumps(steps) and FULL not in saved.read_text()
        flags = ["--base-url", url, "--api-key", FULL, "--project-id", PROJECT]
        assert main(["conform", "--quiet", "--replay", str(saved), *flags]) == 1
    out = capsys.readouterr().out
    seed = json.loads(saved.read_text())["seed"]
    # against a URL the seed is the recording's (the deployment's own state is not seeded)
    assert "REPRODUCED" in out and f"recorded with seed {seed})" in out
    # the faithful mock (in-process, the file's seed) does not reproduce it
    assert main(["conform", "--quiet", "--replay", str(saved)]) == 0
    out = capsys.readouterr().out
    assert "not reproduced" in out and f"seed {seed}, on a mock seeded alike)" in out


def test_the_printed_replay_command_replays_on_the_deployment_that_failed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a run against a URL, `replay exactly: …` named only the file: pasted, it replayed
    on the in-process mock, which does not fail, and said "not reproduced" (exit 0)."""
    monkeypatch.setenv("LAYERS_API_KEY", FULL)
    with serve(broken("delete-twice-200", mock_app())) as url:
        flags = ["--base-url", url, "--project-id", PROJECT, "--control-plane"]
        clause = ["--only", "influencers.delete-twice-404", "--profile", "quick"]
        html = tmp_path / "report.html"
        reports = ["--failures-dir", str(tmp_path / "failed"), "--html", str(html)]
        assert main(["conform", "--quiet", *flags, *clause, *reports]) == 1
        [hint] = re.findall(
            r"^replay exactly: (layers-mock conform .*)$", capsys.readouterr().out, re.M
        )
        assert f"exactly: <code>{hint}</code>" in html.read_text()  # the same in the HTML
        assert main(hint.split()[1:]) == 1
    assert "REPRODUCED" in capsys.readouterr().out


def test_the_example_database_keeps_yesterdays_failure(tmp_path: Path) -> None:
    with serve(broken("any-live-key-writes", mock_app())) as url:
        options = focused(url, "auth.unknown-key-401")
        options.database = tmp_path / "db"
        report, _ = run(options)
    assert report.verdicts["auth.unknown-key-401"].status == FAIL
    assert any(p.is_file() for p in (tmp_path / "db").rglob("*"))


def test_rate_limit_is_honoured_between_requests() -> None:
    # The runner's own clock, moved only by its sleeps: requests take no time, so every gap
    # is the whole 0.2 s of --rate-limit 5, however slow the machine running the test.
    clock = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    options = Options(only=["auth.x-api"], rate_limit=5.0, sleep=sleep, now=lambda: clock[0])
    report, _ = run(options)
    assert report.verdicts["auth.x-api-key-rejected"].status == PASS
    assert report.requests > 1 and len(slept) == report.requests - 1
    assert slept == [pytest.approx(0.2)] * len(slept)


def test_429_is_retried_after_its_retry_after() -> None:
    def throttle_once(req: Req, resp: Resp, ctx: Ctx) -> None:
        if req.path == "/v1/whoami" and req.key == "" and not ctx.mem.get("done"):
            ctx.mem["done"] = True
            error(resp, 429, "RATE_LIMITED")
            resp.headers["retry-after"] = "7"

    slept: list[float] = []
    app = Rewrite(mock_app(), None, throttle_once)
    report, _ = run(Options(app=app, only=["auth.missing-key-401"], sleep=slept.append))
    assert slept == [7.0]
    assert report.verdicts["auth.missing-key-401"].status == PASS
    assert report.statuses[429] == 1


def test_max_creates_is_a_hard_ceiling_even_when_probes_start_jobs() -> None:
    """A deployment that starts a job for every invalid body cannot push the run past it."""
    with serve(broken("unknown-fields-dropped", mock_app())) as url:
        options = Options(base_url=url, identities=IDS, max_creates=3, profile="quick")
        options.only = ["auth.", "validation."]
        report, _ = run(options)
    assert report.creates == 3
    assert "--max-creates 3 spent" in report.verdicts["validation.enum-and-length-422"].reason
    assert report.verdicts["validation.unknown-field-named"].status == FAIL


def test_the_html_report_has_the_dashboard_s_look_in_one_offline_file() -> None:
    """One stylesheet for the project's HTML: the dashboard's, inlined, with a rule for every
    class the report uses (a class without one would render unstyled)."""
    report = RunReport(target="http://deployment.example", seed=3, partial="interrupted")
    report.error = "interrupted"
    for status, clause in ((PASS, "auth.missing-key-401"), (FAIL, "jobs.etag-strong")):
        report.record(Verdict(clause, clause.split(".")[0], status, "why"))
    report.record(Verdict("auth.killed-key-503", "auth", NOT_CHECKED, "needs --killed-key"))
    page = render_html(report, {})
    sheet = stylesheet()
    assert f"<style>{sheet}</style>" in page and '<body class="report">' in page
    assert "@import" not in sheet and "url(" not in sheet  # nothing to fetch: works offline
    used = {name for names in re.findall(r'class="([^"]+)"', page) for name in names.split()}
    assert used >= {"summary", "partial", "verdict", "PASS", "FAIL", "NOT-CHECKED"}
    unstyled = [name for name in used if not re.search(rf"\.{re.escape(name)}\b", sheet)]
    assert unstyled == []


HOSTILE_VALUES = [
    "$(touch pwned)",
    "`touch pwned`",
    "a'b\"c",
    "line\nbreak",
    "tab\there",
    "x; touch pwned",
    "${HOME}",
]


@pytest.mark.parametrize("value", HOSTILE_VALUES)
def test_the_reproduce_line_never_runs_what_a_value_contains(tmp_path: Path, value: str) -> None:
    """The curl line is pasted into a shell: a header value must arrive as text, not run."""
    exchange = Exchange(
        method="POST",
        url=f"http://127.0.0.1:4010/v1/x?q={value}",
        path="/v1/x",
        request_headers={"Authorization": "Bearer lp_test_k_s3cret", "X-Odd": value},
        request_body=value.encode(),
        status=200,
        response_headers={},
        response_body=b"",
    )
    line = exchange.curl({"lp_test_k_s3cret": "LAYERS_KEY"})
    assert "s3cret" not in line
    shell = f'curl() {{ printf "%s\\0" "$@"; }}\n{line}\n'
    ran = subprocess.run(
        ["bash", "-c", shell],
        cwd=tmp_path,
        env={"LAYERS_KEY": "lp_test_k_s3cret", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        check=True,
    )
    args = ran.stdout.decode().split("\0")[:-1]
    assert not (tmp_path / "pwned").exists()
    assert args[:4] == ["-i", "-X", "POST", f"http://127.0.0.1:4010/v1/x?q={value}"]
    assert args[4:6] == ["-H", "Authorization: Bearer lp_test_k_s3cret"]  # the $ENV expands
    assert ["-H", f"X-Odd: {value}", "--data-binary", value] == args[6:]


def test_a_run_stopped_with_sigterm_ends_as_an_interrupt_with_its_reports(tmp_path: Path) -> None:
    """A CI job's timeout stops the run with SIGTERM: it died at once with no report written
    (README: reports are written on every ending), where Ctrl-C ends it 'interrupted', exit 2,
    with its partial reports."""
    report = tmp_path / "conformance.json"
    command = [sys.executable, "-m", "layers_mock_server.cli", "conform", "--json", str(report)]
    with subprocess.Popen(command, stderr=subprocess.PIPE, text=True) as run_:
        assert run_.stderr is not None
        for line in run_.stderr:  # plain lines, one per verdict: the run is under way
            if " PASS" in line:
                break
        run_.send_signal(signal.SIGTERM)
        run_.stderr.read()
        code = run_.wait(timeout=60)
    assert code == 2
    written = json.loads(report.read_text())
    assert written["partial"] is True and written["partialReason"] == "interrupted"


def test_a_sigterm_that_lands_where_a_library_swallows_errors_still_stops_the_run() -> None:
    """The signal lands wherever the run is: in a library that swallows what it catches, an
    exception raised by the handler was lost and the run went on to exit 0 (2 runs in 24 with
    SIGTERM at a random moment). The handler only asks; the run stops at its next request or
    clause, where the runner turns it into 'interrupted'."""
    with _terminated_as_interrupted():
        try:  # as a library's `except BaseException` would, around wherever the signal lands
            os.kill(os.getpid(), signal.SIGTERM)
        except BaseException:
            pytest.fail("the handler raised where it landed")
        with pytest.raises(KeyboardInterrupt):
            stopping.check()
    stopping.check()  # a stop asked for during one run does not stop the next


def test_ctrl_c_that_lands_where_a_library_swallows_errors_still_stops_the_run() -> None:
    """outside13: Ctrl-C raised KeyboardInterrupt wherever it landed. Inside Hypothesis (SIGINT
    at a random moment, 1 run in 12) it broke the engine's own state: the clause was NOT
    CHECKED as 'internal error: AssertionError', the run went on to its end, and the report
    said an internal error, not 'interrupted'. The first Ctrl-C asks, as SIGTERM does; a
    second one is the user insisting, and raises where it lands."""
    with _terminated_as_interrupted():
        try:
            os.kill(os.getpid(), signal.SIGINT)
        except BaseException:
            pytest.fail("the first Ctrl-C raised where it landed")
        with pytest.raises(KeyboardInterrupt):
            stopping.check()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    stopping.check()


WRITE_THEN_TERMINATED = """
import os, signal, sys
from layers_mock_server.conformance import report
real = report.RunReport.write_json
def write_json(self, path, secrets):
    os.kill(os.getpid(), signal.SIGTERM)  # the CI job's timeout, while the report is written
    real(self, path, secrets)
report.RunReport.write_json = write_json
from layers_mock_server.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_sigterm_while_the_reports_are_written_lets_them_be_written(tmp_path: Path) -> None:
    """outside13: the handler was in place only while the clauses ran. Before them (start-up)
    and after them (writing the reports) SIGTERM killed the run at once: no report, or one cut
    off half-way. Now it is in place for the whole command: here the reports are finished."""
    report = tmp_path / "conformance.json"
    command = [sys.executable, "-c", WRITE_THEN_TERMINATED, "conform", "--quiet"]
    command += ["--only", "auth.missing-key-401", "--json", str(report), "--junit"]
    command += [str(tmp_path / "conformance.xml")]
    finished = subprocess.run(command, check=False, capture_output=True, text=True, timeout=300)
    assert finished.returncode in (0, 2), finished.stderr[-2000:]
    written = json.loads(report.read_text())
    assert [v["clause"] for v in written["clauses"]] == ["auth.missing-key-401"]
    ET.parse(tmp_path / "conformance.xml")


def _hostile_404(req: Any, resp: Any, ctx: Any) -> None:
    """A deployment whose 404 page carries a terminal escape, a GitHub Actions workflow
    command on a line of its own, and a Markdown code fence."""
    if resp.status == 404 and req.path.startswith("/v1/jobs/"):
        resp.body = b"Not Found\x1b[2J\n::error file=x::pwned\r\n```\n# owned"
        resp.headers["content-type"] = "text/plain"


def test_a_deployment_s_bytes_are_escaped_in_every_failure_text(tmp_path: Path) -> None:
    """They were printed raw: the ESC reached the terminal, and the body's own lines began
    `::error` (a workflow command in a CI log) and closed the Markdown summary's code fence."""
    options = Options(app=Rewrite(mock_app(), None, _hostile_404), profile="quick")
    options.only = ["tenancy.unknown-ids-404"]
    report, _ = run(options)
    assert report.verdicts["tenancy.unknown-ids-404"].status == FAIL
    report.write_markdown(tmp_path / "r.md", {})
    for text in (report.failures_text({}), (tmp_path / "r.md").read_text()):
        assert "pwned" in text  # shown, escaped
        assert "\x1b" not in text and "\r" not in text
        lines = text.splitlines()
        assert not any(line.startswith("::") for line in lines), text
        assert not any(line.startswith("# owned") for line in lines), text
        assert "Not Found\\x1b[2J\\n::error file=x::pwned\\r\\n```\\n# owned" in text
