"""Without redis-server the Redis tests fail and say how to run them (never a skip).

A fresh pytest session (pytester, in a process of its own) whose PATH holds no redis-server,
running one test that needs it: what a developer without Redis sees.
"""

from __future__ import annotations

from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]  # where redisd.py is
NEEDS_REDIS = """
from redisd import started

def test_needs_redis():
    with started():
        pass
"""


def test_without_redis_server_the_redis_tests_fail_and_say_how(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = pytester.mkdir("empty")
    monkeypatch.setenv("PATH", str(empty))  # nothing there: no redis-server
    monkeypatch.setenv("PYTHONPATH", str(TESTS))
    pytester.makepyfile(test_redis=NEEDS_REDIS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*redis-server is not on PATH*apt install redis-server*"])
