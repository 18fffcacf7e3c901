"""Fixtures shared by every test; the helpers themselves live in support.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from clusterd import redis_cluster  # noqa: F401 - one Redis Cluster for the whole session
from hypothesis import HealthCheck, settings
from served import servers  # noqa: F401 - a fixture for every test module
from support import Mock, make_mock

pytest_plugins = ("pytester", "refusals")  # pytester: the pytest plugin is tested in fresh sessions

# Every Hypothesis test draws the same examples on every run and machine: derandomized (a seed
# from the test's name, no example database carried between runs), and judged on what it
# finds, never on how long an example or its generation took (a loaded CI machine is slow).
# A test's own @settings still choose its examples' count; what it names overrides this.
settings.register_profile(
    "layers-mock",
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("layers-mock")


@pytest.fixture
def mock() -> Iterator[Mock]:
    m = make_mock()
    with m.client:
        yield m
