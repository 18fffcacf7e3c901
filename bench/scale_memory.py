"""Memory, durability cost and state round trips for bench/scale.py (issue 9).

    records    RSS a running server gains per stored record of each kind: an influencer with
               its job (plain creates), an idempotency record (keyed minus plain creates), a
               journal entry (a journal of 200,000 entries, filled as the pipeline fills it)
    mixed      RSS of a server after 200,000 ... 1,000,000 mixed requests: a partner test suite
               in a loop, each session resetting its organization first, as suites do between
               tests; flat means nothing grows per request (journal, idempotency records, rate
               windows, caches, counters)
    commit     what `--state sqlite:` adds to a create: in-process, create + commit per request,
               against the memory store
    roundtrip  export, import and the SQLite file at 1,000,000 influencers: times, sizes, peak RSS

Requests go to a real `layers-mock serve` (uvicorn, memory store) over raw HTTP/1.1 with
pipelining, so the client costs little and the server's allocation pattern is the one users
get (the 4 KB-per-record effect of issue 9 D8 shows under uvicorn, not in-process).
"""

from __future__ import annotations

import gc
import os
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import PROJECT, TOKEN, Server, say, tree_kb

ACME = "org_3f6c2a8e-1b7d-4c59-9e0a-5d4b8c7f1a23"
CREATE = f"/v1/projects/{PROJECT}/influencers"


def raw(method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Authorization: Bearer {TOKEN}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if body:
        lines.append("Content-Type: application/json")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Pipe:
    """One keep-alive connection; `send` writes a window of requests, then reads its answers."""

    def __init__(self, port: int) -> None:
        self.conn = socket.create_connection(("127.0.0.1", port), timeout=120)
        self.conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""
        self.sent = 0

    def _recv(self) -> bytes:
        # Acknowledge at once: with delayed ACKs, each window of pipelined requests stalls
        # ~40 ms on the server's Nagle (measured: 2.2 ms per request at a window of 20).
        self.conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        return self.conn.recv(1 << 20)

    def send(self, requests: list[bytes]) -> list[tuple[int, bytes]]:
        self.conn.sendall(b"".join(requests))
        self.sent += len(requests)
        answers = []
        for _ in requests:
            while b"\r\n\r\n" not in self.buffer:
                self.buffer += self._recv()
            head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            length = next(
                int(x.split(b":", 1)[1]) for x in lines if x.lower().startswith(b"content-length:")
            )
            while len(self.buffer) < length:
                self.buffer += self._recv()
            body, self.buffer = self.buffer[:length], self.buffer[length:]
            answers.append((int(lines[0].split()[1]), body))
        return answers

    def close(self) -> None:
        self.conn.close()


def serve(workdir: Path, name: str, *flags: str) -> tuple[Server, int]:
    argv = [
        sys.executable,
        "-m",
        "layers_mock_server.cli",
        "serve",
        "--port",
        "0",
        "--clock",
        "virtual",
    ]
    server = Server(name, [*argv, *flags], workdir / f"{name}.log")
    port = server.banner_port("layers-mock listening on", timeout=60)
    if port is None:
        server.stop()
        raise SystemExit(f"{name} did not start: {(workdir / f'{name}.log').read_text()[-500:]}")
    return server, port


def _rss_bytes(pid: int) -> int:
    return tree_kb(pid) * 1024


def _creates(pipe: Pipe, count: int, keyed: str | None, window: int = 500) -> None:
    for start in range(0, count, window):
        batch = [
            raw("POST", CREATE, {"Idempotency-Key": f"{keyed}-{n}"} if keyed else None)
            for n in range(start, min(start + window, count))
        ]
        statuses = {status for status, _ in pipe.send(batch)}
        assert statuses == {202}, statuses


def records(workdir: Path, count: int = 100_000) -> dict[str, Any]:
    """Bytes of RSS per stored record of each kind, on a real server."""
    out: dict[str, Any] = {"records": count}
    for kind in ("plain", "keyed"):
        server, port = serve(workdir, f"records-{kind}")
        try:
            pipe = Pipe(port)
            _creates(pipe, 5_000, "warm" if kind == "keyed" else None)  # journal full, caches warm
            before = _rss_bytes(server.pid)
            _creates(pipe, count, "k" if kind == "keyed" else None)
            out[f"{kind}_create_bytes"] = round((_rss_bytes(server.pid) - before) / count)
            pipe.close()
        finally:
            server.stop()
    out["idempotency_record_bytes"] = out["keyed_create_bytes"] - out["plain_create_bytes"]
    out["journal_entry_bytes"] = journal_entry_bytes()
    return out


def journal_entry_bytes(count: int = 100_000) -> dict[str, int]:
    """In-process: a journal of `count` entries (its own bounds lifted), filled with the values
    a create leaves, without and with bodies (`--journal-bodies`)."""
    from layers_mock_server.core.journal import Journal

    def rss() -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    request_headers = [
        (b"host", b"127.0.0.1:4010"),
        (b"authorization", f"Bearer {TOKEN}".encode()),
        (b"content-type", b"application/json"),
        (b"content-length", b"72"),
    ]
    out: dict[str, int] = {}
    for bodies in (False, True):
        journal = Journal(capacity=count, bodies=bodies, max_bytes=1 << 40)
        gc.collect()
        before = rss()
        for n in range(count):
            job = f"job_01KDTZ8H{n:018d}"
            response_headers = [
                (b"x-request-id", f"req_01KDTZ8H{n:018d}".encode()),
                (b"location", f"/v1/jobs/{job}".encode()),
            ]
            response = ('{"jobId":"' + job + '","kind":"influencer_create"}').encode() * 6
            journal.add(
                1_767_225_600_000 + n,
                "POST",
                CREATE,
                "",
                202,
                f"req_01KDTZ8H{n:018d}",
                "key_0f1e2d3c-4b5a-4968-8776-655443322110",
                "createInfluencer",
                None,
                (request_headers, bytes(72), response_headers, response),
            )
        gc.collect()
        out["with_bodies" if bodies else "plain"] = round((rss() - before) / count)
        del journal
    return out


def _session(pipe: Pipe, n: int) -> int:
    """One test of a partner suite: reset its organization, then create, poll, read, list,
    patch, replay, cancel, delete and get the usual errors wrong. Returns requests sent."""
    key = f"s{n}"
    first = pipe.send(
        [
            raw("POST", "/_mock/reset", body=f'{{"organizationId":"{ACME}"}}'.encode()),
            raw("POST", CREATE, {"Idempotency-Key": f"{key}-a"}, b'{"gender":"male"}'),
            raw("POST", CREATE, {"Idempotency-Key": f"{key}-b"}),
            raw("POST", CREATE, body=b'{"prompt":"barista energy"}'),
        ]
    )
    ids = [_field(body, b"jobId") for _, body in first[1:]]
    infs = [_field(body, b"influencerId") for _, body in first[1:]]
    batch = [raw("GET", f"/v1/jobs/{ids[i % 3]}") for i in range(12)]
    batch += [raw("GET", f"/v1/influencers/{infs[i % 3]}") for i in range(6)]
    batch += [raw("GET", f"{CREATE}?limit=2")] * 3 + [raw("GET", "/v1/whoami")] * 4
    batch += [
        raw(
            "PATCH", f"/v1/influencers/{infs[0]}", {"Idempotency-Key": f"{key}-p"}, b'{"name":"N"}'
        ),
        raw(
            "PATCH", f"/v1/influencers/{infs[0]}", {"Idempotency-Key": f"{key}-p"}, b'{"name":"N"}'
        ),
        raw("POST", CREATE, {"Idempotency-Key": f"{key}-a"}, b'{"gender":"male"}'),  # replay
        raw("POST", f"/v1/jobs/{ids[1]}/cancel"),
        raw("DELETE", f"/v1/influencers/{infs[2]}", {"Idempotency-Key": f"{key}-d"}),
        raw("GET", "/v1/jobs/job_00000000000000000000000000"),
        raw("POST", CREATE, body=b'{"gender":"robot"}'),
        raw("GET", f"/v1/influencers/{infs[2]}"),
        raw("GET", "/_mock/requests?limit=5"),
    ]
    pipe.send(batch)
    return len(first) + len(batch)


def _field(body: bytes, name: bytes) -> str:
    start = body.index(b'"' + name + b'":"') + len(name) + 4
    return body[start : body.index(b'"', start)].decode()


def mixed(workdir: Path, total: int = 1_000_000, every: int = 200_000) -> dict[str, Any]:
    server, port = serve(workdir, "mixed")
    samples: list[dict[str, Any]] = []
    try:
        pipe = Pipe(port)
        sent, session, mark = 0, 0, every
        started = time.perf_counter()
        while sent < total:
            sent += _session(pipe, session)
            session += 1
            if sent >= mark:
                rss = round(_rss_bytes(server.pid) / 1024**2, 1)
                samples.append({"requests": sent, "rss_mb": rss})
                say(f"mixed: {sent:,} requests, RSS {rss} MB")
                mark += every
        seconds = time.perf_counter() - started
        pipe.close()
    finally:
        server.stop()
    first, last = samples[0]["rss_mb"], samples[-1]["rss_mb"]
    return {
        "samples": samples,
        "growth": round(last / first, 4),
        "sessions": session,
        "requests_per_s": round(sent / seconds),
    }


def commit_cost(count: int = 20_000) -> dict[str, Any]:
    """µs per create, in-process through the core, with and without an SQLite commit."""
    from layers_mock_server.core.clock import Clock
    from layers_mock_server.core.fixtures import load_fixtures
    from layers_mock_server.core.simulator import JobPlan, Simulator
    from layers_mock_server.statecheck import state_check
    from layers_mock_server.stores.sqlite import SqliteStore

    out: dict[str, Any] = {"creates": count}
    with tempfile.TemporaryDirectory(prefix="layers-mock-commit-") as tmp:
        for name, store in (("memory", None), ("sqlite", SqliteStore(Path(tmp) / "s.sqlite"))):
            sim = Simulator(load_fixtures(), Clock("virtual"), 7, store)
            sim.start(state_check())
            project = sim.state.projects[PROJECT]
            plan = JobPlan()
            started = time.perf_counter()
            for _ in range(count):
                sim.create_influencer(project, {}, plan)
                sim.commit()
            out[f"{name}_us_per_create"] = round((time.perf_counter() - started) / count * 1e6, 1)
            if store is not None:
                store.close()
    out["sqlite_commit_us"] = round(out["sqlite_us_per_create"] - out["memory_us_per_create"], 1)
    return out


def roundtrip(count: int = 1_000_000) -> dict[str, Any]:
    """Export, import and an SQLite file of `count` influencers, through the server's code."""
    from layers_mock_server.core.clock import Clock
    from layers_mock_server.core.fixtures import load_fixtures
    from layers_mock_server.core.layout import StateReader
    from layers_mock_server.core.restore import StateBuilder
    from layers_mock_server.core.simulator import JobPlan, Simulator
    from layers_mock_server.core.snapshot import export_chunks
    from layers_mock_server.statecheck import state_check
    from layers_mock_server.stores.sqlite import SqliteStore

    def hwm_mb() -> float:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
        return 0.0

    out: dict[str, Any] = {"influencers": count}
    sim = Simulator(load_fixtures(), Clock("virtual"), 7)
    project = sim.state.projects[PROJECT]
    t = time.perf_counter()
    for _ in range(count):
        sim.create_influencer(project, {"gender": "male"}, JobPlan())
    sim.state.dirty.clear()
    out["fill_s"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    chunks = list(export_chunks(sim.state, sim.requests, sim.clock))
    out["export_s"] = round(time.perf_counter() - t, 1)
    out["export_mb"] = round(sum(len(c) for c in chunks) / 1024**2, 1)
    t = time.perf_counter()
    builder = StateBuilder(state_check())
    reader = StateReader(builder)
    for chunk in chunks:
        reader.feed(chunk)
    reader.end()
    restored = builder.finish()
    out["import_s"] = round(time.perf_counter() - t, 1)
    assert len(restored.state.influencers) == count
    del chunks, builder, reader
    with tempfile.TemporaryDirectory(prefix="layers-mock-roundtrip-") as tmp:
        path = Path(tmp) / "state.sqlite"
        store = SqliteStore(path)
        target = Simulator(load_fixtures(), Clock("virtual"), 7, store)
        target.start(state_check())
        t = time.perf_counter()
        target.restore(restored)  # what PUT /_mock/state does once the document is checked
        out["sqlite_write_s"] = round(time.perf_counter() - t, 1)
        store.close()
        out["sqlite_mb"] = round(sum(f.stat().st_size for f in Path(tmp).iterdir()) / 1024**2, 1)
        del restored, target
        gc.collect()
        t = time.perf_counter()
        reopened = SqliteStore(path)
        again = Simulator(load_fixtures(), Clock("virtual"), 7, reopened)
        again.start(state_check())  # what a restart does
        out["sqlite_load_s"] = round(time.perf_counter() - t, 1)
        assert len(again.state.influencers) == count
        reopened.close()
    out["peak_rss_mb"] = hwm_mb()
    out["pid"] = os.getpid()
    return out
