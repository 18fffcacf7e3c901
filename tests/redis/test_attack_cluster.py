"""A Redis Cluster that is not ready at start-up: one sentence, never a traceback."""

from __future__ import annotations

import pytest
import redisd
from clusterd import CLUSTER_OPTIONS
from redisd import _free_port as free_port

from layers_mock_server.cli import main


def test_a_cluster_node_whose_slots_are_not_all_served_is_one_sentence_at_start(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A node in cluster mode before its cluster is formed (or one whose cluster lost a
    shard's slots): redis-py's RedisClusterException is not a RedisError, and was a traceback
    out of `serve`. The password of the URL stays out of the message."""
    # the bus port named, as clusterd.py does: port + 10000 is out of range above 55535
    bus = ("--cluster-port", str(free_port()))
    with redisd.started(options=(*CLUSTER_OPTIONS, *bus)) as node:
        url = f"redis://:hunter2@127.0.0.1:{node.port}/0?sandbox=lonely"
        assert main(["serve", "--port", "0", "--state", url]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    assert err.count("\n") == 1, err
    assert f"127.0.0.1:{node.port}" in err and "slots" in err, err
    assert "hunter2" not in err, err
