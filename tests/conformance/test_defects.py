"""Issue 8's defects, each reproduced as it was seen: the runner never crashes, checks its
inputs first, plans its time, leaves a served mock's clock alone unless told, and reports
every ending (internal errors exit 2, with partial reports)."""

from __future__ import annotations

import dataclasses
import json
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
from conformance.broken_deployments import broken
from conformance.rewrite import Ctx, Req, Resp, Rewrite
from conformance.serving import IDS, mock_app, serve
from support import (
    BAKERY,
    CHILD_PROJECT,
    FULL,
    GLOBEX_PROJECT,
    HTTP_TIMEOUT_S,
    NO_INFLUENCERS,
    NORTH_ADMIN,
    NORTH_PLAIN,
    NORTH_PROJECT,
    PROJECT,
    STANDARD,
)

from layers_mock_server.cli import main
from layers_mock_server.conformance import contract as c
from layers_mock_server.conformance.clauses.auth import UNKNOWN_PROJECT
from layers_mock_server.conformance.report import FAIL, NOT_CHECKED, PASS
from layers_mock_server.conformance.runner import Options, run
from layers_mock_server.conformance.session import Session
from layers_mock_server.conformance.stateful import run_lifecycle
from layers_mock_server.conformance.target import BudgetSpent
from layers_mock_server.settings import Settings, make_app

GLOBEX_ORG = "org_8d1e5f3a-6c2b-4e7d-a9f0-1b3c5d7e9f02"


def fast_wall_app(**kwargs: Any) -> Any:
    """A served mock whose clock the runner cannot move: 60 s of job in 0.1 s."""
    return make_app(Settings(clock="wall", speed=600, **kwargs))


def black_box(url: str, *extra: str) -> list[str]:
    return [
        "conform",
        "--quiet",
        "--base-url",
        url,
        "--api-key",
        FULL,
        "--project-id",
        PROJECT,
        "--scopeless-key",
        NO_INFLUENCERS,
        "--foreign-project-id",
        GLOBEX_PROJECT,
        "--poll-interval",
        "0.02",
        "--profile",
        "quick",
        *extra,
    ]


# -- 1. a spent create budget is NOT CHECKED, never a crash --------------------------------------
def test_budget_running_out_inside_the_state_machine_is_a_clean_stop() -> None:
    """The crash: no rule could run once the budget was spent (InvalidDefinition), then
    Hypothesis saw the data change between runs (FlakyStrategyDefinition)."""
    _, target = run(Options(max_creates=1, only=["auth.missing-key-401"]))
    assert target is not None
    session = Session(target, examples=3)
    session.clause = "lifecycle.state-machine"  # no allowance: the budget is the only limit
    with pytest.raises(BudgetSpent):
        run_lifecycle(session, scenarios=3, steps=8)


def test_black_box_with_one_job_ends_with_reports_and_reasons(tmp_path: Path) -> None:
    with serve(fast_wall_app()) as url:
        code = main(
            [
                *black_box(url, "--max-creates", "1", "--seed", "1", "--only", "jobs."),
                *["--only", "lifecycle.", "--only", "influencers.", "--only", "idempotency."],
                *["--junit", str(tmp_path / "r.xml"), "--json", str(tmp_path / "r.json")],
            ]
        )
    data = json.loads((tmp_path / "r.json").read_text())
    verdicts = {c["clause"]: c for c in data["clauses"]}
    assert code == 0, [c for c in data["clauses"] if c["verdict"] == FAIL]
    assert (tmp_path / "r.xml").stat().st_size > 0
    assert data["jobsStarted"] <= 1
    assert verdicts["lifecycle.state-machine"]["verdict"] == NOT_CHECKED
    assert "--max-creates 1" in verdicts["lifecycle.state-machine"]["reason"]


# -- 2. a violation found by the state machine is a FAIL, for every seed ------------------------
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_state_machine_violation_is_a_fail_with_evidence(
    seed: int, capsys: pytest.CaptureFixture[str]
) -> None:
    with serve(broken("status-goes-backwards", fast_wall_app(seed=seed))) as url:
        code = main(black_box(url, "--seed", str(seed), "--only", "jobs.status-monotonic"))
    out = capsys.readouterr().out
    assert code == 1, out
    assert "jobs.status-monotonic  FAIL" in out
    assert "reproduce: curl" in out
    assert FULL not in out


# -- 3. wrong inputs are exit 2 with one sentence --------------------------------------------------
@pytest.mark.parametrize(
    ("flags", "sentence"),
    [
        (["--api-key", "lp_test_nobody_AAAAAAAAAAAAAAAA"], "--api-key was refused"),
        (["--project-id", "prj_00000000-0000-4000-8000-000000000000"], "is not a project"),
        (["--scopeless-key", FULL], "--scopeless-key has influencers:write"),
        (["--foreign-project-id", PROJECT], "belongs to the key's own organization"),
        (["--second-key", FULL], "--second-key is the same key"),
        (["--org-admin-key", NORTH_PLAIN], "--org-admin-key lacks org:admin"),
        (["--org-admin-key", NORTH_ADMIN, "--child-organization-id", GLOBEX_ORG], "not a child"),
        (["--wallet-key", FULL, "--wallet-project-id", PROJECT], "another organization"),
        (["--wallet-key", BAKERY, "--wallet-project-id", PROJECT], "not a project of --wallet"),
        (["--wallet-key", BAKERY], "--wallet-key and --wallet-project-id go together"),
        (["--child-organization-id", "org_\nx"], "must be printable ASCII without spaces"),
        (["--wallet-key", "lp_live_caf\xe9", "--wallet-project-id", PROJECT], "printable ASCII"),
    ],
)
def test_wrong_inputs_exit_2_with_one_sentence(
    flags: list[str], sentence: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with serve(mock_app()) as url:
        code = main([*black_box(url), *flags, "--json", str(tmp_path / "r.json")])
    captured = capsys.readouterr()
    assert code == 2
    assert sentence in captured.err
    assert len(captured.err.strip().splitlines()) == 1
    assert captured.out == ""  # no table of "violations"
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["partial"] is True
    assert data["counts"][FAIL] == 0


# -- 4. the time budget is planned across clauses -------------------------------------------------
class FakeTime:
    """A clock that moves a millisecond each time it is read, and on every sleep."""

    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        self.t += 0.001
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


def test_a_huge_example_count_still_checks_every_clause_in_its_share() -> None:
    """It used to be "4 passed, 0 failed, 22 not checked": the first clause ate the budget."""
    clock = FakeTime()
    options = Options(examples=100_000, max_time=2.0, now=clock.now, sleep=clock.sleep)
    options.only = ["auth.", "tenancy.", "validation.unknown", "validation.enum"]
    report, _ = run(options)
    assert report.count(NOT_CHECKED) == 0, report.table()
    assert report.count(PASS) == len(report.verdicts)
    shared = [v for v in report.verdicts.values() if "time share ran out" in v.reason]
    assert len(shared) >= 3


def test_fail_on_not_checked_exits_3_and_the_summary_says_why(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with serve(mock_app()) as url:
        code = main(black_box(url, "--only", "auth.", "--fail-on-not-checked"))
    out = capsys.readouterr().out
    assert code == 3
    assert "NOT CHECKED: 1 clause(s): needs --killed-key (1)" in out


# -- 5. a served mock's clock is the partner's: black box unless --control-plane -------------------
def test_black_box_never_touches_the_control_plane() -> None:
    seen: list[str] = []

    def record(req: Req, ctx: Ctx) -> None:
        seen.append(req.path)

    with serve(Rewrite(fast_wall_app(), on_request=record)) as url:
        report, _ = run(Options(base_url=url, identities=IDS, profile="quick", poll_interval=0.02))
    assert seen and not [p for p in seen if p.startswith("/_mock/")]
    assert report.control_plane.startswith("not used")
    assert report.verdicts["steering.stage-timings"].status == NOT_CHECKED


def test_control_plane_is_opt_in_and_reported() -> None:
    seen: list[str] = []

    def record(req: Req, ctx: Ctx) -> None:
        seen.append(req.path)

    with serve(Rewrite(mock_app(), on_request=record)) as url:
        options = Options(
            base_url=url, identities=IDS, control_plane=True, only=["steering.stage-timings"]
        )
        report, _ = run(options)
    assert "/_mock/clock/advance" in seen
    assert report.verdicts["steering.stage-timings"].status == PASS
    assert "moved the mock's clock 60.5s forward" in report.control_plane


# -- 6. internal errors exit 2 and still write every report ----------------------------------------
def _reports(tmp_path: Path) -> list[str]:
    return [
        "--json",
        str(tmp_path / "r.json"),
        "--junit",
        str(tmp_path / "r.xml"),
        "--html",
        str(tmp_path / "r.html"),
        "--markdown",
        str(tmp_path / "r.md"),
    ]


@pytest.mark.parametrize("stop", [RuntimeError("boom"), KeyboardInterrupt()])
def test_a_crash_of_the_runner_exits_2_with_partial_reports(
    stop: BaseException, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(self: Session) -> Any:
        raise stop

    monkeypatch.setattr(Session, "sample_job", explode)
    code = main(["conform", "--quiet", "--profile", "quick", *_reports(tmp_path)])
    assert code == 2
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["partial"] is True
    assert data["exitCode"] == 2
    assert "PARTIAL" in (tmp_path / "r.md").read_text()
    assert "PARTIAL RUN" in (tmp_path / "r.html").read_text()
    assert 'name="partial" value="true"' in (tmp_path / "r.xml").read_text()


def test_a_bug_in_one_clause_exits_2_and_the_run_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(self: Session) -> Any:
        raise KeyError("workbench")

    monkeypatch.setattr(Session, "workbench_job", explode)
    only = ["--only", "validation.patch", "--only", "validation.unknown"]
    code = main(["conform", "--quiet", *only, *_reports(tmp_path)])
    data = json.loads((tmp_path / "r.json").read_text())
    verdicts = {c["clause"]: c for c in data["clauses"]}
    assert code == 2
    assert "internal error" in verdicts["validation.patch-body-422"]["reason"]
    assert verdicts["validation.unknown-field-named"]["verdict"] == PASS
    assert data["error"].startswith("internal error in validation.patch-body-422")


def test_the_run_changes_only_what_it_created() -> None:
    """Someone else's influencer in the project, and the given projects themselves (the main
    one, the wallet's, the child's), are never written to (PATCH, DELETE, archive, clone, or
    any other write), whatever the clauses and the fuzzer try; the projects it patches and
    archives are its own."""
    writes: list[tuple[str, str]] = []

    def record(req: Req, ctx: Ctx) -> None:
        if req.method in ("PATCH", "DELETE", "PUT", "POST"):
            writes.append((req.method, req.path))

    app = fast_wall_app()
    with serve(Rewrite(app, on_request=record)) as url:
        theirs = httpx.post(
            f"{url}/v1/projects/{PROJECT}/influencers",
            headers={"Authorization": f"Bearer {FULL}"},
            timeout=HTTP_TIMEOUT_S,
        ).json()["influencerId"]
        writes.clear()
        options = Options(base_url=url, identities=IDS, profile="quick", poll_interval=0.02, seed=2)
        options.max_creates, options.max_projects = 20, 2
        report, target = run(options)
    assert report.error is None, report.error
    assert target is not None
    assert not [w for w in writes if theirs in w[1] or c.bare(theirs) in w[1]]
    given = [c.bare(p) for p in (PROJECT, CHILD_PROJECT, NORTH_PROJECT)]
    assert not [w for w in writes if c.bare(w[1].rstrip("/").split("/")[-1]) in given]
    rows = [p for m, p in writes if m in ("PATCH", "DELETE") and p.startswith("/v1/projects/")]
    changed = {c.bare(p.split("/")[3]) for p in rows if p.count("/") == 3}
    assert changed & target.owned  # it archived and patched its own projects, and
    assert changed - target.owned == {c.bare(UNKNOWN_PROJECT)}  # probed one that does not exist
    assert ("POST", f"/v1/projects/{PROJECT}/influencers") in writes  # it did create its own
    assert ("POST", f"/v1/projects/{CHILD_PROJECT}/influencers") in writes  # and the wallet's


def _html(req: Req, resp: Any, ctx: Ctx) -> None:
    if req.path.startswith("/v1/"):
        resp.status, resp.body = 200, b"<html>It works!</html>"
        resp.headers["content-type"] = "text/html"


def _not_objects(req: Req, resp: Any, ctx: Ctx) -> None:
    if req.path.startswith("/v1/") and req.path != "/v1/whoami" and resp.body:
        resp.body = b'{"items": {"a": 1}, "jobId": null, "status": 5, "error": [], "startedAt": 7}'


@pytest.mark.parametrize("hook", [_html, _not_objects])
def test_garbage_answers_are_failures_never_a_crash(hook: Any) -> None:
    report, _ = run(Options(app=Rewrite(mock_app(), None, hook), profile="quick"))
    assert report.error is None and not report.tracebacks
    assert report.exit_code() == 1
    assert report.count(FAIL) > 20


def test_a_usage_error_exits_2_and_still_writes_the_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("LAYERS_API_KEY", raising=False)
    monkeypatch.delenv("LAYERS_PROJECT_ID", raising=False)
    code = main(["conform", "--base-url", "http://127.0.0.1:9", *_reports(tmp_path)])
    assert code == 2
    assert "--base-url needs --api-key and --project-id" in capsys.readouterr().err
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["partial"] is True and data["exitCode"] == 2
    assert (tmp_path / "r.xml").exists() and (tmp_path / "r.html").exists()


def test_an_unreachable_target_exits_2_with_one_sentence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, never listening: refused, and no one else's
        port = closed.getsockname()[1]
        code = main([*black_box(f"http://127.0.0.1:{port}"), "--json", str(tmp_path / "r.json")])
    assert code == 2
    assert "cannot reach the target" in capsys.readouterr().err
    assert json.loads((tmp_path / "r.json").read_text())["partial"] is True


def test_a_job_polled_more_often_than_200_times_in_its_minute_is_waited_for() -> None:
    """A black box polled every 0.1 s: its job takes 600 polls to finish. The runner gave up
    after 200 polls ("not terminal after 200 polls", 20 s into a 60 s job, far within the
    --patience of 600 s), so a short --poll-interval against a real deployment failed the
    clause; how long it waits is --patience's to say. The deployment's clock is the runner's
    (virtual, moved by its sleeps): no real time passes."""
    app = mock_app()
    clock = FakeTime()

    def sleep(seconds: float) -> None:  # the runner's wait moves both fake clocks, no real one
        clock.sleep(seconds)
        app.state.deps.sim.clock.advance(seconds)

    with serve(app) as url:
        options = Options(base_url=url, identities=IDS, only=["jobs.terminal-within-patience"])
        options.poll_interval, options.now, options.sleep = 0.1, clock.now, sleep
        report, _ = run(options)
    assert report.verdicts["jobs.terminal-within-patience"].status == PASS, report.table()


class _Drops(httpx.HTTPTransport):
    """A deployment (or the proxy in front of it) that closes the connection on some requests
    without answering: a WAF refusing a long header, a crash on one input."""

    def __init__(self, drops: Any) -> None:
        super().__init__()
        self.drops = drops

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.drops(request):
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
        return super().handle_request(request)


def _dropping(monkeypatch: pytest.MonkeyPatch, drops: Any) -> None:
    real = httpx.Client
    monkeypatch.setattr(httpx, "Client", lambda **kw: real(transport=_Drops(drops), **kw))


def test_a_request_the_deployment_drops_fails_its_clause_and_the_run_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A deployment that hung up on one request (a 256-character Idempotency-Key) ended the
    whole run as "cannot reach the target", exit 2, blaming nothing, though it answered every
    other request: the clause that sent it fails, naming the request, and the run goes on."""
    _dropping(monkeypatch, lambda r: len(r.headers.get("idempotency-key", "")) == 256)
    with serve(mock_app()) as url:
        options = Options(base_url=url, identities=IDS, control_plane=True, profile="quick")
        options.only = ["validation.idempotency-key-422", "tenancy.unknown-ids-404"]
        report, _ = run(options)
    verdict = report.verdicts["validation.idempotency-key-422"]
    assert verdict.status == FAIL, report.table()
    assert "dropped the request without an answer" in verdict.reason
    assert "/v1/influencers/" in verdict.reason  # the request it dropped
    assert report.verdicts["tenancy.unknown-ids-404"].status == PASS
    assert (report.error, report.partial, report.exit_code()) == (None, None, 1)


def test_a_preflight_request_the_deployment_drops_is_said_so_not_called_unreachable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A deployment that hung up on one request of the preflight (a flaky load balancer: a
    served mock with `fault: drop` at 2 % did it in two runs of three) was "cannot reach
    the target", though it answered the whoami right after: the run says what happened."""
    dropped: list[str] = []

    def drops(request: httpx.Request) -> bool:
        if not dropped and request.url.query == b"limit=1":  # the project's list, once
            dropped.append(str(request.url))
            return True
        return False

    _dropping(monkeypatch, drops)
    with serve(mock_app()) as url:
        options = Options(base_url=url, identities=IDS, profile="quick")
        report, _ = run(options)
    assert dropped
    assert report.partial == "the deployment dropped a request of the preflight"
    assert report.error is not None and "cannot reach" not in report.error
    assert report.error.startswith("the deployment hung up on a request of the preflight")
    assert "?limit=1" in report.error and "still answers" in report.error
    assert report.exit_code() == 2


def test_a_deployment_that_stops_answering_ends_the_run_with_exit_2(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Once the target answers nothing at all (not even whoami), the run stops as before."""
    gone: list[bool] = []

    def drops(request: httpx.Request) -> bool:
        long_key = len(request.headers.get("idempotency-key", "")) == 256
        gone.append(bool(gone and gone[-1]) or long_key)  # from that request on, nothing
        return gone[-1]

    _dropping(monkeypatch, drops)
    with serve(mock_app()) as url:
        options = Options(base_url=url, identities=IDS, control_plane=True, profile="quick")
        options.only = ["validation.idempotency-key-422"]
        report, _ = run(options)
    assert report.partial == "the target stopped answering"
    assert report.error is not None and report.error.startswith("cannot reach the target")
    assert report.exit_code() == 2


def test_a_429_the_run_asked_for_is_not_held_to_the_rate_windows() -> None:
    """With a limited-tier --api-key, steering.injected-faults' `Prefer: fault=429` (a 429
    the run asks the mock for, which counts no window) failed ratelimits.remaining-counts-down
    with "a 429 with 98 remaining", blaming the deployment for the run's own request."""
    with serve(mock_app()) as url:
        options = Options(
            base_url=url,
            identities=dataclasses.replace(IDS, api_key=STANDARD, second_key=FULL),
            control_plane=True,
            only=["steering.injected-faults", "ratelimits.remaining-counts-down"],
        )
        report, _ = run(options)
    assert report.verdicts["steering.injected-faults"].status == PASS
    assert report.verdicts["ratelimits.remaining-counts-down"].status == PASS


def test_requests_sent_together_are_not_judged_by_the_order_they_were_sent_in() -> None:
    """idempotency.concurrent-one-resource sends three creates at once: their answers cross
    (on a sandbox of several workers, the last sent may be answered first), yet they are
    recorded in the order they were sent, and ratelimits.remaining-counts-down failed a
    correct deployment with "remaining 16 then 17". Here every answer of the burst says the
    same Remaining, which no order of the three can be held to."""

    def same_remaining(req: Req, resp: Resp, ctx: Ctx) -> None:
        if req.method == "POST" and "conformance concurrent" in req.body.decode():
            resp.headers["x-ratelimit-remaining"] = "16"

    with serve(Rewrite(mock_app(), None, same_remaining)) as url:
        options = Options(
            base_url=url,
            identities=dataclasses.replace(IDS, api_key=STANDARD, second_key=FULL),
            control_plane=True,
            only=["idempotency.concurrent-one-resource", "ratelimits.remaining-counts-down"],
        )
        report, _ = run(options)
    assert report.verdicts["idempotency.concurrent-one-resource"].status == PASS
    assert report.verdicts["ratelimits.remaining-counts-down"].status == PASS
