"""A real Redis Cluster for the tests: three redis-server masters (tests/redisd.py, with
`--cluster-enabled yes`) on free ports in a temporary directory, the 16384 slots split among
them, and stopped at the end of the session.

The cluster is formed as `redis-cli --cluster create` forms one, minus its one-second naps:
each node takes a third of the slots and a config epoch of its own, the first meets the
others, and the session waits until every node says `cluster_state:ok` with all three known.
That wait is bounded: Redis itself keeps a new master's
state at "fail" for its first two seconds (CLUSTER_WRITABLE_DELAY), so forming costs ~2 s
once per session. Each node's log says when its state turns ok, and that line is waited for.

Same rule as the single server: without redis-server, a failure with a how-to message.
"""

from __future__ import annotations

import contextlib
import itertools
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from redisd import RedisServer, cannot_run
from redisd import _free_port as free_port

if TYPE_CHECKING:  # redis-py is imported when a cluster is asked for: conftest loads this
    import redis

SLOTS = 16384
STATE_OK = "Cluster state changed: ok"  # what a node logs when its cluster_state turns ok
FORM_TIMEOUT_S = 20
CLUSTER_OPTIONS = (
    *("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"),
    *("--cluster-node-timeout", "5000"),
    # a replica's first sync starts at once, not after the default 5 s wait for more replicas
    *("--repl-diskless-sync-delay", "0"),
)
SYNCED = "MASTER <-> REPLICA sync: Finished with success"  # a replica's log, once it has all
TAKEOVER_TIMEOUT_S = 10
# How long a node may take to hear of the cluster's greatest config epoch (`finish_move`):
# gossip carries it within cluster-node-timeout / 2 (2.5 s) at worst, usually at once.
GOSSIP_TIMEOUT_S = 10


def slot_of(sandbox: str) -> int:
    """The slot every key of a sandbox lives in: the hash tag `{lm:NAME}`'s."""
    import redis

    return int(redis.crc.key_slot(("{lm:" + sandbox + "}").encode()))


@dataclass
class RedisClusterServers:
    """Three masters (and, when asked for, a replica of each of the first ones after them);
    `sandbox(on=i)` names a sandbox whose slot node `i` holds."""

    nodes: list[RedisServer]
    buses: list[int]  # each node's cluster bus port
    masters: int = 3
    ids: list[str] = field(default_factory=list)
    names: Iterator[int] = field(default_factory=itertools.count)
    # A cluster that speaks TLS only (`port 0`): each node's TLS port, and the certificate
    # (self-signed, its own CA) the harness trusts to reach them.
    tls_ports: list[int] | None = None
    certificate: Path | None = None

    @property
    def url(self) -> str:
        """Any node's URL reaches the whole cluster: this is the first live node's."""
        live = next(i for i, n in enumerate(self.nodes) if n.process is not None)
        if self.tls_ports is None:
            return self.nodes[live].url
        return f"rediss://127.0.0.1:{self.tls_ports[live]}/0"

    def port(self, node: int) -> int:
        """The port clients reach the node on (its TLS one, on a TLS-only cluster)."""
        return self.nodes[node].port if self.tls_ports is None else self.tls_ports[node]

    def client(self, node: int) -> redis.Redis:
        import redis

        if self.tls_ports is None:
            return redis.Redis(port=self.port(node), socket_timeout=10)
        return redis.Redis(
            host="127.0.0.1",
            port=self.port(node),
            ssl=True,
            ssl_ca_certs=str(self.certificate),
            socket_timeout=10,
        )

    def owner(self, slot: int) -> int:
        """The index of the node that serves `slot`, as the first live node sees it."""
        live = next(i for i, n in enumerate(self.nodes) if n.process is not None)
        port = self._serves(live, slot)
        if port is None:
            raise AssertionError(f"no node serves slot {slot}")
        return next(i for i in range(len(self.nodes)) if self.port(i) == port)

    def sandbox(self, on: int) -> tuple[str, str]:
        """(URL, name) of a sandbox no other test uses whose slot node `on` holds."""
        for n in self.names:
            name = f"c{n}"
            if self.owner(slot_of(name)) == on:
                return f"{self.url}?sandbox={name}", name
        raise AssertionError("unreachable")  # pragma: no cover - the counter never ends

    def move(self, slot: int, to: int, *, keys: list[bytes] | None = None) -> int:
        """Reshard `slot` to node `to` as `redis-cli --cluster reshard` does: mark it
        importing/migrating, MIGRATE its keys, then give it to `to` on every node. With
        `keys`, migrate only those and leave the slot half-way (both marks set), as a
        reshard that is still running leaves it. Returns the node it came from."""
        source = self.owner(slot)
        with self.client(to) as new:
            new.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", self.ids[source])
        with self.client(source) as old:
            old.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", self.ids[to])
            if keys is not None:
                self._migrate(old, to, keys)
                return source
        self.finish_move(slot, source, to)
        return source

    def finish_move(self, slot: int, source: int, to: int) -> None:
        """Migrate what is left of `slot` on `source` and give the slot to `to` everywhere
        (the new owner first, as redis-cli does), once `to` knows the cluster's greatest
        config epoch (`knows_epochs`)."""
        with self.client(source) as old:
            while names := old.execute_command("CLUSTER GETKEYSINSLOT", slot, 1000):
                self._migrate(old, to, names)
        self.knows_epochs(to)
        others = [i for i in range(len(self.nodes)) if i not in (to, source)]
        for node in (to, source, *others):
            with self.client(node) as client:
                client.execute_command("CLUSTER SETSLOT", slot, "NODE", self.ids[to])

    def knows_epochs(self, node: int) -> None:
        """Wait until `node` has heard of the greatest config epoch any live node has.

        A node given a slot it imports (SETSLOT NODE itself) takes an epoch greater than
        every one it knows of, so that its claim of the slot beats any other's. One it has
        not heard of is not beaten: the 210-move test (test_cluster_outage.py) moves a slot
        back to the node it left ~30 ms before, and now and then that node had not heard of
        the epoch the other took for it then. It kept its lower one (its log says no
        "configEpoch updated" for that move), a gossip message the other sent while it still
        held the slot arrived after, and the node gave the slot back to it; the other, told
        the new owner, named this one: each answered MOVED naming the other until the next
        move, and the create between was a 503 after its 5 s. No client gets past two nodes
        that name each other, and no reshard by redis-cli (which starts only from nodes that
        agree) moves a slot faster than gossip: the harness made that state, not the mock.
        Gossip usually brings the epoch before the next move; when not, this waits for it
        (a condition polled: nothing announces it)."""
        deadline = time.monotonic() + GOSSIP_TIMEOUT_S
        live = [i for i, n in enumerate(self.nodes) if n.process is not None]
        while True:
            greatest = max(int(self._info(i)["cluster_my_epoch"]) for i in live)
            if int(self._info(node)["cluster_current_epoch"]) >= greatest:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"node {node} did not hear of config epoch {greatest}")
            threading.Event().wait(0.01)

    def _migrate(self, old: redis.Redis, to: int, names: list[bytes]) -> None:
        if names:
            port = self.port(to)
            old.execute_command("MIGRATE", "127.0.0.1", port, "", 0, 10_000, "KEYS", *names)

    def fail_over(self, master: int) -> int:
        """The master `master` dies (kill -9) and its replica takes over, as it would on its
        own after `cluster-node-timeout` (here at once: CLUSTER FAILOVER TAKEOVER). Returns
        once every node left names the replica the owner of the master's slots: the index of
        the replica."""
        replica = self.masters + master
        slot = master * SLOTS // self.masters
        self.nodes[master].kill()
        with self.client(replica) as client:
            client.execute_command("CLUSTER FAILOVER", "TAKEOVER")
        # The replica tells the others at once (a PONG to every node); they log nothing of
        # it, so their slot maps are what is waited on.
        deadline = time.monotonic() + TAKEOVER_TIMEOUT_S
        left = [i for i, node in enumerate(self.nodes) if node.process is not None]
        while not all(self._serves(i, slot) == self.port(replica) for i in left):
            if time.monotonic() > deadline:
                raise AssertionError(f"node {replica} did not take over node {master}'s slots")
            threading.Event().wait(0.01)  # a condition polled: nothing announces it
        return replica

    def _serves(self, node: int, slot: int) -> int | None:
        with self.client(node) as client:
            # each range: its start, end, master, then its replicas (if any)
            for start, end, (_, port, *_), *_ in client.execute_command("CLUSTER SLOTS"):
                if start <= slot <= end:
                    return int(port)
        return None

    def form(self) -> None:
        """Split the slots among the masters, meet, wait for `cluster_state:ok` on every node,
        then make the others replicas and wait until each has synced."""
        count = len(self.nodes)
        for i in range(count):
            with self.client(i) as client:
                self.ids.append(client.execute_command("CLUSTER MYID").decode())
                client.execute_command("CLUSTER SET-CONFIG-EPOCH", i + 1)
                if i < self.masters:
                    first, last = i * SLOTS // self.masters, (i + 1) * SLOTS // self.masters
                    client.execute_command("CLUSTER ADDSLOTS", *range(first, last))
        with self.client(0) as client:
            for node, bus in enumerate(self.buses[1:], start=1):
                client.execute_command("CLUSTER MEET", "127.0.0.1", self.port(node), bus)
        # Each node logs the moment its state turns ok (all slots served by nodes it knows):
        # waited on as its log arrives (redisd.RedisServer.wait_for_log), not polled.
        deadline = time.monotonic() + FORM_TIMEOUT_S
        for node in self.nodes:
            node.wait_for_log(STATE_OK, max(0.0, deadline - time.monotonic()))
        # With more than three nodes a node can turn ok before gossip told it of them all:
        # that is polled (nothing logs it), briefly, until the same deadline.
        while not all(self._ready(i) for i in range(count)):
            if time.monotonic() < deadline:
                threading.Event().wait(0.01)
                continue
            states = [self._info(i) for i in range(count)]
            raise RuntimeError(
                f"the cluster did not reach cluster_state:ok with {count} known nodes on "
                f"every node within {FORM_TIMEOUT_S} s: {states}"
            )
        for replica in range(self.masters, count):
            with self.client(replica) as client:
                client.execute_command("CLUSTER REPLICATE", self.ids[replica - self.masters])
            if not self.nodes[replica].wait_for_log(SYNCED, FORM_TIMEOUT_S):
                raise RuntimeError(f"replica {replica} did not sync within {FORM_TIMEOUT_S} s")

    def _info(self, node: int) -> dict[str, str]:
        with self.client(node) as client:
            info = client.execute_command("CLUSTER INFO")  # parsed by redis-py
        return {str(k): str(v) for k, v in info.items()}

    def _ready(self, node: int) -> bool:
        info = self._info(node)
        return (
            info.get("cluster_state") == "ok"
            and info.get("cluster_known_nodes") == str(len(self.nodes))
            and info.get("cluster_slots_ok") == str(SLOTS)
        )

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


@contextlib.contextmanager
def started_cluster(
    count: int = 3,
    replicas: int = 0,
    options: Callable[[], tuple[str, ...]] = tuple,
    tls_only: tuple[Path, list[int]] | None = None,
) -> Iterator[RedisClusterServers]:
    """`count` masters and a replica of each of the first `replicas`; `options`: each node's
    own, besides the cluster's (a TLS port: tests/redis/test_tls.py). `tls_only`: the
    certificate and each node's TLS port (filled by `options`), for nodes whose `options`
    close the plain port (`--port 0`): the harness then forms and reads the cluster over
    TLS. Without redis-server: a failure with how to get it. With it, a cluster that does
    not form is a failure, not a skip: that is a bug of ours or of the machine."""
    masters, count = count, count + replicas
    if shutil.which("redis-server") is None:
        cannot_run("redis-server is not on PATH")
    with tempfile.TemporaryDirectory(prefix="layers-mock-cluster-") as directory:
        # The cluster bus port is named: the default (port + 10000) may be taken or, for a
        # free port above 55535, out of range.
        buses = [free_port() for _ in range(count)]
        nodes = []
        for i, bus in enumerate(buses):
            (Path(directory) / f"n{i}").mkdir()
            own = (*CLUSTER_OPTIONS, "--cluster-port", str(bus), *options())
            nodes.append(RedisServer(Path(directory) / f"n{i}", options=own))
        cluster = RedisClusterServers(nodes, buses, masters)
        if tls_only is not None:
            cluster.certificate, cluster.tls_ports = tls_only
        try:
            for node in nodes:
                node.start()
            cluster.form()
        except Exception as exc:  # RuntimeError, redis.RedisError: say what, and stop them
            cluster.stop()
            pytest.fail(f"the test cluster did not start: {exc}")
        try:
            yield cluster
        finally:
            cluster.stop()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisClusterServers]:
    """The session's shared cluster: tests keep apart by sandbox name (`sandbox(on=i)`)."""
    with started_cluster() as cluster:
        yield cluster
