"""A TCP proxy in front of a redis-server that a test makes slow or silent, at the moment it
chooses (tests/redis/test_reconnect.py): what a blackholed or stalled Redis looks like from a
worker, without waiting on any clock.

- `hold()`: connections made from now on are accepted and then wait, forwarding nothing,
  until `release()`: a Redis that takes its time to greet (a slow network, a busy server).
- `swallow()`: every byte sent or answered on the connections open now, and on any made
  later, vanishes, and no connection is ever closed: a host that fell off the network.
- `deafen()`: what the worker sends still reaches Redis, which runs it, but its answers vanish
  (on the connections open now and on any made later), and nothing closes: an answer lost on
  its way back, after the command ran.
- `restore()`: connections made from now on reach Redis again (those swallowed stay dead).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType


class _Link:
    __slots__ = ("dead", "deaf", "sockets")

    def __init__(self, dead: bool, deaf: bool) -> None:
        self.dead = dead
        self.deaf = deaf  # Redis's answers vanish (what is sent to it still arrives)
        self.sockets: list[socket.socket] = []


class Blackhole:
    def __init__(self, port: int) -> None:
        self.target = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.silent = False
        self.deaf = False
        self.opened = threading.Event()
        self.opened.set()
        self.links: list[_Link] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, sandbox: str) -> str:
        return f"redis://127.0.0.1:{self.port}/0?sandbox={sandbox}"

    def hold(self) -> None:
        self.opened.clear()

    def release(self) -> None:
        self.opened.set()

    def swallow(self) -> None:
        with self.lock:
            self.silent = True
            for link in self.links:
                link.dead = True

    def deafen(self) -> None:
        with self.lock:
            self.deaf = True
            for link in self.links:
                link.deaf = True

    def restore(self) -> None:
        with self.lock:
            self.silent = self.deaf = False
        self.deaf = False
        self.opened.set()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:  # closed: the test is over
                return
            with self.lock:
                link = _Link(self.silent, self.deaf)
                link.sockets.append(client)
                self.links.append(link)
            threading.Thread(target=self._serve, args=(link, client), daemon=True).start()

    def _serve(self, link: _Link, client: socket.socket) -> None:
        self.opened.wait()
        if link.dead:  # made while swallowing: whatever it sends goes nowhere
            with contextlib.suppress(OSError):
                while client.recv(1 << 16):
                    pass
            return
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target))
        except OSError:
            client.close()
            return
        link.sockets.append(upstream)
        answers = threading.Thread(target=self._pump, args=(link, upstream, client, True))
        answers.daemon = True
        answers.start()
        self._pump(link, client, upstream, False)

    @staticmethod
    def _pump(link: _Link, source: socket.socket, sink: socket.socket, answers: bool) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(1 << 16):
                if not link.dead and not (answers and link.deaf):
                    sink.sendall(data)
        if not link.dead and not link.deaf:  # a swallowed connection is never seen to close
            for sock in link.sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.listener.close()
        self.opened.set()
        with self.lock:
            for link in self.links:
                for sock in link.sockets:
                    with contextlib.suppress(OSError):
                        sock.close()

    def __enter__(self) -> Blackhole:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
