"""What a test does when a real component it needs (redis-server, Chromium, openssl) cannot run.

Issue 12 and the brief: CI (`.ci/run`, which installs them) sets `LAYERS_MOCK_REQUIRE_COMPONENTS`
and every such test fails there, since a suite that passes without running them says nothing of
them. On a laptop that does not have the component, they are skipped, with how to run them. A
component that is installed but does not start fails everywhere: that is a bug of ours or of the
machine, not a missing package.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

REQUIRED = "LAYERS_MOCK_REQUIRE_COMPONENTS"


def skips(missing: bool) -> bool:
    """Whether a component that cannot run skips its tests here: missing, and not on CI."""
    return missing and not os.environ.get(REQUIRED)


def cannot_run(reason: str, how: str, *, missing: bool) -> NoReturn:
    """Skip (`skips`) or fail, saying `reason` and `how` to run the test."""
    if skips(missing):
        pytest.skip(f"{reason}: {how} (CI sets {REQUIRED}=1: these fail there)")
    pytest.fail(f"{reason}: {how}", pytrace=False)
