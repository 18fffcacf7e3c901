"""The shared sandbox on Redis Cluster (issue 12 item 1): `--state redis://ANY-NODE:PORT/0`.

A three-master cluster (tests/clusterd.py) runs for the session. The store contract suite
runs on it too (tests/stores, backend `redis-cluster`); here are what only a cluster shows:
sandboxes on different shards, `serve` on a cluster, and a sandbox's slot moving to another
shard while workers use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from clusterd import RedisClusterServers, slot_of
from served import BANNER_TIMEOUT_S
from support import FULL, PROJECT, SEED, auth

from layers_mock_server import serving
from layers_mock_server.cli import main
from layers_mock_server.http.app import build_app
from layers_mock_server.settings import Settings, make_deps

CREATE = f"/v1/projects/{PROJECT}/influencers"


@contextlib.contextmanager
def workers(url: str, count: int = 2) -> Iterator[list[str]]:
    """`count` servers (app, store connection, loop, thread) on one sandbox: what the
    processes of `--workers N`, or hosts, are to each other. Yields their base URLs."""
    settings = Settings(state=url, clock="virtual", seed=SEED, strict=True)
    with contextlib.ExitStack() as stack:
        bases = []
        for _ in range(count):
            host, port = stack.enter_context(serving.running(build_app(make_deps(settings))))
            bases.append(f"http://{host}:{port}")
        yield bases


def burst(bases: list[str], key: str, count: int = 10) -> list[tuple[int, Any]]:
    """`count` concurrent creates with one Idempotency-Key, spread over the workers."""

    async def run() -> list[tuple[int, Any]]:
        headers = auth(FULL, **{"Idempotency-Key": key})
        async with httpx.AsyncClient(timeout=30) as client:
            sent = [
                client.post(bases[n % len(bases)] + CREATE, headers=headers, json={})
                for n in range(count)
            ]
            return [(r.status_code, r.json()) for r in await asyncio.gather(*sent)]

    return asyncio.run(run())


def influencers(base: str) -> list[str]:
    page = httpx.get(base + CREATE, headers=auth(FULL), params={"limit": 100}).json()
    assert page["nextCursor"] is None
    return [item["influencerId"] for item in page["items"]]


def keys_on(cluster: RedisClusterServers, node: int, name: str) -> list[bytes]:
    with cluster.client(node) as client:
        return sorted(client.execute_command("CLUSTER GETKEYSINSLOT", slot_of(name), 100))


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
        created = httpx.post(server.url + CREATE, headers=auth(FULL), json={})
        assert created.status_code == 202, created.text
        job = created.json()["jobId"]
        polled = httpx.get(f"{server.url}/v1/jobs/{job}", headers=auth(FULL)).json()
        assert polled["status"] in ("queued", "running")
        advanced = httpx.post(server.url + "/_mock/clock/advance", json={"seconds": 3600})
        assert advanced.status_code == 200, advanced.text
        polled = httpx.get(f"{server.url}/v1/jobs/{job}", headers=auth(FULL)).json()
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


def test_a_request_during_a_half_done_reshard_answers_503_and_loses_nothing(
    redis_cluster: RedisClusterServers,
) -> None:
    """Half-way through a reshard (some of the sandbox's keys moved, some not), Redis refuses
    the store's scripts (TRYAGAIN) before they run: the answer is a 503 STORAGE_UNAVAILABLE
    in the envelope, nothing of the request is kept, and once the reshard is done the same
    request is answered as if it were new."""
    url, name = redis_cluster.sandbox(on=2)
    with workers(url, count=1) as bases:
        kept = burst(bases, "kept", count=1)[0][1]["influencerId"]
        slot = slot_of(name)
        commits = f"{{lm:{name}}}:commits".encode()
        source = redis_cluster.move(slot, to=0, keys=[commits])
        refused = httpx.post(
            bases[0] + CREATE, headers=auth(FULL, **{"Idempotency-Key": "mid"}), json={}
        )
        assert refused.status_code == 503, refused.text
        error = refused.json()["error"]
        assert error["code"] == "STORAGE_UNAVAILABLE"
        assert "nothing of this request" in error["message"]
        redis_cluster.finish_move(slot, source, to=0)
        assert influencers(bases[0]) == [kept]  # the refused create left nothing
        answers = burst(bases, "mid", count=1)
        assert answers[0][0] == 202
        assert influencers(bases[0]) == [answers[0][1]["influencerId"], kept]


def test_a_database_other_than_0_on_a_cluster_is_refused_in_one_sentence(
    redis_cluster: RedisClusterServers, capsys: pytest.CaptureFixture[str]
) -> None:
    url = redis_cluster.url.replace("/0", "/3") + "?sandbox=dbthree"
    assert main(["serve", "--port", "0", "--state", url]) == 2
    err = capsys.readouterr().err
    assert "is a Redis Cluster node: a cluster has only database 0" in err
    assert err.count("\n") == 1, err
