"""The gate in front of the app on a shared store: every request sees one order of writes.

Before a request, the worker's copy of the state catches up with what the other workers
committed (core/lifecycle.py). A request that may change the state (POST, PATCH, PUT, DELETE;
any request while rules are set; a read of a job that polls move, or any with `--progression
poll`) first takes the sandbox's write lease, so writes are serialized across workers. A read
takes no lease, and shares its catch-up: reads that arrive together wait in a queue, and one
round trip, started after every one of them arrived (`loop.call_soon`), brings the copy up to
date for all of them; so each is answered from a copy at least as new as the moment it arrived
(linearizable), and under load K reads cost one round trip instead of K. That round trip also
counts each partner read in its key's read-light window in Redis, and hands each read its own
number there, so read limits hold across workers as write limits do (through the commits).

No round trip blocks the worker: commits and catch-ups go through the store's pipe
(stores/redis_pipe.py) and the worker goes on while Redis runs them (and, with `appendfsync
always`, while the disk syncs); answers come back in the order they were sent.

Group commit: when partner requests of this worker wait for the turn (http/turn.py), the one
holding it does not commit: it leaves its changes in the copy and hands the turn on; the next
one runs on that copy (one order), and the last of the group (no one waiting, a read waiting,
GROUP_WRITES requests, or GROUP_S seconds since the group began) sends every change of the group
as one commit; when no one waits, the group waits one loop iteration more for the requests that
come in it (`_close_soon`). The worker does not wait for the commit: the next group runs at once
on the copy, which already holds the first group's changes, and its commit follows the first on
the same connection; the write script's compare-and-append (the commit number each counted on)
refuses a commit sent behind one that was refused, so a failure takes down everything sent after
it, never a part. For that the lease is kept across groups (a chain): it is taken once, and
given back when a commit's answer says another worker waits for it (a worker refused it is in
line, `wants`, renewed at each of its tries, which every commit reads), after CHAIN_S (1 s, and
never past half the lease's time to live) at most, or LINGER_S after the last group if no other
comes (`_keeps_lease`); a latency fault gives it
back while it sleeps, so a slow answer does not hold other workers' writes. The lease kept
after the last commit came back waits IDLE_S (20 ms), not LINGER_S, for the next group when this
worker would hear another ask for it (its handoff listener is subscribed, and no commit's answer
said another waits): a worker refused the lease and in line says so on the handoff channel, and
the lease goes back at once (`_wanted`). Measured under wrk (bench/README.md, 2026-12-03
perf15): a create's clients send their next request 1-4 ms after its answer, so with LINGER_S
alone one worker gave the lease back and took it again ~60 times a second, each take a round trip
with every request of the worker (~22) queued behind it for the turn; and with CHAIN_S at 50 ms
(until 2026-12-03 create16) a worker writing alone still took it 20 times a second (64 takes in
4 s under wrk, 6 at 1 s), each after every commit in flight came back. A worker refused
the lease waits until it hears it given back (stores/redis_handoff.py: the release is
published, and the worker next in line tries again at once), or for a fallback's time when no
one says so (a holder killed, whose lease runs out). A lease whose request went away
(cancelled) while it was on its way is still taken in when it comes: the changes it brought
are applied before anything else runs on the copy (`_orphan`).

No answer leaves before the commit that holds it came back (each request's answer is held in
the gate until then); if that commit fails, every request of the group is answered 503 in the
envelope, and so is every request of the groups that ran on the copy behind it (sent or not,
even one that changed nothing: a replay or a 409 of a create that was not kept), and the copy
is read again: nothing acknowledged is lost. No read sees a change that
is not committed yet: a catch-up is sent only while nothing uncommitted is in the copy (no
group open, no commit on its way, no writer let in), a group closes when a read waits, and a
writer that gets the turn waits until the reads woken before it (and those that were waiting
when it came) have answered. A read asleep in a latency fault is not running on the copy;
it runs again only on a copy that holds nothing uncommitted, and if a commit of this worker
failed meanwhile it answers 503 (`sim.stale`). (A GET that sends a body waits for it after its
catch-up; no GET takes a body, so the most it could show is a 422 for its body where a copy
read again would answer 404 first: left so, off the hot path.)

Control requests (resets, imports, clocks) run alone: after every commit before them came
back, on a lease of their own, and their commit is sent through the pipe as a group's is, their
answer held until it came back (a reset or an import replaces the copy at once, and the copy is
read again if the commit fails). So no round trip of a control request blocks the worker either;
`/_mock/health` and the other answers that need nothing from Redis (`__call__`: a partner
request without a bearer key, a not-simulated operation's 501, the dashboard's files) take no
round trip at all.

The journal records what each client got: the entries of a group's requests are held with it
(stores/redis_journal.py) and go with its commit, kept only if the commit is; if it fails,
each is recorded as the 503 its client received, with the same request id.

What a request costs the worker's one event-loop thread (the Redis path's bound): the gate is
served wrapped (`Gated`), because CPython 3.11 specializes no attribute access on an instance
of a class with `__getattr__`, and the wrapper's forwarding made every `self.x` here take the
slow path; its `__call__` is a plain function that hands back the one coroutine a leased
request runs in (`_leased`: the body read ahead, the turn, the app, the wait for the group's
commit and the held answer, inline), not four nested ones; `Held.send` gives the app a future
done already to await, not a coroutine a message. (bench/README.md: instructions a create.)
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.routing import Match

from ..core.errors import ApiError
from ..core.journal import Failed, RawHeaders
from ..core.ratelimit import LIMITS, READ_CLASS, WINDOW_MS
from ..core.records import ApiKey
from ..core.store import Bucket, OutcomeUnknown, Refused, StoreBroken, StoreUnavailable
from ..deps import Deps
from ..stores.redis_serving import BEAT_S
from .dispatch import PartnerPaths, routed_path
from .inputs import MAX_BODY_BYTES
from .pipeline import OperationPipeline, error_headers, refused, retry_after
from .render import dumps, error_body, send_response
from .turn import Turn
from .unsimulated import NotSimulated

LOG = logging.getLogger(__name__)

WRITES = frozenset({"POST", "PATCH", "PUT", "DELETE"})
READS = frozenset({"GET", "HEAD"})
READY = "/_mock/ready"  # the readiness probe: its 503 says "not ready", not "retry"
HEALTH = "/_mock/health"  # the process is alive, whatever Redis is doing: no round trip
STATELESS = frozenset({HEALTH, "/"})  # ... and the dashboard's links
# An export holds every rate window: its catch-up lists the read windows Redis counts, of
# which this worker's copy has only those of the reads it answered itself.
EXPORT = "/_mock/state"
# A global reset and an import replace the sandbox whole: their lease is taken even when a key
# of it was spoiled by hand (stores/redis_scripts.py INTACT), so that they can mend it; a
# reset of one organization's that does not is refused by its commit.
MENDS = frozenset({("POST", "/_mock/reset"), ("PUT", EXPORT)})
ASSETS = "/_mock/ui/assets/"  # ... and its static files
JOB_READ = "/v1/jobs/"  # GET /v1/jobs/{jobId}: records a poll step of a job moved by polls
# 16: a commit costs Redis ~560,000 instructions whatever it holds, on top of ~79,000 a create
# (create17), and 32 cut Redis's work a create by 15 %, but fewer creates a second came of it
# (4 rounds of 5 side by side, p99 7.4 ms vs 6.0): one group of 32 leaves no commit to overlap
# with the next group's work (bench/README.md, 2026-12-03 23:2xZ).
GROUP_WRITES = 16  # requests at most in one group commit ...
GROUP_S = 0.005  # ... and for at most this long after it began
# A worker keeps the lease for its next groups for at most this long (and half the lease's
# time to live, `lease=`: a chain never outlives the lease it runs on) ... Not what hands the
# lease to another worker: one refused says it is in line (`wants`, renewed at each of its
# tries, which every commit's answer reads), and the next commit gives it back. At 50 ms (until
# 2026-12-03 create16) a worker writing alone took the lease again 20 times a second, each
# time after every commit in flight came back, with every request queued behind the take.
CHAIN_S = 1.0
LINGER_S = 0.002  # ... and after its last commit came back, in case another comes
# ... or this long, when it would hear another worker ask for it (`_linger`): under load the
# clients of a group's answers send their next requests 1-4 ms later, past LINGER_S, and a
# lease given back then was taken again with every request queued behind it (60 times a second)
IDLE_S = 0.02
TOKENS = 1024  # Authorization headers whose token `_key` keeps (cleared when full)
_UNPARSED: Any = object()
FOLLOW_S = 0.2  # an idle worker catches up this often, so it never falls far behind
LOST = "the sandbox's lease was lost before the group's commit"
# A read woken before a commit of this worker failed, and not caught up since, answers 503:
# the copy holds that commit's changes until it is read again (the next catch-up).
STALE = "a write of this worker failed while this request ran; its copy is being read again"
_HOLDING: contextvars.ContextVar[bool] = contextvars.ContextVar("holding", default=False)
_DEFERS: contextvars.ContextVar[bool] = contextvars.ContextVar("defers", default=False)
# The request answers from a copy caught up for it (after its catch-up, or under the lease): its
# journal entry's position is that copy's (stores/redis_journal.py), else UNORDERED.
_ORDERED: contextvars.ContextVar[bool] = contextvars.ContextVar("ordered", default=False)


def joined_authorization(scope: dict[str, Any]) -> bytes:
    """The Authorization the pipeline authenticates, as inputs.header_map makes it: its lines
    joined (two name no key: a 401). The read's rate window is counted in Redis for this key:
    it was counted for the first line while the pipeline answered as the last, so a
    `standard` key's reads sent behind another key's header went past its limit."""
    lines = [value for name, value in scope["headers"] if name == b"authorization"]
    return bytes(lines[0]) if len(lines) == 1 else b", ".join(lines)


class Held:
    """A response held back until the commit that holds its changes returned (sent by
    `_leased`, or its 503 by `failed`)."""

    __slots__ = ("control", "messages", "ready")

    def __init__(self, ready: asyncio.Future[None], control: bool = False) -> None:
        self.messages: list[dict[str, Any]] = []
        self.ready = ready  # a future done already: what `send` gives the app to await
        self.control = control  # a control request's (no Idempotency-Key to retry with)

    def send(self, message: dict[str, Any]) -> Awaitable[None]:
        """The app's `send`: the message is kept. Not a coroutine: a future done already is
        awaited without one (two a request, each a coroutine made, run and dropped)."""
        self.messages.append(message)
        return self.ready

    async def failed(self, send: Any, failure: StoreUnavailable) -> None:
        """Its commit failed: a 503 with its request id and rate headers instead."""
        if not self.messages:
            return
        headers = self.messages[0].get("headers", [])
        request_id = next((v.decode() for k, v in headers if k == b"x-request-id"), "")
        kept, body = _failed(failure, self.control)(request_id, headers)
        await send_response(send, 503, kept, body)


class Group:
    """The requests whose changes wait for one commit, their journal entries, and (once its
    commit is on its way) what came back."""

    __slots__ = ("answers", "done", "entries", "loop", "ready", "since", "size", "timer")

    def __init__(self, since: float) -> None:
        self.since = since
        self.size = 0
        self.timer = False
        self.entries: list[Any] = []  # journal entries held with it (redis_journal.py)
        # The loop the group runs on (the running one), kept: asyncio.get_running_loop() is a
        # getpid system call each time on this Python, and a request asked for it twice.
        self.loop = loop = asyncio.get_running_loop()
        self.done: asyncio.Future[StoreUnavailable | None] = loop.create_future()
        self.ready: asyncio.Future[None] = loop.create_future()  # done: what `Held.send` gives
        self.ready.set_result(None)
        # Each request's own wait for `done` (what asyncio.shield would make, without its two
        # callbacks a request): a request that goes away cancels its own, not the group's
        # (`_leased` makes it).
        self.answers: list[asyncio.Future[StoreUnavailable | None]] = []

    def land(self, failure: StoreUnavailable | None) -> None:
        self.done.set_result(failure)
        for future in self.answers:
            if not future.done():
                future.set_result(failure)


class Gated:
    """What build_app serves on a shared store: the gate as the ASGI app, and the gate's and
    then the app's attributes (`deps`, `state`, `routes`, ...) as if unwrapped.

    Apart from the gate because of `__getattr__`: CPython 3.11 specializes no attribute
    access on an instance whose class defines it (its `tp_getattro` is not the generic one),
    so every `self.x` of the gate's, a hundred a create, took the slow path (a method-cache
    lookup of `__getattr__` and `__getattribute__`, then the generic lookup); here only
    `__call__`'s one `self.gate` pays for it."""

    __slots__ = ("gate",)

    def __init__(self, gate: SharedGate) -> None:
        self.gate = gate

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        # (a coroutine function, as servers and test clients that tell ASGI 3 from ASGI 2
        # look for; the gate's own `__call__` is a plain function, its coroutine awaited here)
        await self.gate(scope, receive, send)

    def __getattr__(self, name: str) -> Any:
        try:
            return getattr(self.gate, name)
        except AttributeError:
            return getattr(self.gate.app, name)


class SharedGate:
    """ASGI middleware: catch up, take the lease when the request may write, give it back
    (served wrapped, `Gated`)."""

    nap = staticmethod(asyncio.sleep)  # a latency fault's wait (tests look inside it)

    def __init__(self, app: Any, deps: Deps) -> None:
        self.app = app
        self.deps = deps
        self.store: Any = deps.sim.shared
        self.turn = Turn()
        # Reads waiting for the next catch-up, each with the rate window it counts in.
        self.waiting: list[tuple[Bucket | None, asyncio.Future[int]]] = []
        self.listing = False  # ... and whether one of them is an export (`EXPORT`)
        self.catching = False  # a catch-up is on its way
        self.catch_ups = 0  # catch-ups that came back: a writer lets the reads before it go
        self.reading = 0  # reads woken by a catch-up that have not answered yet
        self.queued = 0  # leased requests waiting for the turn
        self.coming = 0  # partner writes reading their body, to wait for the turn next
        self.group: Group | None = None  # the open group commit, if any
        self.flying: collections.deque[Group] = collections.deque()  # commits on their way
        self.chain = 0.0  # when this worker took the lease it still holds (loop time)
        self.wanted = False  # another worker waits for that lease (a commit said so)
        self.began = 0  # groups begun: a lingering lease goes back if no other began since
        self.asking = 0  # lease requests on their way
        self.trips = 0  # round trips sent: an idle worker follows the others (`_follow`)
        self.last_trip = time.monotonic()  # when the last was sent (or the worker started)
        self.follower: asyncio.TimerHandle | None = None
        self.beaten = time.monotonic()  # the last renewal of the worker's liveness mark
        self.target: int | None = None  # the catch-ups the writer holding the turn waits for
        self.broken: StoreUnavailable | None = None  # why the last commit failed
        self.changed: list[asyncio.Future[None]] = []  # tasks waiting for the next change
        self.tokens: dict[bytes, str | None] = {}  # each Authorization's bearer token (`_key`)
        # The paths of operations the mock does not simulate that no partner route has (they
        # come after the partner ones in the app's routes): their 501 needs nothing of Redis.
        self.unsimulated = PartnerPaths([r for r in app.routes if _unsimulated(r)])
        deps.shared = self
        store: Any = self.store
        if hasattr(store, "on_wanted"):  # (a test's stand-in may have none)
            store.on_wanted = self._wanted  # another worker is in line for the lease
        deps.sim.may_commit = _HOLDING.get  # only the request holding the lease writes
        deps.sim.defers = _DEFERS.get  # ... and a partner request's batch waits for its group
        # ... and its journal entry, so that the journal records what the client got (a 503
        # when the group's commit fails): stores/redis_journal.py, on a shared journal
        journal: Any = deps.journal
        self.journal: Any = journal if hasattr(journal, "settle") else None
        if self.journal is not None:
            self.journal.holding = _DEFERS.get
            self.journal.ordered = _ORDERED.get

    def _writes(self, scope: dict[str, Any]) -> bool:
        """Whether a read may write: with rules (a count is used up), or a job read that
        moves a job by polls (`--progression poll`, or a job started with that preference)."""
        state = self.deps.sim.state
        if state.rules.rules or self.deps.progression == "poll":
            return True
        path: str = scope["path"]
        if path.startswith(JOB_READ):
            job = state.jobs.get(path[len(JOB_READ) :])
            return job is not None and job.progression == "poll"
        return False

    def follow(self) -> None:
        """Follow the others from now on (called on the worker's loop as it starts serving).

        Not only from its first request: a worker no client reached while the others wrote
        (a connection lands on whichever worker accepts it) read the whole state on its
        first request, 2.7 s after 49,000 creates, and every request on it waited."""
        if self.follower is None:
            self.follower = asyncio.get_running_loop().call_later(FOLLOW_S, self._follow, -1)
            # ... and hear another worker's journal read ask for the entries this one holds
            # (stores/redis_journal.py: the flush barrier)
            listen = getattr(self.store, "listen", None)
            if listen is not None:
                listen()

    def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Awaitable[None]:
        """The coroutine that serves the request. A plain function, not a coroutine: `Gated`
        awaits what it returns, so the gate is no coroutine level of its own (one made and
        run a request, and one more frame that each of the request's suspensions and wake-ups
        goes through): the app's, the read's or the leased request's is the one awaited."""
        if self.follower is None:  # served without `follow` (in-process): from the first request
            return self._first(scope, receive, send)
        if scope["type"] != "http":
            return self.app(scope, receive, send)
        # What it groups, mends and exports is what is routed (only a raw path with a percent
        # sign can route elsewhere than `path`: one byte looked for, ~0.3 µs a request less
        # than routed_path's two `%2F` searches; the app routes every request again itself).
        raw = scope.get("raw_path")
        if raw and b"%" in raw:
            scope["path"] = routed_path(scope)
        path: str = scope["path"]
        if path in STATELESS or path.startswith(ASSETS):  # needs nothing from Redis
            return self.app(scope, receive, send)
        # Each header's last value, one dict made in C (one pass over the headers, not one a
        # header looked for): its Authorization, and the body's length for `_leased`.
        headers: dict[bytes, bytes] = dict(scope["headers"])
        found = self.app.partner.match(path, scope["method"])
        partner = found is not None
        if not partner:  # (not the hot path: control plane, unknown paths)
            found = self.unsimulated.match(path, scope["method"])
        if found is not None and type(found[0]) is NotSimulated:  # a fixed 501, any key
            return self.app(scope, receive, send)
        # A partner request without a bearer key needs nothing either (a 401 whatever the
        # state). Authorization sent twice is a 401 whichever its lines (the pipeline joins
        # them: joined_authorization), so the last line's scheme, which the dict keeps, is
        # enough to tell; only whether Redis is asked first depends on it.
        if partner and not _bearer(headers.get(b"authorization")):
            return self.app(scope, receive, send)
        if scope["method"] not in WRITES:  # a write catches up as it takes the lease
            return self._read(scope, receive, send, partner, headers)
        return self._leased(scope, receive, send, partner, headers)

    async def _first(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.follow()  # (on the loop: the request's task runs there)
        await self(scope, receive, send)

    async def _read(
        self,
        scope: dict[str, Any],
        receive: Any,
        send: Any,
        partner: bool,
        headers: dict[bytes, bytes],
    ) -> None:
        """A read: answered from a copy caught up after it arrived (shared with the reads
        waiting with it), or, when it may write (`_writes`), in its turn as a write is."""
        bucket = self._bucket(scope) if partner else None
        while True:
            if scope["path"] == EXPORT:
                self.listing = True
            woken = self._caught_up(bucket)
            try:
                counted = await woken
            except StoreUnavailable as exc:
                await self._unavailable(scope, send, exc)
                return
            except asyncio.CancelledError:
                if woken.done() and not woken.cancelled() and woken.exception() is None:
                    self._read_done()  # woken, then cancelled before it ran
                raise
            # The window was read on the clock before the catch-up: if another worker
            # moved the clock into the next one, count the read again, in that window.
            now = self._bucket(scope) if bucket is not None else None
            if now is None or now == bucket:
                break
            self._read_done()
            bucket = now
        try:
            if self.deps.sim.stale:  # a commit failed since: the copy may hold its changes
                await self._unavailable(scope, send, StoreUnavailable(STALE))
                return
            if not self._writes(scope):
                if bucket is not None:
                    self.deps.sim.count(bucket, counted)
                _ORDERED.set(True)
                await self.app(scope, receive, send)
                return
        finally:
            self._read_done()
        # a read that may write runs in its turn, its number in its window installed then
        counting = (bucket, counted) if bucket else None
        await self._leased(scope, receive, send, partner, headers, counting)

    async def _leased(  # noqa: PLR0915, PLR0917 - one coroutine a request: each part its own would be one more made and run
        self,
        scope: dict[str, Any],
        receive: Any,
        send: Any,
        groupable: bool,
        headers: dict[bytes, bytes],
        counted: tuple[Bucket, int] | None = None,
    ) -> None:
        """Take the turn (and the lease, unless this worker holds it still), run the request,
        and send the commit: now, or with the group (see the module docstring). `groupable`:
        a partner request (the route matched); `headers`: each one's last value."""
        length = headers.get(b"content-length")
        if length is not None or b"transfer-encoding" in headers:
            # A body: read now, not holding the turn (`_replay`). A partner request's group
            # waits for it (`coming`); a control request's is read here too (a tenant's, on a
            # shared sandbox), not under the lease.
            if groupable:
                self.coming += 1
            try:
                expected = int(length) if length is not None and length.isdigit() else -1
                messages: list[dict[str, Any]] = []
                size = 0
                while True:
                    message = await receive()
                    messages.append(message)
                    if message["type"] != "http.request":
                        break
                    size += len(message.get("body", b""))
                    if size > MAX_BODY_BYTES or size == expected or not message.get("more_body"):
                        break
            except BaseException:  # gone before the turn: an open group waiting for it closes
                if groupable:
                    self.coming -= 1
                    if not self.coming:
                        asyncio.get_running_loop().call_soon(self._close_idle)
                raise
            if groupable:
                self.coming -= 1  # ... and from here on it is queued for the turn (no await)
            receive = _replay(messages, receive)
        if not self.turn.take():
            await self._take_turn()
        held: Held | None = None
        group: Group | None = None
        try:
            # A partner request joins the open group, on the lease this worker holds: nothing
            # to wait for (`_begin` is not needed).
            if not groupable or self.group is None or not self.store.holds():
                try:
                    await self._begin(groupable, (scope["method"], scope["path"]) in MENDS)
                except StoreUnavailable as exc:
                    await self._unavailable(scope, send, exc)
                    return
            group = self.group
            assert group is not None
            group.size += 1
            _HOLDING.set(True)
            _ORDERED.set(True)
            if counted is not None:
                self.deps.sim.count(*counted)
            defers = _DEFERS.set(True)  # its changes go with the group's commit
            # A control read answers at once: it changed nothing (a streamed export is not
            # held in memory), and its spec has no 503 for a commit that failed.
            if groupable or scope["method"] not in READS:
                held = Held(group.ready, control=not groupable)
            try:
                await self.app(scope, receive, send if held is None else held.send)
            except BaseException:
                self._close()
                raise
            finally:
                _DEFERS.reset(defers)
            group = self.group  # this request's (a latency fault may have begun another)
            if group is not None and not (groupable and self._stays_open(group)):
                self._close()
        finally:
            _HOLDING.set(False)
            self._give_turn()
        if group is None:
            failure = None
        else:  # its own wait for the group's commit (`Group.answers`)
            done = group.done
            if done.done():
                failure = done.result()
            else:
                answer: asyncio.Future[StoreUnavailable | None] = done.get_loop().create_future()
                group.answers.append(answer)
                failure = await answer
        if held is None:  # (a control read: answered already)
            return
        if failure is None:
            for message in held.messages:
                await send(message)
        else:
            await held.failed(send, failure)

    async def _begin(self, groupable: bool, mends: bool = False) -> None:
        """Before a leased request runs: the reads that were waiting when it got the turn go
        first; a control request runs alone, after every commit before it came back; a new
        group takes the lease, unless this worker kept it (a chain of groups). `mends`: the
        request replaces the sandbox whole (MENDS)."""
        if self.group is not None and (not groupable or not self.deps.sim.holds_lease()):
            self._close()  # runs alone, after what came before it; or its lease is gone
        if self.group is None:
            behind = 1 if self.waiting or self.catching else 0
            self.target = self.catch_ups + behind
            await self._until(self._quiet)
            if not groupable or not self.deps.sim.holds_lease():
                await self._until(lambda: not self.flying)
            if not self.deps.sim.holds_lease():
                if time.monotonic() - self.last_trip > FOLLOW_S and not mends:
                    await self._refresh()  # what others wrote meanwhile, not under the lease
                await self._lease(mends)
                self.chain = asyncio.get_running_loop().time()
                self.broken = None
                self.wanted = False
            self.group = Group(asyncio.get_running_loop().time())
            self.began += 1

    def _quiet(self) -> bool:
        """No read runs on the copy, none is catching up, the reads that were waiting when
        the writer got the turn have had theirs, and no lease is on its way (one asked for
        by a request that went away: its changes go into the copy first, `_orphan`)."""
        target = self.target if self.target is not None else 0
        idle = not self.catching and not self.reading and not self.asking
        return idle and self.catch_ups >= target

    async def _take_turn(self) -> None:
        """Wait for the turn: called when `turn.take()` found it held (a free one is taken
        at once, without a coroutine: http/turn.py)."""
        self.queued += 1
        try:
            await self.turn.acquire()
        except BaseException:  # cancelled while waiting: an open group waiting for it closes
            asyncio.get_running_loop().call_soon(self._close_idle)
            raise
        finally:
            self.queued -= 1

    def _give_turn(self) -> None:
        self.turn.release()
        if not self.turn.locked():
            self.target = None
            # (the loop looked up only when needed: asyncio.get_running_loop() is a getpid
            # system call each time, and this runs once a request)
            if self.waiting:
                asyncio.get_running_loop().call_soon(self._catch_up)
            if self.group is None and not self.flying and self.deps.sim.holds_lease():
                # a lease taken for a request that went away before its group began
                asyncio.get_running_loop().call_later(LINGER_S, self._let_go, self.began)

    def _stays_open(self, group: Group) -> bool:
        """Whether the group waits for the next request (no read is running or waiting that
        could see changes not committed yet), within the fairness cap: for one waiting for
        the turn or reading its body, or, when none is, for those that come in the loop's
        next iteration (`_close_soon`). Without that wait, the requests ready together (the
        answers of a commit that came back, a burst of arrivals) would run back to back and
        the group close before the next arrived: groups of a few requests, and a commit's
        cost (its arguments, the send, the answer) paid by a few."""
        if self.reading or self.waiting or group.size >= GROUP_WRITES:
            return False
        loop = group.loop
        if loop.time() - group.since >= GROUP_S:
            return False
        if self.queued or self.coming:
            if not group.timer:
                self._deadline(group)
        else:
            loop.call_soon(self._close_soon, group)
        return True

    def _close_soon(self, group: Group) -> None:
        """A loop iteration after its last request ran: the group closes unless another
        request holds the turn, waits for it or reads its body (that one closes it, or keeps
        it open until GROUP_S)."""
        if self.group is not group:
            return
        if self.queued or self.coming or self.turn.locked():
            self._deadline(group)
        else:
            self._close()

    def _deadline(self, group: Group) -> None:
        """The group closes GROUP_S after it began even if no one comes to close it (a
        request reading its body slowly)."""
        if not group.timer:
            group.timer = True
            loop = group.loop
            left = max(0.0, GROUP_S - (loop.time() - group.since))
            loop.call_later(left, self._close_late, group)

    def _keeps_lease(self) -> bool:
        """Whether the commit being sent keeps the lease for this worker's next group (a
        chain): until another worker waits for it (a commit's answer says so), and for at
        most CHAIN_S, or half the lease's time to live if that is shorter (the lease is not
        renewed by a commit: a chain must not outlive it); when no group follows, it goes
        back LINGER_S after the last commit came back (`_landed`). So a worker writing
        alone takes the lease once, and two share it in turns."""
        if self.wanted:
            return False
        chain = min(CHAIN_S, getattr(self.store, "lease_ms", 0) / 2000 or CHAIN_S)
        return asyncio.get_running_loop().time() - self.chain < chain

    def _linger(self) -> float:
        """How long a lease kept for a next group waits for it once every commit came back:
        IDLE_S when this worker would hear another ask for it (`_wanted` gives it back then),
        else LINGER_S (another worker's ask would not reach it; it learns of one only from a
        commit's answer, and gives it back when that says so)."""
        if self.wanted or not self.store.listens():
            return LINGER_S
        return max(LINGER_S, IDLE_S)

    def _wanted(self) -> None:
        """Another worker was refused the lease and is in line for it (its try published so,
        stores/redis_handoff.py): the next commit gives it back, or, none running, it goes
        back now."""
        self.wanted = True
        if self.group is None and not self.flying and not self.turn.locked():
            self._let_go(self.began)

    def _let_go(self, began: int) -> None:
        """The lease kept for a group that did not come: give it back."""
        if self.began == began and self.group is None and self.deps.sim.holds_lease():
            self.store.let_go()
            self._changed()

    async def settled(self) -> None:
        """Wait until no group is open, every commit came back and the lease went back (tests,
        and a worker stopping)."""
        await self._until(
            lambda: (
                self.group is None
                and not self.flying
                and not self.asking
                and not self.deps.sim.holds_lease()
            )
        )

    def _close_late(self, group: Group) -> None:
        if self.group is group and not self.turn.locked():
            self._close()

    def _close(self, keep: bool = True) -> None:
        """Send the commit of what the open group changed (keeping the lease, unless `keep` is
        False or `_keeps_lease` says no); its answers go when it comes back (`_landed`), after
        every commit before it."""
        group, self.group = self.group, None
        if group is None:
            return
        sim = self.deps.sim
        if self.journal is not None:
            group.entries = self.journal.detach()
        self.flying.append(group)
        if not sim.holds_lease():  # a commit failed since: never sent, nothing of it was done.
            # The group ran on a copy that holds the failed commit's changes (a replay of a
            # create that was not kept, a 409 against it), so each of its answers is a 503,
            # even one that changed nothing.
            sim.drop_group()
            if self.journal is not None:
                self.journal.unstage(False)
            self._unsent(group, self._lease_lost)
            return
        keep = keep and self._keeps_lease()
        self._sent()
        try:
            sent = self.store.send_write(self._batches(), keep)
        except StoreUnavailable as exc:  # not even sent: the lease runs out (`lease=` ms)
            if self.journal is not None:
                self.journal.unstage(False)
            with contextlib.suppress(StoreUnavailable):
                sim.release_lease()
            unsent = exc  # (`exc` is gone when the handler ends)
            self._unsent(group, lambda: unsent)
            return
        sent.add_done_callback(functools.partial(self._sent_back, group))

    def _batches(self) -> list[Any]:
        """The group's commit. A bug building it (anything but the store's own error) is a
        commit never sent: the group is queued as flying by now, and an exception escaping
        here left it unanswered, and every later request of the worker waiting for it to land,
        for good. It is logged, and answered as a store that could not write: 503s, the copy
        read again."""
        try:
            return self.deps.sim.group_batches()
        except StoreUnavailable:
            raise
        except Exception as exc:
            LOG.exception("layers-mock: a group's commit could not be built; its requests get 503")
            raise StoreBroken(
                f"the commit could not be built ({type(exc).__name__}: {exc}); nothing of it "
                "was stored"
            ) from exc

    def _unsent(self, group: Group, failure: Callable[[], StoreUnavailable]) -> None:
        """A group whose commit was never sent lands (`failure()` then says why) once the
        commits sent before it have: they land in order. (The lease goes back as soon as a
        commit fails, before the gate hears of it, so a group can close unsent behind
        commits still on their way.)"""
        if len(self.flying) > 1:
            ahead = self.flying[-2].done
            ahead.add_done_callback(lambda _: self._landed(group, failure()))
        else:
            self._landed(group, failure())

    def _lease_lost(self) -> StoreUnavailable:
        """Why a group that ran on a lease this worker no longer holds is answered 503: the
        commit that failed before it, or (none did) the lease ran out."""
        if self.broken is None:
            return StoreUnavailable(LOST)
        if isinstance(self.broken, Refused):  # nothing of it ran, nor of this (never sent)
            return type(self.broken)(str(self.broken), self.broken.code)
        # (never sent: not an answer lost; a cause that needs someone to act stays one)
        return (StoreUnavailable if self.broken.transient else StoreBroken)(str(self.broken))

    def _sent_back(self, group: Group, sent: asyncio.Future[bool]) -> None:
        failure = sent.exception()
        if failure is not None and not isinstance(failure, StoreUnavailable):
            failure = StoreUnavailable(f"{type(failure).__name__}: {failure}")
        elif failure is None and sent.result():
            self.wanted = True  # the next commit gives the lease back
        self._landed(group, failure)

    def _landed(self, group: Group, failure: StoreUnavailable | None) -> None:
        """A group's commit came back (they come back in the order they were sent): its
        answers go, or 503 each when it failed; the reads held meanwhile catch up after the
        last one."""
        if failure is not None:
            self.broken = failure
            self.deps.sim.commit_failed()
        assert self.flying and self.flying[0] is group
        self.flying.popleft()
        if self.journal is not None:
            self.journal.settle(None if failure is None else _failed(failure), group.entries)
        group.land(failure)
        if not self.flying:
            self._changed()
            loop = asyncio.get_running_loop()
            if self.waiting:
                loop.call_soon(self._catch_up)
            if self.group is None and self.deps.sim.holds_lease():
                # kept for a write that has not come: its clients got their answers just
                # now, and may send the next one; if none comes, the lease goes back
                loop.call_later(self._linger(), self._let_go, self.began)

    def _close_idle(self) -> None:
        """An open group whose next request went away (cancelled while waiting)."""
        idle = not (self.queued or self.coming or self.turn.locked())
        if self.group is not None and idle:
            self._close()

    async def _until(self, ready: Callable[[], bool]) -> None:
        """Wait until `ready()` (checked again whenever a read, catch-up or commit ends)."""
        while not ready():
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self.changed.append(future)
            await future

    def _changed(self) -> None:
        changed, self.changed = self.changed, []
        for future in changed:
            if not future.done():
                future.set_result(None)

    def _follow(self, trips: int) -> None:
        """A worker that made no round trip for FOLLOW_S (no request came) catches up with
        what the others committed meanwhile: else, coming back after a long quiet while the
        others wrote, it would read the whole state again (the log keeps LOG_LENGTH entries).
        Every BEAT_S it renews its liveness mark too (stores/redis_serving.py), off the
        requests' path."""
        idle = not (self.group or self.flying or self.waiting or self.reading or self.asking)
        if trips == self.trips and idle and not self.turn.locked():
            self._caught_up(None).add_done_callback(self._followed)
        now = time.monotonic()
        if now - self.beaten >= BEAT_S:  # busy or idle: the mark says the worker lives
            self.beaten = now
            self.store.beat()
        self.follower = asyncio.get_running_loop().call_later(FOLLOW_S, self._follow, self.trips)

    def _followed(self, woken: asyncio.Future[int]) -> None:
        if not woken.cancelled() and woken.exception() is None:
            self._read_done()  # woken as a read is, with nothing to answer

    def _caught_up(self, bucket: Bucket | None) -> asyncio.Future[int]:
        """Wait for the next shared catch-up (it counts `bucket` when given; its number there)."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.waiting.append((bucket, future))
        if len(self.waiting) == 1:  # the first to wait schedules the round trip for all
            future.get_loop().call_soon(self._catch_up)
        return future

    def _catch_up(self) -> None:
        """One round trip for every read waiting now: sent when the copy holds nothing that
        is not committed (no group open, no commit on its way, no writer let in), one at a
        time; its reads are woken when it comes back."""
        if self.catching or self.group is not None or self.flying or not self.waiting:
            return
        if self.target is not None and self.catch_ups >= self.target:
            return  # the writer holding the turn goes first; its turn ends with a catch-up
        waiting, self.waiting = self.waiting, []
        buckets = [b for b, _ in waiting if b is not None]
        listing, self.listing = self.listing, False
        self.catching = True
        self._sent()
        try:
            sent = self.store.send_changes(False, buckets, listing)
        except StoreUnavailable as exc:
            self._read_back(waiting, None, exc)
            return
        sent.add_done_callback(lambda done: self._read_back(waiting, done, None))

    def _read_back(
        self,
        waiting: list[tuple[Bucket | None, asyncio.Future[int]]],
        sent: asyncio.Future[Any] | None,
        error: BaseException | None,
    ) -> None:
        """A catch-up came back: each read is woken with its number in its rate window (0
        without one), or with the reason none of them could be answered."""
        self.catching = False
        self.catch_ups += 1
        counted: Any = ()
        if error is None and sent is not None:
            error = sent.exception()
            if error is None:
                try:
                    counted = iter(self.deps.sim.caught_up(sent.result()))
                except Exception as exc:  # a bug: each read answers it as its own 500
                    error = exc
        for bucket, future in waiting:
            if future.done():  # a reader that went away was counted all the same
                if error is None and bucket is not None:
                    next(counted)
                continue
            if error is not None:
                future.set_exception(error)
                continue
            future.set_result(next(counted) if bucket is not None else 0)
            self.reading += 1
        self._changed()
        if self.waiting:
            asyncio.get_running_loop().call_soon(self._catch_up)

    def _read_done(self) -> None:
        self.reading -= 1
        if not self.reading:
            self._changed()

    def _bucket(self, scope: dict[str, Any]) -> Bucket | None:
        """The read-light window a partner read (`_read` knows it is one: the route was matched
        once, in `__call__`) of a rate-limited key counts in, so that it is counted in Redis
        (exact across workers) with the catch-up; None for anything else."""
        key = self._key(scope)
        if key is None or key.killed or key.tier not in LIMITS:
            return None
        # the window on the key's organization's clock, as the pipeline's rate limit reads it
        now, _ = self.deps.sim.organization_clock(key.org_id)
        return Bucket(key.api_key_id, READ_CLASS, now // WINDOW_MS)

    def _key(self, scope: dict[str, Any]) -> ApiKey | None:
        """The key the request's `Authorization: Bearer` names in this worker's copy, as the
        pipeline reads it (Simulator.authenticate); None when it names none. The token a
        header names is kept (`tokens`: a few keys send every request), the key looked up in
        the copy each time (a key killed or retiered since is seen)."""
        authorization = joined_authorization(scope)
        token = self.tokens.get(authorization, _UNPARSED)
        if token is _UNPARSED:
            scheme, _, value = authorization.decode("latin-1").partition(" ")
            token = value.strip() if scheme.lower() == "bearer" else None
            if len(self.tokens) >= TOKENS:
                self.tokens.clear()
            self.tokens[authorization] = token
        return None if token is None else self.deps.sim.state.keys.get(token)

    async def _lease(self, mends: bool = False) -> None:
        """Take the lease, with the changes up to now (after every commit of this worker came
        back, so the copy holds nothing that is not committed)."""
        while not self.deps.sim.holds_lease():  # (one taken for a request that went away)
            heard = self.store.heard()  # the releases heard before this try went
            sent = self.store.send_changes(True, mend=mends)
            self._sent()
            self.asking += 1
            sent.add_done_callback(self._answered)
            try:
                changes = await asyncio.shield(sent)
            except asyncio.CancelledError:
                sent.add_done_callback(self._orphan)
                raise
            if changes is not None:
                try:
                    self.deps.sim.leased(changes, mends)
                except StoreUnavailable:  # what it brought cannot be read: it goes back
                    self.store.let_go()
                    raise
                return
            # Held by another worker: it says when it gives it back (stores/redis_handoff.py).
            await self.store.handed(heard)

    async def _refresh(self) -> None:
        """Catch up before asking for the lease, after a quiet while: a worker far behind
        applies what the others wrote while they go on writing, then takes the lease with
        what little came since (else it would apply it all holding the lease, and every
        worker would wait)."""
        sent = self.store.send_changes(False)
        self._sent()
        sent.add_done_callback(self._refreshed)
        await asyncio.shield(sent)  # cancelled or not, its answer is applied (`_refreshed`)

    def _refreshed(self, sent: asyncio.Future[Any]) -> None:
        if not sent.cancelled() and sent.exception() is None:
            with contextlib.suppress(StoreUnavailable):  # unreadable: the lease's answer says so
                self.deps.sim.caught_up(sent.result())

    def _sent(self) -> None:
        self.trips += 1
        self.last_trip = time.monotonic()

    def _answered(self, _: asyncio.Future[Any]) -> None:
        self.asking -= 1
        self._changed()

    def _orphan(self, sent: asyncio.Future[Any]) -> None:
        """The lease answer of a request that went away: its changes are applied all the same
        (the store counts them as seen), and a lease it took goes back unless the next
        write takes it over."""
        if sent.cancelled() or sent.exception() is not None or sent.result() is None:
            return
        try:
            self.deps.sim.leased(sent.result())
        except StoreUnavailable:  # cannot be read (the next round trip says so): it goes back
            self.store.let_go()
            return
        asyncio.get_running_loop().call_later(LINGER_S, self._let_go, self.began)

    async def sleep(self, seconds: float) -> None:
        """A latency fault: send what the request (and its group) did so far, give the lease
        and the turn up while sleeping, and take them again after (catching up with what
        happened meanwhile), as a group of its own. A read is not running on the copy while
        it sleeps, and runs again only on a copy that holds nothing uncommitted."""
        if not _HOLDING.get():
            self._read_done()
            try:
                await self.nap(seconds)
            finally:
                await self._until(self._clean)
                self.reading += 1
            if self.deps.sim.stale:  # a commit failed meanwhile: the copy may hold its changes
                _ORDERED.set(False)  # (its 503 is not the copy's answer)
                raise _unreachable(StoreUnavailable(STALE))
            return
        before = self.group  # holds what the request did so far (a rule used up, its rate)
        self._close(keep=False)  # other workers may write while it sleeps
        _HOLDING.set(False)
        self._give_turn()
        try:
            await self.nap(seconds)
        finally:
            if not self.turn.take():
                await self._take_turn()
        try:
            await self._begin(True)
        except StoreUnavailable as exc:
            self._give_turn()  # the request's own `finally` gives it back otherwise
            await self.turn.acquire()  # ... so it must hold it when it unwinds
            _ORDERED.set(False)
            raise _unreachable(exc) from None
        assert self.group is not None
        self.group.size += 1
        _HOLDING.set(True)
        # That commit came back before this lease was taken: if it failed, the copy was read
        # again without what the request did, and it must not go on as if it had (a rule
        # with a count would fire once more).
        failure = before.done.result() if before is not None and before.done.done() else None
        if failure is not None:
            _ORDERED.set(False)
            raise _unreachable(failure, write=True)

    def _clean(self) -> bool:
        """The copy holds nothing uncommitted, and no writer is let in."""
        writer = self.target is not None and self.catch_ups >= self.target
        return self.group is None and not self.flying and not writer

    async def _unavailable(self, scope: dict[str, Any], send: Any, exc: StoreUnavailable) -> None:
        """The gate's own 503 (no round trip to Redis could be made for the request), in the
        journal as the app's answers are: the journal records what each client got, of the
        requests it records at all. Those are the operations' (partner and not simulated),
        as on one server: a control-plane call, an unknown path or a 405 is not journaled
        whatever its answer, a 503 included (`_journaled`)."""
        request_id = self.deps.sim.request_id()
        headers = [(b"x-request-id", request_id.encode())]
        from ..ui.pipeline import browser_dashboard, send_unreachable  # (ui imports http)
        from .app import without_body  # (app imports this module)

        if scope["method"] == "HEAD":  # the GET's answer without its body, as the app sends
            send = without_body(send)

        if browser_dashboard(scope["method"], scope["path"], _accept(scope)):
            await send_unreachable(send, headers)  # a control route: not journaled, below
            return
        error = _unreachable(exc)
        body = dumps(error_body(error, request_id))
        if scope["path"] != READY:  # a probe's "not ready" is no invitation to retry it
            headers += error_headers(error)
        position = self.deps.journal.position()
        await send_response(send, 503, headers, body)
        pipeline = self._journaled(scope)
        if pipeline is None:
            return
        # the key as the app would have recorded it: a tenant reads its own keys' entries, and
        # the 503s its requests got are among them (a not-simulated operation records none)
        key = self._key(scope) if type(pipeline) is OperationPipeline else None
        length = str(len(body)).encode()
        sent = [*headers, (b"content-type", b"application/json"), (b"content-length", length)]
        self.deps.journal.add(
            self.deps.sim.now(),
            scope["method"],
            scope["path"],
            scope.get("query_string", b"").decode("latin-1"),
            503,
            request_id,
            key.api_key_id if key is not None else None,
            pipeline.op.operation_id,
            None,
            (scope["headers"], b"", sent, body),
            position,
            key.org_id if key is not None else None,
        )

    def _journaled(self, scope: dict[str, Any]) -> OperationPipeline | NotSimulated | None:
        """The operation a request reaches, if it is one the journal records (what the app
        journals: a partner operation's pipeline, or a not-simulated operation's answer);
        None for the control plane, an unknown path or a method the path has not (405).
        Looked up only for a 503, off the hot path: the routes in the app's order."""
        method = scope["method"]
        for route in self.app.routes:
            if route.matches(scope)[0] is Match.NONE:
                continue
            by_method = getattr(getattr(route, "app", None), "by_method", {})  # PathDispatch
            target = by_method.get(method)
            if target is None and method == "HEAD":  # HEAD is the GET without its body
                target = by_method.get("GET")
            return target if isinstance(target, OperationPipeline | NotSimulated) else None
        return None


def _replay(messages: list[dict[str, Any]], receive: Any) -> Any:
    """A `receive` for the app that hands over again the messages `_leased` read ahead (as
    inputs.read_body would: up to the body's length, or past MAX_BODY_BYTES), then the
    server's: a request holding the turn must not wait there for its client's bytes, as every
    request after it in the group would wait too, and every other worker's writes for the
    lease (an import past MAX_BODY_BYTES still reads its rest holding them: see the README)."""
    read = iter(messages)

    async def again() -> dict[str, Any]:
        message = next(read, None)
        return message if message is not None else await receive()

    return again


def _unsimulated(route: Any) -> bool:
    """Whether a route answers a method with a not-simulated operation's fixed 501."""
    methods = getattr(getattr(route, "app", None), "by_method", {})
    return any(type(target) is NotSimulated for target in methods.values())


def _bearer(authorization: bytes | None) -> bool:
    """Whether an Authorization header names a bearer key (any case of the scheme)."""
    return authorization is not None and authorization.partition(b" ")[0].lower() == b"bearer"


def _accept(scope: dict[str, Any]) -> str | None:
    """The request's Accept, if it sent one."""
    return next((v.decode("latin-1") for k, v in scope["headers"] if k == b"accept"), None)


def _failed(failure: StoreUnavailable, control: bool = False) -> Failed:
    """What a request of a group whose commit failed gets instead of its answer: a 503 with
    its request id and rate headers (sent by Held, recorded by the journal)."""

    def answer(request_id: str, headers: RawHeaders) -> tuple[list[tuple[bytes, bytes]], bytes]:
        kept = [(k, v) for k, v in headers if k == b"x-request-id" or k.startswith(b"x-ratelimit-")]
        error = _unreachable(failure, write=True, control=control)
        return kept + error_headers(error), dumps(error_body(error, request_id))

    return answer


def _unreachable(exc: StoreUnavailable, write: bool = False, control: bool = False) -> ApiError:
    if isinstance(exc, Refused):  # refused before it ran: full, a replica, busy, ...
        message = refused(exc)
    elif write and isinstance(exc, OutcomeUnknown):  # sent, and its answer lost
        find_out = (
            "Read it back to find out."
            if control
            else "Retry with the same Idempotency-Key to find out."
        )
        message = (
            "The mock lost its shared state's answer to this request's write: it may have been "
            f"kept. {find_out}"
        )
    else:
        message = "The mock could not reach its shared state; nothing of this request was done."
    return ApiError("STORAGE_UNAVAILABLE", message, {"reason": str(exc)}, retry_after(exc))
