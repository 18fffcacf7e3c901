"""The gate in front of the app on a shared store: every request sees one order of writes.

Before a request, the worker's copy of the state catches up with what the other workers
committed (core/lifecycle.py). A request that may change the state (POST, PATCH, PUT, DELETE;
any request while rules are set; a read of a job that polls move, or any with `--progression
poll`) first takes the sandbox's write lease, so writes are serialized across workers; its
commit gives the lease back in the same round trip. A read takes no lease, and shares its
catch-up: reads that arrive together wait in a queue, and one round trip, started after every
one of them arrived (`loop.call_soon`), brings the copy up to date for all of them; so each is
answered from a copy at least as new as the moment it arrived (linearizable), and under load K
reads cost one round trip instead of K. That round trip also counts each partner read in its
key's read-light window in Redis, and hands each read its own number there, so read limits
hold across workers as write limits do (through the commits). The round trip stays a
synchronous call of redis-py's client: nothing else of this worker runs in the middle of it.

Within the worker, an asyncio lock makes its own leased requests take turns, so the lease is
asked for by one request at a time; a latency fault gives the lease up while it sleeps
(`sleep`), so a slow answer does not hold every other worker's writes.
"""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

from ..core.errors import ApiError
from ..core.ratelimit import LIMITS, WINDOW_MS
from ..core.store import Bucket, StoreUnavailable
from ..deps import Deps
from .render import dumps, error_body, send_response

WRITES = frozenset({"POST", "PATCH", "PUT", "DELETE"})
HEALTH = "/_mock/health"  # the process is alive, whatever Redis is doing: no round trip
READ_CLASS = "read-light"  # every partner GET's x-rate-class (openapi/layers.yaml)
JOB_READ = "/v1/jobs/"  # GET /v1/jobs/{jobId}: records a poll step of a job moved by polls
RETRY_S = 0.002  # between two tries for a lease another worker holds (server, not test, code)
_HOLDING: contextvars.ContextVar[bool] = contextvars.ContextVar("holding", default=False)


class SharedGate:
    """ASGI middleware: catch up, take the lease when the request may write, give it back."""

    nap = staticmethod(asyncio.sleep)  # a latency fault's wait (tests look inside it)

    def __init__(self, app: Any, deps: Deps) -> None:
        self.app = app
        self.deps = deps
        self.turn = asyncio.Lock()
        # Reads waiting for the next catch-up, each with the rate window it counts in.
        self.waiting: list[tuple[Bucket | None, asyncio.Future[int]]] = []
        deps.shared = self
        deps.sim.may_commit = _HOLDING.get  # only the request holding the lease writes

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)  # the app's `state`, `routes`, ... as if unwrapped

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

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] == HEALTH:
            await self.app(scope, receive, send)
            return
        if scope["method"] not in WRITES:  # a write catches up as it takes the lease
            bucket = self._bucket(scope)
            try:
                counted = await self._caught_up(bucket)
            except StoreUnavailable as exc:
                await self._unavailable(send, exc)
                return
            if bucket is not None:
                self.deps.sim.count(bucket, counted)
            if not self._writes(scope):
                await self.app(scope, receive, send)
                return
        async with self.turn:
            try:
                await self._lease()
            except StoreUnavailable as exc:
                await self._unavailable(send, exc)
                return
            try:
                await self.app(scope, receive, send)
            finally:
                self._release()

    def _caught_up(self, bucket: Bucket | None) -> asyncio.Future[int]:
        """Wait for the next shared catch-up (it counts `bucket` when given; its number there)."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.waiting.append((bucket, future))
        if len(self.waiting) == 1:  # the first to wait schedules the round trip for all
            future.get_loop().call_soon(self._catch_up)
        return future

    def _catch_up(self) -> None:
        """One round trip for every read waiting now; each is woken with its number in its
        rate window (0 without one), or with the reason none of them could be answered."""
        waiting, self.waiting = self.waiting, []
        buckets = [b for b, _ in waiting if b is not None]
        try:
            counted = iter(self.deps.sim.catch_up(buckets))
        except Exception as exc:  # StoreUnavailable: 503 each; anything else: each one's bug
            for _, future in waiting:
                if not future.done():
                    future.set_exception(exc)
            return
        for bucket, future in waiting:
            number = next(counted) if bucket is not None else 0
            if not future.done():  # a reader that went away was counted all the same
                future.set_result(number)

    def _bucket(self, scope: dict[str, Any]) -> Bucket | None:
        """The read-light window a partner read of a rate-limited key counts in, so that it is
        counted in Redis (exact across workers) with the catch-up; None for anything else."""
        if self.app.partner.match(scope["path"], scope["method"]) is None:
            return None
        authorization = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
        scheme, _, token = authorization.decode("latin-1").partition(" ")
        sim = self.deps.sim
        key = sim.state.keys.get(token.strip()) if scheme.lower() == "bearer" else None
        if key is None or key.killed or key.tier not in LIMITS:
            return None
        # the window on the key's organization's clock, as the pipeline's rate limit reads it
        return Bucket(key.api_key_id, READ_CLASS, sim.now(key.org_id) // WINDOW_MS)

    async def _lease(self) -> None:
        sim = self.deps.sim
        # Held by another process: nothing in this one to wait on, so poll.
        while not sim.take_lease():  # noqa: ASYNC110
            await asyncio.sleep(RETRY_S)
        _HOLDING.set(True)

    def _release(self) -> None:
        """Anything the request left unwritten is written (in practice nothing: the pipelines
        commit before they answer), then the lease is given back if the commit did not."""
        sim = self.deps.sim
        try:
            if sim.state.dirty and sim.holds_lease():
                sim.commit()
        except StoreUnavailable:
            pass  # the copy is read again before the next request (Lifecycle.commit)
        finally:
            _HOLDING.set(False)
            sim.release_lease()

    async def sleep(self, seconds: float) -> None:
        """A latency fault: write what the request did so far, give the lease and the turn up
        while sleeping, and take them again after (catching up with what happened meanwhile)."""
        if not _HOLDING.get():
            await self.nap(seconds)
            return
        self._release()
        self.turn.release()
        try:
            await self.nap(seconds)
        finally:
            await self.turn.acquire()
        try:
            await self._lease()
        except StoreUnavailable as exc:
            raise _unreachable(exc) from None

    async def _unavailable(self, send: Any, exc: StoreUnavailable) -> None:
        request_id = self.deps.sim.request_id()
        body = dumps(error_body(_unreachable(exc), request_id))
        await send_response(send, 503, [(b"x-request-id", request_id.encode())], body)


def _unreachable(exc: StoreUnavailable) -> ApiError:
    return ApiError(
        "STORAGE_UNAVAILABLE",
        "The mock could not reach its shared state; nothing of this request was done.",
        {"reason": str(exc)},
    )
