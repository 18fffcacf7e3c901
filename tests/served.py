"""`layers-mock serve` in a subprocess, for what only a real process can show: a SIGKILL, two
servers on one file, a file-size limit. Found through its banner (the socket is bound before
it is printed), so nothing waits on a timer."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support import SEED

BANNER_TIMEOUT_S = 60


def _pump(stream: Any, lines: queue.Queue[str]) -> None:
    for line in stream:
        lines.put(line)


def serve_command(path: Path | None, *extra: str) -> list[str]:
    """`serve` on a state file, or in memory when `path` is None."""
    state = "memory" if path is None else f"sqlite:{path}"
    command = [sys.executable, "-m", "layers_mock_server.cli", "serve", "--state", state]
    command += ["--clock", "virtual", "--port", "0", "--seed", str(SEED), "--host", "127.0.0.1"]
    return [*command, *extra]


class Served:
    """`layers-mock serve --state sqlite:PATH` (or memory) in a subprocess."""

    def __init__(
        self, path: Path | None, preexec: Callable[[], None] | None = None, *extra: str
    ) -> None:
        self.proc = subprocess.Popen(
            serve_command(path, *extra),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=preexec,  # noqa: PLW1509 - a resource limit, set before exec
        )
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=_pump, args=(self.proc.stdout, lines), daemon=True).start()
        first = lines.get(timeout=BANNER_TIMEOUT_S)
        assert first.startswith("layers-mock listening on http://127.0.0.1:"), first
        self.url = first.split()[-1]

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        assert self.proc.returncode == -signal.SIGKILL


class Servers:
    """Starts servers for one test and kills whatever is left when it ends."""

    def __init__(self) -> None:
        self.started: list[Served] = []

    def __call__(
        self,
        path: Path | None,
        preexec: Callable[[], None] | None = None,
        memory: bool = False,
        extra: tuple[str, ...] = (),
    ) -> Served:
        served = Served(None if memory else path, preexec, *extra)
        self.started.append(served)
        return served

    def close(self) -> None:
        for leftover in self.started:
            if leftover.proc.poll() is None:
                leftover.kill()


@pytest.fixture
def servers() -> Iterator[Servers]:
    started = Servers()
    yield started
    started.close()


def pipelined(url: str, requests: list[bytes], window: int = 200) -> list[int]:
    """Raw HTTP/1.1 requests, `window` at a time on one connection (pipelining): thousands of
    requests cost the server, not the client. Returns the statuses in order."""
    import socket

    host, port = url.removeprefix("http://").split(":")
    statuses: list[int] = []
    with socket.create_connection((host, int(port)), timeout=60) as conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def receive() -> bytes:  # an ACK at once: delayed ACKs stall each window ~40 ms
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
            return conn.recv(1 << 16)

        buffer = b""
        for start in range(0, len(requests), window):
            batch = requests[start : start + window]
            conn.sendall(b"".join(batch))
            for _ in batch:
                while b"\r\n\r\n" not in buffer:
                    buffer += receive()
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                lines = head.split(b"\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in lines
                    if line.lower().startswith(b"content-length:")
                )
                while len(buffer) < length:
                    buffer += receive()
                buffer = buffer[length:]
                statuses.append(int(lines[0].split()[1]))
    return statuses
