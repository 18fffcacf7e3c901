"""The runner against the faithful mock: every clause PASSes with no false alarm, in-process and
over HTTP, for several seeds; the same seed sends the same requests; the catalogue and
`conform --list` read in the same order."""

from __future__ import annotations

from pathlib import Path

import pytest
from conformance.broken_deployments import BROKEN
from conformance.serving import focused, mock_app, serve

from mockserver.cli import main
from mockserver.conformance.catalogue import BY_NAME, CATALOGUE, SECTIONS, markdown
from mockserver.conformance.report import PASS
from mockserver.conformance.runner import Options, run


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
