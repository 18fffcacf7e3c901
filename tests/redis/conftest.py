"""The session's redis-server (tests/redisd.py), for the tests here."""

import pytest
from redisd import redis_server  # noqa: F401 - a fixture

from layers_mock_server.http import shared


@pytest.fixture(autouse=True)
def unfollowed(monkeypatch: pytest.MonkeyPatch) -> None:
    """An idle worker's periodic catch-up (http/shared.py `_follow`) would add round trips
    at moments the tests here do not choose; test_grouped.py tests it on its own."""
    monkeypatch.setattr(shared, "FOLLOW_S", 3600.0)
