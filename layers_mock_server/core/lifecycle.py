"""The state's lifecycle: where it is kept, what replaces it, and the ids of requests.

Whatever replaces the state (a reset, an import) is written to the store first and swapped in
only once that succeeded, so memory and store never disagree; `generation` counts the swaps, so
that a request that waited (a latency fault) can tell its lookups are stale. Request ids live
here, beside the state rather than in it: a reset does not rewind them (requestids.py).

On a shared store (many workers, store.SharedStore) the state here is this worker's copy:
`caught_up` applies what the other workers committed (replica.py), and a request that may
change the state first takes the sandbox's lease (`leased`), so that writes happen in one
order across workers (http/shared.py does the round trips). A copy that may have drifted
from the store (a write that failed) is read again whole before it answers anything else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from . import replica
from .clock import MAX_MS, Clock
from .errors import ApiError, not_found
from .fixtures import Fixtures
from .persist import Marks, counter_rows, dirty_batch, load, meta_bytes, whole_batch
from .ratelimit import READ_CLASS
from .records import canonical_id
from .requestids import BLOCK, KINDS, RequestIds
from .restore import Check, Restored
from .state import State
from .store import (
    Batch,
    Bucket,
    Changes,
    SharedStore,
    Store,
    StoreBroken,
    Stored,
    StoreUnavailable,
)


class Lifecycle:
    """The part of the Simulator that keeps, replaces and stores its State."""

    def __init__(
        self, fixtures: Fixtures, clock: Clock, seed: int = 0, store: Store | None = None
    ) -> None:
        self.fixtures = fixtures
        self.clock = clock
        self.state = State.from_fixtures(fixtures, seed)
        self.requests = RequestIds()  # not part of the state: never reset, never rewound
        self.generation = 0
        self.store = store if store is not None and store.durable else None
        self.shared: SharedStore | None = None
        # On a shared store, whether the request running now holds the lease (http/shared.py
        # tells): a read that runs while another request of this worker holds it must not
        # write that request's half-done changes, nor give its lease back.
        self.may_commit: Callable[[], bool] = lambda: True
        # Whether the request's commit waits for its group's (http/shared.py): what it
        # changed is marked in `marks`, its rows encoded once with the group's at its close;
        # a batch of its own (a reset's, an import's) is kept in `pending`, in order, after
        # what was marked before it; `group_batches` hands them all to one commit.
        self.defers: Callable[[], bool] = lambda: False
        self.pending: list[Batch] = []
        self.marks = Marks()
        # A commit failed and the copy (holding its changes) was not read again since: a
        # request must not answer from it (http/shared.py); the next catch-up clears it.
        self.stale = False
        # The shared store lost the sandbox (Changes.gone): the copy started afresh, and the
        # next commit stores it whole, not only what its requests changed.
        self.unwritten = False
        self.check: Check | None = None
        if store is not None and getattr(store, "shared", False):  # older test doubles lack it
            shared: SharedStore = store  # type: ignore[assignment]
            self.shared = shared
            self.requests.worker = shared.ident
            self.requests.ask = lambda kind: shared.reserve_ahead(
                kind, BLOCK, lambda end: self._landed(shared, kind, end)
            )
        elif self.store is not None:
            durable = self.store
            self.requests.reserve = lambda kind, ceilings: durable.write(
                Batch(counter_rows(ceilings))
            )

    def start(self, check: Check) -> None:
        """Resume what the store holds (checked like an import), or write the fresh state."""
        self.check = check
        if self.store is None:
            return
        stored = self.store.open()
        if stored is None:
            self.store.write(whole_batch(self.state, self.requests, self.clock))
        else:
            self._resume(stored)
        if self.shared is not None:
            self._first_blocks(self.shared)

    def _first_blocks(self, shared: SharedStore) -> None:
        """A first block of request numbers of each kind, before serving (start-up may wait
        for it): the first requests' numbers are in a block whatever the store does next."""
        for kind in KINDS:
            try:
                self._landed(shared, kind, shared.reserve(kind, BLOCK))
            except StoreUnavailable:
                self.requests.landed(kind, None)  # asked for again by the first request

    def _landed(self, shared: SharedStore, kind: str, end: int | None) -> None:
        """A block granted (or not: None); once the store lost its count of request numbers,
        this worker's ids are its own (requestids.py `alone`), whatever block they are in."""
        if shared.recounted:
            self.requests.alone = True
        self.requests.landed(kind, end)

    def _resume(self, stored: Stored) -> None:
        assert self.check is not None
        restored, ceilings = load(stored, self.check)
        self._install(restored.state)
        now_ms = restored.now_ms
        if self.clock.mode == "wall" and stored.elapsed_ms:  # a shared sandbox's time ran on
            now_ms = min(MAX_MS, now_ms + int(stored.elapsed_ms * self.clock.speed))
        self.clock.restore(now_ms)
        self.requests.advance(restored.requests)
        self.requests.resume(ceilings)

    def commit(self) -> None:
        """Write what the last request changed; StoreUnavailable if it could not be written
        (what it changed stays marked and goes with the next write that succeeds; on a shared
        store, this worker's copy is read again instead, as others may have written since)."""
        state = self.state
        if self.shared is not None and not self.may_commit():
            return  # not this request's to write: the lease holder's commit takes it along
        if state.dirty:
            if self.shared is not None and self.defers():  # the meta row goes with the group's
                self.marks.add(state)  # (and its rules, windows and clocks, still marked)
                state.dirty.clear()
                return
            if self.store is not None:
                try:
                    self.store.write(self._changed_batch(state))
                except StoreUnavailable:
                    if self.shared is not None:
                        self.shared.forget()
                        self.stale = True
                    raise
            state.clean()

    def _changed_batch(self, state: State) -> Batch:
        """What a write stores: what changed, or everything when the store lost the sandbox."""
        if self.unwritten:
            self.unwritten = False  # a failed write reads the store again, and finds it so
            return whole_batch(state, self.requests, self.clock)
        return dirty_batch(state, self.requests, self.clock)

    def group_batches(self) -> list[Batch]:
        """What a group of requests changed, for one commit (http/shared.py): the batches of
        its own some requests made, after what was marked before each, then what is left
        (with the meta row)."""
        batches, self.pending = self.pending, []
        state = self.state
        if self.unwritten:  # the whole copy holds them all
            self.marks.clear()
            batches = [self._changed_batch(state)]
        else:
            self.marks.add(state)
            batches.append(self.marks.batch(state, meta_bytes(state, self.requests, self.clock)))
        state.clean()
        return batches

    def drop_group(self) -> None:
        """A group whose commit is not sent (the lease was lost): nothing of it is written."""
        self.pending.clear()
        self.marks.clear()
        self.state.clean()

    def commit_failed(self) -> None:
        """A commit of this worker failed: its copy holds changes the store does not, and is
        read again whole by the next catch-up or lease; until then nothing answers from it."""
        assert self.shared is not None
        self.shared.forget()
        self.stale = True

    # -- a shared store ---------------------------------------------------------------------

    def caught_up(self, changes: Changes) -> list[int]:
        """Apply what other workers committed since this one last looked (a catch-up of
        http/shared.py, counting the waiting reads in their rate windows in the same round
        trip). Returns each read's number in its window, which `count` installs when that
        request runs."""
        self._apply(changes)
        if changes.windows is not None:  # every read window, as the store counted them
            keys = {k.api_key_id for k in self.state.keys.values()}
            windows = [w for w in changes.windows if w[0] in keys and w[1] == READ_CLASS]
            self.state.rates.replace_class(READ_CLASS, windows)
        return changes.counted

    def count(self, bucket: Bucket, counted: int) -> None:
        """The request about to run is the `counted`-th in its rate window across workers:
        its own take in the pipeline makes it so (exact however the waiting reads interleave)."""
        self.state.rates.seed(bucket.api_key_id, bucket.endpoint_class, bucket.window, counted - 1)

    def leased(self, changes: Changes, mends: bool = False) -> None:
        """The sandbox's write lease was taken with `changes`: apply them. The rate windows a
        leased request uses are written with it, even if nothing else is. `mends`: the lease
        is a global reset's or an import's (http/shared.py MENDS), which replaces the state
        whole: a sandbox this worker cannot read (a key of it spoiled by hand) is no reason to
        refuse it, and it runs on the fixtures' state (its commit, a wipe, mends the sandbox;
        one of an organization's reset is not a wipe, and Redis refuses it)."""
        self._apply(changes, mends)
        self.state.dirty.add(("meta", ""))

    def holds_lease(self) -> bool:
        return self.shared is not None and self.shared.holds()

    def release_lease(self) -> None:
        if self.shared is not None:
            self.shared.unlock()

    def _apply(self, changes: Changes, mends: bool = False) -> None:
        self.stale = False  # caught up: after a failed commit, everything was read again
        if changes.gone:  # flushed, or Redis restarted without its data: as on a first start
            self._install(State.from_fixtures(self.fixtures, self.state.seed))
            self.clock.reset()
            self.unwritten = True
        elif changes.everything is not None:
            self.unwritten = False
            try:
                self._resume(changes.everything)
            except (ApiError, ValueError) as exc:  # orjson's JSONDecodeError is a ValueError
                if mends:  # (the store stands at the commit it read: the wipe follows it)
                    self._install(State.from_fixtures(self.fixtures, self.state.seed))
                    return
                assert self.shared is not None  # (the copy is as it was: read again next time)
                self.shared.forget()
                self.stale = True
                raise StoreBroken(_unreadable(exc)) from None
        elif changes.batches:
            for batch in changes.batches:
                replica.apply(self.state, batch, self.clock)
            self.generation += 1  # records were replaced: a waiting request looks them up again

    def reset(self, seed: int | None = None) -> None:
        fresh = State.from_fixtures(self.fixtures, self.state.seed if seed is None else seed)
        self._replace(fresh, self.clock.start_ms)
        self.clock.reset()

    def reset_organization(self, organization_id: str) -> None:
        if organization_id not in self.fixtures.organizations:
            raise not_found("Organization")
        after = self.state.without_organization(organization_id, self.fixtures)
        if self.store is not None:  # and the read windows a shared store counts itself
            ours = {k.api_key_id for k in self.state.keys.values() if k.org_id == organization_id}
            ours |= {k.api_key_id for k in after.keys.values() if k.org_id == organization_id}
            self._store(replace(self._changed_batch(after), unread=sorted(ours)))
        after.clean()
        self._install(after)

    def restore(self, restored: Restored) -> None:
        """An import: the state, the clock's instant, and request ids that only move forward."""
        self.requests.advance(restored.requests)
        self._replace(restored.state, restored.now_ms)
        self.clock.restore(restored.now_ms)

    def _replace(self, state: State, now_ms: int) -> None:
        if self.store is not None:
            self._store(whole_batch(state, self.requests, self.clock, now_ms))
            self.unwritten = False
        state.clean()
        self._install(state)

    def _store(self, batch: Batch) -> None:
        """What replaces the state, written before it does (StoreUnavailable: it does not);
        on a shared store, a request of the gate's sends it with its group's commit instead,
        and is answered once that came back (if it fails, the copy is read again)."""
        assert self.store is not None
        if self.shared is not None and self.defers():
            if self.marks:  # what the group changed before it, from the state it replaces
                self.pending.append(self.marks.batch(self.state, None))
            self.pending.append(batch)
        else:
            self.store.write(batch)

    def _install(self, state: State) -> None:
        self.state = state
        self.generation += 1

    # -- a clock per organization (orgclocks.py) -------------------------------------------

    def organization(self, raw: str) -> str:
        """The id of an existing organization (with or without its `org_` prefix), or 404."""
        orgs = self.state.organizations
        org_id = raw if raw in orgs else canonical_id("org_", raw)
        if not org_id or org_id not in orgs:
            raise not_found("Organization")
        return org_id

    def organization_clock(self, org_id: str) -> tuple[int, bool]:
        """(the organization's instant, whether it has a clock of its own)."""
        clocks = self.state.clocks
        return clocks.now(org_id, self.clock.now_ms()), clocks.is_detached(org_id)

    def advance_organization(self, org_id: str, seconds: float) -> int:
        moved = self.state.clocks.advance(org_id, seconds, self.clock.now_ms())
        self.state.dirty.add(("meta", ""))
        return moved

    def set_organization(self, org_id: str, instant_ms: int) -> int:
        moved = self.state.clocks.set(org_id, instant_ms, self.clock.now_ms())
        self.state.dirty.add(("meta", ""))
        return moved

    def follow_server_clock(self, org_id: str) -> int:
        now = self.state.clocks.follow(org_id, self.clock.now_ms())
        self.state.dirty.add(("meta", ""))
        return now

    def request_id(self, kind: str = "req") -> str:
        return self.requests.next(kind, self.state.seed, self.clock.now_ms())


def _unreadable(exc: Exception) -> str:
    """Why the shared store's sandbox cannot be installed (another version wrote it, or it
    was tampered with), and what starts it afresh."""
    found = (
        "; ".join((exc.details or {}).get("formErrors", [])[:3]) or exc.message
        if isinstance(exc, ApiError)
        else str(exc)
    )
    return (
        "the shared store holds a sandbox state this version of layers-mock cannot read "
        f"({found}); remove the sandbox from the store to start it afresh"
    )
