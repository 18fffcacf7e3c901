"""Serving helpers for the conformance tests: the mock (or a broken wrapper) on 127.0.0.1.

Serving itself is support.running_server: the socket is bound and listening before the server
thread starts, so connections queue instead of failing (no sleep, no readiness polling).
"""

from __future__ import annotations

from typing import Any

from support import running_server

from mockserver.settings import Settings, make_app


def mock_app(seed: int = 0) -> Any:
    return make_app(Settings(clock="virtual", seed=seed))


serve = running_server  # the one way tests serve an app on 127.0.0.1
