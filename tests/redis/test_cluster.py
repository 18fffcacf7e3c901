"""The shared sandbox on Redis Cluster (issue 12 item 1): `--state redis://ANY-NODE:PORT/0`.

A three-master cluster (tests/clusterd.py) runs for the session. The store contract suite
runs on it too (tests/stores, backend `redis-cluster`); here are what only a cluster shows:
sandboxes on different shards, `serve` on a cluster, and a sandbox's slot moving to another
shard while workers use it (more of the reshard in test_reshard.py).
"""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading

import httpx
import pytest
from clusterd import RedisClusterServers, slot_of
from clustered import CREATE, burst, counted_across, influencers, keys_on, workers
from served import BANNER_TIMEOUT_S
from support import FULL, GLOBEX, HTTP_TIMEOUT_S, SEED, auth

from layers_mock_server.cli import main
from layers_mock_server.stores import redis_journal


def test_sandboxes_on_different_shards_each_work_as_one_mock(
    redis_cluster: RedisClusterServers,
) -> None:
    """Each sandbox lives whole on its own shard, and two workers on it still answer as one
    mock: ten concurrent creates with one key make one influencer there, and nothing of it
    shows in the other sandbox."""
    (first, first_name), (second, second_name) = (redis_cluster.sandbox(on=i) for i in (0, 2))
    with workers(first) as one, workers(second) as two:
        for bases in (one, two):
            answers = burst(bases, "same-key")
            assert {status for status, _ in answers} == {202}, answers[:2]
            assert all(body == answers[0][1] for _, body in answers)
        assert len(influencers(one[0])) == len(influencers(two[1])) == 1
        assert influencers(one[1]) == influencers(one[0])  # both workers of a sandbox agree
        assert burst(one, "another", count=1)[0][0] == 202
        assert len(influencers(one[1])) == 2 and len(influencers(two[0])) == 1
    assert keys_on(redis_cluster, 0, first_name) and keys_on(redis_cluster, 2, second_name)
    assert not keys_on(redis_cluster, 1, first_name) and not keys_on(redis_cluster, 1, second_name)


def test_a_read_answered_by_one_worker_is_in_the_next_journal_read_of_another_on_a_cluster(
    redis_cluster: RedisClusterServers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The journal's flush barrier on a cluster: asks and words on the sandbox's shard."""
    monkeypatch.setattr(redis_journal, "FLUSH_S", 3600.0)  # entries wait for the barrier
    counted_across(redis_cluster.sandbox(on=1)[0])


class Serve:
    """`layers-mock serve` in a subprocess, found through its banner."""

    def __init__(self, *args: str) -> None:
        command = [sys.executable, "-m", "layers_mock_server.cli", "serve", "--port", "0"]
        command += ["--clock", "virtual", "--seed", str(SEED), *args]
        self.proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        lines: queue.Queue[str] = queue.Queue()
        assert self.proc.stdout is not None
        stdout = self.proc.stdout
        threading.Thread(target=lambda: [lines.put(x) for x in stdout], daemon=True).start()
        first = lines.get(timeout=BANNER_TIMEOUT_S)
        assert first.startswith("layers-mock listening on http://127.0.0.1:"), first
        self.url = first.split()[-1]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)


def test_serve_on_a_cluster_creates_an_influencer_and_its_job_completes(
    redis_cluster: RedisClusterServers,
) -> None:
    """The README's cluster deployment: `serve --state redis://ANY-NODE/0?sandbox=NAME`,
    with the URL of a node that does not hold the sandbox's slot."""
    url, _ = redis_cluster.sandbox(on=1)  # on node 1; the URL is node 0's
    server = Serve("--state", url)
    try:
        created = httpx.post(
            server.url + CREATE, headers=auth(FULL), json={}, timeout=HTTP_TIMEOUT_S
        )
        assert created.status_code == 202, created.text
        job = created.json()["jobId"]
        polled = httpx.get(
            f"{server.url}/v1/jobs/{job}", headers=auth(FULL), timeout=HTTP_TIMEOUT_S
        ).json()
        assert polled["status"] in ("queued", "running")
        advanced = httpx.post(
            server.url + "/_mock/clock/advance", json={"seconds": 3600}, timeout=HTTP_TIMEOUT_S
        )
        assert advanced.status_code == 200, advanced.text
        polled = httpx.get(
            f"{server.url}/v1/jobs/{job}", headers=auth(FULL), timeout=HTTP_TIMEOUT_S
        ).json()
        assert polled["status"] == "completed", polled
    finally:
        assert server.stop() == 0


def test_a_sandbox_whose_slot_moves_to_another_shard_keeps_working_and_loses_nothing(
    redis_cluster: RedisClusterServers,
) -> None:
    """A reshard (`redis-cli --cluster reshard`) moves the sandbox's slot while two workers
    use it: each worker's next request meets MOVED, follows the slot and is answered."""
    url, name = redis_cluster.sandbox(on=0)
    with workers(url) as bases:
        before = [burst(bases, f"before-{n}", count=2)[0][1]["influencerId"] for n in range(3)]
        assert redis_cluster.move(slot_of(name), to=1) == 0
        assert keys_on(redis_cluster, 1, name) and not keys_on(redis_cluster, 0, name)
        assert influencers(bases[0]) == influencers(bases[1]) == before[::-1]
        answers = burst(bases, "after", count=4)
        assert {status for status, _ in answers} == {202}, answers[:2]
        assert len({body["influencerId"] for _, body in answers}) == 1
        assert len(influencers(bases[1])) == 4


def my_epochs(cluster: RedisClusterServers) -> list[int]:
    """Each node's own config epoch."""
    epochs = []
    for node in range(len(cluster.nodes)):
        with cluster.client(node) as client:
            epochs.append(int(client.execute_command("CLUSTER INFO")["cluster_my_epoch"]))
    return epochs


def test_the_harness_moves_a_slot_to_a_node_whose_epoch_then_beats_every_other(
    redis_cluster: RedisClusterServers,
) -> None:
    """`move` (tests/clusterd.py) gives the slot to a node once it knows the cluster's
    greatest config epoch, so the epoch it takes for the slot beats every node's, one taken
    a moment before included: no gossip sent before the move can take the slot back to
    another node (which made two nodes each answer MOVED naming the other, and a create of
    test_cluster_outage.py's 210 moves a 503, one run in ~10). Here node 2 takes the
    greatest epoch (CLUSTER BUMPEPOCH, which tells no one: gossip does, later) just before
    the slot moves to node 0: without the wait node 0 took an epoch no greater than it."""
    _, name = redis_cluster.sandbox(on=0)
    slot = slot_of(name)
    redis_cluster.move(slot, to=1)  # node 1 has the greatest epoch, and node 2 knows it
    redis_cluster.knows_epochs(2)
    with redis_cluster.client(2) as client:
        assert client.execute_command("CLUSTER BUMPEPOCH").startswith(b"BUMPED")
    redis_cluster.move(slot, to=0)
    epochs = my_epochs(redis_cluster)
    assert epochs[0] > max(epochs[1:]), epochs


def test_a_database_other_than_0_on_a_cluster_is_refused_in_one_sentence(
    redis_cluster: RedisClusterServers, capsys: pytest.CaptureFixture[str]
) -> None:
    url = redis_cluster.url.replace("/0", "/3") + "?sandbox=dbthree"
    assert main(["serve", "--port", "0", "--state", url]) == 2
    err = capsys.readouterr().err
    assert "is a Redis Cluster node: a cluster has only database 0" in err
    assert err.count("\n") == 1, err


def test_a_tenants_journal_numbers_are_its_own_on_a_cluster(
    redis_cluster: RedisClusterServers,
) -> None:
    """Issue 12 point 4 on a cluster: the counters that number an organization's entries
    and the organization's marks live beside the sandbox's keys, on its shard; a tenant's
    sequences and marks count its own requests and resets, whichever worker answered."""
    url, name = redis_cluster.sandbox(on=1)
    operator = "operator-secret-for-tenants"
    with workers(url, admin_token=operator) as (one, two):

        def whoami(key: str) -> str:
            answer = httpx.get(one + "/v1/whoami", headers=auth(key), timeout=30)
            assert answer.status_code == 200, answer.text
            return answer.headers["x-request-id"]

        def reset(base: str, key: str) -> int:
            answer = httpx.post(base + "/_mock/reset", json={}, headers=auth(key), timeout=30)
            assert answer.status_code == 200, answer.text
            mark: int = answer.json()["mark"]
            return mark

        def listed(key: str, query: str = "") -> list[tuple[int, str]]:
            found = httpx.get(f"{one}/_mock/requests?{query}", headers=auth(key), timeout=30)
            assert found.status_code == 200, found.text
            return [(e["sequence"], e["requestId"]) for e in found.json()["items"]]

        first = whoami(FULL)
        whoami(GLOBEX), whoami(GLOBEX)
        second = whoami(FULL)
        assert listed(FULL) == [(2, second), (1, first)]
        assert [reset(two, GLOBEX), reset(two, GLOBEX), reset(two, FULL)] == [1, 2, 1]
        since = whoami(FULL)
        assert listed(FULL, "after=1") == [(3, since)]
        assert reset(one, FULL) == 2
    assert keys_on(redis_cluster, 1, name) and not keys_on(redis_cluster, 0, name)
