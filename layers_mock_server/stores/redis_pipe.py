"""Commands to Redis sent without waiting for their answers: the worker goes on meanwhile.

A worker on Redis spends most of a round trip waiting: for Redis to run the script, and with
`appendfsync always` for the disk. With redis-py's synchronous client the whole worker waits
with it; with its asyncio client one command waits for its answer before the next is read
(a request-response connection). What the shared gate (http/shared.py) needs is a pipeline
that stays open: commit N+1 is sent while commit N is still running, its requests already
answered by the copy, and answers come back in the order the commands went, which is what
Redis guarantees on one connection.

So a `Pipe` is one socket, made and greeted (AUTH, SELECT) by redis-py's own `Connection`,
then read without blocking by the event loop (`add_reader`), replies parsed by hiredis, each
handed to the future of the command it answers, in order. Sending never blocks either: what
the socket does not take now waits for `add_writer`. The hot scripts are loaded on every new
connection ahead of anything else, so EVALSHA finds them after a Redis restart.

Any failure (the connection closed, no answer within `timeout`, a reply that is not RESP)
fails every command in flight with `OutcomeUnknown` and closes the socket; the next command
connects again (a connection refused fails only that command, which was not sent). A command
whose answer is lost may have run: the write script's compare-and-append refuses anything sent
after it that counted on it, and the client is told its write may have been kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from ..core.store import OutcomeUnknown, StoreUnavailable


class Pipe:
    """One connection with many commands in flight (see the module docstring)."""

    def __init__(
        self, make: Callable[[], Any], scripts: list[str], where: str, timeout: float
    ) -> None:
        self.make = make  # a redis-py Connection, not connected yet
        self.scripts = scripts  # their text: SCRIPT LOAD on each new connection
        self.where = where
        self.timeout = timeout
        self.conn: Any = None
        self.sock: Any = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.reader: Any = None
        self.waiting: deque[tuple[float, asyncio.Future[Any]]] = deque()
        self.unsent = bytearray()
        self.watch: asyncio.TimerHandle | None = None

    def call(self, *args: Any) -> asyncio.Future[Any]:
        """Send one command now; its future gets the answer (a ReplyError as an exception)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        try:
            if self.sock is None or self.loop is not loop:
                self._connect(loop)
            self._send(args, future)
        except StoreUnavailable as exc:
            future.set_exception(exc)
        return future

    def close(self) -> None:
        self._fail(OutcomeUnknown(f"{self.where} is not open"))

    # -- inside -----------------------------------------------------------------------------

    def _connect(self, loop: asyncio.AbstractEventLoop) -> None:
        import hiredis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self._fail(OutcomeUnknown(f"{self.where}: the connection was replaced"))
        conn = self.make()
        conn.retry = Retry(NoBackoff(), 0)  # the worker waits on a connect: once, not backing off
        try:
            conn.connect()  # redis-py's handshake: AUTH, SELECT, on a blocking socket
        except Exception as exc:
            with contextlib.suppress(Exception):
                conn.disconnect()
            raise StoreUnavailable(_reason(self.where, exc)) from None
        self.conn, self.sock, self.loop = conn, conn._sock, loop
        self.reader = hiredis.Reader()
        self.sock.setblocking(False)
        loop.add_reader(self.sock.fileno(), self._readable)
        for script in self.scripts:  # answers checked like any other: an error fails all
            loaded: asyncio.Future[Any] = loop.create_future()
            loaded.add_done_callback(_seen)  # the command behind it reports a failure
            self._send(("SCRIPT", "LOAD", script), loaded)

    def _send(self, args: tuple[Any, ...], future: asyncio.Future[Any]) -> None:
        packed = b"".join(self.conn.pack_command(*args))
        self.waiting.append((time.monotonic(), future))
        if self.watch is None:
            self._watch()
        if self.unsent:
            self.unsent += packed
            return
        try:
            sent = self.sock.send(packed)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:  # this one was not sent; those before it may have run
            self.waiting.pop()
            future.set_exception(StoreUnavailable(_reason(self.where, exc)))
            self._fail(OutcomeUnknown(_reason(self.where, exc)))
            return
        if sent < len(packed):
            self.unsent += packed[sent:]
            assert self.loop is not None
            self.loop.add_writer(self.sock.fileno(), self._writable)

    def _writable(self) -> None:
        try:
            sent = self.sock.send(self.unsent)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._fail(OutcomeUnknown(_reason(self.where, exc)))
            return
        del self.unsent[:sent]
        if not self.unsent and self.loop is not None:
            self.loop.remove_writer(self.sock.fileno())

    def _readable(self) -> None:
        try:
            data = self.sock.recv(1 << 16)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._fail(OutcomeUnknown(_reason(self.where, exc)))
            return
        if not data:
            self._fail(OutcomeUnknown(f"{self.where}: Connection closed by server."))
            return
        self.reader.feed(data)
        try:
            while (reply := self.reader.gets()) is not False:
                if not self.waiting:  # an answer to nothing: this is not the Redis we spoke to
                    raise ValueError("an answer no command asked for")
                _, future = self.waiting.popleft()
                if future.done():
                    continue
                if isinstance(reply, Exception):
                    future.set_exception(StoreUnavailable(_reason(self.where, reply)))
                    if str(reply).startswith("NOSCRIPT"):  # flushed: load them again
                        self._fail(OutcomeUnknown(_reason(self.where, reply)))
                        return
                else:
                    future.set_result(reply)
        except Exception as exc:  # hiredis.ProtocolError, or the above
            self._fail(OutcomeUnknown(_reason(self.where, exc)))

    def _watch(self) -> None:
        """Fail everything when the oldest command has waited `timeout` for its answer."""
        self.watch = None
        if not self.waiting or self.loop is None:
            return
        late = self.waiting[0][0] + self.timeout - time.monotonic()
        if late <= 0:
            self._fail(OutcomeUnknown(f"{self.where}: Timeout reading from socket"))
            return
        self.watch = self.loop.call_later(late, self._watch)

    def _fail(self, exc: OutcomeUnknown) -> None:
        waiting, self.waiting = self.waiting, deque()
        if self.sock is not None and self.loop is not None:
            with contextlib.suppress(Exception):
                self.loop.remove_reader(self.sock.fileno())
                self.loop.remove_writer(self.sock.fileno())
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.disconnect()
        if self.watch is not None:
            self.watch.cancel()
            self.watch = None
        self.conn = self.sock = None
        self.unsent.clear()
        for _, future in waiting:
            if not future.done():
                future.set_exception(exc)


def _seen(future: asyncio.Future[Any]) -> None:
    """Mark a failure as handled: else asyncio prints it on stderr when the future goes."""
    if not future.cancelled():
        future.exception()


def _reason(where: str, exc: BaseException) -> str:
    text = str(exc)
    if "maxmemory" in text:  # OOM: the whole script was refused before it ran
        return f"{where} is full: {text}"
    return f"{where}: {text or type(exc).__name__}"
