"""The runner against the faithful mock: every clause PASSes with no false alarm, in-process and
over HTTP, for several seeds; the same seed sends the same requests; the catalogue and
`conform --list` read in the same order."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conformance.broken_deployments import BROKEN
from conformance.serving import IDS, focused, mock_app, serve

from layers_mock_server.cli import main
from layers_mock_server.conformance.catalogue import BY_NAME, CATALOGUE, SECTIONS, markdown
from layers_mock_server.conformance.report import NOT_CHECKED, PASS
from layers_mock_server.conformance.runner import Options, run


def test_a_run_that_judged_nothing_does_not_pass() -> None:
    """`--only` a clause the target gives no evidence for (here: the control plane, not
    offered) is NOT CHECKED; a run of nothing but that exits 3, not 0, and says why."""
    with serve(mock_app(0)) as url:
        only = Options(url, identities=IDS, only=["ratelimits.client-time"], poll_interval=0.01)
        report, _ = run(only)
        assert [v.status for v in report.verdicts.values()] == [NOT_CHECKED], report.table()
        assert report.exit_code() == 3
        assert "NOTHING CHECKED" in report.summary()
        two = ["ratelimits.headers-present", "ratelimits.client-time"]
        more = Options(url, identities=IDS, only=two, poll_interval=0.01)
        report, _ = run(more)  # some judged, one not: still a pass without --fail-on-not-checked
    assert report.count(PASS) and report.count(NOT_CHECKED), report.table()
    assert report.exit_code() == 0


def test_quick_profile_passes_the_mock_in_process() -> None:
    report, _ = run(Options(seed=3, profile="quick"))
    assert {v.status for v in report.verdicts.values()} == {PASS}, report.table()
    assert list(report.verdicts) == [c.name for c in CATALOGUE]
    assert report.exit_code() == 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_clause_passes_the_mock_over_http(seed: int) -> None:
    with serve(mock_app(seed)) as url:
        options = focused(url, "", seed)
        options.only = []
        report, _ = run(options)
    assert {v.status for v in report.verdicts.values()} == {PASS}, report.table()
    assert report.creates <= options.max_creates  # type: ignore[operator]


def test_the_mutation_study_runs_raise_no_false_alarm() -> None:
    """The focused runs the study gives each broken deployment, on the faithful mock: the
    clauses they FAIL on the broken ones PASS here."""
    clauses = sorted({b.clause for b in BROKEN.values()})
    with serve(mock_app(5)) as url:
        options = focused(url, "", 5)
        options.only = clauses
        report, _ = run(options)
    assert {report.verdicts[c].status for c in clauses} == {PASS}, report.table()


def test_same_seed_same_requests_and_verdicts() -> None:
    only = ["auth.", "validation.unknown", "jobs.", "lists."]
    first, _ = run(Options(seed=11, profile="quick", only=only))
    second, _ = run(Options(seed=11, profile="quick", only=only))
    third, _ = run(Options(seed=12, profile="quick", only=only))
    assert first.sequence_digest == second.sequence_digest
    assert first.requests == second.requests
    assert first.sequence_digest != third.sequence_digest
    assert {k: v.status for k, v in first.verdicts.items()} == {
        k: v.status for k, v in second.verdicts.items()
    }


def test_list_shows_every_clause_in_catalogue_order_with_its_needs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["conform", "--list"]) == 0
    out = capsys.readouterr().out
    positions = [out.index(c.name + " ") for c in CATALOGUE]
    assert positions == sorted(positions)
    assert all(s.title in out for s in SECTIONS)
    assert "[scopeless-key]" in out
    assert "control plane, virtual clock" in out
    assert "mock only" in out
    assert "3 jobs" in out
    assert BY_NAME["lists.pages-complete"].doc in out


def test_sections_are_the_contract_s() -> None:
    keys = [s.key for s in SECTIONS]
    assert keys == [
        "auth",
        "validation",
        "idempotency",
        "jobs",
        "cancel",
        "influencers",
        "lists",
        "clone",
        "delete",
        "projects",
        "project-lists",
        "project-changes",
        "suborgs",
        "credits",
        "ratelimits",
        "errors",
        "steering",
        "engines",
    ]
    assert all(c.doc and c.doc.endswith(".") for c in CATALOGUE)


def test_unknown_clause_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["conform", "--quiet", "--only", "no.such-clause"]) == 2
    assert "unknown clause" in capsys.readouterr().err


def test_readme_carries_the_clause_table_as_generated() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    block = readme.split("<!-- clauses -->\n", 1)[1].split("<!-- /clauses -->", 1)[0]
    assert block.strip() == markdown().strip(), "run: layers-mock conform --list markdown"


def _codes(node: Any, doc: dict[str, Any]) -> set[str]:
    """Every `error.code` const (or enum) reachable from a response schema."""
    if isinstance(node, dict):
        if "$ref" in node:
            target: Any = doc
            for part in node["$ref"][2:].split("/"):
                target = target[part]
            return _codes(target, doc)
        found: set[str] = set()
        code = node.get("properties", {}).get("error", {}).get("properties", {}).get("code", {})
        if "const" in code:
            found.add(code["const"])
        found.update(code.get("enum", []))
        for value in node.values():
            found |= _codes(value, doc)
        return found
    if isinstance(node, list):
        return set().union(*(_codes(v, doc) for v in node)) if node else set()
    return set()


def test_the_runner_knows_every_error_code_the_partner_contract_can_answer() -> None:
    """STORAGE_UNAVAILABLE (503) was missing: a mock whose disk filled up failed
    errors.code-matches-status although it answered as its contract says."""
    import yaml

    from layers_mock_server.conformance.contract import ERROR_CODES
    from layers_mock_server.spec import PARTNER_SPEC

    doc = yaml.safe_load(PARTNER_SPEC.read_text(encoding="utf-8"))
    declared: dict[int, set[str]] = {}
    for item in doc["paths"].values():
        for op in item.values():
            if not isinstance(op, dict):
                continue
            for status, response in op.get("responses", {}).items():
                if status.isdigit() and int(status) >= 400:
                    declared.setdefault(int(status), set()).update(_codes(response, doc))
    missing = {s: codes - ERROR_CODES.get(s, frozenset()) for s, codes in declared.items()}
    assert {s: m for s, m in missing.items() if m} == {}
    assert "STORAGE_UNAVAILABLE" in declared[503]
