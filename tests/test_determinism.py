"""What keeps the suite's outcome a function of the code alone, not of the machine or the run."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings
from redisd import LOWEST_PORT, _ephemeral_low
from redisd import _free_port as free_port


def test_every_hypothesis_test_draws_fixed_examples_and_has_no_time_limit(
    request: pytest.FixtureRequest,
) -> None:
    """A random seed a run chooses, or a deadline (200 ms by default) a loaded machine
    misses, makes a test pass on one run and fail on the next: every Hypothesis test of the
    session is derandomized, keeps no example database and has no deadline or too_slow
    check (tests/conftest.py's profile; a test's own @settings must not undo it)."""
    assert settings.default.derandomize and settings.default.deadline is None  # the profile
    found = {}
    for item in request.session.items:
        function = getattr(item, "obj", None)
        chosen = getattr(function, "_hypothesis_internal_use_settings", None)
        if chosen is not None:
            found[item.nodeid] = chosen
    for nodeid, chosen in found.items():
        assert chosen.derandomize, nodeid
        assert chosen.database is None, nodeid
        assert chosen.deadline is None, nodeid
        assert HealthCheck.too_slow in chosen.suppress_health_check, nodeid


def test_a_port_given_to_a_redis_server_is_never_one_the_kernel_hands_out_nor_given_twice() -> None:
    """A port bind(0) chose is an ephemeral one: between the choice and redis-server's bind,
    or while a killed server is down before its restart on the same port, any outgoing
    connection of the machine may take it; and two choices (two cluster nodes' bus ports)
    may be the same port."""
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == len(ports)
    assert all(LOWEST_PORT <= port < _ephemeral_low() for port in ports)
