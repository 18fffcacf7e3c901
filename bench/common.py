"""Helpers shared by bench/run.py and bench/scale.py: processes by PID, memory, wrk, tables.

Only 127.0.0.1 is ever contacted. Every process started here is bounded in time and stopped by
its PID (TERM, then KILL after a grace period), never by name.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
WRK_LUA = HERE / "wrk-case.lua"
HOST = "127.0.0.1"
TOKEN = "lp_test_acmefull_Zx81Qm4TnR7vKp2W"
PROJECT = "prj_254a4ce1-f4ca-42b1-9e36-17ca45ef3d39"
CREATE_PATH = f"/v1/projects/{PROJECT}/influencers"
CREATE_BODY = '{"gender":"female","ageRange":"young_adult","prompt":"barista energy"}'


def say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# ---------- processes ----------------------------------------------------------------------


def descendants(pid: int) -> list[int]:
    out = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            for child in task.read_text().split():
                out.extend(descendants(int(child)))
    return out


def tree_kb(pid: int, field: str = "VmRSS") -> int:
    """`field` (VmRSS, VmHWM) from /proc/*/status summed over the process and its descendants."""
    total = 0
    for p in descendants(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith(field + ":"):
                    total += int(line.split()[1])
    return total


def tree_cpu_s(pid: int) -> float:
    ticks = 0
    for p in descendants(pid):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


class Server:
    """One server process (its own session, so its whole tree can be stopped by PID)."""

    def __init__(self, name: str, argv: Sequence[str], log: Path, cwd: Path = ROOT) -> None:
        self.name = name
        self.log = log
        self.started = time.perf_counter()
        self._log = log.open("wb")
        self.proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def banner_port(self, prefix: str, timeout: float = 30.0) -> int | None:
        """The port in the first line `<prefix> ... http://127.0.0.1:PORT` of the log."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.log.read_text(errors="replace").splitlines():
                if line.startswith(prefix) and "http://" in line:
                    return int(line.rsplit(":", 1)[1].strip().rstrip("/"))
            if not self.alive() or time.monotonic() >= deadline:
                return None
            time.sleep(0.002)

    def stop(self, grace: float = 10.0) -> None:
        pids = descendants(self.pid)
        for p in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(_alive(p) for p in pids):
            with contextlib.suppress(ChildProcessError):
                self.proc.poll()
            time.sleep(0.05)
        for p in pids:
            if _alive(p):
                say(f"{self.name}: KILL {p}")
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        self._log.close()


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


# ---------- HTTP probes -------------------------------------------------------------------


def start_redis(directory: Path, fsync: str = "everysec") -> tuple[Server, int]:
    """A redis-server of the benchmark's own in `directory` (AOF on, `appendfsync` as asked,
    no snapshots), on a free port, once it accepts connections; exits when it cannot start."""
    port = free_port()
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("this benchmark needs redis-server (apt-get install redis-server)")
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory)]
    argv += ["--save", "", "--appendonly", "yes", "--appendfsync", fsync]
    server = Server("redis-server", argv, directory / "redis.out")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if "Ready to accept connections" in (directory / "redis.out").read_text(errors="replace"):
            return server, port
        time.sleep(0.01)
    server.stop()
    sys.exit("redis-server did not start")


def request(
    port: int, method: str, path: str, body: str | None = None, timeout: float = 3.0
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def wait_ready(
    server: Server, port_of: Callable[[], int | None], probe: Callable[[int], bool], limit: float
) -> tuple[int, float] | None:
    """(port, seconds from launch to the first good answer), polling every 5 ms."""
    deadline = server.started + limit
    port = None
    while time.perf_counter() < deadline and server.alive():
        if port is None:
            port = port_of()
        if port is not None:
            try:
                if probe(port):
                    return port, time.perf_counter() - server.started
            except OSError:
                pass
        time.sleep(0.005)
    return None


# ---------- wrk ---------------------------------------------------------------------------


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        say("wrk is missing: apt-get install -y wrk")
        cmd = ["apt-get", "install", "-y", "-q", "wrk"]
        if subprocess.run(cmd, check=False, timeout=300, capture_output=True).returncode != 0:
            subprocess.run(
                ["apt-get", "update", "-q"], check=False, timeout=300, capture_output=True
            )
            subprocess.run(cmd, check=False, timeout=300, capture_output=True)
        found = shutil.which("wrk")
    if not found:
        sys.exit("bench: wrk is required (Debian: apt-get install -y wrk)")
    return found


def run_wrk(
    port: int,
    method: str,
    path: str,
    body: str = "",
    seconds: float = 10,
    threads: int = 2,
    conns: int = 32,
    sampler: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """One wrk run; returns its BENCHJSON summary plus rps (and calls `sampler` every 0.25 s)."""
    env = dict(os.environ, BENCH_METHOD=method, BENCH_BODY=body, BENCH_TOKEN=TOKEN)
    argv = [
        ensure_wrk(),
        f"-t{threads}",
        f"-c{conns}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "5s",
        "-s",
        str(WRK_LUA),
        f"http://{HOST}:{port}{path}",
    ]
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + seconds + 30
        try:
            while proc.poll() is None:
                if time.monotonic() > deadline:
                    proc.kill()
                    break
                if sampler is not None:
                    sampler()
                time.sleep(0.25)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        out.seek(0)
        text = out.read().decode(errors="replace")
    line = next((x for x in reversed(text.splitlines()) if x.startswith("BENCHJSON ")), None)
    if line is None:
        return {"error": text[-400:]}
    result = json.loads(line.removeprefix("BENCHJSON "))
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    result["sock_errors"] = sum(
        int(result[k]) for k in ("err_connect", "err_read", "err_write", "err_timeout")
    )
    return result


# ---------- output ------------------------------------------------------------------------


def table(header: list[str], rows: list[list[Any]]) -> str:
    cells = [[str(c) for c in row] for row in [header, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]

    def fmt(row: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()

    lines = [fmt(cells[0]), "  ".join("-" * w for w in widths)]
    lines += [fmt(row) for row in cells[1:]]
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": sys.version.split()[0],
    }


def write_results(stem: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = RESULTS / f"{stem}-{stamp}.json"
    text = json.dumps(data, indent=2)
    path.write_text(text + "\n")
    (RESULTS / f"{stem}-latest.json").write_text(text + "\n")
    return path
