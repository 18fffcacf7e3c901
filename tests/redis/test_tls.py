"""A worker on Redis over TLS (`--state rediss://…`): its round trips go through the lane
(stores/redis_lane.py), never on its event loop, and a worker refused the lease hears it given
back on the handoff channel (stores/redis_handoff.py) over TLS too. Before, TLS had neither: a
round trip held every request of the worker, and a refused worker tried every 2 ms.

The server is the tests' redis-server with a TLS port beside its plain one, its certificate
self-signed for 127.0.0.1 and trusted through SSL_CERT_FILE (redis-py verifies it).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from clusterd import RedisClusterServers, slot_of, started_cluster
from clustered import counted_across, keys_on
from components import cannot_run
from grouped import CREATE, Worker, serves_off_the_loop
from handoffs import ANSWER_S, Waiter, failed_over, handed_over, listening, served
from redis_served import killed_mid_burst
from redisd import _free_port, started
from support import FULL, auth

from layers_mock_server.stores import redis_handoff, redis_journal
from layers_mock_server.stores.redis import RedisStore


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(certificate, key), self-signed for 127.0.0.1."""
    if shutil.which("openssl") is None:  # as redisd's: a skip on a laptop, a failure on CI
        cannot_run("no openssl", "install openssl (apt install openssl)", missing=True)
    where = tmp_path_factory.mktemp("tls")
    cert, key = where / "cert.pem", where / "key.pem"
    made = ("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1")
    made += ("-addext", "subjectAltName=IP:127.0.0.1")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", *made],
        check=True,
        capture_output=True,
    )
    return cert, key


def tls_options(cert: Path, key: Path, port: int) -> tuple[str, ...]:
    """A redis-server's TLS port beside its plain one (the tests' own helpers use that)."""
    options = ("--tls-port", str(port), "--tls-cert-file", str(cert), "--tls-key-file", str(key))
    return (*options, "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no")


@pytest.fixture(scope="module")
def tls_server(certificate: tuple[Path, Path]) -> Iterator[tuple[str, Path]]:
    """(URL, certificate) of a Redis that speaks TLS."""
    port = _free_port()
    with started(options=tls_options(*certificate, port)):
        yield f"rediss://127.0.0.1:{port}/0", certificate[0]


def test_a_tls_redis_killed_mid_burst_keeps_every_create_it_acknowledged(
    certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """As on a plain port (tests/redis/test_served.py): kill -9 of a TLS-only redis-server
    (`appendfsync always`) while two workers serve four creating clients over `rediss://`,
    and its restart from its AOF on the same TLS port: nothing answered 202 is lost, and the
    workers reconnect over TLS (fuzz14 did this by hand seven times, 0 of 20,921 lost)."""
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))  # the workers inherit it
    port = _free_port()
    with started(fsync="always", options=(*tls_options(*certificate, port), "--port", "0")) as own:
        own.port = port  # (nothing listens in the clear: `port` is the only one it has)
        killed_mid_burst(own, f"rediss://127.0.0.1:{port}/0")


@pytest.fixture
def sandbox(
    tls_server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> str:
    """A sandbox of the test's own on the TLS server, whose certificate is trusted."""
    url, cert = tls_server
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    return f"{url}?sandbox={request.node.name[-60:].replace('[', '-').replace(']', '')}"


def test_a_tls_worker_hears_the_lease_given_back(sandbox: str, no_poll: None) -> None:
    """Refused once, the waiter waits (no timer would wake it); the holder gives the lease
    back and the waiter's next try takes it."""
    waiter = Waiter(sandbox)
    holder = RedisStore(sandbox)
    try:
        with served(waiter) as (host, port):
            base = f"http://{host}:{port}"
            listening(waiter, base)
            assert holder.open() is not None
            handed_over(waiter, base, holder)
    finally:
        holder.close()


def test_a_read_answered_by_one_tls_worker_is_in_the_next_journal_read_of_another(
    sandbox: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The journal's flush barrier over TLS: asks and words through the lane."""
    monkeypatch.setattr(redis_journal, "FLUSH_S", 3600.0)  # entries wait for the barrier
    counted_across(sandbox)


def test_no_round_trip_of_a_serving_tls_worker_runs_on_its_loop(
    sandbox: str, on_the_loop: list[bytes]
) -> None:
    """Creates, reads and the journal: none is a synchronous round trip on the event loop."""
    serves_off_the_loop(sandbox, on_the_loop)


@pytest.fixture(scope="module")
def tls_cluster(certificate: tuple[Path, Path]) -> Iterator[tuple[RedisClusterServers, list[int]]]:
    """A Redis Cluster whose nodes speak TLS to clients and to each other (`tls-cluster`), and
    the TLS port of each node."""
    ports: list[int] = []

    def options() -> tuple[str, ...]:
        ports.append(_free_port())
        return (*tls_options(*certificate, ports[-1]), "--tls-cluster", "yes")

    with started_cluster(options=options) as cluster:
        yield cluster, ports


@contextlib.contextmanager
def tls_only(
    certificate: tuple[Path, Path], replicas: int = 0
) -> Iterator[tuple[RedisClusterServers, list[int]]]:
    """A Redis Cluster whose nodes listen on TLS only (`port 0`, `tls-port`, `tls-cluster`,
    `tls-replication`): no plain port to fall back on, so every address a client learns from
    the cluster (CLUSTER SLOTS, MOVED) must be a TLS one. Its TLS ports beside it."""
    ports: list[int] = []

    def options() -> tuple[str, ...]:
        ports.append(_free_port())
        tls = (*tls_options(*certificate, ports[-1]), "--tls-cluster", "yes")
        return (*tls, "--tls-replication", "yes", "--port", "0")

    with started_cluster(
        replicas=replicas, options=options, tls_only=(certificate[0], ports)
    ) as cluster:
        for i in range(len(cluster.nodes)):  # nothing listens in the clear, as each says
            # (asked, not tried: the unbound plain port may be another process's by now)
            with cluster.client(i) as node:
                assert node.config_get("port") == {"port": "0"}
        yield cluster, ports


@pytest.fixture(scope="module")
def tls_only_cluster(
    certificate: tuple[Path, Path],
) -> Iterator[tuple[RedisClusterServers, list[int]]]:
    with tls_only(certificate) as cluster:
        yield cluster


@pytest.mark.parametrize("which", ["tls_cluster", "tls_only_cluster"])
def test_a_worker_on_a_tls_cluster_serves_and_hears_the_lease_given_back(
    which: str,
    request: pytest.FixtureRequest,
    certificate: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    on_the_loop: list[bytes],
    no_poll: None,
) -> None:
    """`rediss://` to a node of a TLS cluster whose slot map names other nodes: the worker's
    round trips go through the lane to the shard that owns the sandbox's slot, none on its
    loop, and its listener hears the release over TLS on that shard. The same on a cluster
    with no plain port at all."""
    cluster, ports = request.getfixturevalue(which)
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    _, name = cluster.sandbox(on=1)  # not the node the URL names: MOVED over TLS
    url = f"rediss://127.0.0.1:{ports[0]}/0?sandbox={name}"
    serves_off_the_loop(url, on_the_loop)
    waiter, holder = Waiter(url), RedisStore(url)
    try:
        with served(waiter) as (host, port):
            base = f"http://{host}:{port}"
            listening(waiter, base)
            assert isinstance(waiter.store.handoff.conn, redis.SSLConnection)
            assert waiter.store.handoff.conn.port == ports[1]  # the shard's TLS port
            assert holder.open() is not None
            assert holder.lock() is not None
            made: list[httpx.Response] = []
            thread = waiter.create(base, made)
            assert waiter.waiting.wait(ANSWER_S)
            holder.unlock()
            thread.join(ANSWER_S)
            assert [r.status_code for r in made] == [202]
            assert waiter.tries == [False, True]
            assert keys_on(cluster, 1, name)  # the sandbox lives on its shard
    finally:
        holder.close()


def test_a_worker_on_a_tls_only_cluster_follows_its_shard_to_the_replica_that_took_over(
    certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, no_poll: None
) -> None:
    """The master of the sandbox's slot dies and its replica takes over: the worker learns
    the replica's address from the cluster, a TLS port (there is no other), and its requests
    and its listener go on there; the next handoff is heard on the replica."""
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    with tls_only(certificate, replicas=1) as (cluster, ports):
        _, name = cluster.sandbox(on=0)
        url = f"rediss://127.0.0.1:{ports[1]}/0?sandbox={name}"
        waiter = Waiter(url)
        holder = RedisStore(url)
        try:
            with served(waiter) as (host, port):
                base = f"http://{host}:{port}"
                listening(waiter, base)
                replica = failed_over(waiter, base, cluster)
                assert waiter.store.handoff.conn.port == ports[replica]
                assert holder.open() is not None
                handed_over(waiter, base, holder)
        finally:
            holder.close()
        assert cluster.owner(slot_of(name)) == replica


def test_a_tls_worker_writes_again_after_more_listener_connects_than_the_pool_would_count(
    certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """respawn13: over TLS the handoff's listener took each connection it tried from redis-py's
    pool, which counts what it made for good (outside13's defect 6, fixed for the pipe only):
    after 100 (its max_connections) tried while Redis was down, each lease try raised
    MaxConnectionsError, no 503, and so did every write once Redis was back. With a connect
    tried at every lease try (RECONNECT_S 0 instead of 0.5 s: the same count, sooner), 120
    of them while Redis is down are 503s, and the first write once it is back is a 202."""
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    monkeypatch.setattr(redis_handoff, "RECONNECT_S", 0.0)
    port = _free_port()
    with started(fsync="always", options=tls_options(*certificate, port)) as own:
        worker = Worker(f"rediss://127.0.0.1:{port}/0?sandbox=pool")
        handoff = worker.store.handoff
        tried: list[int] = []
        make = handoff.make

        def counted() -> object:
            tried.append(len(tried))
            return make()

        handoff.make = counted
        own.kill()
        for _ in range(1_000):  # (a bound only a worker that stopped trying reaches)
            guarded = asyncio.wait_for(worker.call("POST", CREATE, auth(FULL), {}), 60)
            status, down = worker.loop.run_until_complete(guarded)  # a wedged worker fails here
            assert status == 503, down
            assert down["error"]["code"] == "STORAGE_UNAVAILABLE"
            if len(tried) > 120:
                break
        assert len(tried) > 120
        own.start()  # the same ports, its AOF
        [(status, answer)] = worker.together(("POST", CREATE, auth(FULL), {"gender": "male"}))
        assert status == 202, answer
        worker.close()
