"""The `--state redis://…` URL: what it may name (a server or any Cluster node, a database, a
sandbox, a lease), checked before anything connects, and how it is shown (never its password).
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

LEASE_MS = 10_000  # a write lease outlives any request's synchronous step by far


def parse_url(url: str) -> tuple[str, str, int]:
    """`redis://HOST:PORT/DB[?sandbox=NAME&lease=MS]` -> (the URL for redis-py, the sandbox's
    name, the lease in ms). Many sandboxes can share one Redis under different names; the
    lease bounds how long a killed worker holding it can stall the others' writes. The same
    URL, naming any node, reaches a Redis Cluster (redis_cluster.py)."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise ValueError(
            f"--state {shown(url)!r}: use redis://HOST:PORT/DB (a Redis Cluster: any node, DB 0)"
        )
    query = parse_qs(parts.query, keep_blank_values=True)
    name = query.pop("sandbox", ["default"])[-1]
    if not 0 < len(name) <= 64 or not all(
        c.isascii() and (c.isalnum() or c in "-_.") for c in name
    ):
        raise ValueError("--state: sandbox= must be 1 to 64 letters, digits, '-', '_' or '.'")
    lease = query.pop("lease", [str(LEASE_MS)])[-1]
    if not lease.isascii() or not lease.isdigit() or not 100 <= int(lease) <= 600_000:
        raise ValueError("--state: lease= must be a whole number of milliseconds, 100 to 600000")
    if query:
        raise ValueError(
            f"--state: unknown option {sorted(query)[0]!r} (only sandbox=NAME and lease=MS)"
        )
    digits = parts.path.lstrip("/") or "0"  # ASCII digits only: int() takes "+3" and "\u0663"
    try:
        db = int(digits) if digits.isascii() and digits.isdigit() else -1
        port = parts.port
    except ValueError:
        db = port = -1
    if not 0 <= db <= 65535 or port == 0:  # redis-py reads port 0 as 6379
        raise ValueError(
            f"--state {shown(url)!r}: use redis://HOST:PORT/DB (DB a number from 0; 0 on a "
            "Redis Cluster)"
        )
    base = parts._replace(query="", path=f"/{db}").geturl()
    return base, name, int(lease)


def shown(url: str) -> str:
    """The URL without its password (it appears in 503 answers and on stderr)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{parts.username or ''}:***@{host}").geturl()
