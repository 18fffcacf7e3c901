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
serves the sandbox's slot, which follows the slot when it moves:

- MOVED (the slot was resharded, or a replica took over): nothing ran on the old owner, so
  the slot map is read again and the same command is sent to the new owner. The request
  goes on as if nothing happened.
- ASK and TRYAGAIN (a reshard of this slot is half-way: some keys are on the old owner,
  some on the new): Redis refuses the script before it runs, the store answers 503
  STORAGE_UNAVAILABLE and nothing is lost; the request can be retried once the reshard
  is done.

Cluster mode has one database: a `/DB` other than 0 is refused at start-up.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

REDIRECTS = 3  # MOVED answers followed for one command before it fails with the last one


def connect(url: str, key: str, where: str, **options: Any) -> tuple[Any, Any]:
    """(client, connection) for the server or cluster at `url`: a `redis.Redis` and a
    connection of its pool on a single server, a `redis.RedisCluster` and a `SlotConnection`
    to the shard serving `key` on a cluster. Errors are ValueErrors for `serve` to print
    (`where` is the URL without its password)."""
    import redis
    from redis.exceptions import RedisClusterException

    client = redis.Redis.from_url(url, **options)
    try:
        clustered = _cluster_enabled(client)
    except redis.RedisError as exc:
        client.close()
        raise ValueError(f"{where}: {_said(exc, url)}") from None
    if not clustered:
        return client, client.connection_pool.make_connection()
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
    try:
        return cluster, SlotConnection(cluster, key)
    except (redis.RedisError, RedisClusterException) as exc:
        cluster.close()
        raise ValueError(f"{where}: {exc or type(exc).__name__}") from None


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


class SlotConnection:
    """A connection to the shard that serves one slot, re-aimed when the slot moves (see
    the module docstring). It answers to what redis.py uses of a connection
    (`send_command`, `read_response`, `disconnect`) and passes the rest to the connection."""

    def __init__(self, cluster: Any, key: str) -> None:
        self.cluster, self.key = cluster, key
        self.conn = self._owner()
        self.sent: tuple[Any, ...] | None = None

    def send_command(self, *args: Any, **kwargs: Any) -> None:
        self.sent = args if not kwargs else None  # resent as is after a MOVED
        self.conn.send_command(*args, **kwargs)

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        from redis.exceptions import AskError, MovedError

        for _ in range(REDIRECTS):
            try:
                return self.conn.read_response(*args, **kwargs)
            except AskError as exc:
                if not isinstance(exc, MovedError) or self.sent is None:
                    raise  # ASK: the reshard is half-way; the caller answers 503
                self.follow()
                self.conn.send_command(*self.sent)
        return self.conn.read_response(*args, **kwargs)

    def follow(self) -> None:
        """Read the slot map again and connect to the slot's owner now."""
        self.conn.disconnect()
        self.cluster.nodes_manager.initialize()
        self.conn = self._owner()

    def disconnect(self) -> None:
        self.conn.disconnect()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)

    def _owner(self) -> Any:
        node = self.cluster.get_node_from_key(self.key)
        return self.cluster.get_redis_connection(node).connection_pool.make_connection()
