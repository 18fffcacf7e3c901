"""What a store is: the one interface between the pure state and wherever it is kept.

The simulator changes the state in memory and names what changed (`State.dirty`); `persist.py`
turns that into a `Batch` of rows, and the HTTP edge hands the batch to the store before the
response leaves, so a client that saw a 2xx can rely on its effect surviving a crash of a
durable store. Stores live outside core/ (layers_mock_server/stores/); tests/stores holds the one
contract suite every store passes.

The interface is rows, not Python objects, so that a store on another machine (Redis, a
database server) can implement it: a row is `(table, id, bytes)`, a batch is applied whole or
not at all, and `open` both claims the store for this server and reads it back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

Row = tuple[str, str, bytes]  # (table, id, data)


class StoreInUse(Exception):
    """Another server holds the store: two writers would silently overwrite each other."""


class StoreUnavailable(Exception):
    """A write did not happen: nothing of the batch is in the store; the message says why, for
    the operator. This class is for causes that pass by themselves (a shared store out of
    reach); StoreBroken is for those that need someone to act (a full disk, an I/O error)."""

    # Whether the cause passes by itself, so that the same request a second later may work:
    # a shared store unreachable or its connection lost, a lease lost to another worker. The
    # 503 then says when to retry (http/pipeline.py `retry_after`); the causes that need
    # someone to act are StoreBroken, and Refused says which of Redis's refusals pass.
    transient = True


class StoreUnreachable(ValueError):
    """A shared store that could not be reached as it opened (the connection refused or not
    made in time, Redis loading its dataset): a cause that passes by itself. Unlike any other
    ValueError of its start (one sentence, exit 2), `serve` does not exit for it: it says so
    and answers from a stand-in (http/waiting.py) until the store opens (cli.py
    `_serve_waiting`), as a worker started in place of one that died does (cli.py `opened`)."""


class StoreBroken(StoreUnavailable):
    """... for a cause that waiting does not cure: a full disk, an I/O error, a read-only or
    closed file, a stored state this version cannot read. Someone has to act first."""

    transient = False


@dataclass(frozen=True, slots=True)
class Batch:
    """One atomic write: `wipe` empties the store first, then deletes and upserts apply, then
    the meta row (seed, counters, clock; rules, rate windows and organizations' clocks are
    rows: persist.py) is replaced when given."""

    upserts: Iterable[Row] = ()
    deletes: Sequence[tuple[str, str]] = ()
    meta: bytes | None = None
    wipe: bool = False
    # The rate windows a shared store counts itself (Bucket) live outside the rows and the
    # meta row, so what replaces a state's windows says so: `unread` the API keys whose
    # counted windows go (an organization's reset), `reads` the windows (api_key_id, class,
    # window, used) the store holds after a wipe (none after a reset, an import's own). A store
    # that counts no windows itself (they are in the meta row) ignores both.
    unread: Sequence[str] = ()
    reads: Sequence[tuple[str, str, int, int]] = ()


@dataclass(slots=True)
class Stored:
    """What `open` found: the meta row and every row, each table in the order it was written
    (list order and idempotency eviction order depend on it)."""

    meta: bytes
    rows: Iterator[Row] = field(default_factory=lambda: iter(()))
    # How long ago the meta row was written, by the store's clock, when a wall clock should
    # count that time (a shared store: its clock runs while any worker runs); else 0.
    elapsed_ms: int = 0


class OutcomeUnknown(StoreUnavailable):
    """A write reached a shared store, and its answer was lost (the connection closed, or no
    answer came in time): it may have been applied, or not. The client is told so, and a
    retry with the same Idempotency-Key answers what was kept."""


class Refused(StoreUnavailable):
    """A shared store refused a command before running any of it (Redis answers each
    pipelined command on its own): nothing of it happened, for certain, so a retry is safe
    and what it carried (journal entries) can be sent again. `code` is the store's word for
    why (Redis's error code: BUSY, LOADING, MISCONF, READONLY, NOREPLICAS, NOSCRIPT, OOM;
    on a cluster, TRYAGAIN, ASK or MOVED: a reshard of the sandbox's slot is half-way)."""

    def __init__(self, reason: str, code: str = "") -> None:
        super().__init__(reason)
        self.code = code
        self.transient = code in PASSING


# Redis's refusals that pass by themselves: a script that ends (BUSY), a dataset that loads
# (LOADING), the mock's scripts, which it loads again (NOSCRIPT), a reshard that ends (TRYAGAIN,
# ASK, MOVED). Not OOM, MISCONF, READONLY, NOREPLICAS (Redis's operator acts: room, a disk, a
# primary, a replica), nor WRONGTYPE or DAMAGED (a key someone overwrote: a reset mends it).
PASSING = frozenset({"BUSY", "LOADING", "NOSCRIPT", "TRYAGAIN", "ASK", "MOVED"})


class StoreFull(Refused):
    """... because the store is full (Redis at its `maxmemory`, noeviction): it takes no
    write until it has room again, and still answers reads."""


class StoreConflict(StoreUnavailable):
    """A shared store's lease on the sandbox was lost before the write (it outlived the lease,
    and another worker has written since): nothing of the batch is in the store, and the
    writer's copy of the state is behind and must be read again."""


@dataclass(slots=True)
class Changes:
    """What other workers committed to a shared store since this worker last looked: the
    batches in commit order, or (when the log no longer reaches back, or one was a wipe)
    everything, to be installed in place of the worker's copy. A batch's rows and meta row
    may be those a later batch of the same changes wrote (Redis reads them as of the last:
    stores/redis_scripts.py NAMED), and a row a later batch deletes may be missing from it:
    applied in order, the batches leave the copy exactly as the last of them left the store,
    each row placed where its first write since it last existed placed it."""

    batches: list[Batch] = field(default_factory=list)
    everything: Stored | None = None
    # Each counted request's number in its rate window, in the order the buckets were given.
    counted: list[int] = field(default_factory=list)
    # Every window the store counts itself (api_key_id, class, window, used), when asked for
    # (an export, which holds them): a worker's copy has only those of the reads it answered.
    windows: list[tuple[str, str, int, int]] | None = None
    # The store holds no sandbox at all any more (flushed, or restarted without its data):
    # the worker starts afresh from its fixtures, as on a first start (lifecycle.py).
    gone: bool = False


@dataclass(frozen=True, slots=True)
class Reach:
    """What a worker knows of its shared store without asking it (`/_mock/health`): whether
    its last attempt to reach it worked (and why not), how long the oldest command it sent has
    waited for an answer (a store that stalls before any attempt fails), and whether it was
    last found full (reads answer, writes are refused)."""

    reachable: bool
    reason: str | None = None
    waiting_ms: int = 0
    full: bool = False  # the last script that needs room was refused: Redis is at maxmemory
    # What the store said when it last refused a script that may write (nothing of it ran),
    # until one runs again: a replica, a failing disk, a busy or loading Redis.
    refused: str | None = None


@dataclass(frozen=True, slots=True)
class Bucket:
    """A rate window counted in the shared store itself, in the same round trip as the
    catch-up: a read's window is exact across workers without a write of its own. One
    catch-up counts many reads (one bucket each, the same bucket as often as it is given).
    The store keeps one window a key and class, as RateLimiter does: counted in another
    `window` (the clock moved), it starts again from nothing, so a window is kept exactly as
    long as its clock stays in its minute, however long that is in real time; only the
    minute just before the kept one is kept beside it, for a read that counted on it late."""

    api_key_id: str
    endpoint_class: str
    window: int


class Store(Protocol):
    durable: bool  # False: nothing survives the process, and `open` always finds nothing
    # True: many servers (workers, hosts) open it at once, each keeping a copy of the state
    # that it brings up to date before each request (`SharedStore`); False: one server.
    shared: bool

    def open(self) -> Stored | None:
        """Claim the store for this server (StoreInUse if another holds it) and read what
        earlier runs left, or None when there is nothing to resume."""

    def write(self, batch: Batch) -> None:
        """Apply the whole batch or none of it (StoreUnavailable)."""

    def close(self) -> None:
        """Release the store; a closed store can be opened again, by this or another server."""


class SharedStore(Store, Protocol):
    """A store that many servers use at once (stores/redis.py). Each keeps a copy of the state;
    a request first applies what the others committed (`changes`), and a request that may
    change the state runs under the sandbox's lease (`lock` ... `write`/`unlock`), so requests
    are serializable across servers: one order, as if one process had answered them all."""

    def changes(self, buckets: Sequence[Bucket] = (), windows: bool = False) -> Changes:
        """What others committed since this store's position (one round trip), counting one
        request in each of `buckets` (`Changes.counted`, in the same order), and with every
        counted window when `windows` (`Changes.windows`)."""

    def lock(self) -> Changes | None:
        """Take the lease and return the changes up to now (one round trip), or None when
        another server holds it (try again shortly)."""

    def unlock(self) -> None:
        """Give the lease back (a no-op when not held)."""

    def write_all(self, batches: Sequence[Batch]) -> None:
        """`write` for several batches, in order, all or none: a group commit (each batch is
        one request's). The store may keep and log them merged (persist.merged): others then
        apply one batch that leaves exactly what the batches, one after another, leave."""

    def holds(self) -> bool:
        """Whether this server holds the lease (a write gives it back)."""

    def forget(self) -> None:
        """This worker's copy can no longer be trusted (a write failed): the next `changes`
        or `lock` sends everything."""

    ident: str  # this server's name among those sharing the store
    # The store lost its count of request numbers since this server's first block (flushed,
    # or restarted without its data): blocks it grants now may be ones it granted before.
    recounted: bool

    def reserve(self, kind: str, count: int) -> int:
        """Claim `count` request numbers of `kind` for this server; the last one claimed."""

    def reserve_ahead(self, kind: str, count: int, landed: Callable[[int | None], None]) -> None:
        """`reserve` without waiting for it on a running event loop: `landed` gets the last
        number claimed, or None when the store could not be reached (outside a loop, it
        is called before this returns)."""

    def reach(self) -> Reach:
        """What this server knows of the store's health from its own round trips (it makes
        none to tell)."""
