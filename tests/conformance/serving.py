"""Serving helpers for the conformance tests: the mock (or a broken wrapper) on 127.0.0.1, and
the focused run the mutation study gives each deployment.

Serving itself is support.running_server: the socket is bound and listening before the server
thread starts, so connections queue instead of failing (no sleep, no readiness polling).
"""

from __future__ import annotations

from typing import Any

from support import (
    BAKERY,
    CHILD_ORG,
    CHILD_PROJECT,
    FULL,
    GLOBEX,
    GLOBEX_PROJECT,
    KILLED,
    NO_INFLUENCERS,
    NORTH_ADMIN,
    PROJECT,
    STANDARD,
    running_server,
)

from layers_mock_server.conformance.runner import Options
from layers_mock_server.conformance.target import Identities
from layers_mock_server.settings import Settings, make_app

# Every identity the suite can use, as a partner would pass them against a deployment.
IDS = Identities(
    api_key=FULL,
    project_id=PROJECT,
    scopeless_key=NO_INFLUENCERS,
    foreign_project_id=GLOBEX_PROJECT,
    second_key=STANDARD,
    foreign_key=GLOBEX,
    killed_key=KILLED,
    throttle_key=STANDARD,
    org_admin_key=NORTH_ADMIN,
    child_organization_id=CHILD_ORG,
    wallet_key=BAKERY,
    wallet_project_id=CHILD_PROJECT,
)


def mock_app(seed: int = 0) -> Any:
    return make_app(Settings(clock="virtual", seed=seed))


def focused(url: str, clause: str, seed: int = 0) -> Options:
    """Only `clause` (and what produces its evidence), quick profile, the mock's clock ours."""
    return Options(
        base_url=url,
        identities=IDS,
        control_plane=True,
        only=[clause],
        profile="quick",
        seed=seed,
        max_creates=100,
        max_projects=10,
        poll_interval=0.01,
    )


serve = running_server  # the one way tests serve an app on 127.0.0.1
