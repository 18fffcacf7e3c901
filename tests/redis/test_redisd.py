"""Without redis-server the Redis tests skip and say how to run them; CI makes them fail.

Each case is a fresh pytest session (pytester, in a process of its own) whose PATH holds no
redis-server, running one test that needs it: what a developer without Redis sees, and what
`.ci/run` (LAYERS_MOCK_REDIS_TESTS=required) sees.
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


def session_without_redis(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, required: bool
) -> pytest.RunResult:
    empty = pytester.mkdir("empty")
    monkeypatch.setenv("PATH", str(empty))  # nothing there: no redis-server
    monkeypatch.setenv("PYTHONPATH", str(TESTS))
    if required:
        monkeypatch.setenv("LAYERS_MOCK_REDIS_TESTS", "required")
    else:
        monkeypatch.delenv("LAYERS_MOCK_REDIS_TESTS", raising=False)
    pytester.makepyfile(test_redis=NEEDS_REDIS)
    return pytester.runpytest_subprocess("-rs", "-p", "no:cacheprovider")


def test_without_redis_server_the_redis_tests_skip_and_say_how(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = session_without_redis(pytester, monkeypatch, required=False)
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*redis-server is not on PATH*apt install redis-server*"])


def test_when_required_a_missing_redis_server_fails_the_tests(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = session_without_redis(pytester, monkeypatch, required=True)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*LAYERS_MOCK_REDIS_TESTS=required, but redis-server*"])
