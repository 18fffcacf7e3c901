"""The state on Redis Cluster: the same `--state redis://HOST:PORT/0?sandbox=NAME`, pointed at
any node of a cluster.

A user of redis-py reaches a cluster with the URL of any node (`RedisCluster.from_url`), so
that is what `--state` takes: the store asks the node (`INFO cluster`) and, when cluster mode
is on, talks to the whole cluster through redis-py's `RedisCluster` instead of one server.
Nothing else changes: every key of a sandbox carries the hash tag `{lm:NAME}` (redis.py), so
all of them live in one slot on one shard, and every script and transaction is single-slot,
as Redis Cluster requires. Many sandboxes spread over the shards by name; one sandbox's load
stays on one shard (a commit may touch several organizations, and must be one atomic script).

The hot path (redis.py's `_call`) sends scripts on a connection of its own rather than
through the client; on a cluster that connection is a `SlotConnection` to the shard that
serves the sandbox's slot. When that shard answers a redirection instead of running the
script, the script has not run, and the command is handed to redis-py's cluster client,
which follows it as a cluster client should (`RedisCluster._execute_command`):

- MOVED (the slot was resharded, or a replica took over): the slot map is read again and
  the command is sent to the new owner; the request goes on as if nothing happened. For a
  moment after a move the nodes' maps may disagree, each naming another, until the client's
  tries are spent ("TTL exhausted"): nothing ran, so the map is read again and the command
  sent to the owner it names, round again on a MOVED until the round trip's deadline
  (`_redirected`). Before, that was a 503 "refused before running: MOVED".
- ASK (a reshard of this slot is half-way, and the keys are on the importing shard):
  ASKING and the command on that shard.
- TRYAGAIN (half-way, and the script's keys are split between the two shards, or some of
  them are on neither: the scripts name keys that may not exist, so on the importing shard
  this is the usual answer until the reshard ends): tried again, up to the client's
  RequestTTL (16 tries, pausing 50 ms after the eighth, ~0.4 s), so a reshard that ends
  meanwhile is not seen by the request (it waits on the worker's lane, redis_lane.py, not
  on its event loop: the worker's other requests go on). A reshard still running after that
  is a `Refused` (TRYAGAIN): nothing of the request ran, the answer is 503
  STORAGE_UNAVAILABLE saying so, and a retry is safe.

Redis checks the keys before a script runs and a script runs whole on one node, so no
commit is ever split between the shards or applied on a shard that no longer owns its keys.
The connection then points at the slot's owner as the client's map has it (`follow`); it
does the same after a connection error, so that a worker whose shard died finds the replica
that took over on its next try instead of calling the dead address for ever.

A round trip has one deadline (`deadline`: the lane sets it, redis_lane.py, from the moment
the round trip was called), not a timeout per socket operation: every connect, send and read
that the round trip makes on the cluster's connections (`bounded`), its own, the tries again
of redis-py's cluster client and its readings of the slot map from every node, waits at most
what is left of it. A cluster whose nodes all hang (paused, blackholed: a connect still
succeeds, nothing is answered) had each try wait its socket timeout and then read the slot map
from each node with the same timeout: ~60 s for a create at the default 5 s, where one Redis
answers 503 after 5 s. Now both answer within the same bound.

Cluster mode has one database: a `/DB` other than 0 is refused at start-up.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from ..core.store import StoreUnreachable


def connect(url: str, key: str, where: str, **options: Any) -> tuple[Any, Any]:
    """(client, connection) for the server or cluster at `url`: a `redis.Redis` and a
    connection of its pool on a single server, a `redis.RedisCluster` and a `SlotConnection`
    to the shard serving `key` on a cluster. Errors are ValueErrors for `serve` to print
    (`where` is the URL without its password)."""
    import redis
    from redis.exceptions import RedisClusterException

    client = redis.Redis.from_url(url, **options)
    pool = client.connection_pool
    pool.connection_class = bounded(pool.connection_class)  # (before any connection is made)
    try:
        clustered = _cluster_enabled(client)
    except redis.RedisError as exc:
        client.close()
        raise _failed(exc)(f"{where}: {_said(exc, url)}") from None
    if not clustered:
        return client, fresh(client.connection_pool)
    db = client.connection_pool.connection_kwargs.get("db", 0)
    client.close()
    if db != 0:
        raise ValueError(
            f"{where} is a Redis Cluster node: a cluster has only database 0 "
            "(use redis://HOST:PORT/0?sandbox=NAME)"
        )
    try:
        cluster = redis.RedisCluster.from_url(url, **options)
    except (redis.RedisError, RedisClusterException) as exc:  # the latter is no RedisError:
        # slots not all served (a cluster still forming, or one that lost a shard)
        raise ValueError(f"{where}: {exc or type(exc).__name__}") from None
    _bound(cluster)
    try:
        return cluster, SlotConnection(cluster, key)
    except (redis.RedisError, RedisClusterException) as exc:
        cluster.close()
        raise ValueError(f"{where}: {exc or type(exc).__name__}") from None


_DEADLINE = threading.local()  # `until`: the deadline of the round trip this thread makes


@contextlib.contextmanager
def deadline(until: float) -> Iterator[None]:
    """The round trip this thread makes now ends by `until` (time.monotonic()), whatever it
    takes: every operation of a `bounded` connection waits at most what is left of it."""
    outer = getattr(_DEADLINE, "until", None)
    _DEADLINE.until = until if outer is None else min(outer, until)
    try:
        yield
    finally:
        _DEADLINE.until = outer


def left() -> float | None:
    """What is left of this thread's deadline (0 once passed), or None if none is set."""
    until = getattr(_DEADLINE, "until", None)
    return None if until is None else max(0.0, until - time.monotonic())


class Bounded:
    """A redis-py connection whose connects, sends and reads wait at most what is left of the
    calling thread's `deadline` (as they always did without one: their socket timeouts). A
    deadline passed makes each of them time out at once, as a socket timeout would (redis-py
    raises its TimeoutError, and the cluster client gives up as it does on one)."""

    socket_timeout: float | None
    socket_connect_timeout: float | None
    _sock: Any

    def _connect(self) -> Any:
        rest = left()
        if rest is None:
            return super()._connect()  # type: ignore[misc]
        if rest <= 0:  # (in words of its own, told apart from a connect that timed out)
            from redis.exceptions import TimeoutError as Late

            raise Late("Timeout: the round trip's time ran out before it could connect")
        saved = self.socket_connect_timeout, self.socket_timeout
        self.socket_connect_timeout = _least(saved[0], rest)
        self.socket_timeout = _least(saved[1], rest)
        try:
            return super()._connect()  # type: ignore[misc]
        finally:
            self.socket_connect_timeout, self.socket_timeout = saved

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        rest = left()
        sock = self._sock
        if rest is None or sock is None:  # (not connected: the connect is bounded)
            super().send_packed_command(command, check_health)  # type: ignore[misc]
            return
        sock.settimeout(_least(self.socket_timeout, rest) or 1e-3)
        try:
            super().send_packed_command(command, check_health)  # type: ignore[misc]
        finally:
            if self._sock is sock:
                sock.settimeout(self.socket_timeout)

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        rest = left()
        if rest is not None and "timeout" not in kwargs:
            kwargs["timeout"] = max(_least(self.socket_timeout, rest), 1e-3)
        return super().read_response(*args, **kwargs)  # type: ignore[misc]


def _least(timeout: float | None, rest: float) -> float:
    return rest if timeout is None else min(timeout, rest)


@functools.cache
def bounded(connection_class: type) -> type:
    """`connection_class` (redis-py's Connection, SSLConnection) made `Bounded`."""
    if issubclass(connection_class, Bounded):
        return connection_class
    return type(f"Bounded{connection_class.__name__}", (Bounded, connection_class), {})


def _bound(cluster: Any) -> None:
    """Make every connection of `cluster` `Bounded`: the nodes' pools made from now on (a
    reading of the slot map makes one for a node it did not know) and those made already
    (their idle connections, of the class before, dropped: none is in use yet)."""
    import redis

    kwargs = cluster.nodes_manager.connection_kwargs
    kwargs["connection_class"] = bounded(kwargs.get("connection_class", redis.Connection))
    nodes = [*cluster.nodes_manager.nodes_cache.values()]
    nodes += cluster.nodes_manager.startup_nodes.values()
    for node in nodes:
        if node.redis_connection is not None:
            pool = node.redis_connection.connection_pool
            pool.disconnect()
            pool.reset()
            pool.connection_class = bounded(pool.connection_class)


def fresh(pool: Any) -> Any:
    """A connection like the ones `pool` makes, not counted by it. redis-py's pool counts every
    connection its make_connection made, for good (none comes back to it here), and past its
    max_connections (100) each is MaxConnectionsError: a listener or a shard connection made
    anew each time Redis could not be reached would have been refused for ever after 100 tries,
    Redis back or not (outside13's defect 6, on the pipe; respawn13, here)."""
    return pool.connection_class(**pool.connection_kwargs)


def unstale(conn: Any) -> None:
    """Close `conn`'s socket if its server closed it while the connection sat idle (Redis
    restarted, or a shard failed over, since its last round trip): the next command then goes
    on a new connection instead of onto the dead socket, where it would get no answer and,
    not safe to send twice, be a 503 saying it may have run, or at a stopping worker's last
    journal append, be lost (cluster14's defect). An idle connection has nothing to read but
    that end: redis-py's pool checks a connection it hands out the same way (`can_read`)."""
    if getattr(conn, "_sock", None) is None:
        return  # not connected: the command connects
    try:
        ended = conn.can_read(0)
    except Exception:  # the end read (redis-py disconnected it), or the socket failed
        ended = True
    if ended:
        with contextlib.suppress(Exception):
            conn.disconnect()


def _failed(exc: Exception) -> type[ValueError]:
    """The class of `connect`'s error for what redis-py raised: StoreUnreachable when Redis
    could not be reached (refused, timed out, loading its dataset), which passes by itself;
    ValueError when someone has to act (a password, an ACL, a URL)."""
    from redis.exceptions import (
        AuthenticationError,
        AuthorizationError,
        ConnectionError,
        TimeoutError,
    )

    if isinstance(exc, AuthenticationError | AuthorizationError):
        return ValueError
    return StoreUnreachable if isinstance(exc, ConnectionError | TimeoutError) else ValueError


def _said(exc: Exception, url: str) -> str:
    """What redis-py raised, in words the user can act on. A Redis that asks for a password
    the URL does not carry answers the handshake in terms of a command the user never sent
    ("HELLO must be called with the client already authenticated, otherwise the HELLO AUTH
    <user> <pass> option can be used ..."; "NOAUTH Authentication required." before RESP3)."""
    from redis.exceptions import AuthenticationError

    if isinstance(exc, AuthenticationError) and urlsplit(url).password is None:
        return (
            "Redis asks for a password (requirepass, or an ACL user's): give it in --state, "
            "redis://:PASSWORD@HOST:PORT/DB (redis://USER:PASSWORD@HOST:PORT/DB for an ACL user)"
        )
    return str(exc) or type(exc).__name__


def _cluster_enabled(client: Any) -> bool:
    """Whether the server is a node of a cluster. A cluster node refuses the SELECT of a
    `/DB` other than 0 "in cluster mode", which says it too; a server that will not tell
    (INFO disabled or not permitted) is taken as a single server."""
    import redis

    try:
        return bool(client.info("cluster").get("cluster_enabled"))
    except redis.ResponseError as exc:
        return "cluster mode" in str(exc)


def _unanswered() -> tuple[type[BaseException], ...]:
    from redis.exceptions import ConnectionError, TimeoutError

    return (ConnectionError, TimeoutError, OSError)


class SlotConnection:
    """A connection to the shard that serves one slot, re-aimed when the slot moves (see
    the module docstring). It answers to what redis.py uses of a connection
    (`send_command`, `read_response`, `disconnect`) and passes the rest to the connection."""

    def __init__(self, cluster: Any, key: str) -> None:
        self.cluster, self.key = cluster, key
        self.node, self.conn = self._owner()
        self.sent: tuple[Any, ...] | None = None
        self._unanswered = _unanswered()

    def send_command(self, *args: Any, **kwargs: Any) -> None:
        self.sent = args if not kwargs else None  # handed to the client on a redirection
        try:
            self.conn.send_command(*args, **kwargs)
        except self._unanswered:
            self._lost()
            raise

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        from redis.exceptions import AskError, TryAgainError

        try:
            return self.conn.read_response(*args, **kwargs)
        except (AskError, TryAgainError) as exc:  # MovedError is an AskError: none ran
            if self.sent is None:
                raise
            redirected: Exception = exc
        except self._unanswered:
            self._lost()
            raise
        return self._redirected(redirected, self.sent)

    def _redirected(self, redirected: Exception, sent: tuple[Any, ...]) -> Any:
        """The command a shard redirected, sent where redis-py's cluster client follows it.
        When the client gave up ("TTL exhausted": redirected every time it tried), nothing
        ran: the slot map is read again and the command sent to the owner it names. Its
        MOVED again (the nodes' maps still disagree, as for a moment after a move) goes round
        again while the round trip's deadline leaves time (once, without one); any other
        answer is final: TRYAGAIN or ASK there is a slot still half-way, refused (what the
        shard said first), as a reshard still running is (see the module docstring)."""
        from redis.exceptions import AskError, ClusterError, MovedError, TryAgainError

        tries = 0
        while True:
            try:
                return self.cluster.execute_command(*sent)
            except ClusterError as exc:
                if type(exc) is not ClusterError:  # CLUSTERDOWN and the like: as they are
                    raise
            finally:
                self.follow(reread=False)
            tries += 1
            rest = left()
            if (rest is None and tries > 1) or rest == 0:
                raise redirected from None  # what the shard said first, and that nothing ran
            try:
                self.follow()
                self.conn.send_command(*sent)
                return self.conn.read_response()
            except MovedError:
                continue  # (not sent again on this connection: through the client)
            except (AskError, TryAgainError):
                raise redirected from None
            except self._unanswered:
                self._lost()
                raise

    def follow(self, reread: bool = True) -> None:
        """Point at the slot's owner: as the client's slot map has it now (after the client
        followed a MOVED), or (`reread`) as the cluster says it is."""
        if reread:
            self.cluster.nodes_manager.initialize()
        node = self.cluster.get_node_from_key(self.key)
        if node.name != self.node:
            self.conn.disconnect()
            self.node, self.conn = self._owner()

    def disconnect(self) -> None:
        self.conn.disconnect()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)

    def _lost(self) -> None:
        """The shard did not answer: if the cluster now names another owner of the slot (a
        replica took over), the next try goes there. A cluster that cannot say leaves the
        connection as it is (the caller reports what failed)."""
        with contextlib.suppress(Exception):
            self.follow()

    def _owner(self) -> tuple[str, Any]:
        node = self.cluster.get_node_from_key(self.key)
        pool = self.cluster.get_redis_connection(node).connection_pool
        return node.name, fresh(pool)  # (made anew each time the slot's owner changes)


def another(client: Any, conn: Any) -> Any:
    """A second connection like `conn` (the store's own, from `connect`): for the lane's
    thread (redis_lane.py), which must not share a socket with the synchronous calls."""
    if isinstance(conn, SlotConnection):
        return SlotConnection(conn.cluster, conn.key)
    return fresh(client.connection_pool)


class Listener:
    """Makes the handoff listener's connection (redis_handoff.py) on a cluster or over TLS:
    to the shard that owns the channel's slot, since SSUBSCRIBE is answered there only (any
    other node says MOVED, naming the owner: `aim` takes the listener there). A slot that
    moves away, or a shard that dies, ends the subscription; the next connection goes to the
    owner the client's slot map names by then (the lane's connection re-reads it when it
    meets the move), or to the one a MOVED names. On one server (TLS), that server."""

    def __init__(self, client: Any, channel: str) -> None:
        import redis

        self.client, self.channel = client, channel
        self.cluster = isinstance(client, redis.RedisCluster)
        self.moved: tuple[str, int] | None = None  # where the last MOVED said the slot is

    def __call__(self) -> Any:
        if not self.cluster:  # (one per attempt: while Redis is down, one every RECONNECT_S)
            return fresh(self.client.connection_pool)
        node = self.client.get_node_from_key(self.channel)
        pool = self.client.get_redis_connection(node).connection_pool
        host, port = self.moved or (node.host, node.port)
        self.moved = None
        return pool.connection_class(**{**pool.connection_kwargs, "host": host, "port": port})

    def refresh(self) -> None:
        """Read the slot map again (the listener's thread: its connection to the owner the
        map named failed, the owner may have died and its replica taken over)."""
        if self.cluster:  # (bounded as a round trip is: the lane may wait for this reading)
            timeout = self.client.nodes_manager.connection_kwargs.get("socket_timeout") or 5
            with deadline(time.monotonic() + timeout):
                self.client.nodes_manager.initialize()

    def aim(self, said: str) -> bool:
        """A node's refusal of the SSUBSCRIBE: True if it is a MOVED (the next connection
        goes to the node it names)."""
        parts = said.split()
        if not self.cluster or len(parts) != 3 or parts[0] != "MOVED":
            return False
        host, _, port = parts[2].rpartition(":")
        if not port.isdigit():
            return False
        self.moved = (host or self.client.get_node_from_key(self.channel).host, int(port))
        return True
