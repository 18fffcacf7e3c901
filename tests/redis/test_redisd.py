"""Without redis-server the Redis tests skip and say how to run them; CI makes them fail."""

from __future__ import annotations

from pathlib import Path

import pytest
import redisd


def test_without_redis_server_the_redis_tests_skip_and_say_how(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing there: no redis-server
    monkeypatch.setattr(redisd, "REQUIRED", False)
    with pytest.raises(pytest.skip.Exception, match=r"apt install redis-server"), redisd.started():
        pass


def test_when_required_a_missing_redis_server_fails_the_tests(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(redisd, "REQUIRED", True)  # .ci/run: LAYERS_MOCK_REDIS_TESTS=required
    failed = pytest.raises(pytest.fail.Exception, match="LAYERS_MOCK_REDIS_TESTS=required")
    with failed, redisd.started():
        pass
