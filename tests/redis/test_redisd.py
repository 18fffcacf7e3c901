"""Without redis-server the Redis tests say how to run them: a failure on CI (.ci/run sets
LAYERS_MOCK_REQUIRE_COMPONENTS), a skip on a laptop (tests/components.py).

A fresh pytest session (pytester, in a process of its own) whose PATH holds no redis-server,
running one test that needs it: what a developer without Redis sees.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from components import REQUIRED

TESTS = Path(__file__).resolve().parents[1]  # where redisd.py is
NEEDS_REDIS = """
from redisd import started

def test_needs_redis():
    with started():
        pass
"""


def test_without_redis_server_the_redis_tests_fail_on_ci_and_say_how(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """(Elsewhere they are skipped, saying the same: tests/test_components.py.)"""
    empty = pytester.mkdir("empty")
    monkeypatch.setenv("PATH", str(empty))  # nothing there: no redis-server
    monkeypatch.setenv("PYTHONPATH", str(TESTS))
    monkeypatch.setenv(REQUIRED, "1")  # as .ci/run sets it
    pytester.makepyfile(test_redis=NEEDS_REDIS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*redis-server is not on PATH*apt install redis-server*"])
