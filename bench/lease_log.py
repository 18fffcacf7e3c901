"""Who took the sandbox's write lease, and after how many tries (bench/redis.py `--leases`).

Read from Redis, not from the mock, so that two builds are counted alike: during the measured
run redis-server logs every command (`slowlog-log-slower-than 0`), and afterwards the scripts'
arguments say what each was. A lease try is a CHANGES with a token (ARGV[2]) and the worker's
name (ARGV[6]); a try took the lease when a later WRITE or UNLOCK carries its token (each try
draws a fresh one). A handoff is a take by another worker than the last take's; its tries are
those its worker sent since its own last take. The log costs Redis time, so a `--leases` run
is a count, not a speed: its req/s are not comparable with a run without it.
"""

from __future__ import annotations

import socket
import statistics
from typing import Any

import hiredis

LOG_LENGTH = 1_000_000  # commands kept (a few KB each: keep `--seconds` short)


def _command(port: int, *args: Any) -> Any:
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(hiredis.pack_command(args))
        reader = hiredis.Reader()
        while (reply := reader.gets()) is False:
            data = sock.recv(1 << 20)
            if not data:
                raise ConnectionError("redis-server closed the connection")
            reader.feed(data)
        return reply


def start(port: int) -> None:
    """Log every command from now on (the earlier ones forgotten)."""
    _command(port, "CONFIG", "SET", "slowlog-max-len", str(LOG_LENGTH))
    _command(port, "CONFIG", "SET", "slowlog-log-slower-than", "0")
    _command(port, "SLOWLOG", "RESET")


def stop(port: int) -> dict[str, Any]:
    """Stop logging and count the lease's tries, takes and handoffs, per worker."""
    _command(port, "CONFIG", "SET", "slowlog-log-slower-than", "-1")
    entries = sorted(_command(port, "SLOWLOG", "GET", "-1"), key=lambda e: e[0])
    tries: list[tuple[bytes, bytes]] = []  # (token, worker), in the order Redis ran them
    used: set[bytes] = set()  # tokens a WRITE or UNLOCK carried
    for entry in entries:
        args = entry[3]
        if len(args) < 4 or args[0].upper() != b"EVALSHA":
            continue
        count = int(args[2])
        keys, argv = args[3 : 3 + count], args[3 + count :]
        if count >= 8 and keys[0].endswith(b":log") and keys[2].endswith(b":lease"):
            if len(argv) > 5 and argv[1]:
                tries.append((argv[1], argv[5]))
        elif keys and keys[0].endswith(b":rows") and argv and argv[0]:
            used.add(argv[0])  # WRITE
        elif count == 1 and keys[0].endswith(b":lease") and argv:
            used.add(argv[0])  # UNLOCK
    per: dict[bytes, dict[str, int]] = {}
    since: dict[bytes, int] = {}  # tries of each worker since its last take
    last: bytes | None = None
    handoff_tries: list[int] = []
    for token, worker in tries:
        mine = per.setdefault(worker, {"tries": 0, "takes": 0, "handoffs": 0})
        mine["tries"] += 1
        since[worker] = since.get(worker, 0) + 1
        if token not in used:
            continue
        mine["takes"] += 1
        if last is not None and last != worker:
            mine["handoffs"] += 1
            handoff_tries.append(since[worker])
        since[worker] = 0
        last = worker
    out: dict[str, Any] = {
        "logged": len(entries),
        "truncated": len(entries) >= LOG_LENGTH,
        "workers": [per[w] for w in sorted(per)],
        "tries": sum(p["tries"] for p in per.values()),
        "takes": sum(p["takes"] for p in per.values()),
        "handoffs": len(handoff_tries),
    }
    if handoff_tries:
        out["tries_per_handoff"] = {
            "mean": statistics.mean(handoff_tries),
            "median": statistics.median(handoff_tries),
            "p90": sorted(handoff_tries)[int(0.9 * (len(handoff_tries) - 1))],
            "max": max(handoff_tries),
        }
    return out
