"""Cost flat as state grows: the mock's reads at small and large state, and its memory.

    ./dev bench  (run.py) compares servers; this compares the mock with itself:
    .venv/bin/python bench/scale.py [--seconds 5] [--big 1000000]

1. Reads at scale. For N in 100, 1,000, 100,000 and 1,000,000 stored influencers (each with its
   job) in one project, the state is filled in-process through the simulator core
   (Simulator.create_influencer, the same call the create handler makes), then served by uvicorn
   exactly as `layers-mock serve` serves it, and wrk (-t2 -c32) measures GET /v1/jobs/{id},
   GET /v1/influencers/{id} (an entry in the middle of the state) and the first page of
   GET /v1/projects/{id}/influencers (limit 25), and a status-filtered page that matches nothing
   yet (?status=ready&limit=1: every job is still running, so a scan would read the whole list).
   Ratios: get job and get influencer at 1,000,000 vs 1,000; a list page and a filtered page at
   100,000 vs 100.
2. Memory per created influencer with its job: tracemalloc over 50,000 creates (and the RSS
   delta between the 1,000 and the 1,000,000 servers).
3. Bounded memory under reads: RSS (after gc.collect) after 20,000 and after 200,000 reads
   through the whole ASGI app (journal, rate limiter, ...), in-process.

4. Memory per stored record, RSS over 1,000,000 mixed requests, the SQLite commit cost, and
   export / import / SQLite at 1,000,000 influencers: see scale_memory.py (issue 9).
   `--parts records mixed commit roundtrip` runs only those.

Writes bench/results/scale-<time>.json and bench/results/scale-latest.json.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import socket
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import scale_memory as memory
from common import (
    CREATE_BODY,
    PROJECT,
    TOKEN,
    Server,
    ensure_wrk,
    machine,
    run_wrk,
    say,
    table,
    tree_kb,
    write_results,
)

BODY = json.loads(CREATE_BODY)
PARTS = ("reads", "records", "mixed", "commit", "roundtrip")


def build(settings_kwargs: dict[str, Any] | None = None) -> Any:
    from layers_mock_server.settings import Settings, make_deps

    return make_deps(Settings(**(settings_kwargs or {})))


def fill(deps: Any, count: int) -> list[dict[str, Any]]:
    """`count` influencers with their jobs in PROJECT, straight through the simulator core."""
    from layers_mock_server.core.simulator import JobPlan

    sim = deps.sim
    project = sim.state.projects[PROJECT]
    plan = JobPlan()
    created = []
    for i in range(count):
        answer = sim.create_influencer(project, BODY, plan)
        if i % 10_000 == 0:
            sim.state.dirty.clear()  # the HTTP edge commits after every request; so do we
        if i in (0, count // 2, count - 1):
            created.append(answer)
    sim.state.dirty.clear()
    return created


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


# ---------- the server side of part 1 (a child process) ------------------------------------


def serve(count: int) -> None:
    import uvicorn

    from layers_mock_server.http.app import build_app
    from layers_mock_server.http.heap import FrozenHeap

    t0 = time.perf_counter()
    deps = build()
    app = build_app(deps)
    middle = fill(deps, count)[1]
    app = FrozenHeap(app)  # as `layers-mock serve` wraps it: the filled state leaves the GC
    fill_s = time.perf_counter() - t0
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    info = {"jobId": middle["jobId"], "influencerId": middle["influencerId"], "fill_s": fill_s}
    print("SCALEINFO " + json.dumps(info), flush=True)
    print(f"scale listening on http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])


def reads_at(count: int, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    log = workdir / f"scale-{count}.log"
    argv = [sys.executable, __file__, "_serve", str(count)]
    server = Server(f"mock@{count}", argv, log)
    out: dict[str, Any] = {"stored": count}
    try:
        port = server.banner_port("scale listening on", timeout=600)
        if port is None:
            out["note"] = "did not come up: " + log.read_text(errors="replace")[-300:]
            return out
        line = next(x for x in log.read_text().splitlines() if x.startswith("SCALEINFO "))
        info = json.loads(line.removeprefix("SCALEINFO "))
        out["fill_s"] = round(info["fill_s"], 1)
        gc_settle = 1.0
        time.sleep(gc_settle)
        out["rss_mb"] = round(tree_kb(server.pid) / 1024, 1)
        cases = {
            "get_job": f"/v1/jobs/{info['jobId']}",
            "get_influencer": f"/v1/influencers/{info['influencerId']}",
            "list_page": f"/v1/projects/{PROJECT}/influencers?limit=25",
            "filtered_page": f"/v1/projects/{PROJECT}/influencers?status=ready&limit=1",
        }
        for case, path in cases.items():
            if args.warmup > 0:
                run_wrk(port, "GET", path, "", args.warmup, args.threads, args.conns)
            say(f"{count:>9,} stored: {case} {args.seconds:g}s")
            out[case] = run_wrk(port, "GET", path, "", args.seconds, args.threads, args.conns)
    finally:
        server.stop()
    return out


# ---------- parts 2 and 3 (in this process) ------------------------------------------------


def memory_per_influencer(count: int = 50_000) -> dict[str, Any]:
    deps = build()
    fill(deps, 1_000)  # warm: first-use caches, dict resizes of the small state
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    fill(deps, count)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return {"creates": count, "bytes_per_influencer": round((after - before) / count)}


def memory_under_reads(first: int = 20_000, total: int = 200_000) -> dict[str, Any]:
    from layers_mock_server.http.app import build_app

    deps = build()
    app = build_app(deps)
    answer = fill(deps, 1_000)[1]
    paths = [
        f"/v1/jobs/{answer['jobId']}".encode(),
        f"/v1/influencers/{answer['influencerId']}".encode(),
    ]
    headers = [(b"host", b"127.0.0.1"), (b"authorization", f"Bearer {TOKEN}".encode())]

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    statuses: dict[int, int] = {}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses[message["status"]] = statuses.get(message["status"], 0) + 1

    async def reads(n: int) -> None:
        for i in range(n):
            raw = paths[i % 2]
            scope = {
                "type": "http",
                "asgi": {"version": "3.0"},
                "http_version": "1.1",
                "method": "GET",
                "scheme": "http",
                "path": raw.decode(),
                "raw_path": raw,
                "query_string": b"",
                "root_path": "",
                "headers": headers,
                "client": ("127.0.0.1", 1),
                "server": ("127.0.0.1", 1),
            }
            await app(scope, receive, send)

    asyncio.run(reads(first))
    gc.collect()
    at_first = rss_mb()
    asyncio.run(reads(total - first))
    gc.collect()
    at_total = rss_mb()
    return {
        "reads_first": first,
        "reads_total": total,
        "rss_mb_first": round(at_first, 1),
        "rss_mb_total": round(at_total, 1),
        "journal_entries": len(deps.journal),
        "idempotency_records": len(deps.sim.state.idempotency),
        "statuses": statuses,
    }


def _ms(us: float) -> str:
    return f"{us / 1000:.2f}"


def report(reads: list[dict[str, Any]], per_inf: dict[str, Any], bounded: dict[str, Any]) -> str:
    lines = ["## reads as state grows (wrk; rps = requests/s, latency in ms)"]
    rows = []
    for r in reads:
        row = [f"{r['stored']:,}", r.get("fill_s", "-"), r.get("rss_mb", "-")]
        for case in ("get_job", "get_influencer", "list_page", "filtered_page"):
            w = r.get(case) or {}
            row += (
                [f"{w['rps']:.0f}", _ms(w["lat_p50_us"]), _ms(w["lat_p99_us"])]
                if "rps" in w
                else ["-"] * 3
            )
        rows.append(row)
    lines.append(
        table(
            [
                "stored",
                "fill_s",
                "rss_MB",
                "job_rps",
                "p50",
                "p99",
                "inf_rps",
                "p50",
                "p99",
                "list_rps",
                "p50",
                "p99",
                "filtered_rps",
                "p50",
                "p99",
            ],
            rows,
        )
    )
    by = {r["stored"]: r for r in reads}

    def ratio(case: str, big: int, small: int) -> str:
        try:
            return f"{by[big][case]['rps'] / by[small][case]['rps']:.2f}"
        except (KeyError, ZeroDivisionError):
            return "-"

    big = max(by)
    lines += ["", "## ratios and targets"]
    rows = [
        [f"get job at {big:,} / at 1,000", ratio("get_job", big, 1_000), ">= 0.90"],
        [f"get influencer at {big:,} / at 1,000", ratio("get_influencer", big, 1_000), ">= 0.90"],
        ["list page at 100,000 / at 100", ratio("list_page", 100_000, 100), "~ 1.00 (>= 0.90)"],
        [
            "filtered page at 100,000 / at 100",
            ratio("filtered_page", 100_000, 100),
            "~ 1.00 (>= 0.90)",
        ],
    ]
    per = per_inf["bytes_per_influencer"]
    rows.append(["bytes per influencer + job (tracemalloc)", f"{per:,}", "< 2,048"])
    if big in by and 1_000 in by and "rss_mb" in by[big]:
        delta = (by[big]["rss_mb"] - by[1_000]["rss_mb"]) * 1024 * 1024 / (big - 1_000)
        rows.append(
            [f"bytes per influencer + job (RSS, {big:,} vs 1,000)", f"{delta:,.0f}", "< 2,048"]
        )
    growth = bounded["rss_mb_total"] / bounded["rss_mb_first"]
    rows.append(
        [
            f"RSS after {bounded['reads_total']:,} reads / after {bounded['reads_first']:,}",
            f"{growth:.3f} ({bounded['rss_mb_total']} / {bounded['rss_mb_first']} MB)",
            "<= 1.10",
        ]
    )
    lines.append(table(["measure", "value", "target"], rows))
    lines.append(
        f"(journal entries kept: {bounded['journal_entries']}, idempotency records: "
        f"{bounded['idempotency_records']}, read statuses: {bounded['statuses']})"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_serve"]:
        serve(int(argv[1]))
        return 0
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--warmup", type=float, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--conns", type=int, default=32)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1_000, 100_000, 1_000_000])
    parser.add_argument(
        "--parts",
        nargs="+",
        choices=PARTS,
        default=list(PARTS),
        help="which measurements to run (default: all)",
    )
    parser.add_argument("--mixed", type=int, default=1_000_000, help="requests of the mixed run")
    parser.add_argument("--roundtrip", type=int, default=1_000_000, help="influencers")
    args = parser.parse_args(argv)
    import tempfile

    results: dict[str, Any] = {}
    texts: list[str] = []
    with tempfile.TemporaryDirectory(prefix="layers-mock-scale-") as tmp:
        work = Path(tmp)
        if "reads" in args.parts:
            ensure_wrk()
            say("memory per influencer (tracemalloc, 50,000 creates)")
            per_inf = memory_per_influencer()
            say("memory after 20,000 and 200,000 reads")
            bounded = memory_under_reads()
            reads = []
            for count in args.sizes:
                say(f"serving {count:,} stored influencers")
                reads.append(reads_at(count, args, work))
            texts.append(report(reads, per_inf, bounded))
            results |= {
                "reads": reads,
                "memory_per_influencer": per_inf,
                "memory_under_reads": bounded,
            }
        if "records" in args.parts:
            say("RSS per stored record (100,000 plain and 100,000 keyed creates, real server)")
            results["records"] = memory.records(work)
        if "mixed" in args.parts:
            say(f"RSS over {args.mixed:,} mixed requests (real server)")
            results["mixed"] = memory.mixed(work, args.mixed, max(args.mixed // 5, 1))
        if "commit" in args.parts:
            say("SQLite commit cost per create (in-process)")
            results["commit"] = memory.commit_cost()
        if "roundtrip" in args.parts:
            say(f"export / import / SQLite at {args.roundtrip:,} influencers (in-process)")
            results["roundtrip"] = memory.roundtrip(args.roundtrip)
    texts.append(memory_report(results))
    text = "\n\n".join(t for t in texts if t)
    print(text)
    meta = machine() | {"load": f"wrk -t{args.threads} -c{args.conns} -d{args.seconds:g}s"}
    path = write_results("scale", {"meta": meta, **results, "report": text})
    say(f"results: {path}")
    return 0


def memory_report(results: dict[str, Any]) -> str:
    rows: list[list[Any]] = []
    if "records" in results:
        r = results["records"]
        rows += [
            ["RSS per influencer + job (plain create)", f"{r['plain_create_bytes']:,} B", ""],
            ["RSS per idempotency record", f"{r['idempotency_record_bytes']:,} B", ""],
            ["RSS per keyed create (both)", f"{r['keyed_create_bytes']:,} B", "< 2,048 B"],
            [
                "RSS per journal entry (without / with bodies)",
                f"{r['journal_entry_bytes']['plain']:,} / "
                f"{r['journal_entry_bytes']['with_bodies']:,} B",
                "journal: 1,000 entries, 4 MiB",
            ],
        ]
    if "mixed" in results:
        m = results["mixed"]
        samples = ", ".join(f"{s['requests'] // 1000:,}k: {s['rss_mb']} MB" for s in m["samples"])
        rows.append([f"RSS over mixed requests ({samples})", f"x{m['growth']}", "<= x1.05"])
    if "commit" in results:
        c = results["commit"]
        rows.append(
            [
                "create + commit, memory / sqlite (in-process)",
                f"{c['memory_us_per_create']} / {c['sqlite_us_per_create']} µs",
                f"commit {c['sqlite_commit_us']} µs",
            ]
        )
    if "roundtrip" in results:
        t = results["roundtrip"]
        rows += [
            [
                f"export of {t['influencers']:,} influencers",
                f"{t['export_s']} s, {t['export_mb']} MB",
                "",
            ],
            [f"import of {t['influencers']:,} (read, checked, built)", f"{t['import_s']} s", ""],
            [
                "SQLite: whole write / load at start",
                f"{t['sqlite_write_s']} s / {t['sqlite_load_s']} s",
                f"{t['sqlite_mb']} MB on disk",
            ],
            ["peak RSS of the round trip", f"{t['peak_rss_mb']} MB", ""],
        ]
    if not rows:
        return ""
    return "## memory, durability and round trips\n" + table(["measure", "value", "target"], rows)


if __name__ == "__main__":
    sys.exit(main())
