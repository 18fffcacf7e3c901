"""A real redis-server for the tests: started on a free port in a temporary directory, with
the AOF on, and stopped at the end of the session.

`fsync`: the server a test kills runs with `appendfsync always`, as the README recommends:
Redis fsyncs the AOF before it answers, so a kill -9 of redis-server loses nothing that was
acknowledged. The session's shared server, never killed, keeps `everysec` (no fsync on the
path of every write the suite makes): with it, a kill -9 can lose what Redis answered while
its write of the AOF was postponed behind a slow background fsync (up to 2 s, aof.c).

Without redis-server (a laptop) the Redis tests fail with a message that says how to get it
(.ci/run installs it).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import components
import pytest

if TYPE_CHECKING:
    import redis

HOW = "install redis-server (apt install redis-server) to run the Redis tests"


LOWEST_PORT = 20_000
_handed: set[int] = set()  # the ports this session gave a server, bound yet or not


def _ephemeral_low() -> int:
    """Where the kernel's ephemeral ports (its choice for connect() and bind(0)) begin."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768  # Linux's default; macOS's range starts higher still


def _free_port() -> int:
    """A port for a redis-server (or its cluster bus) that no one holds now and that nothing
    else will take before the server binds it or while it is down between a kill and a
    restart: below the ephemeral range (bind(0) handed out ports an outgoing connection could
    take meanwhile), and never one this session gave out already (bind(0) may give the same
    port twice, to two cluster nodes that have not bound theirs yet)."""
    low = _ephemeral_low()
    span = max(1, low - LOWEST_PORT)
    start = os.getpid() % span  # another session on the machine starts elsewhere
    for step in range(span):
        port = LOWEST_PORT + (start + step) % span
        if port in _handed:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue  # someone else's
        _handed.add(port)
        return port
    raise RuntimeError(f"no free port from {LOWEST_PORT} to {low - 1}")


@dataclass
class RedisServer:
    """One redis-server process; `kill()` and `start()` again keep its directory (and AOF)."""

    directory: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    sandboxes: int = 0
    options: tuple[str, ...] = ()  # more redis-server options (tests/clusterd.py: cluster mode)
    fsync: str = "everysec"  # `appendfsync`: "always" for a server a test kills (see above)
    # The log, as redis-server writes it to its stdout: a thread copies it into `redis.log`
    # and wakes whoever waits for a line (`wait_for_log`), so nothing polls the file.
    _log: list[str] = field(default_factory=list)
    _logged: threading.Condition = field(default_factory=threading.Condition)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def sandbox(self) -> str:
        """A URL naming a sandbox no other test uses (the server is shared by the session)."""
        self.sandboxes += 1
        return f"{self.url}?sandbox=t{self.sandboxes}"

    def start(self, ready: bool = True) -> None:
        """Start redis-server and wait until it accepts commands (`ready`: it has loaded its
        data; else only until it was started: it may still be loading, see `wait_for_log`)."""
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
                    "",  # stdout: read by _copy_log
                    *self.options,
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env={**os.environ, "NOTIFY_SOCKET": str(notify_path)},
            )
            threading.Thread(target=self._copy_log, args=(self.process,), daemon=True).start()
            if not ready:
                return
            try:
                while b"READY=1" not in notify.recv(4096):
                    pass
            except TimeoutError:
                log = (self.directory / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"redis-server did not start: {log}") from None

    def _copy_log(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        with process.stdout, (self.directory / "redis.log").open("a") as copy:
            for raw in process.stdout:
                line = raw.decode(errors="replace")
                copy.write(line)
                copy.flush()
                with self._logged:
                    self._log.append(line)
                    self._logged.notify_all()

    def wait_for_log(self, text: str, timeout: float) -> bool:
        """Block until redis-server has logged a line containing `text` (since it was first
        started), or `timeout` seconds passed: False then."""
        with self._logged:
            return self._logged.wait_for(lambda: any(text in line for line in self._log), timeout)

    def wait_for_logs(self, text: str, count: int, timeout: float) -> bool:
        """`wait_for_log` for the `count`th line containing `text` (a node started again
        logs what it logged the first time: its cluster state turning ok)."""
        with self._logged:
            said = self._logged.wait_for(
                lambda: sum(text in line for line in self._log) >= count, timeout
            )
            return bool(said)

    def logged(self, text: str) -> list[str]:
        """The lines redis-server logged (since it was first started) that contain `text`."""
        with self._logged:
            return [line for line in self._log if text in line]

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


def sockets_to(ports: Iterable[int]) -> int:
    """How many of this process's file descriptors are TCP sockets to one of `ports` (on
    127.0.0.1), connected or closed by the peer and not yet by us (CLOSE_WAIT): what a
    worker holds of a Redis, whatever else the test process has open."""
    ours = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # (one closed meanwhile)
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith("socket:["):
                ours.add(target[len("socket:[") : -1])
    wanted = {f"{port:04X}" for port in ports}
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as rows:
            for row in list(rows)[1:]:
                fields = row.split()  # sl, local, remote, state, ..., inode (the 10th)
                if fields[2].rsplit(":", 1)[1] in wanted and fields[9] in ours:
                    count += 1
    return count


def cannot_run(reason: str) -> NoReturn:
    """No redis-server that starts here: tests/components.py (skipped on a laptop without
    it, a failure on CI, which installs it, and wherever it is installed but fails)."""
    components.cannot_run(reason, HOW, missing=shutil.which("redis-server") is None)


@contextlib.contextmanager
def started(fsync: str = "everysec", options: tuple[str, ...] = ()) -> Iterator[RedisServer]:
    with tempfile.TemporaryDirectory(prefix="layers-mock-redis-") as directory:
        server = RedisServer(Path(directory), fsync=fsync, options=options)
        try:
            server.start()
        except RuntimeError as exc:
            cannot_run(str(exc))
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """The session's shared server: tests keep apart by sandbox name (`sandbox()`)."""
    with started() as server:
        yield server


# Redis refusing writes until its operator acts, as context generators for the outage and
# Retry-After tests (`contextlib.contextmanager(full)(operator)`):


def full(operator: redis.Redis) -> Iterator[None]:
    """Full (OOM): maxmemory below what it holds, so every write needs room."""
    operator.config_set("maxmemory", "1")  # less than it holds: every write needs room
    yield
    operator.config_set("maxmemory", "0")


def replica(operator: redis.Redis) -> Iterator[None]:
    """A replica (READONLY), as a failover makes of the old primary."""
    with socket.socket() as nowhere:  # its primary: bound, never listening (never synced)
        nowhere.bind(("127.0.0.1", 0))
        operator.replicaof("127.0.0.1", nowhere.getsockname()[1])
        yield
        operator.replicaof("NO", "ONE")
