"""The session's redis-server (tests/redisd.py) and Redis Cluster (tests/clusterd.py), for
the tests here."""

from clusterd import redis_cluster  # noqa: F401 - a fixture
from redisd import redis_server  # noqa: F401 - a fixture
