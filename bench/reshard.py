"""What a sandbox's users see while Redis Cluster reshards it, again and again.

A three-master cluster of the tests' (tests/clusterd.py: Debian's redis-server), two workers
on one sandbox (tests/clustered.py), and creates (ten at a time, 150 Idempotency-Keys each
used twice) with a read after every third, while a thread moves the sandbox's slot back and
forth between two nodes as `redis-cli --cluster reshard` does (mark, MIGRATE, SETSLOT NODE),
`--pause` seconds between moves. It counts the answers by status and reason, the
acknowledged creates against those listed at the end (lost, duplicated), the moves made, and
the latency of the creates, and that of /_mock/health asked of the first worker all along
(it needs nothing of Redis: how long it waits is how long the worker's event loop was held).
A measurement, not a test: the interleaving is the machine's.

`--leases`: no reshard; the sandbox's shard logs every command and the run ends with the
lease's tries and handoffs (bench/lease_log.py), as `bench/redis.py --leases` on one Redis.

    .venv/bin/python bench/reshard.py               # ~10 s
    .venv/bin/python bench/reshard.py --batches 60  # longer
    .venv/bin/python bench/reshard.py --leases      # the lease's tries, no reshard
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# tests/ in place of bench/ (whose redis.py would shadow redis-py): the tests' cluster
sys.path[0] = str(ROOT / "tests")

import httpx  # noqa: E402
from clusterd import slot_of, started_cluster  # noqa: E402
from clustered import CREATE, workers  # noqa: E402

sys.path.append(str(ROOT / "bench"))  # last: its redis.py must not shadow redis-py
import lease_log  # noqa: E402
from support import FULL, auth  # noqa: E402


def listed(base: str) -> list[str]:
    found, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": 100} | ({"cursor": cursor} if cursor else {})
        page = httpx.get(base + CREATE, headers=auth(FULL), params=params, timeout=60).json()
        found += [item["influencerId"] for item in page["items"]]
        if not (cursor := page["nextCursor"]):
            return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, default=30, help="rounds of ten creates")
    parser.add_argument("--pause", type=float, default=0.05, help="seconds between moves")
    parser.add_argument("--leases", action="store_true", help="count lease tries, no reshard")
    options = parser.parse_args()
    with started_cluster() as cluster:
        url, name = cluster.sandbox(on=0)
        slot = slot_of(name)
        done = threading.Event()
        moves: list[int] = []

        def reshard() -> None:
            to = 1
            while not options.leases and not done.is_set():
                source = cluster.owner(slot)
                cluster.move(slot, to=to)
                moves.append(to)
                to = source
                done.wait(options.pause)

        statuses: collections.Counter[str] = collections.Counter()
        reasons: collections.Counter[str] = collections.Counter()
        acknowledged: dict[str, str] = {}
        latencies: list[float] = []
        twice: list[str] = []
        health: list[float] = []
        if options.leases:
            lease_log.start(cluster.nodes[0].port)
        with workers(url) as bases:

            def probe() -> None:
                with httpx.Client(timeout=60) as client:
                    while not done.is_set():
                        started = time.monotonic()
                        client.get(bases[0] + "/_mock/health")
                        health.append(time.monotonic() - started)

            async def one(client: httpx.AsyncClient, n: int) -> None:
                key = f"k{n % (options.batches * 5)}"
                started = time.monotonic()
                headers = auth(FULL, **{"Idempotency-Key": key})
                answer = await client.post(bases[n % 2] + CREATE, headers=headers, json={})
                latencies.append(time.monotonic() - started)
                statuses[f"create {answer.status_code}"] += 1
                if answer.status_code == 202:
                    made = answer.json()["influencerId"]
                    if acknowledged.setdefault(key, made) != made:
                        twice.append(key)
                else:
                    reason = answer.json()["error"].get("details", {}).get("reason", "")
                    reasons[reason.split(": ", 1)[-1][:40]] += 1
                if n % 3 == 0:
                    read = await client.get(bases[(n + 1) % 2] + CREATE, headers=auth(FULL))
                    statuses[f"read {read.status_code}"] += 1

            async def run() -> None:
                async with httpx.AsyncClient(timeout=60) as client:
                    for batch in range(options.batches):
                        await asyncio.gather(*(one(client, batch * 10 + i) for i in range(10)))

            mover = threading.Thread(target=reshard)
            prober = threading.Thread(target=probe)
            mover.start()
            prober.start()
            try:
                asyncio.run(run())
            finally:
                done.set()
                mover.join()
                prober.join()
            found = listed(bases[0])
        leases = lease_log.stop(cluster.nodes[0].port) if options.leases else None
    latencies.sort()
    health.sort()
    kept = set(acknowledged.values())
    result = {
        "moves": len(moves),
        "answers": dict(statuses),
        "refused, by what Redis said": dict(reasons),
        "acknowledged creates": len(kept),
        "listed": len(found),
        "acknowledged, not listed (lost)": len(kept - set(found)),
        "listed twice": len(found) - len(set(found)),
        "one key, two influencers": len(twice),
        "create latency p50/p99/max ms": [
            round(latencies[int(len(latencies) * q)] * 1000, 1) for q in (0.5, 0.99)
        ]
        + [round(latencies[-1] * 1000, 1)],
        "health latency p50/p99/max ms": [
            round(health[int(len(health) * q)] * 1000, 1) for q in (0.5, 0.99)
        ]
        + [round(health[-1] * 1000, 1)],
    }
    if leases is not None:
        result["leases"] = leases
    print(json.dumps(result, indent=2))
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    name = "reshard-leases-latest.json" if options.leases else "reshard-latest.json"
    (out / name).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
