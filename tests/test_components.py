"""A real component that cannot run: a skip on a laptop without it, a failure on CI (which
sets LAYERS_MOCK_REQUIRE_COMPONENTS) and wherever it is installed but does not start."""

from __future__ import annotations

import pytest
from components import REQUIRED, cannot_run


@pytest.mark.parametrize(
    ("required", "missing", "outcome"),
    [
        (False, True, pytest.skip.Exception),  # a laptop without it: how to get it
        (True, True, pytest.fail.Exception),  # CI, which installs it
        (False, False, pytest.fail.Exception),  # installed, and it did not start: a bug
    ],
    ids=["missing on a laptop", "missing on CI", "not starting on a laptop"],
)
def test_a_component_that_cannot_run_says_how_and_fails_unless_missing_on_a_laptop(
    monkeypatch: pytest.MonkeyPatch, required: bool, missing: bool, outcome: type
) -> None:
    if required:
        monkeypatch.setenv(REQUIRED, "1")
    else:
        monkeypatch.delenv(REQUIRED, raising=False)
    with pytest.raises(outcome, match="redis-server cannot run: install it"):
        cannot_run("redis-server cannot run", "install it", missing=missing)
