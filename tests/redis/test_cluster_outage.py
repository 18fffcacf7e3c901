"""A worker on Redis Cluster through long outages and many failovers: the whole cluster down
for more connection attempts than redis-py's pools would count (100), a shard failed over, a
slot moved between shards again and again. Each time the worker answers again once the
cluster does, without a restart, with no more connections or file descriptors than before,
and what it held when it stops still reaches the journal.

Each test forms a cluster of its own (tests/clusterd.py, ~2 s): it kills its nodes. Servers
run in threads of this process (tests/clustered.py); nothing waits on a timer: what a test
waits for is polled, bounded by a deadline.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from clusterd import RedisClusterServers, started_cluster
from clustered import CREATE, workers
from handoffs import Waiter, served
from support import FULL, auth

from layers_mock_server.stores import redis_journal

JOURNAL = "/_mock/requests"


@pytest.fixture
def unflushed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The journal's entries go with the worker's round trips only, not also on a 10 ms
    timer of their own: the test knows which entries still wait in the worker."""
    monkeypatch.setattr(redis_journal, "FLUSH_S", 3600.0)


def journaled(base: str) -> list[tuple[str, int, str]]:
    """(method, status, request id) of every journal entry, oldest first."""
    page = httpx.get(base + JOURNAL, params={"limit": 100}, timeout=30).json()
    return [(i["method"], i["status"], i["requestId"]) for i in reversed(page["items"])]


def sent(base: str, method: str) -> tuple[str, int, str]:
    """One create or list: (method, status, request id), as the journal should show it."""
    body = {} if method == "POST" else None
    answer = httpx.request(method, base + CREATE, headers=auth(FULL), json=body, timeout=30)
    return method, answer.status_code, answer.headers["x-request-id"]


def test_what_a_cluster_worker_still_held_when_it_stops_after_a_failover_reaches_the_journal(
    unflushed: None,
) -> None:
    """The sandbox's master dies and its replica takes over; the worker answers again (its
    lane follows the slot) and stops. Its last entries go at once on its own synchronous
    connection, idle since it opened and still aimed at the dead master: refused there, the
    cluster names the replica, and nothing was sent, so the append goes there. Before, it was
    not sent again (an append is not safe to send twice, but this one never left): the last
    answers a client got were missing from the journal."""
    cluster: RedisClusterServers
    with started_cluster(replicas=1) as cluster:
        url, name = cluster.sandbox(on=0)
        worker = Waiter(url)
        with served(worker) as (host, port):
            base = f"http://{host}:{port}"
            before = [sent(base, "POST")]
            with cluster.client(0) as master:  # the replica has every write
                assert master.execute_command("WAIT", 1, 10_000) == 1
            replica = cluster.fail_over(0)
            after = [sent(base, "POST"), sent(base, "GET")]
            assert [status for _, status, _ in after] == [202, 200]
        assert worker.store.outbox  # the read's entry had not gone yet
        worker.store.close()  # as a stopping server does (cli.stopped): its loop is gone
        # (node 0's URL is dead: the replica's reaches the cluster)
        url = f"redis://127.0.0.1:{cluster.port(replica)}/0?sandbox={name}"
        with workers(url, count=1) as [reader]:
            found: Any = journaled(reader)
        assert found[: len(before + after)] == before + after
