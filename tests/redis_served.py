"""`layers-mock serve` on a Redis sandbox in a subprocess, and what the tests read of the
sandbox's liveness marks (stores/redis_serving.py)."""

from __future__ import annotations

import contextlib
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import redis
from served import BANNER_TIMEOUT_S
from support import SEED

from layers_mock_server.cli import main

LIVENESS_S = 60  # a wait only a hung or broken server reaches


# `serve` with multiprocessing's default start method set first (its argv[1]), as Python 3.14
# does on Linux (forkserver) and macOS does (spawn).
WITH_START_METHOD = """import multiprocessing, sys
multiprocessing.set_start_method(sys.argv.pop(1), force=True)
from layers_mock_server.cli import main
sys.exit(main(sys.argv[1:]))"""


class Serve:
    """`layers-mock serve` in a subprocess, found through its banner."""

    def __init__(self, *args: str, start_method: str | None = None) -> None:
        command = [sys.executable, "-m", "layers_mock_server.cli", "serve", "--port", "0"]
        if start_method is not None:
            command[1:3] = ["-c", WITH_START_METHOD, start_method]
        command += ["--clock", "virtual", "--seed", str(SEED), *args]
        self.proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        first = self.lines.get(timeout=BANNER_TIMEOUT_S)
        assert first.startswith("layers-mock listening on http://127.0.0.1:"), first
        self.url = first.split()[-1]

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)


DEFAULT_FIXTURES = Path(__file__).resolve().parents[1] / "layers_mock_server/fixtures/default.yaml"
OTHER_FLAGS = ("--seed", "8", "--clock", "wall", "--speed", "60", "--progression", "poll")


def refused_with(url: str, capsys: pytest.CaptureFixture[str], *flags: str) -> str:
    """`serve` on the sandbox with `flags`: refused before it listens, exit code 2, one
    sentence on stderr (returned), nothing on stdout."""
    argv = ["serve", "--port", "0", "--state", url, "--clock", "virtual", "--seed", str(SEED)]
    assert main([*argv, *flags]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"layers-mock: --state {url}: the sandbox "), err
    assert "stop those workers" in err and "start this one with their flags" in err, err
    assert "use another sandbox (?sandbox=NAME) or database in --state" in err, err
    return err


def marks(url: str) -> dict[bytes, float]:
    """The sandbox's liveness marks: worker -> when it runs out (ms, Redis's clock)."""
    name = url.partition("sandbox=")[2] or "default"
    with contextlib.closing(redis.Redis.from_url(url.partition("?")[0])) as client:
        return dict(client.zrange(f"{{lm:{name}}}:workers", 0, -1, withscores=True))


def run_out(url: str) -> None:
    """Every liveness mark runs out now, as it does LIVE_MS after a killed worker's last
    beat: Redis drops it at the next start (the test moves its time, not the clock)."""
    name = url.partition("sandbox=")[2] or "default"
    with contextlib.closing(redis.Redis.from_url(url.partition("?")[0])) as client:
        for worker in marks(url):
            client.zadd(f"{{lm:{name}}}:workers", {worker: 0}, xx=True)
