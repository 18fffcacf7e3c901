"""`./dev bench`: layers-mock against the Starlette ceiling and Prism, one after another.

Each server runs alone on 127.0.0.1 under the same wrk load (default wrk -t2 -c32, 10 s per case
after a 2 s warm-up) for two requests:
  create  POST /v1/projects/{projectId}/influencers  {"gender":"female",...}  -> 202
  get     GET  /v1/jobs/{jobId}                                               -> 200
and is measured for requests/s, p50 and p99 latency, start-up to the first good answer (a 2xx to
the create request, polled every 5 ms), resident memory idle (after start-up and one request of
each kind) and loaded (peak while under load, sampled every 0.25 s, summed over the process tree).

Servers:
  layers-mock  `layers-mock serve --port 0` (in-memory, default flags, strict off; uvicorn)
  bare         bench/bare.py: a bare Starlette app of the same shape under the same uvicorn Config
  prism        Prism 5.16 mocking openapi/layers.yaml, installed from npm into a folder outside
               the repo (default /tmp/layers-mock-bench-peers); skipped with a message if it
               cannot be installed. Logging silenced by default (`-v silent`, its fastest setting).
  wiremock     WireMock 3.13.2 (the npm package's standalone jar, run with `java -jar`, same
               folder) on two stubs generated from the spec's examples (bench/wiremock_stubs.py);
               request journal off by default (`--wiremock-args`). Skipped if npm or java fails.

Prints one table and the ratios of layers-mock to every other server; writes
bench/results/run-<time>.json and bench/results/run-latest.json.

    ./dev bench                       # everything, 10 s per case
    ./dev bench --seconds 5 --only layers-mock bare
    # also measure another build of the mock in the same run (its banner must match the mock's)
    ./dev bench --alt-cmd '.venv/bin/python /path/to/variant.py serve' --alt-name variant
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
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
    free_port,
    machine,
    request,
    run_wrk,
    say,
    table,
    tree_cpu_s,
    tree_kb,
    wait_ready,
    write_results,
)
from wiremock_stubs import write_stubs

SPEC = ROOT / "openapi" / "layers.yaml"
PRISM_VERSION = "5.16"
WIREMOCK_VERSION = "3.13.2"
FALLBACK_JOB = "job_01KB85FD00M9S346Q3D25VT4F5"
SERVERS = ("layers-mock", "alt", "bare", "prism", "wiremock")


def npm_install(name: str, package: str, folder: Path) -> bool:
    """Install one npm package into `folder`; False (with a message) when that cannot be done."""
    if not _which("npm"):
        say(f"{name}: skipped (npm is not installed)")
        return False
    say(f"{name}: npm install {package} into {folder}")
    folder.mkdir(parents=True, exist_ok=True)
    command = ["npm", "install", "--prefix", str(folder), "--no-audit", "--no-fund", package]
    try:
        subprocess.run(command, check=True, timeout=600, capture_output=True)
    except (subprocess.SubprocessError, OSError) as exc:
        say(f"{name}: skipped (npm install failed: {exc})")
        return False
    return True


def prism_bin(folder: Path) -> Path | None:
    """Prism's CLI in `folder`, installing it from npm there if it is missing."""
    binary = folder / "node_modules" / ".bin" / "prism"
    if binary.exists():
        return binary
    if not npm_install("prism", f"@stoplight/prism-cli@{PRISM_VERSION}", folder):
        return None
    return binary if binary.exists() else None


def wiremock_jar(folder: Path) -> Path | None:
    """WireMock's standalone jar from the npm package in `folder` (installed if missing), or None
    with a message when npm or java is unavailable."""
    jar = (
        folder
        / "node_modules"
        / "wiremock"
        / "build"
        / f"wiremock-standalone-{WIREMOCK_VERSION}.jar"
    )
    if not _which("java"):
        say("wiremock: skipped (java is not installed)")
        return None
    if not jar.exists() and not npm_install("wiremock", f"wiremock@{WIREMOCK_VERSION}", folder):
        return None
    if not jar.exists():
        say(f"wiremock: skipped ({jar} missing after npm install)")
        return None
    try:
        subprocess.run(
            ["java", "-jar", str(jar), "--version"], check=True, timeout=60, capture_output=True
        )
    except (subprocess.SubprocessError, OSError) as exc:
        say(f"wiremock: skipped (java -jar {jar.name} --version failed: {exc})")
        return None
    return jar


def _which(name: str) -> bool:
    from shutil import which

    return which(name) is not None


def version_of(name: str, peers: dict[str, Path | None]) -> str:
    peer = peers.get(name)
    if name in ("prism", "wiremock") and peer is not None:
        argv = [str(peer)] if name == "prism" else ["java", "-jar", str(peer)]
        out = subprocess.run(
            [*argv, "--version"], capture_output=True, text=True, timeout=60, check=False
        )
        return out.stdout.strip().splitlines()[-1] if out.stdout.strip() else "?"
    if name in ("layers-mock", "alt"):
        from importlib.metadata import version

        return version("layers-mock")
    import starlette
    import uvicorn

    return f"starlette {starlette.__version__}, uvicorn {uvicorn.__version__}"


def launch(
    name: str, args: argparse.Namespace, workdir: Path, peers: dict[str, Path | None]
) -> tuple[Server, Any]:
    log = workdir / f"{name}.log"
    if name in ("layers-mock", "alt"):
        prefix = (
            [sys.executable, "-m", "mockserver.cli", "serve"]
            if name == "layers-mock"
            else args.alt_cmd.split()
        )
        argv = [*prefix, "--port", "0", *args.mock_args]
        server = Server(name, argv, log)
        return server, lambda: server.banner_port("layers-mock listening on", 0)
    if name == "bare":
        server = Server(
            name, [sys.executable, str(Path(__file__).with_name("bare.py")), "--port", "0"], log
        )
        return server, lambda: server.banner_port("bare listening on", 0)
    port = free_port()
    if name == "wiremock":
        root = workdir / "wiremock"
        write_stubs(SPEC, root)
        argv = [
            "java",
            "-jar",
            str(peers["wiremock"]),
            "--port",
            str(port),
            "--bind-address",
            "127.0.0.1",
            "--root-dir",
            str(root),
            "--disable-banner",
            *args.wiremock_args.split(),
        ]
        return Server(name, argv, log), lambda: port
    argv = [
        str(peers["prism"]),
        "mock",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        *args.prism_args.split(),
        str(SPEC),
    ]
    return Server(name, argv, log), lambda: port


def measure(
    name: str, args: argparse.Namespace, workdir: Path, peers: dict[str, Path | None], job_id: str
) -> dict[str, Any]:
    label = args.alt_name if name == "alt" else name
    out: dict[str, Any] = {"server": label, "version": version_of(name, peers)}
    server, port_of = launch(name, args, workdir, peers)
    created: dict[str, Any] = {}

    def good_create(port: int) -> bool:
        status, body = request(port, "POST", CREATE_PATH, CREATE_BODY, timeout=1.0)
        if 200 <= status < 300:
            created.update(json.loads(body or b"{}"))
            return True
        return False

    try:
        ready = wait_ready(server, port_of, good_create, args.startup_timeout)
        if ready is None:
            tail = server.log.read_text(errors="replace")[-300:].replace("\n", " ")
            out["note"] = f"no 2xx answer to the create request; log tail: {tail}"
            say(f"{name}: did not come up")
            return out
        port, startup = ready
        out["startup_s"] = round(startup, 3)
        if name in ("layers-mock", "alt"):
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
            result["cpu_pct"] = round(
                100 * (tree_cpu_s(server.pid) - cpu0) / (time.perf_counter() - t0)
            )
            out[case] = result
        out["rss_load_mb"] = round(peak[0] / 1024, 1)
        out["rss_hwm_mb"] = round(tree_kb(server.pid, "VmHWM") / 1024, 1)
        if not server.alive():
            out["note"] = "exited during the run"
    finally:
        server.stop()
        say(f"{name}: stopped")
    return out


def median_of(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One row per server: per case the round with the median requests/s; medians of the rest."""
    if len(rounds) == 1:
        return rounds[0]
    out = dict(rounds[0])
    out["rounds"] = rounds
    for case in ("create", "get"):
        done = sorted((r[case] for r in rounds if "rps" in r.get(case, {})), key=lambda w: w["rps"])
        if done:
            out[case] = done[len(done) // 2]
    for field in ("startup_s", "rss_idle_mb", "rss_load_mb", "rss_hwm_mb"):
        values = sorted(r[field] for r in rounds if field in r)
        if values:
            out[field] = values[len(values) // 2]
    return out


def _ms(us: float) -> str:
    return f"{us / 1000:.2f}"


def report(results: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [
        f"# layers-mock benchmark, {meta['date']}: {meta['cpus']} CPUs ({meta['cpu_model']}), "
        "shared by server and wrk; loopback only",
        f"# load: {meta['load']}; {meta.get('rounds', 1)} round(s), median shown",
        "",
    ]
    rows = []
    for r in results:
        row = [
            r["server"],
            r.get("startup_s", "-"),
            r.get("rss_idle_mb", "-"),
            r.get("rss_load_mb", "-"),
        ]
        for case in ("create", "get"):
            w = r.get(case) or {}
            if "rps" in w:
                row += [
                    f"{w['rps']:.0f}",
                    _ms(w["lat_p50_us"]),
                    _ms(w["lat_p99_us"]),
                    int(w["err_status"]) + int(w["sock_errors"]),
                    w.get("cpu_pct", "-"),
                ]
            else:
                row += ["-"] * 5
        rows.append(row)
    lines.append(
        table(
            [
                "server",
                "start_s",
                "idle_MB",
                "load_MB",
                "create_rps",
                "p50_ms",
                "p99_ms",
                "errors",
                "cpu%",
                "get_rps",
                "p50_ms",
                "p99_ms",
                "errors",
                "cpu%",
            ],
            rows,
        )
    )
    lines.append("(errors = non-2xx answers plus socket errors; cpu% = server CPU, 100 = one core)")
    mock = next((r for r in results if r["server"] == "layers-mock" and "create" in r), None)
    if mock is not None:
        lines += [
            "",
            "## layers-mock / other (requests/s ratio; latency and memory as mock vs other)",
        ]
        ratio_rows = []
        for other in results:
            if other is mock or "create" not in other:
                continue
            ratio_rows.append(
                [
                    other["server"],
                    f"{mock['create']['rps'] / other['create']['rps']:.2f}",
                    f"{mock['get']['rps'] / other['get']['rps']:.2f}",
                    f"{_ms(mock['create']['lat_p99_us'])} vs {_ms(other['create']['lat_p99_us'])}",
                    f"{_ms(mock['get']['lat_p99_us'])} vs {_ms(other['get']['lat_p99_us'])}",
                    f"{mock['startup_s']} vs {other['startup_s']}",
                    f"{mock['rss_idle_mb']} vs {other['rss_idle_mb']}",
                ]
            )
        lines.append(
            table(
                [
                    "vs",
                    "create_rps",
                    "get_rps",
                    "create_p99_ms",
                    "get_p99_ms",
                    "start_s",
                    "idle_MB",
                ],
                ratio_rows,
            )
        )
        bare = next((r for r in results if r["server"] == "bare" and "create" in r), None)
        lines += ["", "## targets"]
        if bare is not None:
            c = mock["create"]["rps"] / bare["create"]["rps"]
            g = mock["get"]["rps"] / bare["get"]["rps"]
            lines.append(
                f"create >= 40 % of bare: {100 * c:.1f} % {'met' if c >= 0.4 else 'MISSED'}"
            )
            lines.append(
                f"get    >= 50 % of bare: {100 * g:.1f} % {'met' if g >= 0.5 else 'MISSED'}"
            )
        for case in ("create", "get"):
            p99 = mock[case]["lat_p99_us"] / 1000
            lines.append(f"{case} p99 < 10 ms: {p99:.2f} ms {'met' if p99 < 10 else 'MISSED'}")
        start, idle = mock["startup_s"], mock["rss_idle_mb"]
        lines.append(f"start-up < 0.5 s: {start} s {'met' if start < 0.5 else 'MISSED'}")
        lines.append(f"idle RSS < 60 MB: {idle} MB {'met' if idle < 60 else 'MISSED'}")
    for r in results:
        if r.get("note"):
            lines.append(f"note: {r['server']}: {r['note']}")
    return "\n".join(lines)


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
        "--only",
        nargs="+",
        choices=SERVERS,
        default=None,
        help="servers to run, in order (default: layers-mock [alt] bare prism wiremock)",
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
    ensure_wrk()
    peers: dict[str, Path | None] = {
        "prism": prism_bin(args.peers_dir) if "prism" in args.only else None,
        "wiremock": wiremock_jar(args.peers_dir) if "wiremock" in args.only else None,
    }
    meta = machine() | {
        "load": f"wrk -t{args.threads} -c{args.conns} -d{args.seconds:g}s "
        f"after a {args.warmup:g}s warm-up; POST {CREATE_PATH} and GET /v1/jobs/{{jobId}}",
        "rounds": args.rounds,
        "prism_args": args.prism_args,
        "wiremock_args": args.wiremock_args,
        "mock_args": args.mock_args,
    }
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in args.only}
    job_id = FALLBACK_JOB
    with tempfile.TemporaryDirectory(prefix="layers-mock-bench-") as tmp:
        for round_no in range(args.rounds):
            for name in args.only:
                if name in peers and peers[name] is None:
                    runs[name] = [
                        {"server": name, "note": f"skipped: {name} could not be installed or run"}
                    ]
                    continue
                say(f"{name}: starting (round {round_no + 1} of {args.rounds})")
                result = measure(name, args, Path(tmp), peers, job_id)
                if name in ("layers-mock", "alt") and result.get("job_id"):
                    job_id = result["job_id"]
                runs[name].append(result)
    results = [median_of(rs) for rs in runs.values()]
    text = report(results, meta)
    print(text)
    path = write_results("run", {"meta": meta, "results": results, "report": text})
    say(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
