"""The mutation study: each broken deployment FAILS on the clause it breaks, over HTTP (uvicorn
on an ephemeral loopback port, the mock's clock moved through --control-plane). A focused run
per deployment (only its clause, the quick profile) keeps this fast; the faithful mock passing
the same runs with no false alarm is in test_runner.py."""

from __future__ import annotations

from collections import Counter

import pytest
from conformance.broken_deployments import BROKEN, broken
from conformance.serving import focused, mock_app, serve

from layers_mock_server.conformance.catalogue import BY_NAME
from layers_mock_server.conformance.report import FAIL
from layers_mock_server.conformance.runner import run


def test_the_study_is_large_and_spread_over_the_contract() -> None:
    assert len(BROKEN) >= 35
    sections = Counter(BY_NAME[b.clause].section for b in BROKEN.values())
    assert set(sections) >= {"auth", "validation", "idempotency", "jobs", "influencers"}
    assert set(sections) >= {"projects", "ratelimits", "errors"}
    assert all(b.clause in BY_NAME for b in BROKEN.values())


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_fails_on_its_clause_over_http(name: str) -> None:
    clause = BROKEN[name].clause
    with serve(broken(name, mock_app())) as url:
        report, _ = run(focused(url, clause))
    verdict = report.verdicts[clause]
    assert verdict.status == FAIL, report.table()
    assert report.exit_code() == 1
    assert report.error is None, report.error
