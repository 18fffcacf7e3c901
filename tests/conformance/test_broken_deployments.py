"""The suite tests itself: each broken deployment FAILS on the clause it breaks, over HTTP
(uvicorn on an ephemeral loopback port) and in-process. A focused profile per clause keeps
this fast; the full profile's false-alarm check is in test_runner.py."""

from __future__ import annotations

import pytest
from conformance.broken_deployments import BROKEN, broken
from conformance.serving import mock_app, serve
from support import FULL, GLOBEX_PROJECT, NO_INFLUENCERS, PROJECT

from mockserver.conformance.report import FAIL
from mockserver.conformance.runner import Options, run
from mockserver.conformance.target import Identities

IDS = Identities(FULL, PROJECT, NO_INFLUENCERS, GLOBEX_PROJECT)


def test_at_least_twelve_broken_deployments() -> None:
    assert len(BROKEN) >= 12


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_fails_on_the_broken_clause_in_process(name: str) -> None:
    clause = BROKEN[name][2]
    report, _ = run(Options(app=broken(name, mock_app()), only=[clause], examples=5))
    verdict = report.verdicts[clause]
    assert verdict.status == FAIL, report.table()
    assert report.exit_code() == 1


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_fails_on_the_broken_clause_over_http(name: str) -> None:
    clause = BROKEN[name][2]
    with serve(broken(name, mock_app())) as url:
        options = Options(base_url=url, identities=IDS, only=[clause], examples=5, max_creates=50)
        report, _ = run(options)
    verdict = report.verdicts[clause]
    assert verdict.status == FAIL, report.table()
    assert verdict.exchange is not None or clause == "jobs.etag-304"
