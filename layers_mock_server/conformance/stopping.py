"""A run asked to stop from outside (SIGTERM: a CI job's timeout) ends at its next request or
clause as Ctrl-C ends it: interrupted, its reports written, exit 2.

The signal handler only sets a flag. An exception raised from a handler lands wherever the main
thread happens to be: inside a library that swallows it (the run went on to the end and exited
0) or outside every handler of the runner (the process died of it, no report written)."""

from __future__ import annotations

import threading

REQUESTED = threading.Event()


def check() -> None:
    """Stop here, where the runner handles it (a request about to go, a clause about to start),
    if a stop was asked for."""
    if REQUESTED.is_set():
        raise KeyboardInterrupt
