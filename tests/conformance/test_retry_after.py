"""A real deployment's 503 may carry Retry-After or not, as seconds or as an HTTP-date (RFC 9110
§10.2.3): the runner fails it for neither. The mock sends `Retry-After: 1` only on a 503 a
retry can cure (tests/http/test_retry_after.py); the spec declares the header optional on the
503s, in both forms."""

from __future__ import annotations

import pytest
from conformance.rewrite import Ctx, Req, Resp, Rewrite
from conformance.serving import focused, mock_app, serve

from layers_mock_server.conformance.report import PASS
from layers_mock_server.conformance.runner import run

CLAUSES = ("auth.killed-key-503", "steering.injected-faults", "responses.match-spec")


@pytest.mark.parametrize("value", ["120", "Thu, 03 Dec 2026 09:30:00 GMT"])
def test_a_deployment_whose_503s_carry_retry_after_passes(value: str) -> None:
    def retry_after(req: Req, resp: Resp, ctx: Ctx) -> None:
        if resp.status == 503:
            resp.headers["retry-after"] = value

    with serve(Rewrite(mock_app(), on_response=retry_after)) as url:
        for clause in CLAUSES:
            report, _ = run(focused(url, clause))
            assert report.verdicts[clause].status == PASS, report.table()
