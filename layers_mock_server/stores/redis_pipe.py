"""Commands to Redis sent without waiting for their answers: the worker goes on meanwhile.

A worker on Redis spends most of a round trip waiting: for Redis to run the script, and with
`appendfsync always` for the disk. With redis-py's synchronous client the whole worker waits
with it; with its asyncio client one command waits for its answer before the next is read
(a request-response connection). What the shared gate (http/shared.py) needs is a pipeline
that stays open: commit N+1 is sent while commit N is still running, its requests already
answered by the copy, and answers come back in the order the commands went, which is what
Redis guarantees on one connection.

So a `Pipe` is one socket, made and greeted (AUTH, SELECT, HELLO) by redis-py's own
`Connection`, then read without blocking by the event loop (`add_reader`), replies parsed by
hiredis, each handed to the future of the command it answers, in order. Commands are packed by
hiredis too (`hiredis.pack_command`, which redis-py's own packer calls with hiredis installed):
redis-py's wrapper around it looked at every argument of a commit again, a few µs a create.
Sending never blocks either: what the socket does not take now waits for `add_writer`. The hot
scripts are loaded on every new connection ahead of anything else, so EVALSHA finds them after
a Redis restart.

Nor does connecting block the worker: redis-py's handshake is a blocking one (a connect, then
a command and its answer at a time), so it runs in a thread of its own while the event loop
goes on; the commands called meanwhile wait in order behind the script loads, and are sent
once the connection is made. A handshake is redis-py's to do (AUTH or HELLO, CLIENT SETINFO,
SELECT, whatever its options ask for): the pipe does not write its own.

Any failure (the connection closed, no answer within `timeout`, a reply that is not RESP)
fails every command in flight with `OutcomeUnknown` and closes the socket; the next command
connects again. A connection that cannot be made (refused, or not made and greeted within
`timeout`: a blackholed host, a paused Redis) fails the commands waiting for it with
StoreUnavailable: none of them was sent. A command whose answer is lost may have run: the
write script's compare-and-append refuses anything sent after it that counted on it, and the
client is told its write may have been kept.

An error reply is its own command's, and fails only that one. Six say the command did not run
at all (`Refused`, `REFUSALS`): OOM (Redis is full: a script that may write is refused before
it starts), NOSCRIPT (the scripts were flushed, SCRIPT FLUSH, since this connection loaded
them), BUSY (another client's script runs on), LOADING (Redis loads its dataset), MISCONF (it
cannot persist, and takes no write) and READONLY (a replica). The commands sent behind a
NOSCRIPT get their own replies, NOSCRIPT too unless someone loaded the scripts meanwhile, and
the scripts are loaded again ahead of the next command sent (as they are after a SCRIPT LOAD
that Redis refused, busy or loading).

What the pipe last saw of Redis (`reach`) is what `/_mock/health` says of it: health makes no
round trip of its own, so that it answers at once whatever Redis is doing.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from ..core.store import OutcomeUnknown, Reach, Refused, StoreBroken, StoreFull, StoreUnavailable


class Pipe:
    """One connection with many commands in flight (see the module docstring)."""

    def __init__(
        self, make: Callable[[], Any], scripts: list[str], where: str, timeout: float
    ) -> None:
        self.make = make  # a redis-py Connection, not connected yet
        self.scripts = scripts  # their text: SCRIPT LOAD on each new connection
        self.where = where
        self.timeout = timeout
        self.pack: Callable[[tuple[Any, ...]], bytes] = _unpacked  # hiredis's, once connecting
        self.conn: Any = None
        self.sock: Any = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.attempt: object | None = None  # the connection being made, if one is
        self.down: str | None = None  # why Redis could not be reached, until it is again
        self.reader: Any = None
        # Each command in flight: when it was sent, the scripts' loads sent before it, its future.
        self.waiting: deque[tuple[float, int, asyncio.Future[Any]]] = deque()
        self.loads = 0  # SCRIPT LOADs of all `scripts` sent (on this connection and before)
        self.flushed = False  # a NOSCRIPT came after the last load: load them before the next
        self.unsent = bytearray()
        self.watch: asyncio.TimerHandle | None = None

    def call(self, *args: Any) -> asyncio.Future[Any]:
        """Send one command now (or once the connection is made); its future gets the answer
        (a ReplyError as an exception)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if self.loop is not loop:
            self._fail(OutcomeUnknown(f"{self.where}: the connection was replaced"))
            self.loop = loop
        if self.sock is not None and self.flushed:
            self._load()  # (a send that fails here closes the connection: a new one is made)
        if self.sock is None and self.attempt is None:
            self._connect(loop)
        self._send(args, future)
        return future

    def reach(self) -> Reach:
        """What the last round trips said of Redis, and how long the oldest command in
        flight has waited for its answer (no round trip of its own)."""
        waited = time.monotonic() - self.waiting[0][0] if self.waiting else 0.0
        return Reach(self.down is None, self.down, int(waited * 1000))

    def close(self) -> None:
        """Fail what is in flight. A stopping worker's: its event loop runs no more, so no one
        awaits these answers and the callbacks that would look at the failure never run; each
        is marked handled, else asyncio prints "Future exception was never retrieved" for it
        on the worker's stderr when it is collected."""
        in_flight = [future for _, _, future in self.waiting]
        self._fail(OutcomeUnknown(f"{self.where} is not open"))
        for future in in_flight:
            handled(future)

    # -- inside -----------------------------------------------------------------------------

    def _connect(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start making a connection; the commands called meanwhile wait for it in `unsent`,
        behind the scripts' loads (answers checked like any other: an error fails all)."""
        import hiredis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self.pack = hiredis.pack_command
        conn = self.make()
        conn.retry = Retry(NoBackoff(), 0)  # the worker waits on a connect: once, not backing off
        attempt = self.attempt = object()
        self.reader = hiredis.Reader()
        self._load()
        threading.Thread(
            target=self._greet, args=(conn, attempt, loop), name="redis-connect", daemon=True
        ).start()

    def _greet(self, conn: Any, attempt: object, loop: asyncio.AbstractEventLoop) -> None:
        """In a thread of its own: redis-py's blocking connect and handshake (bounded by the
        client's socket timeouts), then the outcome handed to the loop."""
        error: Exception | None = None
        try:
            conn.connect()
        except Exception as exc:
            error = exc
            with contextlib.suppress(Exception):
                conn.disconnect()
        try:
            loop.call_soon_threadsafe(self._connected, conn, attempt, error)
        except RuntimeError:  # the loop is closed: no one waits for this connection
            with contextlib.suppress(Exception):
                conn.disconnect()

    def _connected(self, conn: Any, attempt: object, failed: Exception | None) -> None:
        if attempt is not self.attempt:  # given up meanwhile (timed out, closed, replaced)
            with contextlib.suppress(Exception):
                conn.disconnect()
            return
        self.attempt = None
        if failed is not None:  # none of them was sent (a handshake Redis refused: as it said)
            failure = error(self.where, failed)
            self.down = str(failure)
            self._fail(failure)
            return
        assert self.loop is not None
        self.down = None
        self.conn, self.sock = conn, conn._sock
        self.sock.setblocking(False)
        self.loop.add_reader(self.sock.fileno(), self._readable)
        if self.unsent:
            self.loop.add_writer(self.sock.fileno(), self._writable)

    def _load(self) -> None:
        """SCRIPT LOAD of every script, ahead of whatever is sent next."""
        assert self.loop is not None
        self.loads += 1
        self.flushed = False
        for script in self.scripts:  # a failure shows as the NOSCRIPT of a command after it
            loaded: asyncio.Future[Any] = self.loop.create_future()
            loaded.add_done_callback(self._loaded)
            self._send(("SCRIPT", "LOAD", script), loaded)

    def _loaded(self, loaded: asyncio.Future[Any]) -> None:
        """A SCRIPT LOAD refused (BUSY, LOADING): they are loaded again ahead of the next
        command, else the first one after Redis is back would find no script (NOSCRIPT)."""
        if not loaded.cancelled() and isinstance(loaded.exception(), Refused):
            self.flushed = True

    def _send(self, args: tuple[Any, ...], future: asyncio.Future[Any]) -> None:
        packed = self.pack(args)
        self.waiting.append((time.monotonic(), self.loads, future))
        if self.watch is None:
            self._watch()
        if self.unsent or self.sock is None:  # behind what waits to go (or for a connection)
            self.unsent += packed
            return
        try:
            sent = self.sock.send(packed)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:  # this one was not sent; those before it may have run
            self.waiting.pop()
            future.set_exception(StoreUnavailable(_reason(self.where, exc)))
            self._lost(_reason(self.where, exc))
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
            self._lost(_reason(self.where, exc))
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
            self._lost(_reason(self.where, exc))
            return
        if not data:
            self._lost(f"{self.where}: Connection closed by server.")
            return
        self.reader.feed(data)
        try:
            while (reply := self.reader.gets()) is not False:
                if not self.waiting:  # an answer to nothing: this is not the Redis we spoke to
                    raise ValueError("an answer no command asked for")
                _, loads, future = self.waiting.popleft()
                if isinstance(reply, Exception):
                    if str(reply).startswith("NOSCRIPT") and loads == self.loads:
                        self.flushed = True  # flushed since the last load: load them again
                    if not future.done():
                        future.set_exception(error(self.where, reply))
                elif not future.done():
                    future.set_result(reply)
        except Exception as exc:  # hiredis.ProtocolError, or the above
            self._lost(_reason(self.where, exc))

    def _watch(self) -> None:
        """Fail everything when the oldest command has waited `timeout` for its answer (or,
        not sent yet, for the connection)."""
        self.watch = None
        if not self.waiting or self.loop is None:
            return
        late = self.waiting[0][0] + self.timeout - time.monotonic()
        if late <= 0:
            if self.sock is None:  # the connection is not made yet: nothing was sent
                self.down = f"{self.where}: Timeout connecting to server"
                self._fail(StoreUnavailable(self.down))
            else:
                self._lost(f"{self.where}: Timeout reading from socket")
            return
        self.watch = self.loop.call_later(late, self._watch)

    def _lost(self, reason: str) -> None:
        """Redis could not be reached: every command in flight may have run, or not."""
        self.down = reason
        self._fail(OutcomeUnknown(reason))

    def _fail(self, exc: StoreUnavailable) -> None:
        waiting, self.waiting = self.waiting, deque()
        self.attempt = None  # a connection still being made is closed when it comes
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
        for _, _, future in waiting:
            if not future.done():
                # A closed loop (a stopped server's) cannot schedule the callbacks: the future
                # fails all the same, and the next one too.
                with contextlib.suppress(RuntimeError):
                    future.set_exception(exc)


def _unpacked(args: tuple[Any, ...]) -> bytes:  # pragma: no cover - nothing is sent unconnected
    raise AssertionError("a command packed before any connection was started")


def handled(future: asyncio.Future[Any]) -> None:
    """Mark a failure as handled (a command no one waits for): else asyncio prints it on
    stderr when the future goes."""
    if not future.cancelled():
        future.exception()


# Redis's error codes for a command it refused before running any of it: OOM (full: a script
# that may write is refused before it starts), NOSCRIPT (the scripts were flushed), BUSY
# (another client's script runs past `busy-reply-threshold`: only SCRIPT KILL and SHUTDOWN
# get through), LOADING (it is loading its dataset, after a restart), MISCONF (its last
# snapshot or AOF write failed, and it takes no write until one works), READONLY (a replica),
# NOREPLICAS (fewer replicas in sync than its `min-replicas-to-write`). A script whose shebang
# does not say `no-writes` counts as a write for the last four, and as one that needs room for
# OOM: Redis checks before it starts, not at its first write.
# On Redis Cluster, TRYAGAIN, ASK and MOVED too: a redirection that redis-py's cluster client
# could not follow to an end (redis_cluster.py): the slot is being moved, and no shard ran it.
# And WRONGTYPE (a key of the sandbox holds another type than the mock writes there: a script
# stops at its first command on it, and every one checks the keys it writes before it writes
# any, redis_scripts.py INTACT) and the mock's own DAMAGED (a counter that is not a number).
REFUSALS = frozenset({"OOM", "NOSCRIPT", "BUSY", "LOADING", "MISCONF", "READONLY", "NOREPLICAS"})
REFUSALS |= {"WRONGTYPE", "DAMAGED"}
REFUSALS |= {"TRYAGAIN", "ASK", "MOVED"}


def _code(exc: BaseException) -> str:
    """Redis's error code of an error reply: redis-py keeps it apart from the text for the
    codes it knows (`status_code`); hiredis's reply and redis-py's others start with it."""
    code = getattr(exc, "status_code", None)
    if code:
        return str(code)
    first = str(exc).split(" ", 1)[0]
    return first if first.isalpha() and first.isupper() else ""


def _reason(where: str, exc: BaseException) -> str:
    """What Redis said, as the operator would read it in its own words (the code first)."""
    text = str(exc)
    code = _code(exc)
    if code and not text.startswith(code):
        text = f"{code} {text}"
    if "maxmemory" in text:  # OOM: the whole script was refused before it ran
        return f"{where} is full: {text}"
    return f"{where}: {text or type(exc).__name__}"


def error(where: str, exc: BaseException) -> StoreUnavailable:
    """What an error reply from Redis means for the command it answers (redis-py's exception
    or hiredis's reply): refused before it ran (`REFUSALS`: full, the scripts flushed, busy,
    loading, unable to persist, a replica), or failed. An error reply the mock has no name for
    (NOPERM: an ACL tightened, ERR ...) stays until someone acts: not transient, so its 503
    says nothing of when to retry; no reply at all (refused, reset, timed out) is."""
    code = _code(exc)
    if code == "OOM" or "maxmemory" in str(exc):
        return StoreFull(_reason(where, exc), "OOM")
    if code in REFUSALS:
        return Refused(_reason(where, exc), code)
    if code:
        return StoreBroken(_reason(where, exc))
    return StoreUnavailable(_reason(where, exc))
