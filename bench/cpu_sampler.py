"""Where a serving mock's event loop spends its CPU: Python stacks weighted by CPU time.

    .venv/bin/python bench/cpu_sampler.py OUT serve --port 0 --state redis://...   # run
    kill -USR1 PID; ...load...; kill -USR2 PID                  # sample between the two
    .venv/bin/python bench/cpu_sampler.py --top OUT REQUESTS    # µs per request, by function

The mock runs as `layers-mock` would (one worker: the app's loop is the main thread). From
SIGUSR1 to SIGUSR2, every SIGPROF (the process's CPU clock, ticking at the kernel's rate) takes
the main thread's Python stack and weighs it with the main thread's own CPU time since the last
one; SIGUSR2 writes the stacks, collapsed (`f;g;h µs`, flamegraph.pl reads it). Time in C under
a Python frame (a syscall, orjson) counts for that frame; the loop's own C (epoll, handles) shows
as `(loop)`. py-spy misled here: in its default mode a sample lands where the process next
enters the kernel (syscalls look several times dearer than they are), and with --nonblocking
it counts a thread preempted by Redis or wrk as busy.
"""

from __future__ import annotations

import collections
import signal
import sys
import time
from pathlib import Path
from types import FrameType

STACKS: collections.defaultdict[tuple[str, ...], float] = collections.defaultdict(float)
LAST = [0.0]
TICK_S = 0.001  # asked for; the kernel ticks at its own rate (4 ms at HZ=250)
SKIP = (
    "<module>",
    "main (cpu_sampler.py)",
    "main (cli.py)",
    "serve (cli.py)",
    "serve (serving.py)",
)


def _sample(_: int, frame: FrameType | None) -> None:
    now = time.thread_time()
    spent, LAST[0] = now - LAST[0], now
    stack = []
    while frame is not None:
        code = frame.f_code
        stack.append(f"{code.co_name} ({code.co_filename.rsplit('/', 1)[-1]})")
        frame = frame.f_back
    STACKS[tuple(reversed(stack))] += spent


def _start(*_: object) -> None:
    STACKS.clear()
    LAST[0] = time.thread_time()
    signal.signal(signal.SIGPROF, _sample)
    signal.setitimer(signal.ITIMER_PROF, TICK_S, TICK_S)


def _stop(out: str) -> None:
    signal.setitimer(signal.ITIMER_PROF, 0, 0)
    with open(out, "w") as f:
        for stack, seconds in STACKS.items():
            f.write(";".join(stack) + f" {round(seconds * 1e6)}\n")


def top(path: str, requests: int, n: int = 40) -> None:
    """Inclusive and own µs per request of each function in a collapsed file."""
    own: collections.defaultdict[str, float] = collections.defaultdict(float)
    total: collections.defaultdict[str, float] = collections.defaultdict(float)
    spent = 0.0
    with open(path) as collapsed:
        lines = collapsed.read().splitlines()
    for line in lines:
        stack, _, weight = line.rpartition(" ")
        frames = [f for f in stack.split(";") if not f.startswith(SKIP)] or ["(loop)"]
        per = int(weight) / requests
        spent += per
        own[frames[-1]] += per
        for f in set(frames):
            total[f] += per
    print(f"main thread: {spent:.1f} µs per request")
    print("  incl.   own  function")
    for name, us in sorted(total.items(), key=lambda item: -item[1])[:n]:
        print(f"{us:7.1f} {own[name]:6.1f}  {name[:90]}")


def main() -> None:
    if sys.argv[1] == "--top":
        top(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]) if len(sys.argv) > 4 else 40)
        return
    out = sys.argv[1]
    here = Path(__file__).resolve().parent  # bench/redis.py would shadow redis-py
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    signal.signal(signal.SIGUSR1, _start)
    signal.signal(signal.SIGUSR2, lambda *_: _stop(out))
    from layers_mock_server.cli import main as cli

    sys.argv = ["layers-mock", *sys.argv[2:]]
    sys.exit(cli())


if __name__ == "__main__":
    main()
