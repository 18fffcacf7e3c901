"""In-process CPU per create on `--state redis://`: the app `serve` builds, driven by C
concurrent clients (fake receive/send, no sockets but Redis's), against a redis-server of its own
(AOF, appendfsync everysec), in a fresh temporary directory.

Prints the process's CPU µs per create (time.process_time: this worker's Python, the pipe's
socket calls; not granian's HTTP, not Redis's) and redis-server's, and what a create leaves
in Redis: the bytes it adds to the AOF (`aof_bytes`, None when Redis rewrote its AOF during
the run: `--sizes` turns the automatic rewrite off for the run) and those the log stream
takes (`log_bytes`: MEMORY USAGE of the stream at the end over every create, warm-up's too,
while the stream still holds them all, else None). Deterministic enough to
compare two builds of the store path; `--profile FILE` writes a cProfile of the measured part.

    .venv/bin/python bench/inproc_redis.py --n 20000
    valgrind --tool=callgrind .venv/bin/python bench/inproc_redis.py --n 4000 --stretch 100
    .venv/bin/python bench/inproc_redis.py --state memory
    .venv/bin/python bench/inproc_redis.py --state sqlite --rules 1000 --orgs 30 --tenant-rules 100
    .venv/bin/python bench/inproc_redis.py --keys 10000 --clocks 1000 --sizes

`--rules`, `--tenant-rules`, `--keys` and `--clocks` make the sandbox big before the measured
creates: operator rules, each of `--orgs` organizations' own rules, rate windows of that many
API keys, organizations with a clock of their own (ids made up for the bench: the state is
never read back). `store_bytes` is what a create hands its store (rows and meta row, the
store's own framing aside), `meta_bytes` the meta row's size at the end.
    ../createcost-old/.venv/bin/python bench/inproc_redis.py   # another checkout, same load
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# bench/redis.py would shadow redis-py: the package first, then this folder for its helpers.
# The mock is the one the running interpreter's venv has installed (editable: its checkout),
# so that another checkout's .venv/bin/python measures that checkout with this script.
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
import redis  # noqa: E402

import layers_mock_server  # noqa: E402, F401  (before inproc, which puts its checkout first)

sys.path.append(str(HERE))

from common import CREATE_BODY, CREATE_PATH, Server, start_redis, tree_cpu_s  # noqa: E402
from inproc import _scope  # noqa: E402

COMMITS = [0]  # the write script's round trips (group commits) so far
SIM: list[Any] = [None]  # the app's simulator
HANDED = [0]  # the bytes of rows and meta rows handed to the store so far


def _batch_bytes(batch: Any) -> int:
    rows = list(batch.upserts)
    if not isinstance(batch.upserts, list):
        object.__setattr__(batch, "upserts", rows)  # an iterator: read once, kept for the store
    return sum(len(data) for _, _, data in rows) + len(batch.meta or b"")


def _counting() -> None:
    """Count the group commits, to tell how many creates one carries."""
    from layers_mock_server.stores.redis import RedisStore

    send_write = RedisStore.send_write

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        COMMITS[0] += 1
        return send_write(self, *args, **kwargs)

    RedisStore.send_write = counted  # type: ignore[method-assign]
    from layers_mock_server.core.lifecycle import Lifecycle

    group_batches = Lifecycle.group_batches

    def weighed(self: Any) -> Any:
        batches = group_batches(self)
        HANDED[0] += sum(_batch_bytes(b) for b in batches)
        return batches

    Lifecycle.group_batches = weighed  # type: ignore[method-assign]
    from layers_mock_server.stores.sqlite import SqliteStore

    sqlite_write = SqliteStore.write

    def written(self: Any, batch: Any) -> None:
        HANDED[0] += _batch_bytes(batch)
        sqlite_write(self, batch)

    SqliteStore.write = written  # type: ignore[method-assign]


def populate(sim: Any, args: argparse.Namespace) -> None:
    """Make the sandbox as big as asked (see the module's docstring), as the control plane
    would: through the state's own methods, the meta row marked to be written."""
    state, now = sim.state, sim.clock.now_ms()
    orgs = [f"org_bench{n:04d}" for n in range(max(args.orgs, 1))]
    for n in range(args.rules):
        match = {"path": "/v1/never/*", "organizationId": orgs[n % len(orgs)]}
        state.rules.add({"match": match, "fault": "503"})
    for org in orgs[: args.orgs]:
        for _ in range(args.tenant_rules):
            state.rules.add({"match": {"organizationId": org, "path": "/v1/never/*"}}, org)
    for n in range(args.keys):
        state.rates.seed(f"key_bench{n:05d}", "write-light", now // 60_000, 1)
    for n in range(args.clocks):
        state.clocks.set(f"org_clock{n:04d}", now, now)
    state.dirty.add(("meta", ""))
    sim.commit()  # (on Redis, not this request's: the next group's commit takes it along)


def _stretch(factor: float) -> None:
    """The gate's time bounds (a group's GROUP_S, a chain's CHAIN_S, a lease's LINGER_S, an
    idle worker's FOLLOW_S) and the journal's FLUSH_S times `factor`: under valgrind (~80x
    slower) a group would close on its 5 ms after two or three creates instead of on its size
    or its last arrival, and the instructions counted would be those of another workload than
    a server's."""
    from layers_mock_server.http import shared
    from layers_mock_server.stores import redis_journal

    for name in ("GROUP_S", "CHAIN_S", "LINGER_S", "FOLLOW_S"):
        setattr(shared, name, getattr(shared, name) * factor)
    # ... and the journal's flush (a read's entries go with it: as many reads a flush as a
    # server's, not the few a valgrind run answers in 10 ms)
    redis_journal.FLUSH_S *= factor


def _receiver(body: bytes) -> Any:
    """granian's body messages (the body with more_body set, then an empty last one); the
    first is awaited as granian's is (the task yields to the loop), so that requests interleave
    and group commits form as they do under a server."""
    left = 2

    async def receive() -> dict[str, Any]:
        nonlocal left
        left -= 1
        if left:
            await asyncio.sleep(0)
            return {"type": "http.request", "body": body, "more_body": True}
        left = 2
        return {"type": "http.request", "body": b"", "more_body": False}

    return receive


async def drive(app: Any, n: int, conns: int, think: int = 0, get: str = "") -> list[int]:
    """n creates from `conns` clients at once; the statuses. `think`: each client lets up to
    that many loop iterations go by (a fixed-seed random number) before its next request, as
    a server's clients come back after their answer crossed the network (over a few loop
    iterations, not all in the one after their commit came back)."""
    body = b"" if get else CREATE_BODY.encode()
    method, path = ("GET", get) if get else ("POST", CREATE_PATH)
    statuses: list[int] = []
    left = n
    rng = random.Random(0)

    async def client() -> None:
        nonlocal left
        receive = _receiver(body) if body else _empty
        while left > 0:
            left -= 1
            sent: list[dict[str, Any]] = []

            async def send(message: dict[str, Any], sent: list[dict[str, Any]] = sent) -> None:
                sent.append(message)

            await app(_scope(method, path, body), receive, send)
            statuses.append(sent[0]["status"])
            for _ in range(rng.randint(0, think)):
                await asyncio.sleep(0)

    await asyncio.gather(*(client() for _ in range(conns)))
    return statuses


async def _empty() -> dict[str, Any]:
    """A GET's body: none."""
    return {"type": "http.request", "body": b"", "more_body": False}


async def _job_path(app: Any) -> str:
    """One create's job, for `--case get` to read (as bench/redis.py's get case does)."""
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    body = CREATE_BODY.encode()
    await app(_scope("POST", CREATE_PATH, body), _receiver(body), send)
    return "/v1/jobs/" + json.loads(sent[1]["body"])["jobId"]


def _sizes(port: int | None, n: int, warm: int, before: dict[str, Any] | None) -> dict[str, Any]:
    """The AOF bytes and the log's bytes a create takes (see the module's docstring)."""
    if port is None:
        return {}
    client = redis.Redis(port=port)
    info = client.info("persistence")
    if before is None:
        return dict(info)
    aof = info["aof_current_size"] - before["aof_current_size"]
    rewritten = info.get("aof_rewrites", 0) != before.get("aof_rewrites", 0)
    log = "{lm:default}:log"
    log_bytes = client.memory_usage(log, samples=0) or 0
    whole = [ident for ident, _ in client.xrange(log, count=1)] == [b"1-0"]  # nothing trimmed
    return {
        "aof_bytes": None if rewritten else round(aof / n),
        "log_bytes": round(log_bytes / (n + warm)) if whole else None,
    }


async def measure(
    app: Any, args: argparse.Namespace, redis_pid: int | None, port: int | None = None
) -> None:
    n, conns, profile = args.n, args.conns, args.profile
    await drive(app, args.warm, conns, args.think)  # warm-up
    populate(SIM[0], args)
    await drive(app, conns, conns, args.think)  # the big commit, not measured
    persisted = _sizes(port, n, args.warm, None)
    get = await _job_path(app) if args.case == "get" else ""
    r0 = tree_cpu_s(redis_pid) if redis_pid else 0.0
    commits0, handed0 = COMMITS[0], HANDED[0]
    prof = cProfile.Profile() if profile else None
    t0, c0, o0 = time.perf_counter(), time.process_time(), os.times()
    if prof:
        prof.enable()
    statuses = await drive(app, n, conns, args.think, get)
    if prof:
        prof.disable()
        prof.dump_stats(profile)
    wall, cpu, o1 = time.perf_counter() - t0, time.process_time() - c0, os.times()
    redis_cpu = (tree_cpu_s(redis_pid) - r0) if redis_pid else 0.0
    bad = sum(1 for s in statuses if s != (200 if get else 202))
    sizes = _sizes(port, n, args.warm, persisted)
    print(json.dumps({
        "n": n, "conns": conns, "worker_us": round(1e6 * cpu / n, 1),
        "user_us": round(1e6 * (o1.user - o0.user) / n, 1),
        "sys_us": round(1e6 * (o1.system - o0.system) / n, 1),
        "redis_us": round(1e6 * redis_cpu / n, 1),
        "per_commit": round(n / max(1, COMMITS[0] - commits0), 1),
        "rps": round(n / wall), "unexpected": bad, **sizes,
        "store_bytes": round((HANDED[0] - handed0) / n), "meta_bytes": _meta_size(SIM[0]),
    }))  # fmt: skip


def _meta_size(sim: Any) -> int:
    from layers_mock_server.core.persist import meta_bytes

    return len(meta_bytes(sim.state, sim.requests, sim.clock))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--conns", type=int, default=32)
    parser.add_argument(
        "--case",
        default="create",
        choices=("create", "get"),
        help="what is measured: creates"
        " or reads of one job (GET /v1/jobs/{jobId}, as bench/redis.py's get case)",
    )
    parser.add_argument("--state", default="redis", choices=("redis", "memory", "sqlite"))
    parser.add_argument("--rules", type=int, default=0, help="operator rules (at most 1,000)")
    parser.add_argument("--orgs", type=int, default=30, help="organizations rules name")
    parser.add_argument("--tenant-rules", type=int, default=0, help="each organization's own")
    parser.add_argument("--keys", type=int, default=0, help="API keys with a rate window")
    parser.add_argument("--clocks", type=int, default=0, help="organizations with own clocks")
    parser.add_argument("--profile", help="a cProfile of the measured creates into this file")
    parser.add_argument(
        "--pin", action="store_true", help="this process on CPU 0, redis-server on CPU 1"
    )
    parser.add_argument("--warm", type=int, default=2000, help="creates before measuring")
    parser.add_argument(
        "--sizes", action="store_true", help="no automatic AOF rewrite: aof_bytes always told"
    )
    parser.add_argument(
        "--think", type=int, default=0, help="loop iterations a client waits (0 to this many)"
    )
    parser.add_argument(
        "--stretch",
        type=float,
        default=1.0,
        help="the gate's time bounds times this (under valgrind: 100, see _stretch)",
    )
    args = parser.parse_args()
    import uvloop

    from layers_mock_server.http.app import build_app
    from layers_mock_server.http.heap import FrozenHeap
    from layers_mock_server.settings import Settings, make_deps

    _counting()
    _stretch(args.stretch)
    with tempfile.TemporaryDirectory(prefix="layers-mock-inproc-redis-") as tmp:
        server: Server | None = None
        state, port = "memory", None
        if args.state == "redis":
            server, port = start_redis(Path(tmp))
            if args.sizes:
                redis.Redis(port=port).config_set("auto-aof-rewrite-percentage", 0)
            if args.pin:
                os.sched_setaffinity(server.pid, {1})
            state = f"redis://127.0.0.1:{port}/0"
        elif args.state == "sqlite":
            state = f"sqlite:{tmp}/state.db"
        if args.pin:
            os.sched_setaffinity(0, {0})
        try:
            deps = make_deps(Settings(state=state))
            SIM[0] = deps.sim
            app = FrozenHeap(build_app(deps))
            uvloop.run(measure(app, args, server.pid if server else None, port))
        finally:
            if server is not None:
                server.stop()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
