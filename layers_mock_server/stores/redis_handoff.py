"""The write lease handed to a waiting worker at once, not found by polling.

A worker refused the lease (another holds it: stores/redis_scripts.py, CHANGES) used to try
again every 2 ms, so each handoff cost a millisecond of nothing on average, and the tries grew
with the holder's hold. Now the first worker refused is next in line (`wants`), and the script
that gives the lease back (WRITE without `keep`, UNLOCK) publishes `r` and the lease's token
(a worker does not wake for its own releases) on the sandbox's shard channel
`{lm:NAME}:handoff` when one is. Each worker listens on a connection of its own (SSUBSCRIBE:
the pipe, redis_pipe.py, carries commands and their answers in order and must never block),
and the worker in line tries again as soon as it hears a release: the lease reaches it one
round trip after it was given back. A worker refused while another was in line is behind it,
and in line once that one takes the lease: the take is published as `t` with the name of the
worker now in line, which waits on for the release; any other (three workers or more) tries
again, to be behind next. So two workers writing in turns take the lease in two tries a turn:
one refused, one after the release.

No wake-up is lost between a refusal and the wait: a worker notes what it had heard before its
try went (`mark`), and a message heard after that, even one that came before the refusal's
answer, sends it to try again at once. Redis sends nothing when no one is in line, so an idle
worker hears nothing.

A wake-up that never comes (the holder killed: its lease runs out, `lease=MS`; a message lost
with a connection) is covered by a try every WAKE_S at the latest. A worker that is not
listening (its listener not connected yet, or lost with Redis) tries every DEAF_S, as before.
A shard channel has the sandbox's hash tag, so on Redis Cluster it lives on the sandbox's
shard: the listener connects there (redis_cluster.Listener), and a node that does not own the
slot answers the SSUBSCRIBE with MOVED naming the one that does, where the listener goes at
once; a shard the slot leaves (a reshard, a failover) ends the subscription with SUNSUBSCRIBE,
and the listener connects again to the slot's owner. Over TLS it reads the SSL socket the same
way (what OpenSSL decrypted and holds is read before waiting for the socket again).

The journal's flush barrier (redis_journal.py) speaks on the same channel, each worker
starting its listener as it starts serving: `f` and a nonce, a journal read asks every worker
to send the entries it holds (`on_ask`); `a`, the nonce and a worker's name, that worker did
(sent behind its entries); `h` and a worker's name, that worker subscribed (the first time
as it serves) and sent what it held (`on_listen`), which a barrier whose ask was heard before
takes as that worker's word. None of them wakes a wait for the lease.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

WAKE_S = 0.05  # the longest a listening worker waits for a wake-up before it tries again
DEAF_S = 0.002  # between two tries of a worker that is not listening (as before)
RECONNECT_S = 0.5  # between two attempts to connect the listener
HOPS = 3  # ... except when following the slot to its owner (a MOVED, a SUNSUBSCRIBE)
OWN = 16  # the tokens of this worker's own releases remembered (most go unpublished)
# How long a refused worker stays next in line (`wants`, redis_scripts.py) without asking
# again: past the fallback's try, so a worker waiting for a wake-up keeps its place.
WANTS_MS = int(3 * WAKE_S * 1000)
# ... and, once the lease is given back, how long it keeps its place to take it (WRITE and
# UNLOCK shorten `wants` to it): a live waiter tries within it (at once when it hears the
# release, by its fallback's try when it does not), and one killed while in line holds the
# other workers' writes no longer (it held them the rest of WANTS_MS: ~190 ms measured).
GRACE_MS = int(WAKE_S * 1000)
# What the try of a worker refused and in line publishes (redis_scripts.py CHANGES): the holder,
# if it keeps the lease with no group running (http/shared.py IDLE_S), gives it back at once.
WANTED = b"w"


# The first byte of the flush barrier's messages (`_barrier`): an ask, an ack, a hello.
BARRIER = frozenset((b"f", b"a", b"h"))

# What a worker had heard when a try went: whether it listened, the releases, the takes, and
# those of the takes that put it in line.
Mark = tuple[bool, int, int, int]


class Ask:
    """One flush barrier of this worker's: whether its ask was heard back yet, the workers
    that acknowledged it since, and whom it waits for (`expect`, from the ask's answer)."""

    __slots__ = ("acked", "done", "heard", "listeners", "subscribed", "workers")

    def __init__(self, done: asyncio.Future[None]) -> None:
        self.done = done
        self.heard = False
        self.acked: set[bytes] = set()  # the workers that answered the ask (`a`)
        self.subscribed: set[bytes] = set()  # ... and those that subscribed after it (`h`)
        self.listeners: int | None = None  # those that heard the ask (SPUBLISH's count)
        self.workers: frozenset[bytes] = frozenset()  # ... and the live workers' names

    def expect(self, listeners: int, workers: frozenset[bytes]) -> None:
        self.listeners, self.workers = listeners, workers
        self.check()

    def check(self) -> None:
        """Met when every listener that heard the ask answered it, and every live worker
        answered it or subscribed after it."""
        if self.listeners is None or len(self.acked) < self.listeners:
            return
        if self.workers <= self.acked | self.subscribed:
            _wake(self.done)


class Handoff:
    """One worker's listener for the lease's releases (see the module docstring)."""

    def __init__(
        self,
        make: Callable[[], Any],
        channel: str,
        ident: str,
        aim: Callable[[str], bool] | None = None,
        refresh: Callable[[], None] | None = None,
        *,
        wanted: Callable[[], None] | None = None,
    ) -> None:
        self.make = make  # a redis-py Connection, not connected yet
        self.wanted = wanted  # called when a worker refused the lease is in line for it (`w`)
        # On a cluster: takes a node's refusal of the SSUBSCRIBE, True if it is a MOVED (the
        # next connection goes where it says: redis_cluster.Listener)
        self.aim = aim
        self.refresh = refresh  # ... and reads the slot map again (the shard did not answer)
        self.channel = channel
        self.promoted = b"t" + ident.encode()  # a take that puts this worker in line
        self.released = 0  # releases heard (and connections lost: both end every wait)
        self.taken = 0  # takes by the worker in line heard
        self.promotions = 0  # ... that named this worker (it was behind, and is in line now)
        # The tokens of this worker's own leases it gave back lately: their releases are no
        # news to it (a try it sends after one reaches Redis after it, on the same pipe).
        self.own: collections.deque[bytes] = collections.deque(maxlen=OWN)
        self.listening = False  # subscribed, and the connection has not failed since
        self.conn: Any = None
        self.sock: Any = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.reader: Any = None
        self.attempt: object | None = None  # the connection being made, if one is
        self.tried = -RECONNECT_S  # when the last attempt began (monotonic)
        self.hops = 0  # connections made at once to follow the slot since the last subscription
        # The waits, each with whether its worker is in line (a take does not end those).
        self.waiters: list[tuple[asyncio.Future[None], bool]] = []
        # The journal's flush barrier (redis_journal.py): this worker's barriers by nonce, the
        # waits for the listener's subscription, and what the worker does when another asks
        # it to send what it holds (`on_ask`, with the ask's nonce) and once subscribed.
        self.asks: dict[bytes, Ask] = {}
        self.subscribed: list[asyncio.Future[None]] = []
        self.on_ask: Callable[[bytes], None] | None = None
        self.on_listen: Callable[[], None] | None = None
        # ... once, on the first subscription of this serving: a listener that connects
        # again (Redis restarted, the slot moved) says nothing. (With a word after every
        # subscription, the creates of a worker on a cluster whose slot moved 210 times were
        # refused on MOVED three times in a row: tests/redis/test_cluster_outage.py; why is
        # not understood yet.) An ask it missed meanwhile costs the asker the bound
        # (BARRIER_S), by when the FLUSH_S timer has sent its entries.
        self.greeted = False

    def mark(self) -> Mark:
        """Taken before a lease try is sent: whether this worker listens, and the releases it
        heard so far (`wait` returns at once if one came since). Starts the listener."""
        if self.loop is not None and self.loop is not asyncio.get_running_loop():
            self.close()  # a listener of another loop (tests run workers on loops of their own)
        if not self.listening:
            self._connect()
        return self.listening, self.released, self.taken, self.promotions

    async def wait(self, mark: Mark, in_line: bool) -> None:
        """After a refused try (`mark` taken before it went): until a release is heard (or,
        not `in_line`, a take), for WAKE_S at most; DEAF_S when the try went while this
        worker was not listening."""
        listening, released, taken, promotions = mark
        if not listening or not self.listening:
            await asyncio.sleep(DEAF_S)
            return
        if self.released != released:
            return  # heard while the refusal was on its way
        # A take that named this worker can only follow its refusal in Redis (it was behind):
        # heard before the refusal's answer, it still means "in line, wait for the release".
        in_line = in_line or self.promotions != promotions
        if not in_line and self.taken != taken:
            return
        loop = asyncio.get_running_loop()
        woken: asyncio.Future[None] = loop.create_future()
        entry = (woken, in_line)
        self.waiters.append(entry)
        timer = loop.call_later(WAKE_S, _wake, woken)
        try:
            await woken
        finally:
            timer.cancel()
            with contextlib.suppress(ValueError):
                self.waiters.remove(entry)

    def listen(self) -> None:
        """Start the listener now (a worker as it starts serving: a journal read of another
        worker asks it to send what it holds on the channel, redis_journal.py)."""
        self.mark()

    async def listened(self, deadline: float) -> bool:
        """Whether this worker listens, waiting for its listener (being connected) until
        `deadline` (loop time) at most."""
        self.mark()
        loop = asyncio.get_running_loop()
        while not self.listening and loop.time() < deadline and self._connecting():
            woken: asyncio.Future[None] = loop.create_future()
            self.subscribed.append(woken)
            timer = loop.call_at(deadline, _wake, woken)
            try:
                await woken
            finally:
                timer.cancel()
        return self.listening

    def ask(self, nonce: bytes) -> Ask:
        """A flush barrier of this worker's (redis_journal.py): registered before its ask is
        published, so that the ask heard back marks where its acknowledgements begin."""
        asked = self.asks[nonce] = Ask(asyncio.get_running_loop().create_future())
        return asked

    def forget(self, nonce: bytes) -> None:
        """The barrier ended (met, or past its bound)."""
        self.asks.pop(nonce, None)

    def gave(self, token: str) -> None:
        """This worker gave back the lease it held with `token` (its release, if published,
        ends no wait of its own)."""
        self.own.append(b"r" + token.encode())

    def close(self) -> None:
        """Stop listening (a stopping worker: its loop may be closed already)."""
        self.greeted = False
        self.attempt = None
        self.tried = -RECONNECT_S
        self._drop()

    # -- inside -----------------------------------------------------------------------------

    def _connect(self) -> None:
        """Connect and subscribe, the handshake in a thread (redis-py's is blocking), as the
        pipe does; at most one attempt at a time, and one every RECONNECT_S."""
        now = time.monotonic()
        if self.attempt is not None or self.conn is not None or now - self.tried < RECONNECT_S:
            return  # (connected but refused the channel, an ACL's NOPERM: it polls, as before)
        self.tried = now
        self.loop = asyncio.get_running_loop()
        attempt = self.attempt = object()
        conn = self.make()
        threading.Thread(
            target=self._greet, args=(conn, attempt, self.loop), name="redis-handoff", daemon=True
        ).start()

    def _greet(self, conn: Any, attempt: object, loop: asyncio.AbstractEventLoop) -> None:
        conn = self._subscribe(conn)
        if conn is None and self.refresh is not None:  # on a cluster: the shard may have died
            with contextlib.suppress(Exception):  # and its replica taken over: ask the
                self.refresh()  # cluster who owns the slot now, and try there at once
                conn = self._subscribe(self.make())
        try:
            loop.call_soon_threadsafe(self._connected, conn, attempt)
        except RuntimeError:  # the loop is closed: no one listens
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.disconnect()

    def _subscribe(self, conn: Any) -> Any:
        """Connect and send SSUBSCRIBE (in the listener's thread): the connection, or None."""
        try:
            conn.connect()
            conn.send_command("SSUBSCRIBE", self.channel)
        except Exception:
            with contextlib.suppress(Exception):
                conn.disconnect()
            return None
        return conn

    def _connected(self, conn: Any, attempt: object) -> None:
        if attempt is not self.attempt or conn is None:  # given up meanwhile, or failed
            if attempt is self.attempt:
                self.attempt = None
            elif conn is not None:
                with contextlib.suppress(Exception):
                    conn.disconnect()
            return
        import hiredis

        self.attempt = None
        self.conn, self.sock = conn, conn._sock
        self.reader = hiredis.Reader()
        self.sock.setblocking(False)
        assert self.loop is not None
        self.loop.add_reader(self.sock.fileno(), self._readable)

    def _readable(self) -> None:
        pending = getattr(self.sock, "pending", None)  # TLS: what it decrypted and holds
        while True:
            try:
                data = self.sock.recv(1 << 16)
            except (BlockingIOError, InterruptedError, ssl.SSLWantReadError):
                break  # (an SSLWantReadError is an OSError: before that)
            except OSError:
                data = b""
            if not data:
                self._drop()
                return
            self.reader.feed(data)
            if pending is None or not pending():
                break
        try:
            while (reply := self.reader.gets()) is not False:
                kind = reply[0] if isinstance(reply, list) and reply else b""
                moved = (
                    isinstance(reply, Exception) and self.aim is not None and self.aim(str(reply))
                )
                if kind == b"sunsubscribe" or moved:
                    # The slot left this shard (resharded, failed over), or was never on it
                    # (MOVED: to the node named): to the slot's owner, at once.
                    self._follow()
                    return
                if kind == b"ssubscribe":
                    self.listening = True
                    self.hops = 0
                    self._tell_listening()
                elif kind == b"smessage":
                    said = reply[-1]
                    if said == WANTED:  # not a release: no wait ends; a holder may give it back
                        if self.wanted is not None:
                            self.wanted()
                    elif said[:1] in BARRIER:  # the journal's flush barrier, not the lease's
                        self._barrier(said)
                    elif said in self.own:
                        self.own.remove(said)
                    else:
                        self._heard(take=said[:1] == b"t", promoted=said == self.promoted)
        except Exception:  # not what a subscribed connection sends: start again
            self._drop()

    def _connecting(self) -> bool:
        """A connection is being made, or made and its subscription not confirmed yet (or
        refused: an ACL's NOPERM, which `listened` waits out to its deadline)."""
        return self.attempt is not None or self.conn is not None

    def _tell_listening(self) -> None:
        """Subscribed: end the waits for it (`listened`), and say so (`on_listen`: the worker
        sends what it holds, then `h` and its name, which a barrier whose ask went before
        this subscription takes as that worker's word: it heard the ask too late)."""
        subscribed, self.subscribed = self.subscribed, []
        for woken in subscribed:
            _wake(woken)
        if self.on_listen is not None and not self.greeted:
            self.greeted = True
            with contextlib.suppress(Exception):
                self.on_listen()

    def _barrier(self, said: bytes) -> None:
        """A message of the journal's flush barrier (redis_journal.py): `f` and a nonce, a
        worker asks every listener to send what it holds (this one too: its own ask heard
        back marks where its acknowledgements begin on this connection); `a`, the nonce and
        a worker's name: that worker sent what it held when it heard the ask; `h` and a
        worker's name: it subscribed (and sent what it held) after the asks heard so far."""
        kind, rest = said[:1], said[1:]
        if kind == b"f":
            asked = self.asks.get(rest)
            if asked is not None:
                asked.heard = True
            if self.on_ask is not None:
                with contextlib.suppress(Exception):
                    self.on_ask(rest)
            return
        if kind == b"a":
            nonce, _, worker = rest.partition(b" ")
            asked = self.asks.get(nonce)
            if asked is not None and asked.heard:
                asked.acked.add(worker)
                asked.check()
            return
        for asked in self.asks.values():  # `h`
            if asked.heard:
                asked.subscribed.add(rest)
                asked.check()

    def _follow(self) -> None:
        """Listen on the slot's owner: connect again at once, HOPS times at most before a
        subscription is confirmed (then every RECONNECT_S, as after any failure: a slot
        half-way through a reshard may be said to be elsewhere by each node)."""
        self._drop()
        self.hops += 1
        if self.hops <= HOPS:
            self.tried = -RECONNECT_S
        self._connect()

    def _heard(self, take: bool = False, promoted: bool = False) -> None:
        """A release (or a lost connection) ends every wait; a take, those of the workers
        that are not in line, unless it put this one in line: then it waits on, for the
        release."""
        if take:
            self.taken += 1
            self.promotions += promoted
        else:
            self.released += 1
        kept: list[tuple[asyncio.Future[None], bool]] = []
        for woken, in_line in self.waiters:
            if take and (in_line or promoted):
                kept.append((woken, True))
            else:
                _wake(woken)
        self.waiters = kept

    def _drop(self) -> None:
        """The connection failed (or the worker stops): the waits end (their workers try
        again, and poll until a new listener is subscribed). One that was subscribed is
        connected again at the next try, not RECONNECT_S after the last attempt."""
        if self.listening:
            self.tried = -RECONNECT_S
        self.listening = False
        if self.sock is not None and self.loop is not None:
            with contextlib.suppress(Exception):
                self.loop.remove_reader(self.sock.fileno())
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.disconnect()
        self.conn = self.sock = None
        self._heard()
        subscribed, self.subscribed = self.subscribed, []
        for woken in subscribed:  # (not listening: a barrier waits for no word it can hear)
            _wake(woken)


def _wake(woken: asyncio.Future[None]) -> None:
    if not woken.done():
        with contextlib.suppress(RuntimeError):  # its loop is closed (a stopped worker's)
            woken.set_result(None)
