"""In-process cost of one request through the whole ASGI app, without sockets or a server.

Drives the app `serve` builds (FrozenHeap around build_app), or with `--app bare` the bare
endpoint of bench/bare.py, with a fake receive/send for the two benchmarked requests (the scope
and body messages granian hands over for wrk's request) and prints microseconds per request;
wrk's numbers add granian's HTTP handling and the kernel's loopback on top. For profiling:

    .venv/bin/python bench/inproc.py --n 20000
    .venv/bin/python bench/inproc.py --app bare
    .venv/bin/py-spy record -o /tmp/get.svg -- .venv/bin/python bench/inproc.py --only get
    # instructions per request, whatever else the machine does: the difference of two counts
    valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.%p \
        .venv/bin/python bench/inproc.py --only get --n 2000 --rounds 1
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import CREATE_BODY, CREATE_PATH, TOKEN


def _scope(method: str, path: str, body: bytes) -> dict[str, Any]:
    """The scope granian hands over for wrk's request (ports as strings, as granian has them)."""
    headers = [
        (b"host", b"127.0.0.1:8080"),
        (b"authorization", f"Bearer {TOKEN}".encode()),
    ]
    if body:
        headers += [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "extensions": {"http.response.pathsend": {}},
        "server": ("127.0.0.1", "8080"),
        "client": ("127.0.0.1", "50000"),
        "scheme": "http",
        "method": method,
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": headers,
        "state": {},
    }


def _receiver(body: bytes) -> Any:
    """granian's body messages: the body with more_body set, then an empty last one."""

    async def receive() -> dict[str, Any]:
        nonlocal left
        left -= 1
        if left:
            return {"type": "http.request", "body": body, "more_body": True}
        left = 2
        return {"type": "http.request", "body": b"", "more_body": False}

    left = 2
    return receive


async def _run(
    app: Any, method: str, path: str, body: bytes, n: int, rounds: int = 5
) -> tuple[float, int]:
    """(µs per request, last status): the best of `rounds` blocks of n/rounds requests, since
    the machine's other tenants move a single block by 30 %."""
    best = float("inf")
    status = 0
    for _ in range(rounds):
        us, status = await _block(app, method, path, body, max(1, n // rounds))
        best = min(best, us)
    return best, status


async def _block(app: Any, method: str, path: str, body: bytes, n: int) -> tuple[float, int]:
    """(µs per request, last status) over `n` requests."""
    sent: list[dict[str, Any]] = []
    receive = _receiver(body)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    status = 0
    t0 = time.perf_counter()
    for _ in range(n):
        sent.clear()
        await app(_scope(method, path, body), receive, send)
        status = sent[0]["status"]
    return (time.perf_counter() - t0) / n * 1e6, status


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--only", choices=("create", "get"), default=None)
    parser.add_argument("--app", choices=("mock", "bare"), default="mock")
    parser.add_argument("--rounds", type=int, default=5, help="blocks; the best one counts")
    parser.add_argument("--warm", type=int, default=1000, help="requests before measuring")
    args = parser.parse_args(argv)
    if args.app == "bare":
        from bare import app
    else:
        from layers_mock_server.http.app import build_app
        from layers_mock_server.http.heap import FrozenHeap
        from layers_mock_server.settings import Settings, make_deps

        app = FrozenHeap(build_app(make_deps(Settings())))
    body = CREATE_BODY.encode()
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(_scope("POST", CREATE_PATH, body), _receiver(body), send)
    job_path = json.loads(sent[1]["body"])["locationUrl"]
    if args.only in (None, "create"):
        await _run(app, "POST", CREATE_PATH, body, args.warm, 1)  # warm caches and validators
        us, status = await _run(app, "POST", CREATE_PATH, body, args.n, args.rounds)
        print(f"{args.app} create  {us:7.1f} us/request  (status {status})")
    if args.only in (None, "get"):
        await _run(app, "GET", job_path, b"", args.warm, 1)
        us, status = await _run(app, "GET", job_path, b"", args.n, args.rounds)
        print(f"{args.app} get job {us:7.1f} us/request  (status {status})")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
