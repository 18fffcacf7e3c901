"""The `drop` fault: close the client's TCP connection without an HTTP answer.

ASGI has no message for "close the connection now", and granian offers no handle on it (an app
that returns or raises without answering gets a 500 from it). What any server running the app
in its own process shares with it is the file descriptors: the connection's socket is the one
whose local and peer addresses are the request's `server` and `client`. Shutting it down in
both directions makes the client read end-of-file before any status line (the connection is
dropped, as a crashed upstream or a load balancer would drop it), and the server's own write
of whatever follows then fails on a dead socket. A descriptor is duplicated before it is
looked at, so the server's own handle is never closed here.

Linux exposes the descriptors in /proc/self/fd, macOS and the BSDs in /dev/fd. The scan costs
one system call per open descriptor, paid only by requests that ask to be dropped.
"""

from __future__ import annotations

import contextlib
import os
import socket
from typing import Any

_FD_DIRS = ("/proc/self/fd", "/dev/fd")


def _address(pair: Any) -> tuple[str, int] | None:
    if not pair:
        return None
    host, port = pair[0], pair[1]
    try:
        return str(host), int(port)  # granian gives the port as a string
    except (TypeError, ValueError):
        return None


def drop_connection(scope: dict[str, Any]) -> bool:
    """Shut down the TCP connection `scope` arrived on; False if it could not be found."""
    peer, local = _address(scope.get("client")), _address(scope.get("server"))
    if peer is None or local is None:
        return False
    for folder in _FD_DIRS:
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        return any(_shutdown_if(int(name), peer, local) for name in names)
    return False


def _shutdown_if(fd: int, peer: tuple[str, int], local: tuple[str, int]) -> bool:
    try:
        copy = os.dup(fd)
    except OSError:  # closed since the listing
        return False
    try:
        sock = socket.socket(fileno=copy)
    except OSError:  # not a socket
        os.close(copy)
        return False
    with sock, contextlib.suppress(OSError):
        if (
            sock.type == socket.SOCK_STREAM
            and sock.getpeername()[:2] == peer
            and sock.getsockname()[:2] == local
        ):
            sock.shutdown(socket.SHUT_RDWR)
            return True
    return False
