"""The pytest plugin of layers-mock (entry point `pytest11: layers_mock`), a thin layer over
`layers_mock.LayersMock`:

- `layers_mock`: an in-process mock, fresh for each test;
- `layers_mock_server`: the same, served on a real port (one server per session);
- `@pytest.mark.layers_mock(seed=0, clock="virtual", progression="time", fixtures=None,
  speed=1.0, strict=True)`: how the test's mock starts (the keywords of `LayersMock`).

Fresh is cheap: one mock per configuration lives for the whole session, and each test gets it
reset (fixtures reloaded, clock at its start, journal and rules empty, the marker's seed), which
costs a fraction of a millisecond where building one costs ten (and the first, which loads the
contract, a few hundred). A test that asks for both fixtures
gets one mock, the served one. Loading the plugin imports nothing heavy: pytest runs that never
use the fixtures pay nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from . import LayersMock

# Every keyword LayersMock takes, with its default (a test checks the two lists agree).
OPTIONS = {
    "seed": 0,
    "clock": "virtual",
    "progression": "time",
    "fixtures": None,
    "speed": 1.0,
    "strict": True,
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "layers_mock(seed=0, clock='virtual', progression='time', fixtures=None, speed=1.0, "
        "strict=True): "
        "how this test's layers-mock starts (fixtures layers_mock, layers_mock_server)",
    )


class _Pool:
    """The session's mocks, one per (clock, progression, fixtures), built on first use."""

    def __init__(self) -> None:
        self.mocks: dict[str, LayersMock] = {}
        self.servers: dict[str, Any] = {}  # key -> the serve() context of that mock

    def get(self, options: dict[str, Any], served: bool) -> LayersMock:
        from . import LayersMock

        key = json.dumps(
            [
                served,
                options["clock"],
                options["progression"],
                options["fixtures"],
                options["speed"],
                options["strict"],
            ],
            sort_keys=True,
            default=str,
        )
        mock = self.mocks.get(key)
        if mock is None:
            mock = LayersMock(
                seed=options["seed"],
                clock=options["clock"],
                progression=options["progression"],
                fixtures=options["fixtures"],
                speed=options["speed"],
                strict=options["strict"],
            )
            self.mocks[key] = mock
            if served:
                context = mock.serve()
                context.__enter__()
                self.servers[key] = context
        mock.reset(seed=options["seed"])
        return mock

    def close(self) -> None:
        for context in self.servers.values():
            context.__exit__(None, None, None)
        for mock in self.mocks.values():
            mock.close()


def _options(request: pytest.FixtureRequest) -> dict[str, Any]:
    options = dict(OPTIONS)
    marker = request.node.get_closest_marker("layers_mock")
    if marker is not None:
        unknown = sorted(set(marker.kwargs) - set(OPTIONS))
        if marker.args or unknown:
            raise pytest.UsageError(
                f"@pytest.mark.layers_mock takes keywords {', '.join(OPTIONS)}; "
                f"got {', '.join(map(repr, marker.args)) or ''}{', '.join(unknown)}"
            )
        options.update(marker.kwargs)
    return options


@pytest.fixture(scope="session")
def _layers_mock_pool() -> Iterator[_Pool]:
    pool = _Pool()
    yield pool
    pool.close()


@pytest.fixture
def layers_mock(request: pytest.FixtureRequest, _layers_mock_pool: _Pool) -> LayersMock:
    """An in-process LayersMock, fresh for this test (see `layers_mock.LayersMock`)."""
    if "layers_mock_server" in request.fixturenames:
        served: LayersMock = request.getfixturevalue("layers_mock_server")
        return served
    return _layers_mock_pool.get(_options(request), served=False)


@pytest.fixture
def layers_mock_server(request: pytest.FixtureRequest, _layers_mock_pool: _Pool) -> LayersMock:
    """A LayersMock served on a real 127.0.0.1 port (`.base_url`), fresh for this test; the
    server is started once per session and reset between tests."""
    return _layers_mock_pool.get(_options(request), served=True)
