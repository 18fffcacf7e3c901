"""A real component that cannot run: a skip on a laptop without it, a failure on CI (which
sets LAYERS_MOCK_REQUIRE_COMPONENTS) and wherever it is installed but does not start."""

from __future__ import annotations

import pytest
from components import REQUIRED, cannot_run


def test_a_component_missing_on_a_laptop_is_a_skip_that_says_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(REQUIRED, raising=False)
    with pytest.raises(pytest.skip.Exception, match="no redis-server: install it"):
        cannot_run("no redis-server", "install it", missing=True)


def test_a_component_missing_on_ci_is_a_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REQUIRED, "1")
    with pytest.raises(pytest.fail.Exception, match="no redis-server: install it"):
        cannot_run("no redis-server", "install it", missing=True)


def test_a_component_installed_that_does_not_start_fails_even_on_a_laptop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(REQUIRED, raising=False)
    with pytest.raises(pytest.fail.Exception, match="did not start"):
        cannot_run("redis-server did not start", "see its log", missing=False)
