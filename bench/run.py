"""`./dev bench`: layers-mock on its engines against the bare endpoint and its peers.

Each server runs alone on 127.0.0.1 under the same wrk load (default wrk -t2 -c32, 10 s per case
after a 2 s warm-up) for two requests:
  create  POST /v1/projects/{projectId}/influencers  {"gender":"female",...}  -> 202
  get     GET  /v1/jobs/{jobId}                                               -> 200
and is measured for requests/s, p50 and p99 latency, server CPU time per request and cores used,
start-up to the first good answer (a 2xx to the create request, polled every 5 ms), resident
memory idle (after start-up and one request of each kind) and loaded (peak while under load,
sampled every 0.25 s), both summed over the process tree.

Servers, in this order (the mock and its bare endpoint back to back on each engine):
  layers-mock          `layers-mock serve --port P` (granian, the default; in-memory, strict off)
  bare                 bench/bare.py on granian, served as `serve` serves the mock
  layers-mock-uvicorn  the same app on uvicorn (uvloop, httptools), as `serve` ran it before
  bare-uvicorn         bench/bare.py on uvicorn
  prism                Prism 5.16 mocking openapi/layers.yaml (`-v silent`, its fastest)
  wiremock             WireMock 3.13.2 on two stubs from the spec's examples (journal off)
Prism and WireMock are npm-installed outside the repo (default /tmp/layers-mock-bench-peers) and
skipped with a message when they cannot be installed or run.

Ports come from --ports LO-HI (or BENCH_PORTS; default 4510-4599), one fresh port per server
start, so a run never collides with other servers on the machine or with its own TIME_WAITs.

    ./dev bench --rounds 3 --update-readme   # the full comparison, README.md's table rewritten
    ./dev bench --seconds 5 --only layers-mock bare
    ./dev bench --alt-cmd '.venv/bin/python /path/to/variant.py serve' --alt-name variant
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    CREATE_BODY,
    CREATE_PATH,
    ROOT,
    Server,
    ensure_wrk,
    machine,
    request,
    run_wrk,
    say,
    tree_cpu_s,
    tree_kb,
    wait_ready,
    write_results,
)
from peers import peer_version, prism_bin, wiremock_jar
from report import median_of, readme_block, report, update_readme
from wiremock_stubs import write_stubs

SPEC = ROOT / "openapi" / "layers.yaml"
FALLBACK_JOB = "job_01KB85FD00M9S346Q3D25VT4F5"
SERVERS = ("layers-mock", "alt", "bare", "layers-mock-uvicorn", "bare-uvicorn", "prism", "wiremock")
ON_ENGINE = {  # server -> (app, engine) for bench/on_engine.py
    "bare": ("bare", "granian"),
    "layers-mock-uvicorn": ("mock", "uvicorn"),
    "bare-uvicorn": ("bare", "uvicorn"),
}
ENGINE_OF = {"layers-mock": "granian", "alt": "granian", "prism": "node", "wiremock": "jetty"}


class Ports:
    """Hands out each port of a range once, skipping ports something else is listening on."""

    def __init__(self, spec: str) -> None:
        low, _, high = spec.partition("-")
        self.next, self.high = int(low), int(high or low)

    def take(self) -> int:
        import socket

        while self.next <= self.high:
            port, self.next = self.next, self.next + 1
            with socket.socket() as probe:
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
        sys.exit("bench: no free port left in --ports; widen the range")


def version_of(name: str, peers: dict[str, Path | None]) -> str:
    peer = peers.get(name)
    if name in ("prism", "wiremock") and peer is not None:
        return peer_version(name, peer)
    from importlib.metadata import version

    engine = ENGINE_OF.get(name) or ON_ENGINE[name][1]
    mock = f"layers-mock {version('layers-mock')}, " if "bare" not in name else ""
    return f"{mock}starlette {version('starlette')}, {engine} {version(engine)}"


def launch(
    name: str, args: argparse.Namespace, workdir: Path, peers: dict[str, Path | None], port: int
) -> Server:
    log = workdir / f"{name}-{port}.log"
    if name in ("layers-mock", "alt"):
        prefix = (
            [sys.executable, "-m", "layers_mock_server.cli", "serve"]
            if name == "layers-mock"
            else args.alt_cmd.split()
        )
        return Server(name, [*prefix, "--port", str(port), *args.mock_args], log)
    if name in ON_ENGINE:
        app, engine = ON_ENGINE[name]
        script = str(Path(__file__).with_name("on_engine.py"))
        return Server(name, [sys.executable, script, app, engine, "--port", str(port)], log)
    if name == "wiremock":
        root = workdir / "wiremock"
        write_stubs(SPEC, root)
        argv = ["java", "-jar", str(peers["wiremock"]), "--port", str(port)]
        argv += ["--bind-address", "127.0.0.1", "--root-dir", str(root), "--disable-banner"]
        return Server(name, [*argv, *args.wiremock_args.split()], log)
    argv = [str(peers["prism"]), "mock", "-h", "127.0.0.1", "-p", str(port)]
    return Server(name, [*argv, *args.prism_args.split(), str(SPEC)], log)


def measure(
    name: str,
    args: argparse.Namespace,
    workdir: Path,
    peers: dict[str, Path | None],
    job_id: str,
    port: int,
) -> dict[str, Any]:
    label = args.alt_name if name == "alt" else name
    out: dict[str, Any] = {
        "server": label,
        "engine": ENGINE_OF.get(name) or ON_ENGINE[name][1],
        "version": version_of(name, peers),
        "port": port,
    }
    server = launch(name, args, workdir, peers, port)
    created: dict[str, Any] = {}

    def good_create(port: int) -> bool:
        status, body = request(port, "POST", CREATE_PATH, CREATE_BODY, timeout=1.0)
        if 200 <= status < 300:
            created.update(json.loads(body or b"{}"))
            return True
        return False

    try:
        ready = wait_ready(server, lambda: port, good_create, args.startup_timeout)
        if ready is None:
            tail = server.log.read_text(errors="replace")[-300:].replace("\n", " ")
            out["note"] = f"no 2xx answer to the create request; log tail: {tail}"
            say(f"{name}: did not come up")
            return out
        _, startup = ready
        out["startup_s"] = round(startup, 3)
        if name in ("layers-mock", "alt", "layers-mock-uvicorn"):
            job_id = created.get("jobId", job_id)
        out["job_id"] = job_id
        get_path = f"/v1/jobs/{job_id}"
        out["probe_get_status"] = request(port, "GET", get_path)[0]
        time.sleep(1.0)
        out["rss_idle_mb"] = round(tree_kb(server.pid) / 1024, 1)
        peak = [0]

        def sample() -> None:
            peak[0] = max(peak[0], tree_kb(server.pid))

        for case, method, path, body in (
            ("create", "POST", CREATE_PATH, CREATE_BODY),
            ("get", "GET", get_path, ""),
        ):
            if args.warmup > 0:
                run_wrk(port, method, path, body, args.warmup, args.threads, args.conns)
            say(f"{name}: {case} {args.seconds:g}s")
            cpu0, t0 = tree_cpu_s(server.pid), time.perf_counter()
            result = run_wrk(
                port, method, path, body, args.seconds, args.threads, args.conns, sample
            )
            cpu, wall = tree_cpu_s(server.pid) - cpu0, time.perf_counter() - t0
            if "rps" in result:
                result["cores"] = cpu / wall
                result["cpu_pct"] = round(100 * cpu / wall)
                result["cpu_us_per_req"] = 1e6 * cpu / max(1, result["requests"])
            out[case] = result
        out["rss_load_mb"] = round(peak[0] / 1024, 1)
        out["rss_hwm_mb"] = round(tree_kb(server.pid, "VmHWM") / 1024, 1)
        if not server.alive():
            out["note"] = "exited during the run"
    finally:
        server.stop()
        say(f"{name}: stopped")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    seconds = float(os.environ.get("BENCH_SECONDS", "10"))
    parser.add_argument("--seconds", type=float, default=seconds, help="per case (10)")
    parser.add_argument("--warmup", type=float, default=2)
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="repeat the whole sequence; each server's row is then its median round",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--conns", type=int, default=32)
    parser.add_argument(
        "--ports",
        default=os.environ.get("BENCH_PORTS", "4510-4599"),
        help="LO-HI: the ports servers are started on, one fresh port per start (4510-4599)",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=SERVERS,
        default=None,
        help="servers to run, in order (default: all but alt, alt too with --alt-cmd)",
    )
    parser.add_argument("--alt-cmd", help="command of a second mock build to measure (alt)")
    parser.add_argument("--alt-name", default="alt")
    parser.add_argument(
        "--peers-dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "layers-mock-bench-peers",
        help="npm prefix for Prism and WireMock (outside the repo)",
    )
    parser.add_argument(
        "--prism-args", default="-v silent", help="extra Prism flags ('' = its default logging)"
    )
    parser.add_argument(
        "--wiremock-args",
        default="--no-request-journal --disable-request-logging",
        help="extra WireMock flags (default: journal and request logging off, its fastest)",
    )
    parser.add_argument(
        "--update-readme",
        action="store_true",
        help="rewrite README.md's benchmark table (between its bench-table markers)",
    )
    parser.add_argument(
        "--mock-args",
        nargs=argparse.REMAINDER,
        default=[],
        help="extra `layers-mock serve` flags (last option)",
    )
    parser.add_argument("--startup-timeout", type=float, default=90)
    args = parser.parse_args(argv)
    if args.only is None:
        args.only = [s for s in SERVERS if s != "alt" or args.alt_cmd]
    if "alt" in args.only and not args.alt_cmd:
        parser.error("alt needs --alt-cmd")
    ports = Ports(args.ports)
    ensure_wrk()
    peers: dict[str, Path | None] = {
        "prism": prism_bin(args.peers_dir) if "prism" in args.only else None,
        "wiremock": wiremock_jar(args.peers_dir) if "wiremock" in args.only else None,
    }
    meta = machine() | {
        "load": f"wrk -t{args.threads} -c{args.conns} -d{args.seconds:g}s "
        f"after a {args.warmup:g}s warm-up",
        "requests": f"POST {CREATE_PATH} and GET /v1/jobs/{{jobId}}",
        "load_before": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
        "rounds": args.rounds,
        "prism_args": args.prism_args,
        "wiremock_args": args.wiremock_args,
        "mock_args": args.mock_args,
    }
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in args.only}
    skipped: dict[str, dict[str, Any]] = {}
    job_id = FALLBACK_JOB
    with tempfile.TemporaryDirectory(prefix="layers-mock-bench-") as tmp:
        for round_no in range(args.rounds):
            for name in args.only:
                if name in peers and peers[name] is None:
                    skipped[name] = {"server": name, "note": "skipped: could not be installed"}
                    continue
                say(f"{name}: starting (round {round_no + 1} of {args.rounds})")
                result = measure(name, args, Path(tmp), peers, job_id, ports.take())
                if name in ("layers-mock", "alt") and result.get("job_id"):
                    job_id = result["job_id"]
                runs[name].append(result)
    results = [skipped.get(name) or median_of(rs) for name, rs in runs.items()]
    meta["load_after"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    text = report(results, meta)
    print(text)
    path = write_results("run", {"meta": meta, "results": results, "report": text})
    say(f"results: {path}")
    if args.update_readme:
        if update_readme(readme_block(results, meta)):
            say("README.md: benchmark table rewritten")
        else:
            say("README.md: bench-table markers not found, nothing rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
