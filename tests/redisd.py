"""A real redis-server for the tests: started on a free port in a temporary directory, with
the AOF on, and stopped at the end of the session.

`fsync`: the server a test kills runs with `appendfsync always`, as the README recommends:
Redis fsyncs the AOF before it answers, so a kill -9 of redis-server loses nothing that was
acknowledged. The session's shared server, never killed, keeps `everysec` (no fsync on the
path of every write the suite makes): with it, a kill -9 can lose what Redis answered while
its write of the AOF was postponed behind a slow background fsync (up to 2 s, aof.c).

Without redis-server (a laptop) the Redis tests are skipped with a message that says how to
get it; with LAYERS_MOCK_REDIS_TESTS=required (.ci/run) they fail instead.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REQUIRED = os.environ.get("LAYERS_MOCK_REDIS_TESTS") == "required"
HOW = "install redis-server (apt install redis-server) to run the Redis tests"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RedisServer:
    """One redis-server process; `kill()` and `start()` again keep its directory (and AOF)."""

    directory: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    sandboxes: int = 0
    options: tuple[str, ...] = ()  # more redis-server options (tests/clusterd.py: cluster mode)
    fsync: str = "everysec"  # `appendfsync`: "always" for a server a test kills (see above)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def sandbox(self) -> str:
        """A URL naming a sandbox no other test uses (the server is shared by the session)."""
        self.sandboxes += 1
        return f"{self.url}?sandbox=t{self.sandboxes}"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not on PATH")
        self.port = self.port or _free_port()
        # redis-server says when it accepts connections the way it tells systemd (sd_notify,
        # `--supervised systemd`): a datagram on NOTIFY_SOCKET. Waiting on that socket blocks
        # until the server is ready, with no polling loop and no sleep.
        notify_path = self.directory / "notify.sock"
        notify_path.unlink(missing_ok=True)
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
            notify.bind(str(notify_path))
            notify.settimeout(10)
            self.process = subprocess.Popen(
                [
                    binary,
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--dir",
                    str(self.directory),
                    "--save",
                    "",
                    "--appendonly",
                    "yes",
                    "--appendfsync",
                    self.fsync,
                    "--daemonize",
                    "no",
                    "--supervised",
                    "systemd",
                    "--logfile",
                    str(self.directory / "redis.log"),
                    *self.options,
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env={**os.environ, "NOTIFY_SOCKET": str(notify_path)},
            )
            try:
                while b"READY=1" not in notify.recv(4096):
                    pass
            except TimeoutError:
                log = (self.directory / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"redis-server did not start: {log}") from None

    def kill(self) -> None:
        """kill -9: no shutdown, no last save; what survives is what the AOF had."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
            self.process = None


@contextlib.contextmanager
def started(fsync: str = "everysec") -> Iterator[RedisServer]:
    with tempfile.TemporaryDirectory(prefix="layers-mock-redis-") as directory:
        server = RedisServer(Path(directory), fsync=fsync)
        try:
            server.start()
        except RuntimeError as exc:
            if REQUIRED:
                pytest.fail(f"LAYERS_MOCK_REDIS_TESTS=required, but: {exc}")
            pytest.skip(f"{exc}: {HOW}")
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """The session's shared server: tests keep apart by sandbox name (`sandbox()`)."""
    with started() as server:
        yield server
