"""A real component that cannot run: a skip on a laptop without it, a failure on CI (which
sets LAYERS_MOCK_REQUIRE_COMPONENTS) and wherever it is installed but does not start."""

from __future__ import annotations

import pytest
from components import REQUIRED, cannot_run, skips


@pytest.mark.parametrize(
    ("required", "missing", "skipped"),
    [
        (False, True, True),  # a laptop without it: a skip that says how to get it
        (True, True, False),  # CI, which installs it
        (False, False, False),  # installed, and it did not start: a bug
    ],
    ids=["missing on a laptop", "missing on CI", "not starting on a laptop"],
)
def test_a_component_that_cannot_run_fails_unless_missing_on_a_laptop(
    monkeypatch: pytest.MonkeyPatch, required: bool, missing: bool, skipped: bool
) -> None:
    if required:
        monkeypatch.setenv(REQUIRED, "1")
    else:
        monkeypatch.delenv(REQUIRED, raising=False)
    assert skips(missing) is skipped


def test_a_component_that_cannot_run_on_ci_fails_saying_how(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(REQUIRED, "1")
    with pytest.raises(pytest.fail.Exception, match="redis-server cannot run: install it"):
        cannot_run("redis-server cannot run", "install it", missing=True)
