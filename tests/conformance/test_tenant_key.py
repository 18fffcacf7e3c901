"""`conform --control-plane --tenant-key`: on a shared sandbox the run moves its own
organization's clock through the tenant routes and never needs the admin token (issue 12)."""

from __future__ import annotations

import dataclasses

import httpx
import pytest
from conformance.rewrite import Ctx, Req, Resp, Rewrite
from conformance.serving import IDS, serve
from support import BAKERY, FULL, GLOBEX, HTTP_TIMEOUT_S, STANDARD, auth

from layers_mock_server.cli import main
from layers_mock_server.conformance.report import NOT_CHECKED, PASS
from layers_mock_server.conformance.runner import Options, build_target, run
from layers_mock_server.settings import Settings, make_app

ACME = "org_3f6c2a8e-1b7d-4c59-9e0a-5d4b8c7f1a23"
GLOBEX_ORG = "org_8d1e5f3a-6c2b-4e7d-a9f0-1b3c5d7e9f02"


def sandbox() -> object:
    return make_app(Settings(clock="virtual", seed=0, admin_token="operator-only"))


def _conform(url: str, *flags: str) -> int:
    """`layers-mock conform` against the served sandbox with the run's key and project."""
    return main(
        [
            *("conform", "--quiet", "--base-url", url, "--api-key", FULL),
            *("--project-id", IDS.project_id, *flags),
        ]
    )


def test_a_tenant_key_moves_its_own_organizations_clock_only() -> None:
    seen: list[str] = []

    def record(req: Req, ctx: Ctx) -> None:
        seen.append(req.path)

    with serve(Rewrite(sandbox(), on_request=record)) as url:
        options = Options(
            base_url=url,
            identities=IDS,
            control_plane=True,
            tenant_key=FULL,
            only=["steering.stage-timings"],
        )
        report, _ = run(options)
        server = httpx.get(
            url + "/_mock/clock", headers=auth(GLOBEX), timeout=HTTP_TIMEOUT_S
        ).json()
        theirs = httpx.get(
            f"{url}/_mock/organizations/{GLOBEX_ORG}/clock",
            headers=auth(GLOBEX),
            timeout=HTTP_TIMEOUT_S,
        )
    assert report.verdicts["steering.stage-timings"].status == PASS
    assert f"/_mock/organizations/{ACME}/clock/advance" in seen
    assert "/_mock/clock/advance" not in seen
    assert server["now"] == "2026-01-01T00:00:00.000Z"  # nobody else's time moved
    assert theirs.json()["detached"] is False
    assert report.control_plane.startswith("--control-plane: moved --tenant-key's own clock")


def test_a_wrong_tenant_key_is_one_sentence_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with serve(sandbox()) as url:
        code = _conform(url, "--control-plane", "--tenant-key", "lp_test_nobody_at_all")
    assert code == 2
    assert "is --tenant-key right?" in capsys.readouterr().err


def test_what_needs_another_organizations_clock_is_not_checked_never_failed() -> None:
    options = Options(
        tenant_key=FULL,
        only=["ratelimits.429-retry-after", "credits.reserve-then-settle"],
        profile="quick",
    )
    report, _ = run(options)
    assert report.verdicts["ratelimits.429-retry-after"].status == PASS  # Acme's own key
    settle = report.verdicts["credits.reserve-then-settle"]  # the wallet is another org's
    assert settle.status == NOT_CHECKED
    assert "--tenant-key moves only its organization's clock" in settle.reason


def test_a_tenant_key_of_another_organization_than_the_api_key_is_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Its clock is not the one the run's jobs follow: moving it would fail the 24-hour
    idempotency window and the stage timings on a deployment that keeps them."""
    with serve(sandbox()) as url:
        code = _conform(
            url, "--control-plane", "--tenant-key", GLOBEX, "--only", "idempotency.window-24h"
        )
        globex = httpx.get(
            f"{url}/_mock/organizations/{GLOBEX_ORG}/clock",
            headers=auth(GLOBEX),
            timeout=HTTP_TIMEOUT_S,
        )
    err = capsys.readouterr().err
    assert code == 2
    assert "--tenant-key is a key of organization " + GLOBEX_ORG in err
    assert "--api-key" in err
    assert globex.json()["detached"] is False  # nothing moved before the refusal


def _no_control_plane(req: Req, ctx: Ctx) -> Resp | None:
    """A real deployment: the partner API, and a 404 for anything under /_mock/."""
    if not req.path.startswith("/_mock/"):
        return None
    body = b'{"error":{"code":"NOT_FOUND","message":"Not found.","requestId":"req_1"}}'
    return Resp(404, {"content-type": "application/json"}, body)


@pytest.mark.parametrize(
    "steering", [["--tenant-key", FULL], ["--admin-token", "s3cret"], []], ids=str
)
def test_control_plane_on_a_deployment_that_is_no_mock_says_so(
    steering: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """It used to ask "is --admin-token right?", even when no token was given."""
    with serve(Rewrite(sandbox(), on_request=_no_control_plane)) as url:
        code = _conform(url, "--control-plane", *steering)
    err = capsys.readouterr().err
    assert code == 2
    assert f"{url} has no layers-mock control plane" in err
    assert "without --control-plane" in err
    assert "right?" not in err


def test_control_plane_of_a_mock_with_a_token_not_given_says_what_to_give(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with serve(sandbox()) as url:
        code = _conform(url, "--control-plane")
    err = capsys.readouterr().err
    assert code == 2
    assert "401" in err
    assert "--admin-token" in err and "--tenant-key" in err
    assert "right?" not in err


def test_a_429_on_a_virtual_clock_is_waited_out_on_the_mocks_clock_not_in_real_time() -> None:
    """A run whose --api-key is a limited-tier key, against a mock on --clock virtual with the
    control plane: each 429 was retried after sleeping its Retry-After in real time (up to
    three times a request) while the mock's clock stood still, so every retry was a 429 again
    and the run crawled (137 requests in 11 minutes, on a two-worker sandbox). Retry-After is
    in the client's time: on a virtual clock the run moves the clock it may move."""
    slept: list[float] = []
    with serve(sandbox()) as url:
        options = Options(
            base_url=url,
            identities=dataclasses.replace(IDS, api_key=STANDARD),
            control_plane=True,
            tenant_key=STANDARD,
            max_creates=30,
            sleep=slept.append,
        )
        target = build_target(options)
        path = f"/v1/projects/{IDS.project_id}/influencers"
        answers = [
            target.send("POST", path, headers=target.auth(), json_body={}).status
            for _ in range(21)  # a standard key starts 20 jobs a minute
        ]
        acme = httpx.get(
            f"{url}/_mock/organizations/{ACME}/clock",
            headers=auth(STANDARD),
            timeout=HTTP_TIMEOUT_S,
        )
        server = httpx.get(
            url + "/_mock/clock", headers=auth(STANDARD), timeout=HTTP_TIMEOUT_S
        ).json()
    assert answers == [202] * 21  # the 21st waited for its window, on the mock's clock
    assert sum(slept) == 0
    assert acme.json()["detached"] is True  # the tenant's own clock moved, nobody else's
    assert server["now"] == "2026-01-01T00:00:00.000Z"


def test_a_throttle_key_of_another_organization_is_not_waited_out_on_the_tenants_clock() -> None:
    """ratelimits.429-retry-after waited out its 429 by moving the control plane's clock. With
    --tenant-key that is the tenant's own organization's clock, which a --throttle-key of
    another organization does not follow: its window stood still, the retry was a 429 again
    and the clause failed a correct sandbox (and moved a clock for nothing). It cannot move the
    right clock: NOT CHECKED, saying why."""
    slept: list[float] = []
    with serve(sandbox()) as url:
        options = Options(
            base_url=url,
            identities=dataclasses.replace(IDS, throttle_key=BAKERY),
            control_plane=True,
            tenant_key=FULL,
            only=["ratelimits.429-retry-after"],
            sleep=slept.append,
        )
        report, _ = run(options)
        acme = httpx.get(
            f"{url}/_mock/organizations/{ACME}/clock", headers=auth(FULL), timeout=HTTP_TIMEOUT_S
        )
    verdict = report.verdicts["ratelimits.429-retry-after"]
    assert verdict.status == NOT_CHECKED, verdict
    assert "--throttle-key" in verdict.reason
    assert "--tenant-key moves only its organization's clock" in verdict.reason
    assert acme.json()["detached"] is False  # no clock moved for a window it does not hold
    assert sum(slept) == 0
