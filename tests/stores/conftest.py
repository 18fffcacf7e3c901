"""The session's redis-server (tests/redisd.py), for the tests here."""

from redisd import redis_server  # noqa: F401 - a fixture
