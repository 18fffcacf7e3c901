"""Fixtures shared by every test; the helpers themselves live in support.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from clusterd import redis_cluster  # noqa: F401 - one Redis Cluster for the whole session
from served import servers  # noqa: F401 - a fixture for every test module
from support import Mock, make_mock

pytest_plugins = ("pytester",)  # the pytest plugin is tested in fresh pytest sessions


@pytest.fixture
def mock() -> Iterator[Mock]:
    m = make_mock()
    with m.client:
        yield m
