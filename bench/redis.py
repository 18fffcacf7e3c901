"""Shared state on Redis (issue 12): one worker in memory, one worker on Redis, two on Redis.

Each configuration runs alone on 127.0.0.1 under bench/run.py's wrk load (wrk -t2 -c32, 2 s
warm-up, then `--seconds` per case) for the same two requests:
  create  POST /v1/projects/{projectId}/influencers  -> 202
  get     GET  /v1/jobs/{jobId}                      -> 200
and reports requests/s, p50/p99 latency, and CPU µs per request of every process: the mock's
process tree (all workers) and redis-server, and their sum. redis-server runs with the AOF on
(`--appendonly yes`, in a fresh temporary directory) and `--appendfsync` as `--fsync` says:
`always` (the default, as the README recommends: nothing acknowledged is lost), `everysec`,
or `both`: each Redis configuration with `always` and then `everysec`, back to back, the rows
labelled, so that one run shows what the recommended setting costs.

    .venv/bin/python bench/redis.py                 # ~1 minute; results in bench/results/
    .venv/bin/python bench/redis.py --seconds 5 --fsync both

A probe of one configuration and case, two builds side by side (`--alt-root`: another checkout,
its own .venv; the builds alternate, round by round, so that the machine's drift falls on both),
medians and spread of the rounds:

    .venv/bin/python bench/redis.py --fsync everysec --case create --rounds 3 \
        --only "memory, 1 worker" --only "redis, 1 worker" --alt-root ../createcost-old

`--sample DIR`: the one-worker mock runs under bench/cpu_sampler.py, which weighs its event
loop's Python stacks by CPU time during each measured run: one collapsed file a run in DIR,
and the functions that cost most, in µs per request, on stderr.

`--leases`: during each measured run Redis logs every command, and the run ends with who took
the sandbox's write lease, how often it changed hands, and how many tries each handoff took
(bench/lease_log.py). The log costs Redis time: such a run counts, it does not time.

    .venv/bin/python bench/redis.py --leases --seconds 3 --case create --rounds 1 \
        --only "redis, 2 workers" --alt-root ../other-checkout

On a 2-core machine wrk, redis-server and the workers share two cores: read the CPU columns
as well as requests/s (the per-request CPU is what scales on a bigger machine).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import lease_log
from common import (
    CREATE_BODY,
    CREATE_PATH,
    HERE,
    ROOT,
    Server,
    machine,
    request,
    run_wrk,
    say,
    start_redis,
    table,
    tree_cpu_s,
    wait_ready,
    write_results,
)

CONFIGS = [
    ("memory, 1 worker", None, 1),
    ("redis, 1 worker", "redis", 1),
    ("redis, 2 workers", "redis", 2),
]


def measure(
    name: str,
    store: str | None,
    workers: int,
    seconds: float,
    fsync: str,
    tmp: Path,
    root: Path = ROOT,
    cases: tuple[str, ...] = ("create", "get"),
    sample: Path | None = None,
    leases: bool = False,
) -> dict[str, Any]:
    """One configuration on the build in `root`; `sample`: where bench/cpu_sampler.py writes;
    `leases`: count the lease's tries and handoffs in Redis's log (bench/lease_log.py)."""
    redis: Server | None = None
    state = "memory"
    leases = leases and store == "redis"
    run = tempfile.mkdtemp(dir=tmp)
    if store == "redis":
        name = f"{name}, {fsync}"
        directory = Path(run) / "redis"
        directory.mkdir()
        redis, redis_port = start_redis(directory, fsync)
        state = f"redis://127.0.0.1:{redis_port}/0"
    argv = [str(root / ".venv/bin/layers-mock"), "serve", "--port", "0", "--state", state]
    argv += ["--workers", str(workers)]
    label = f"{name}-{root.name}".replace(", ", "-").replace(" ", "_")
    if sample is not None and workers == 1:  # the sampler runs the app's loop: one worker
        sample.mkdir(parents=True, exist_ok=True)
        collapsed = sample / f"{label}-{time.strftime('%H%M%S')}.txt"
        argv[:1] = [str(root / ".venv/bin/python"), str(HERE / "cpu_sampler.py"), str(collapsed)]
    mock = Server(name, argv, Path(run) / "mock.out", cwd=root)
    out: dict[str, Any] = {"name": name, "workers": workers, "store": store or "memory"}
    if store == "redis":
        out["fsync"] = fsync
    try:
        ready = wait_ready(
            mock,
            lambda: mock.banner_port("layers-mock listening on"),
            lambda port: request(port, "POST", CREATE_PATH, CREATE_BODY)[0] == 202,
            60,
        )
        if ready is None:
            out["error"] = "did not start"
            return out
        port = ready[0]
        _, body = request(port, "POST", CREATE_PATH, CREATE_BODY)
        job_path = "/v1/jobs/" + json.loads(body)["jobId"]
        for case, method, path, payload in [
            ("create", "POST", CREATE_PATH, CREATE_BODY),
            ("get", "GET", job_path, ""),
        ]:
            if case not in cases:
                continue
            run_wrk(port, method, path, payload, seconds=2)  # warm-up
            pids = [mock.pid] + ([redis.pid] if redis else [])
            sampled = sample is not None and workers == 1
            if sampled:
                os.kill(mock.pid, signal.SIGUSR1)
            if leases:
                lease_log.start(redis_port)
            cpu0 = [tree_cpu_s(p) for p in pids]
            result = run_wrk(port, method, path, payload, seconds=seconds)
            if leases:
                result["leases"] = lease_log.stop(redis_port)
                say(f"{name} {case} leases: {json.dumps(result['leases'])}")
            cpu = [tree_cpu_s(p) - c for p, c in zip(pids, cpu0, strict=True)]
            if sampled:
                _collapsed(mock.pid, collapsed, int(result.get("requests", 0)))
            n = max(1, int(result.get("requests", 0)))
            result["mock_cpu_us"] = 1e6 * cpu[0] / n
            result["redis_cpu_us"] = 1e6 * cpu[1] / n if redis else 0.0
            out[case] = result
            say(f"{name} {case}: {result.get('rps', 0):.0f} req/s")
    finally:
        mock.stop()
        if redis is not None:
            redis.stop()
    return out


def _collapsed(pid: int, path: Path, requests: int) -> None:
    """Stop the sampler (it writes `path`) and show what cost most per request."""
    os.kill(pid, signal.SIGUSR2)
    deadline = time.monotonic() + 10
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)  # written whole
    say(f"CPU by function: {path}")
    from cpu_sampler import top

    top(str(path), max(1, requests), 25)


def probe(args: argparse.Namespace, settings: list[str]) -> None:
    """`--rounds` / `--alt-root`: each selected configuration on each build, the builds
    alternating from round to round; medians and spread (max - min) per build."""
    builds = [("new", ROOT)] + ([("old", Path(args.alt_root).resolve())] if args.alt_root else [])
    cases = tuple(args.case or ("create", "get"))
    sample = Path(args.sample) if args.sample else None
    runs: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="layers-mock-bench-redis-") as tmp:
        for round_ in range(args.rounds):
            order = builds if round_ % 2 == 0 else builds[::-1]
            for name, store, workers in CONFIGS:
                if args.only and name not in args.only:
                    continue
                for build, root in order:
                    fsync = settings[0]
                    r = measure(name, store, workers, args.seconds, fsync, Path(tmp), root, cases,
                                sample, args.leases)  # fmt: skip
                    for case in cases:
                        c = r.get(case, {})
                        runs.setdefault((build, r["name"], case), []).append(c)
                        if "rps" in c:
                            say(f"round {round_ + 1} {build} {r['name']} {case}: "
                                f"{c['rps']:.0f} req/s, mock {c['mock_cpu_us']:.0f} µs, "
                                f"redis {c['redis_cpu_us']:.0f} µs")  # fmt: skip
    rows = []
    for (build, name, case), got in runs.items():
        ok = [c for c in got if "rps" in c]
        if not ok:
            rows.append([build, name, case, "error", "", "", "", ""])
            continue

        def spread(key: str, ok: list[dict[str, Any]] = ok) -> str:
            xs = [c[key] for c in ok]
            return f"{statistics.median(xs):.0f} ({min(xs):.0f}-{max(xs):.0f})"

        rows.append([build, name, case, spread("rps"), spread("lat_p99_us"),
                     spread("mock_cpu_us"), spread("redis_cpu_us"), str(len(ok))])  # fmt: skip
    header = ["build", "config", "case", "req/s", "p99 µs", "mock µs", "redis µs", "runs"]
    print(table(header, rows))
    for build, _ in builds:  # a round's redis/memory ratio, per build
        for case in cases:
            mem = runs.get((build, "memory, 1 worker", case), [])
            red = runs.get((build, f"redis, 1 worker, {settings[0]}", case), [])
            if not (mem and red):  # (a round runs both or neither)
                continue
            ratios = [
                r["rps"] / m["rps"]
                for m, r in zip(mem, red, strict=True)
                if "rps" in m and "rps" in r
            ]
            if ratios:
                shown = ", ".join(f"{x:.2f}" for x in ratios)
                say(f"{build} {case}: redis/memory req/s median {statistics.median(ratios):.2f}"
                    f" ({shown})")  # fmt: skip
    path = write_results("redis-probe", {"machine": machine(), "args": vars(args),
                                         "runs": [[*k, v] for k, v in runs.items()]})  # fmt: skip
    say(f"results: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--fsync", choices=("always", "everysec", "both"), default="always")
    parser.add_argument("--only", action="append", choices=[c[0] for c in CONFIGS])
    parser.add_argument("--case", action="append", choices=("create", "get"))
    parser.add_argument("--rounds", type=int, default=0, help="the probe: N rounds (see above)")
    parser.add_argument("--alt-root", help="the probe: another checkout to measure beside this")
    parser.add_argument("--sample", help="the probe: CPU by function into this directory")
    parser.add_argument(
        "--leases",
        action="store_true",
        help="the probe: count the lease's tries and handoffs (Redis logs every command: a "
        "count, not a speed; keep --seconds short)",
    )
    args = parser.parse_args()
    settings = ["always", "everysec"] if args.fsync == "both" else [args.fsync]
    if args.rounds or args.alt_root or args.only or args.case or args.sample or args.leases:
        if len(settings) != 1:
            parser.error("the probe measures one --fsync setting")
        args.rounds = max(1, args.rounds)
        probe(args, settings)
        return
    results = []
    with tempfile.TemporaryDirectory(prefix="layers-mock-bench-redis-") as tmp:
        for name, store, workers in CONFIGS:
            for fsync in settings if store == "redis" else settings[:1]:
                results.append(measure(name, store, workers, args.seconds, fsync, Path(tmp)))
    rows = []
    for r in results:
        for case in ("create", "get"):
            c = r.get(case, {})
            if "rps" not in c:
                rows.append([r["name"], case, "error", "", "", "", "", ""])
                continue
            rows.append([
                r["name"],
                case,
                f"{c['rps']:.0f}",
                f"{c['lat_p50_us'] / 1000:.2f}",
                f"{c['lat_p99_us'] / 1000:.2f}",
                f"{c['mock_cpu_us']:.0f}",
                f"{c['redis_cpu_us']:.0f}",
                f"{c['mock_cpu_us'] + c['redis_cpu_us']:.0f}",
            ])  # fmt: skip
    header = ["config", "case", "req/s", "p50 ms", "p99 ms", "mock µs", "redis µs", "total µs"]
    print(table(header, rows))
    if len(settings) == 2:  # what the recommended setting costs, configuration by configuration
        by = {(r["name"].rpartition(",")[0], r.get("fsync")): r for r in results}
        for name, store, _ in CONFIGS:
            if store != "redis":
                continue
            always, everysec = by.get((name, "always"), {}), by.get((name, "everysec"), {})
            ratios = [
                f"{case} {always[case]['rps'] / everysec[case]['rps']:.2f}"
                for case in ("create", "get")
                if "rps" in always.get(case, {}) and everysec.get(case, {}).get("rps")
            ]
            say(f"{name}: req/s always/everysec: {', '.join(ratios) or 'n/a'}")
    path = write_results(
        "redis",
        {"machine": machine(), "fsync": args.fsync, "seconds": args.seconds, "results": results},
    )
    say(f"results: {path}")


if __name__ == "__main__":
    main()
