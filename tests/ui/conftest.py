"""A real Chromium for the dashboard tests, driven by Playwright, against a real mock server.

The browser is Debian's `chromium` package (Playwright's own browser downloads are not used).
Where it cannot start, the browser tests fail with a message saying how to get it (.ci/run
installs it).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import components
import httpx
import pytest
from support import HTTP_TIMEOUT_S, SEED, running_server

from layers_mock_server.core.clock import Clock
from layers_mock_server.core.fixtures import load_fixtures
from layers_mock_server.core.simulator import Simulator
from layers_mock_server.deps import Deps
from layers_mock_server.http.app import build_app

CHROMIUM = os.environ.get("LAYERS_MOCK_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
# As root Chromium needs --no-sandbox; the rest keeps it off the network it may not reach.
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
EXPECTED_REFUSAL = re.compile(
    r"^Failed to load resource: the server responded with a status of 4\d\d"
)
# How long a page step (a click, an `expect`) waits: Playwright's own 5 s is a slow step, not a
# hang, on a loaded 2-core CI machine; the same patience the tests give a server's answer.
PAGE_TIMEOUT_MS = round(HTTP_TIMEOUT_S * 1000)
STUCK_AFTER_S = 120  # a browser test takes 1 to 5 s; this is a hang, not a slow machine
HOW = (
    "install Debian's chromium (`apt-get install chromium`) or point LAYERS_MOCK_CHROMIUM at a "
    "Chromium binary; .ci/run does the first"
)


def _cannot_run(reason: str, missing: bool = True) -> NoReturn:
    """No browser that starts here: tests/components.py (skipped on a laptop without one, a
    failure on CI, which installs it, and wherever one is installed but does not start)."""
    components.cannot_run(reason, HOW, missing=missing)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    # Module scope: Playwright's sync API keeps an event loop running on this thread until it
    # stops, so it must stop with the module that used it, or a later asyncio.run() fails.
    try:
        from playwright.sync_api import Error, expect, sync_playwright
    except ImportError:
        _cannot_run("the playwright package is not installed")
    expect.set_options(timeout=PAGE_TIMEOUT_MS)  # every `expect` in tests/ui, not just some
    if not os.path.exists(CHROMIUM):
        _cannot_run(f"no Chromium at {CHROMIUM}")
    playwright = sync_playwright().start()
    try:
        # Playwright gives each launch a fresh, empty profile (user data dir) of its own.
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
    except Error as exc:
        playwright.stop()
        _cannot_run(
            f"Chromium at {CHROMIUM} did not start ({exc.message.splitlines()[0]})", missing=False
        )
    yield launched
    launched.close()
    playwright.stop()


@dataclass
class Served:
    """The mock on 127.0.0.1 with a virtual clock, strict, and a client for the partner API."""

    url: str
    deps: Deps
    api: httpx.Client
    errors: list[str] = field(default_factory=list)  # what the page's script threw


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    deps = Deps(sim=Simulator(load_fixtures(), Clock("virtual"), SEED), strict=True)
    with (
        running_server(build_app(deps)) as url,
        httpx.Client(base_url=url, timeout=HTTP_TIMEOUT_S) as api,
    ):
        yield Served(url, deps, api)


@pytest.fixture
def server(served: Served) -> Iterator[Served]:
    served.api.post("/_mock/reset").raise_for_status()
    served.errors.clear()
    yield served
    served.deps.admin_token = None


def _stop_the_driver(bitten: threading.Event) -> None:
    """The watchdog's bite: Playwright bounds most calls, not all (a page.evaluate whose promise
    never settles waits forever). Killing its driver makes the stuck call raise, so the test
    fails in a few minutes with a traceback instead of holding CI for its whole hour."""
    bitten.set()
    me = str(os.getpid())
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError):
            if stat.read_text().rsplit(")", 1)[1].split()[1] != me:
                continue
            if b"playwright" in (stat.parent / "cmdline").read_bytes():
                os.kill(int(stat.parent.name), signal.SIGKILL)


def _console_error(server: Served, message: Any) -> None:
    # A 4xx the page asked for and then explained (a clock set backwards) is logged by Chromium
    # as "Failed to load resource"; anything else, a 5xx included, is a failure of the page.
    if message.type == "error" and not EXPECTED_REFUSAL.search(message.text):
        server.errors.append(message.text)


@pytest.fixture
def page(browser: Any, server: Served) -> Iterator[Any]:
    bitten = threading.Event()
    watchdog = threading.Timer(STUCK_AFTER_S, _stop_the_driver, [bitten])
    watchdog.daemon = True
    watchdog.start()
    context = browser.new_context(
        viewport={"width": 1440, "height": 900},
        permissions=["clipboard-read", "clipboard-write"],
    )
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    tab = context.new_page()
    tab.on("pageerror", lambda exc: server.errors.append(str(exc)))
    tab.on("console", lambda message: _console_error(server, message))
    yield tab
    try:  # closing is watched too: a close that never returns held a CI run for good
        context.close()
    except Exception:
        if not bitten.is_set():
            raise
    finally:
        watchdog.cancel()
    if bitten.is_set():
        pytest.fail(f"stuck for {STUCK_AFTER_S} s: the watchdog stopped the browser")
    assert server.errors == [], "the page logged errors"
