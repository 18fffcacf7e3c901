"""The state on Redis (`--state redis://HOST:PORT/DB`): one sandbox shared by many workers.

Every worker (a process of `--workers N`, or a server on another host) keeps a copy of the
state and Redis keeps the truth, as a log of committed batches beside the rows they leave:

- `rows` (a hash `table\\0id` -> row) and `order` (a sorted set: the order rows were first
  written, which lists and idempotency eviction depend on) hold the state, a rule, a rate
  window and an organization's own clock a row each too (tables `rules`, `rates`, `clocks`:
  core/persist.py), so that a commit sends only those it changed; `meta` holds the meta row
  (seed, id counters, the server clock: a few hundred bytes; a sandbox an earlier version
  wrote has the rules, windows and clocks in it, rows once a worker commits); `requests`
  the request-number counters (blocks are handed out with HINCRBY, so request ids stay
  unique across workers).
- `log` is a capped stream of the commits, numbered by `commits` (a group commit's batches
  are merged into one commit that counts as many, persist.merged), each entry naming the rows
  its commit wrote and deleted (their bytes are in `rows` and `meta` only: redis_scripts.py
  LOG_ENTRY): a worker brings its copy up to date by reading the entries after the last one
  it saw, with those rows as they are now (one round trip, XREVRANGE and HMGET: NAMED;
  usually none), and reads everything again only when the log no longer reaches back that far
  (it keeps about the newest `LOG_LENGTH` batches) or when an entry is a wipe (reset, import).
- `reads` holds the read-light windows, one field a key (core/store.Bucket): a partner read
  is counted there in its catch-up's round trip (CHANGES), not in a commit; a reset's commit
  drops the windows of the keys it resets (all, for a wipe), as the meta row's go. A read's
  catch-up with nothing to count (no window: an `unlimited` key's reads) and no journal entry
  to carry goes as PEEK instead, which reads what the copy is made of and holds it to the
  census, and writes nothing (redis_scripts.py; `send_changes`).
- `whole` is the census of the state (redis_scripts.py INTACT): every round trip holds
  `rows`, `order`, `meta` and `commits` to what the last commit left, so that a key spoiled
  by hand is refused by every worker alike (DAMAGED), not answered from one worker's copy
  and read as it is by another; its birth mark tells a worker that the commit count started
  anew under its copy.
- `at` is when (by Redis's clock) the meta row was last written: a worker that joins a
  sandbox on a wall clock counts the time since then, as the workers running meanwhile did.
- `journal-org:<organization in hex>` is an organization's request journal, a stream of its
  newest 1,000 entries, and `journal-org:` the one of entries of no organization
  (redis_journal.py; `journal-v2` and `journal` those of the versions before, one for all);
  `journal-seq` numbers the entries of all, and `journal-seq:org` each organization's among
  its own (a stream whose organization it does not count is from before a clearing), and
  in fields `~=<organization>` and `~=` the bytes of each stream and of all (the journal's
  server-wide total: redis_total.py);
  `journal-from:<worker>` the number of the last entry each worker had appended
  (redis_outbox.py), and `journal-floor` the commit of the last global reset: an entry
  answered before it that reaches Redis after it is dropped. `org-marks` holds each
  organization's own reset marks (what a tenant reads: issue 12 point 4).
- `serving` holds the settings the sandbox is served with and `workers` a liveness mark of
  each worker serving it (redis_serving.py): a worker with other settings is refused while
  any mark is live.
- `lease` is the sandbox's write lease: a request that may change the state takes it (and
  the changes so far, in the same round trip), runs on the up-to-date copy, and writes its
  batch with one script that also gives the lease back. So requests that write are
  serialized across workers in one order, exactly as one process would answer them: one
  influencer for twenty concurrent creates with one Idempotency-Key, a rate limit or a
  rule's count that holds exactly, ids that follow the commit order. The write script also
  checks that no one wrote since the writer's last look (compare-and-append), so a worker
  whose lease ran out (`LEASE_MS`) cannot overwrite a newer state: its write is refused.
  A worker refused the lease is next in line (`wants`; the next one `behind`), and hears when
  the lease is given back on the shard channel `handoff` (redis_handoff.py), which each worker
  listens to on a connection of its own: it does not poll.

All keys share one hash tag, `{lm:NAME}`, so every script touches one slot and runs on Redis
Cluster as it does on one server (a sandbox lives on one shard; see the README).

Durability is Redis's: a batch is applied before the script returns; with `appendonly yes`
and `appendfsync always` it is on disk before Redis answers, and so before the client's
answer is sent (see the README for what each `appendfsync` setting promises).

A full Redis (at its `maxmemory`, noeviction) refuses a script that may write before it
starts (StoreFull), so a commit is refused whole. Reads go on: a read's catch-up that Redis
refused is sent again as CHANGES_FULL, which counts the reads in their windows (a small
field a key, let through by `allow-oom`) and writes nothing else; request-number
blocks (a HINCRBY of an existing field) and giving a lease back (a DEL) run full too. The
journal's entries wait in the worker meanwhile (the newest `journal_capacity`) and go with
the first round trip Redis takes once it has room.

A serving worker sends everything through a pipe (redis_pipe.py: `send_write`,
`send_changes`, `reserve_ahead`, `journal_fetch`, and the lease given back): the worker goes
on while Redis works, and the gate (http/shared.py) keeps the order; no round trip waits on
its event loop. On a Redis Cluster or over TLS, which the pipe cannot speak, the same calls
go through a lane instead (redis_lane.py: redis-py's synchronous client on a thread of its
own, one call at a time in order), so no round trip waits on the loop there either. Start-up
and a stopping server (no loop runs) use redis-py's synchronous client.

Beside it: the Lua scripts (redis_scripts.py), how commits cross into the log and come back
(redis_log.py), the URL (redis_url.py), the pipe (redis_pipe.py) or the lane (redis_lane.py),
the journal (redis_journal.py) and Redis Cluster (redis_cluster.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import secrets
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from ..core.journal import DEFAULT_TOTAL_BYTES
from ..core.store import (
    Batch,
    Bucket,
    Changes,
    OutcomeUnknown,
    Reach,
    Refused,
    Row,
    StoreConflict,
    Stored,
    StoreFull,
    StoreInUse,
    StoreUnavailable,
    StoreUnreachable,
)
from ..said import say
from . import redis_handoff
from .redis_cluster import deadline, left, unstale
from .redis_handoff import DEAF_S, Handoff, Mark
from .redis_journal import (
    APPEND,
    CLEAR,
    FLUSH_ACK,
    FLUSH_ASK,
    ORG_MARKS,
    ORGS,
    READ_ALL,
    READ_ORG,
    Staged,
    counted,
    entries,
    org_entries,
    stream_orgs,
)
from .redis_lane import Lane
from .redis_log import SEP, read_entry, read_field, write_args
from .redis_outbox import Outbox
from .redis_pipe import Pipe, error, handled
from .redis_scripts import CHANGES, CHANGES_FULL, EVERYTHING, PEEK, RESERVE, ROOMY, UNLOCK, WRITE
from .redis_serving import BEAT, CLAIM, arguments, decoded, refusal
from .redis_total import SHED, SIZES, plan
from .redis_url import parse_url, shown

NO_ORG = b"~-"  # the field of no organization in the journal's counters (redis_journal.py)

T = TypeVar("T")

LOG_LENGTH = 10_000  # batches kept in the log; a worker further behind reads everything
# The scripts safe to run twice (they read, or write what a second run finds written):
# `_call(retry=True)` sends one again on a new connection when the first got no answer.
RETRIABLE = frozenset(
    {"changes", "changes-full", "journal-read", "journal-read-org", "journal-orgs"}
    | {"everything", "unlock", "org-marks", "peek"}
)
# How long a round trip waits for Redis at most, from the moment it was called: on one Redis
# the pipe's timeout; on a cluster or over TLS, the whole of the lane's round trip, tries again
# and readings of the slot map included (redis_cluster.py `deadline`).
TIMEOUT_S = 5.0
RELEASE_RETRY_S = 0.05  # between two tries to give back a lease while Redis is unreachable


class RedisStore:
    """A SharedStore on one Redis (see the module docstring); one per worker process."""

    durable = True
    shared = True
    # The main process of the `serve --workers N` this process is a worker of (`lead`).
    leader = ""

    def __init__(self, url: str, *, log_length: int = LOG_LENGTH) -> None:
        self.url, self.name, self.lease_ms = parse_url(url)
        self.where = shown(self.url)  # for messages: a password never reaches a client
        tag = "{lm:" + self.name + "}"
        self.keys = {
            k: f"{tag}:{k}"
            for k in (
                *("rows", "order", "meta", "log", "commits", "lease", "requests", "seq"),
                *("journal-seq", "journal-floor", "reads", "at", "wants", "serving", "workers"),
                "journal-seq:org",  # each organization's journal counter (redis_journal.py)
                "reset-mark",
                "org-marks",  # each organization's journal marks (redis_journal.py ORG_MARKS)
                "whole",  # the census of rows, order, meta and commits (redis_scripts.py INTACT)
                "behind",  # the worker in line after the one in line (`wants`)
                "handoff",  # a shard channel, not a key: a release heard (redis_handoff.py)
            )
        }
        # The journal: many entries a stream entry (redis_journal.py); an older version's,
        # one a stream entry, stays readable under `journal` until the journal is cleared.
        self.keys["journal"] = f"{tag}:journal-v2"
        self.keys["journal-v1"] = f"{tag}:journal"
        # Since: each organization's own stream, `journal-org:<its id in hex>`, and this one for
        # the entries of no organization (a request with no key, or an unknown one).
        self.keys["journal-org"] = f"{tag}:journal-org:"
        peeked = ("log", "commits", "reset-mark", "journal-floor", "whole", "meta", "rows", "order")
        self._peek_keys = [self.keys[k] for k in peeked]  # (redis_scripts.py PEEK)
        self.log_length = log_length
        self.seen = 0  # the number of the last commit this worker's copy includes
        # ... and the birth mark of the commit count it was read under (the census's, INTACT in
        # redis_scripts.py): another one says the count was lost and made anew since, and
        # the copy is read again whole, whatever the numbers say
        self.commits_born = b"0"
        self.token = ""  # our lease's token while we hold it
        # ... and one of ours that could not be given back without the pipe (its shard died):
        # given back before this worker asks for the lease again (`_give_back`)
        self.unreleased = ""
        self.ident = secrets.token_hex(8)  # this worker's name in the line for the lease
        # ... and its liveness mark's (redis_serving.py), after the `serve` it belongs to:
        # `--workers N` forks its workers after `lead` named it in this module
        self.member = f"{RedisStore.leader or self.ident} {self.ident}"
        # ... and its journal mark: the last of its entries appended (redis_outbox.py)
        self.keys["mark"] = f"{tag}:journal-from:{self.ident}"
        # Request-number blocks (RESERVE): the highest granted of each kind, the counter's
        # birth mark first seen, and whether a grant since bore another (`recounted`)
        self.granted: dict[str, int] = {}
        self.born: bytes | None = None
        self.recounted = False
        self._client: Any = None
        self._conn: Any = None  # a connection of our own for the scripts (see _call)
        self.pipe: Pipe | None = None  # ... and one that does not wait (see _send)
        # ... or, on a cluster or TLS, a thread of its own with its own connection (_send)
        self.lane: Lane | None = None
        self._lane_conn: Any = None
        self.handoff: Handoff | None = None  # ... and one that hears the lease given back
        self.on_wanted: Callable[[], None] | None = None  # ... and asked for (the gate's)
        self.in_line = False  # the last refused lease try left this worker next in line
        self.down: str | None = None  # why the last synchronous round trip failed (no pipe)
        self.outbox = Outbox()  # journal entries not appended yet (redis_journal.py)
        self.staged = Staged()  # ... and a group's, sent only with its kept commit
        self.clearing = False  # ... and whether that commit clears the journal (a reset's)
        self.sweeping: list[str] = []  # ... and the organizations' streams it deletes then
        self.marking = 0  # ... and the mark of the reset it holds (redis_journal.py), if any
        # ... and the marks of each organization a tenant's reset in it reset (all of them)
        self.org_marking: dict[str, list[int]] = {}
        # The latest mark a reset of the sandbox handed out (the `reset-mark` key), as of this
        # worker's copy: a later one names no reset (`GET /_mock/requests?after=`).
        self.reset_mark = 0
        self.listed: list[tuple[str, str, int, int]] | None = None  # the last `_listed` read
        # Redis refused the last write for want of room (`ROOMY`): until it takes one again,
        # the journal's entries wait in `outbox` instead of travelling with each round trip.
        self.full = False
        self.refused: str | None = None  # what Redis said when it last refused one (`_answered`)
        # The journal's bytes over every stream at most (redis_total.py), and whether this
        # worker is cutting it to that now.
        self.journal_total = DEFAULT_TOTAL_BYTES
        self.shedding = False
        self._scripts: dict[str, Any] = {}
        # The settings this worker serves with (redis_serving.py): recorded, and compared with
        # those of the live workers, when it opens; None (a store opened to look): neither.
        self.serving: dict[str, str] | None = None
        self.usurped = False  # a beat found other settings recorded (`beat`)

    # -- Store ------------------------------------------------------------------------------

    def open(self) -> Stored | None:
        """Connect and read everything. When nothing is there yet, keep the lease (taken to
        read), so that the caller's first write of the fresh state is the only one."""
        try:
            import redis  # present, or say how to install it
        except ImportError:
            raise ValueError(
                "--state redis:// needs the Redis client: install the [redis] extra "
                "(pip install '/path/to/layers-mock[redis]', from a checkout or a wheel built "
                "from one)"
            ) from None
        from .redis_cluster import Listener, another, bounded, connect, fresh  # (or a cluster)

        options = {"socket_timeout": TIMEOUT_S, "socket_connect_timeout": TIMEOUT_S}
        client, self._conn = connect(self.url, self.keys["rows"], self.where, **options)
        self._client = client
        self._scripts = {
            "write": client.register_script(WRITE),
            "changes": client.register_script(CHANGES),
            "unlock": client.register_script(UNLOCK),
            "journal": client.register_script(APPEND),
            "journal-read": client.register_script(READ_ALL),
            "journal-read-org": client.register_script(READ_ORG),
            "journal-orgs": client.register_script(ORGS),
            "everything": client.register_script(EVERYTHING),
            "changes-full": client.register_script(CHANGES_FULL),
            "peek": client.register_script(PEEK),
            "reserve": client.register_script(RESERVE),
            "claim": client.register_script(CLAIM),
            "beat": client.register_script(BEAT),
            "clear": client.register_script(CLEAR),
            "org-marks": client.register_script(ORG_MARKS),
            "journal-sizes": client.register_script(SIZES),
            "journal-shed": client.register_script(SHED),
            "flush-ask": client.register_script(FLUSH_ASK),
            "flush-ack": client.register_script(FLUSH_ACK),
        }
        if type(self._conn) is bounded(redis.Connection):  # not a cluster's, not TLS: the pipe
            # Each a connection of its own, not counted by the pool (redis_cluster.fresh)
            make = functools.partial(fresh, client.connection_pool)

            scripts = [WRITE, CHANGES, UNLOCK, APPEND, READ_ALL, EVERYTHING, CHANGES_FULL, RESERVE]
            scripts += [BEAT, CLEAR, ORG_MARKS, READ_ORG, ORGS, SIZES, SHED, FLUSH_ASK, FLUSH_ACK]
            scripts.append(PEEK)
            self.pipe = Pipe(make, scripts, self.where, timeout=TIMEOUT_S)
            self.handoff = Handoff(make, self.keys["handoff"], self.ident, wanted=self._wanted)
        else:  # a cluster's, or TLS: redis_lane.py, and a listener on the sandbox's shard
            self.lane, self._lane_conn = Lane(self.where, TIMEOUT_S), another(client, self._conn)
            listener = Listener(client, self.keys["handoff"])
            channel, aim, refresh = self.keys["handoff"], listener.aim, listener.refresh
            self.handoff = Handoff(listener, channel, self.ident, aim, refresh, wanted=self._wanted)
        self.handoff.on_ask = self._flush_asked  # the journal's flush barrier
        self.handoff.on_listen = self._flush_told
        try:
            self._claim()
            return self._first_look()
        except StoreUnavailable as exc:  # one that passes (Redis unreachable, loading) or not
            self.close()
            raise (StoreUnreachable if exc.transient else ValueError)(str(exc)) from None
        except BaseException:  # SIGTERM while it reads (cli.py): the mark goes too
            self.close()
            raise

    def _claim(self) -> None:
        """Record the settings this worker serves with and mark it live, unless live workers
        serve the sandbox with others: then refuse, before anything of the state is read or
        written (redis_serving.py)."""
        if self.serving is None:
            return
        keys = [self.keys["serving"], self.keys["workers"]]
        answer = self._call("claim", keys, arguments(self.member, self.serving))
        if answer[0] == b"OTHER":
            live, wait_ms, found = int(answer[1]), int(answer[2]), decoded(answer[3])
            ours, self.serving = self.serving, None  # no mark of ours to remove (`close`)
            self.close()
            raise StoreInUse(refusal(self.name, live, wait_ms, found, ours))

    def beat(self) -> asyncio.Future[Any] | None:
        """Renew this worker's liveness mark (its idle timer calls it every BEAT_S): through
        the pipe on a serving worker, not waited for (the future is for tests). A failure is
        left to the next beat (a mark outlives two); other settings recorded since are said
        once on stderr."""
        if self.serving is None or self._client is None:
            return None
        keys = [self.keys["serving"], self.keys["workers"]]
        sent = self._send("beat", keys, arguments(self.member, self.serving))
        sent.add_done_callback(self._beaten)
        return sent

    def _beaten(self, sent: asyncio.Future[Any]) -> None:
        if sent.cancelled() or sent.exception() is not None:  # (marked handled)
            return
        if sent.result() == b"OTHER" and not self.usurped:
            self.usurped = True
            say(
                f"layers-mock: {self.where}: the sandbox {self.name!r} is now served with other"
                " settings (this worker's liveness mark ran out while it was stalled, and another"
                " serve took the sandbox): stop this worker"
            )

    def _first_look(self) -> Stored | None:
        """`open`'s read: under the lease; on a full Redis, without it (a worker that starts
        while Redis is full answers reads as the others do), unless there is nothing to read."""
        deadline = time.monotonic() + self.lease_ms / 1000 + 1
        full: StoreFull | None = None
        while True:
            try:
                found = self._changes(secrets.token_hex(8), max_distance=0, mend=True)
            except StoreFull as exc:
                full, found = exc, self._changes("", max_distance=0, mend=True)
            if found is not None:
                break
            if time.monotonic() > deadline:  # pragma: no cover - a lease is never held this long
                raise StoreUnavailable(
                    f"{self.where}: the sandbox's lease is held by another worker"
                )
            time.sleep(0.01)  # start-up only: another worker is writing the fresh state
        everything = found.everything if found.everything is not None else self._everything()
        if everything is None and full is not None:
            raise StoreFull(
                f"{full}; the sandbox {self.name!r} is not there yet, and cannot be "
                "written until Redis has room"
            )
        if everything is not None:
            self.unlock()
        return everything

    def write(self, batch: Batch) -> None:
        self.write_all([batch])

    def write_all(self, batches: Sequence[Batch]) -> None:
        keys, args, predicted, carried = self._write_args(batches, keep=False)
        token, self.token = self.token, ""  # the script gives the lease back
        try:
            answer = self._call("write", keys, args)
        except StoreUnavailable:
            self.outbox.back(*carried)
            if token:  # ... unless it did not run (full): then it goes back here, at once,
                self._release(token)  # or it would hold every worker's writes (LEASE_MS)
            raise
        self._written(answer, predicted, token)
        self.seen = predicted

    def send_write(self, batches: Sequence[Batch], keep: bool) -> asyncio.Future[bool]:
        """`write_all` sent without waiting (redis_pipe.py): the copy is taken to be at the
        commit's number at once, so that the next group's commit can follow it before it came
        back; `keep`: the lease stays ours, and the future says whether another worker waits
        for it. Fails as `write_all` would; then the copy is forgotten at once (before any
        answer sent after it is read), and every commit sent after it fails too, as it
        counted on it (compare-and-append)."""
        token = self.token
        keys, args, predicted, carried = self._write_args(batches, keep=keep)
        self.seen = predicted
        if not keep:
            self.token = ""  # the script gives the lease back
            self._gave(token)

        def written(answer: Any) -> bool:
            self._written(answer, predicted, token)
            return bool(answer[2])

        sent = self._send("write", keys, args)
        self.outbox.sent(sent, *carried)
        return self._then(sent, written, failed=lambda: self._lost(token))

    def _lost(self, token: str = "") -> None:
        """A write did not happen (refused, or its answer lost): nothing of the copy can be
        trusted, and the lease, if still ours, goes back: the one kept for the next group,
        or the one this write was to give back (`token`), which it did not if it did not
        run (Redis full, its scripts flushed); else no one would, until it ran out."""
        self.forget()
        if self.token or token:
            self._release(self.token or token)

    def _write_args(
        self, batches: Sequence[Batch], keep: bool
    ) -> tuple[list[str], list[Any], int, tuple[int, list[bytes]]]:
        """The write script's keys and arguments, the commit number it reaches, and the
        journal entries it carries, with the number of the first (recorded since the last
        round trip: not while Redis is full, when they wait for one it takes)."""
        if self._client is None:
            raise StoreUnavailable(f"{self.where} is not open")
        keys = [self.keys[k] for k in ("rows", "order", "meta", "log", "commits", "lease")]
        keys += [self.keys[k] for k in ("requests", "seq", "at", "journal", "journal-seq")]
        keys += [self.keys[k] for k in ("wants", "mark", "journal-floor", "journal-v1", "reads")]
        keys += [self.keys[k] for k in ("reset-mark", "handoff", "whole", "org-marks")]
        keys.append(self.keys["journal-seq:org"])
        commits = write_args(batches)  # each whole before anything is sent
        args: list[Any] = [self.token, self.seen, self.log_length, self._journal_bounds()]
        first, entries = carried = self._carried()  # the journal's, sent on the way
        staged, self.staged = self.staged, Staged()  # the group's: appended only if the write is
        args += [len(commits), len(entries), self.ident if keep else "", first]  # kept (else
        clears, self.clearing = self.clearing, False  # its 503s go later, SharedJournal)
        sweep, self.sweeping = self.sweeping, []  # (a clearing's, or an import's)
        marking, self.marking = self.marking, 0
        if marking:  # (a write that fails reads everything again, the latest mark with it)
            self.reset_mark = max(self.reset_mark, marking)
        orgs, self.org_marking = self.org_marking, {}
        reset = ("c" if clears else "") + (str(marking) if marking else "")
        reset += "".join(f"|{_field(org)}={' '.join(map(str, m))}" for org, m in orgs.items())
        args += [reset, redis_handoff.GRACE_MS, *commits]  # (read as sent: tests widen it)
        keys += self._staged_streams(entries, staged)  # the journal's (JOURNAL) and
        keys += sweep  # those a clearing deletes (or an import, uncounted ones)
        return keys, args + entries + staged, self.seen + len(batches), carried

    def _written(self, answer: Any, predicted: int, token: str) -> None:
        """The write script's answer: the commit number it reached, or it refused (nothing
        of it happened): then the lease, if it is still ours, is given back."""
        if answer[0] != b"OK":
            if token and token != self.token:  # (a kept one goes back with `_lost`)
                self._release(token)
            raise StoreConflict(
                f"{self.where}: another worker wrote first ({answer[0].decode()}); "
                "nothing of this request was kept"
            )
        if int(answer[1]) != predicted:  # pragma: no cover - the script counts as we do
            raise StoreConflict(f"{self.where}: the commit numbers went astray")
        self.commits_born = answer[3]  # (new if this commit began the count)

    def close(self, leave: bool = True) -> None:
        """Give back the lease and send the journal entries no round trip took along, on the
        synchronous connection (a server that stopped has no event loop left to run the
        pipe's), remove this worker's liveness mark (`leave`: not when the workers it forks
        next take over, cli.py), then close both connections."""
        if self.lane is not None:  # what it runs first: the lease goes back after it
            self.lane.close()
            self.lane = None
            with contextlib.suppress(Exception):
                self._lane_conn.disconnect()
        if self._client is not None:
            with contextlib.suppress(Exception):
                self.journal_flush()
            with contextlib.suppress(Exception):
                self.unlock()
            if leave and self.serving is not None:
                with contextlib.suppress(Exception):
                    self._client.zrem(self.keys["workers"], self.member)
        if self.pipe is not None:
            with contextlib.suppress(Exception):  # its loop may be closed: no one waits on it
                self.pipe.close()
            self.pipe = None
        if self.handoff is not None:
            with contextlib.suppress(Exception):
                self.handoff.close()
            self.handoff = None
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._conn.disconnect()
                self._client.close()
            self._client = self._conn = None

    def lead(self) -> None:
        """Name this store's worker the leader of the workers forked next (`serve --workers
        N`'s main process): their marks carry its name, so that `leave` removes them all."""
        RedisStore.leader = self.ident

    def leave(self) -> None:
        """Remove the liveness marks of this worker and of the workers it led, after
        `close(leave=False)`, on a connection of its own: `serve --workers N`'s main process,
        whose mark covered the sandbox until its workers had theirs, once they all stopped
        (granian kills one that does not within 10 s of SIGTERM, as one still starting)."""
        if self.serving is None or self._client is not None:
            return
        from .redis_cluster import connect

        led = f"{self.ident} ".encode()
        with contextlib.suppress(Exception):
            where, rows = self.where, self.keys["rows"]
            client, conn = connect(self.url, rows, where, socket_timeout=TIMEOUT_S)
            try:
                marks = client.zrange(self.keys["workers"], 0, -1)
                if ours := [m for m in marks if m.startswith(led)]:
                    client.zrem(self.keys["workers"], *ours)
            finally:
                conn.disconnect()
                client.close()

    # -- SharedStore ------------------------------------------------------------------------

    def changes(self, buckets: Sequence[Bucket] = (), windows: bool = False) -> Changes:
        return self._changes("", buckets=buckets, windows=windows)  # type: ignore[return-value]

    def lock(self) -> Changes | None:
        return self._changes(secrets.token_hex(8))

    def send_changes(
        self, lease: bool, buckets: Sequence[Bucket] = (), listed: bool = False, mend: bool = False
    ) -> asyncio.Future[Any]:
        """`changes` (or `lock`, when `lease`) sent without waiting (redis_pipe.py); its future
        gets the Changes (None: another worker holds the lease). When the log does not reach
        back, everything is read the same way, after the answer. `listed`: with every counted
        window (`Changes.windows`). `mend`: a lease for a commit that replaces the sandbox
        whole (a global reset, an import), taken even when the sandbox is not as the mock
        left it (`_changes_args`). A read's with nothing to count, list, mend or carry, on a
        Redis not known full, goes as PEEK (`_peek`): CHANGES's fixed cost, paid whatever
        it had to do, was most of a read's in Redis (bench/README.md, read17)."""
        token = secrets.token_hex(8) if lease else ""
        if token:
            self._give_back()
        # A read's catch-up carries no reads' journal entries: they wait for the next commit
        # or lease, or the flush within FLUSH_S (redis_journal.py), so that a second of reads
        # costs Redis ~100 appends, not one a catch-up (a catch-up carried the entries of the
        # reads the one before it woke: ~a quarter of its time in Redis, measured). Any other
        # waiting (a 503, a group's, one a failed round trip brought back) goes at once with
        # the rest, as before (`Outbox.pressing`).
        carry = bool(token) or self.outbox.pressing
        windows: dict[Bucket, int] = {}
        if not (token or buckets or listed or mend or carry or self.full):
            sent = self._peek()  # nothing to write: the light catch-up (redis_scripts.py PEEK)
        else:
            keys, args, windows, carried = self._changes_args(
                token, None, buckets, listed, mend, carry=carry
            )
            sent = self._send("changes", keys, args + carried[1])
            self.outbox.sent(sent, *carried)
            if not token:  # a read's: answered on a full Redis too
                sent = self._when_full(sent, keys, args)
        done: asyncio.Future[Changes | None] = sent.get_loop().create_future()

        def answered(sent: asyncio.Future[Any]) -> None:
            try:
                found = self._changes_answer(sent.result(), token, buckets, windows)
            except Exception as exc:  # StoreUnavailable; anything else is a bug, told as such
                self._unleased(done, token, exc)
                return
            if not isinstance(found, list):
                _resolve(done, found)
                return
            listed = self.listed
            read = self._send("everything", self._everything_keys(), [])
            read.add_done_callback(lambda read: whole(read, found, listed))

        def whole(read: asyncio.Future[Any], counted: list[int], listed: Any) -> None:
            try:
                changes = self._whole(self._stored(read.result()), counted, listed)
            except Exception as exc:
                self._unleased(done, token, exc)
                return
            _resolve(done, changes)

        sent.add_done_callback(answered)
        return done

    def _peek(self) -> asyncio.Future[Any]:
        """A read's catch-up with nothing to count or carry, as PEEK (redis_scripts.py): its
        future gets an answer as CHANGES's. Refused for want of room, it goes again as
        CHANGES_FULL (as a refused CHANGES does: `_when_full`); answered `MORE` (a census to
        adopt, which writes), again as CHANGES."""
        far = self.log_length // 2
        sent = self._send("peek", self._peek_keys, [self.seen, far, self.ident])
        out: asyncio.Future[Any] = sent.get_loop().create_future()

        def back(done: asyncio.Future[Any]) -> None:
            full = not done.cancelled() and isinstance(done.exception(), StoreFull)
            if full or (not done.cancelled() and done.exception() is None and _more(done)):
                keys, args, _, carried = self._changes_args("", None, (), carry=False)
                again = self._send("changes-full" if full else "changes", keys, args + carried[1])
                if not full:
                    again = self._when_full(again, keys, args)
                again.add_done_callback(functools.partial(_forward, out))
            else:
                _forward(out, done)

        sent.add_done_callback(back)
        return out

    def _unleased(self, done: asyncio.Future[Any], token: str, exc: Exception) -> None:
        """A catch-up that cannot be applied: a lease it took goes back (else this worker's
        next request would wait for it to expire, LEASE_MS), and its future fails."""
        if token and self.token == token:
            self._release(token)
        if not done.cancelled():
            done.set_exception(exc)

    def unlock(self) -> None:
        if self.token and self._client is not None:
            self._release(self.token)

    def let_go(self) -> None:
        """Give the lease back without waiting (behind what the pipe carries already)."""
        if self.token:
            self._release(self.token)

    def _release(self, token: str) -> None:
        """Give back a lease (if no one took it since): through the pipe on a serving worker,
        else (start-up, a stopping server) at once."""
        if self.token == token:
            self.token = ""
        self._gave(token)
        with contextlib.suppress(Exception):
            if not self._sending():
                self.unreleased = token  # until Redis took it
                self._call("unlock", [self.keys["lease"]], self._unlock_args(token), retry=True)
                self.unreleased = ""
            else:
                self._unlock_sent(token, time.monotonic() + self.lease_ms / 1000)

    def _give_back(self) -> None:
        """Give back the lease `_release` could not (`_unlock_sent` tries again too, but only
        while the loop runs): on a cluster whose shard died with this worker's lease, the
        replica that took over has the lease, and this worker would wait for it to run out
        (LEASE_MS) behind itself."""
        token, self.unreleased = self.unreleased, ""
        if token:
            self._release(token)

    def _unlock_sent(self, token: str, until: float) -> None:
        """UNLOCK through the pipe; when it fails (Redis unreachable: it may come back from its
        AOF with the lease, which no one else can give back, and every worker's writes would
        wait until it ran out), it is said again every RELEASE_RETRY_S while it can matter."""
        sent = self._send("unlock", [self.keys["lease"]], self._unlock_args(token))

        def back(done: asyncio.Future[Any]) -> None:
            if done.cancelled():  # a stopping worker's: `close` gives it back
                return
            failed = done.exception() is not None and (self.pipe or self.lane) is not None
            if failed:  # ... and before this worker's next lease try, whichever comes first
                self.unreleased = token  # (on a cluster, to the replica that took over)
            elif self.unreleased == token:
                self.unreleased = ""
            if failed and time.monotonic() + RELEASE_RETRY_S < until:
                done.get_loop().call_later(RELEASE_RETRY_S, self._unlock_sent, token, until)

        sent.add_done_callback(back)

    def heard(self) -> Mark | None:
        """Taken before a lease try goes: what `handed` compares with (redis_handoff.py)."""
        return self.handoff.mark() if self.handoff is not None else None

    async def handed(self, heard: Mark | None) -> None:
        """After a try another worker's lease refused: until that lease is given back (heard
        since `heard`; or, not in line, taken by the one in line), or the fallback's time;
        polls (DEAF_S) on a store without a listener (not opened to serve)."""
        if self.handoff is None or heard is None:
            await asyncio.sleep(DEAF_S)
        else:
            await self.handoff.wait(heard, self.in_line)

    def listens(self) -> bool:
        """Whether this worker hears the lease asked for (its listener is subscribed): a
        lease it keeps with no group running goes back as soon as another worker is in line."""
        return self.handoff is not None and self.handoff.listening

    def _wanted(self) -> None:
        if self.on_wanted is not None:
            self.on_wanted()

    def _gave(self, token: str) -> None:
        if self.handoff is not None and token:
            self.handoff.gave(token)

    def _unlock_args(self, token: str) -> list[str]:
        return [token, self.keys["wants"], self.keys["handoff"], str(redis_handoff.GRACE_MS)]

    def holds(self) -> bool:
        return bool(self.token)

    def reach(self) -> Reach:
        if self.pipe is not None:  # the request path's: what the worker's requests meet
            return dataclasses.replace(self.pipe.reach(), full=self.full, refused=self.refused)
        if self.lane is not None:  # ... or the lane's
            reach = self.lane.reach(self.down)
            return dataclasses.replace(reach, full=self.full, refused=self.refused)
        return Reach(self.down is None, self.down, full=self.full, refused=self.refused)

    def forget(self) -> None:
        self.seen = -1  # no commit is numbered -1: the log cannot reach back, all is read

    def reserve(self, kind: str, count: int) -> int:
        return self._granted(kind, self._call("reserve", *self._reserve_args(kind, count)))

    def _reserve_args(self, kind: str, count: int) -> tuple[list[str], list[Any]]:
        born = secrets.token_hex(8)  # the mark of a count this call makes, if it makes one
        return [self.keys["requests"]], [kind, count, born, self.granted.get(kind, 0)]

    def _granted(self, kind: str, answer: Any) -> int:
        """The end of the block RESERVE granted; a birth mark other than the first one seen
        says the counter was lost since (`recounted`)."""
        end, born = int(answer[0]), answer[1]
        if self.born is None:
            self.born = born
        elif born != self.born:
            self.born, self.recounted = born, True
        self.granted[kind] = max(self.granted.get(kind, 0), end)
        return end

    def reserve_ahead(self, kind: str, count: int, landed: Callable[[int | None], None]) -> None:
        """`reserve` through the pipe, on a running loop (request ids, core/requestids.py):
        the RESERVE script, which a full Redis runs, so that ids stay in reserved blocks (and
        reproducible) while it is full; only an unreachable Redis leaves a worker without."""
        if not self._sending():
            try:
                end: int | None = self.reserve(kind, count)
            except StoreUnavailable:
                end = None
            landed(end)
            return

        def back(sent: asyncio.Future[Any]) -> None:
            failed = sent.cancelled() or sent.exception() is not None
            landed(None if failed else self._granted(kind, sent.result()))

        self._send("reserve", *self._reserve_args(kind, count)).add_done_callback(back)

    # -- the journal (redis_journal.py) ----------------------------------------------------

    def journal_flush(self) -> None:
        """Send the journal entries no catch-up has taken along yet: through the pipe on a
        serving worker (ahead of a read of the journal sent after them), else (a stopping
        server, tests) at once. Entries a failed round trip carried go back to the outbox
        (redis_outbox.py), and on a serving worker none are sent while Redis is full: they
        wait for the first round trip it takes (`_room`)."""
        self.outbox.settle()
        serving = _looping()
        if not self.outbox or (serving and self.full):
            return
        first, entries = self.outbox.take()
        keys = [self.keys[k] for k in ("journal", "journal-seq", "mark", "journal-floor")]
        keys += [self.keys["journal-seq:org"], *self._streams(entries)]
        args = [self._journal_bounds(), first, *entries]
        if self._sending():
            sent = self._send("journal", keys, args)
            sent.add_done_callback(handled)
            self.outbox.sent(sent, first, entries)
            return
        try:
            self._call("journal", keys, args)
        except StoreUnavailable:
            self.outbox.back(first, entries)
            raise

    def listen(self) -> None:
        """Listen on the sandbox's handoff channel from now on (a worker as it starts serving,
        on its loop): another worker's journal read asks there for what this one holds."""
        if self.handoff is not None:
            self.handoff.listen()

    async def journal_barrier(self, bound_s: float) -> None:
        """Before a journal read: every live worker sends the entries it holds (a read's goes
        after its answer) and says so on the handoff channel, behind them on its connection;
        this waits for every word, `bound_s` at most (a worker that looks live but does not
        answer costs that), never blocking the loop (redis_journal.py)."""
        handoff = self.handoff
        if handoff is None or not self._sending():
            return  # (outside a server: nothing is held past the synchronous flush)
        self.journal_flush()  # this worker's own, ahead of the ask on its connection
        loop = asyncio.get_running_loop()
        deadline = loop.time() + bound_s
        if not await handoff.listened(deadline):
            return  # it could not hear the others' word: it reads what is there
        nonce = secrets.token_hex(8).encode()
        asked = handoff.ask(nonce)
        try:
            keys = [self.keys["handoff"], self.keys["workers"]]
            sent = self._send("flush-ask", keys, [b"f" + nonce])
            sent.add_done_callback(handled)  # (its failure, if any, is only waited out)
            await asyncio.wait({sent}, timeout=max(0.0, deadline - loop.time()))
            if not sent.done() or sent.cancelled() or sent.exception() is not None:
                return  # (a failed ask's read fails too, or reads what is there)
            heard, marks = sent.result()
            asked.expect(int(heard), answering(marks))
            await asyncio.wait({asked.done}, timeout=max(0.0, deadline - loop.time()))
        finally:
            handoff.forget(nonce)

    def _flush_asked(self, nonce: bytes) -> None:
        """Another worker's journal read (or this one's) asked for what this worker holds:
        sent now, and the word behind it on the same connection."""
        self.journal_flush()
        self._flush_word(b"a" + nonce + b" " + self.ident.encode())

    def _flush_told(self) -> None:
        """The listener subscribed: what this worker holds goes now, and the word that it
        listens (a barrier whose ask it could not hear takes it as its word)."""
        self.journal_flush()
        self._flush_word(b"h" + self.ident.encode())

    def _flush_word(self, word: bytes) -> None:
        if self._sending():
            self._send("flush-ack", [self.keys["handoff"]], [word]).add_done_callback(handled)

    def journal_read(self, capacity: int, org: str | None = None) -> list[tuple[int, bytes]]:
        """(number, entry), oldest first: the organization's newest `capacity` entries and
        those the versions before kept (the reader picks its own out of them), or (`org`
        None: the operator's) the sandbox's newest `capacity`, every organization's."""
        if org is not None:
            keys, args = self._read_org_args(org, capacity)
            return _read_org(self._call("journal-read-org", keys, args, retry=True))
        fields = self._call("journal-orgs", [self.keys["journal-seq:org"]], [], retry=True)
        keys, args = self._read_all_args(fields, capacity)
        return _read_all(self._call("journal-read", keys, args, retry=True), capacity)

    async def journal_fetch(self, capacity: int, org: str | None = None) -> list[tuple[int, bytes]]:
        """`journal_read` without waiting (through the pipe, behind this worker's entries
        not sent yet); the operator's in two round trips (which streams, then their entries)."""
        self.journal_flush()
        if org is not None:
            keys, args = self._read_org_args(org, capacity)
            read = self._send("journal-read-org", keys, args)
            return await self._then(read, _read_org)
        asked = self._send("journal-orgs", [self.keys["journal-seq:org"]], [])
        keys, args = await self._then(asked, lambda fields: self._read_all_args(fields, capacity))
        read = self._send("journal-read", keys, args)
        return await self._then(read, lambda found: _read_all(found, capacity))

    def _read_org_args(self, org: str, capacity: int) -> tuple[list[str], list[Any]]:
        field = counted(org).encode("utf-8", "surrogatepass")
        keys = [self.keys["journal"], self.keys["journal-v1"], self._stream(field)]
        return [*keys, self.keys["journal-seq:org"]], [capacity, field]

    def _read_all_args(self, fields: list[bytes], capacity: int) -> tuple[list[str], list[Any]]:
        orgs = [f for f in fields if f != NO_ORG]
        keys = [self.keys[k] for k in ("journal", "journal-v1", "journal-seq", "journal-seq:org")]
        keys += [self.keys["journal-org"], *map(self._stream, orgs)]
        return keys, [capacity, NO_ORG, *orgs]

    def _streams(self, *sent: list[bytes]) -> list[str]:
        """The journal streams a script appending `sent` touches, as it finds them (JOURNAL's
        `streams`): the one of no organization, then one an organization in the order they
        first come."""
        return [self.keys["journal-org"], *map(self._stream, stream_orgs(*sent))]

    def _staged_streams(self, entries: list[bytes], staged: list[bytes]) -> list[str]:
        """`_streams` of a commit's entries: those waiting (`entries`) and its group's own
        (`staged`), whose organizations were noted as they were staged when nothing waits
        (redis_journal.Staged: no entry read again)."""
        orgs = getattr(staged, "orgs", None)
        if entries or orgs is None:
            return self._streams(entries, staged)
        fields = (org.encode("utf-8", "surrogatepass") for org in orgs)
        return [self.keys["journal-org"], *map(self._stream, fields)]

    def stream_of(self, org: str) -> str:
        """An organization's journal stream."""
        return self._stream(counted(org).encode("utf-8", "surrogatepass"))

    def _stream(self, field: bytes) -> str:
        """An organization's journal stream, by its field in the hash of counters."""
        return self.keys["journal-org"] + field.hex()

    def org_marks_fetch(self, org: str) -> asyncio.Future[list[int]] | Any:
        """An organization's journal marks (the sandbox's mark of each of its resets), read
        without waiting on a serving worker (awaitable either way)."""
        keys, args = [self.keys["org-marks"]], [_field(org)]
        if self._sending():
            return self._then(self._send("org-marks", keys, args), _org_marks)
        done: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        done.set_result(_org_marks(self._call("org-marks", keys, args, retry=True)))
        return done

    def journal_clear(self) -> None:
        """A global reset's, once its commit was written (the copy stands at it): the journal
        goes, and that commit becomes its floor. (A reset the gate holds clears the journal
        in its own commit instead: `clearing`.)"""
        if self._client is not None:
            keys = [self.keys[k] for k in ("journal", "journal-v1", "journal-seq")]
            keys += [self.keys["journal-floor"], self.keys["journal-seq:org"]]
            keys.append(self.keys["journal-org"])
            keys += self.sweeping
            self.sweeping = []
            if self._sending():
                self._send("clear", keys, [self.seen]).add_done_callback(handled)
                return
            self._call("clear", keys, [self.seen])

    # -- inside -----------------------------------------------------------------------------

    def _sending(self) -> bool:
        """Whether round trips go without waiting (`_send`): on a serving worker's loop."""
        return (self.pipe is not None or self.lane is not None) and _looping()

    def _send(self, script: str, keys: list[str], args: list[Any]) -> asyncio.Future[Any]:
        """One script through the pipe; on a cluster or TLS, through the lane (redis_lane.py),
        tried again on a new connection when safe, as their synchronous callers do: on a
        cluster that one goes to the replica that took over from a dead shard."""
        if self.pipe is not None:
            sent = self.pipe.call("EVALSHA", self._scripts[script].sha, len(keys), *keys, *args)
        elif self.lane is not None:
            conn, retry = self._lane_conn, script in RETRIABLE
            sent = self.lane.call(lambda: self._call_once(script, keys, args, retry, conn))
        else:  # closed (a stopping worker's last callbacks): failed, as the pipe's would be
            sent = asyncio.get_running_loop().create_future()
            sent.set_exception(StoreUnavailable(f"{self.where} is not open"))
            return sent
        if script in ROOMY:  # before anyone reads the answer
            sent.add_done_callback(functools.partial(self._roomy, script))
        return sent

    def _roomy(self, script: str, sent: asyncio.Future[Any]) -> None:
        if not sent.cancelled():
            self._answered(sent.exception())
            if sent.exception() is None:
                self._watch(script, sent.result())

    def _answered(self, found: BaseException | None) -> None:
        """What Redis's answer to a script that may write says of it: it ran the script (it
        has room, and refuses nothing), or it refused it before running it, full or for
        another reason (`refused`: what it said, for /_mock/health). A failure that is no
        answer (unreachable, lost) says neither."""
        if found is None or isinstance(found, Refused):
            self.refused = None if found is None else str(found)
            self._room(full=isinstance(found, StoreFull))

    def _room(self, full: bool) -> None:
        """Redis is full, or took a write: the journal's entries that waited for room go now
        (`journal_flush`: through the pipe on a serving worker)."""
        was, self.full = self.full, full
        if was and not full and self.outbox:
            with contextlib.suppress(StoreUnavailable):
                self.journal_flush()

    def _carried(self) -> tuple[int, list[bytes]]:
        """The journal's entries for the round trip about to go, and the number of the first
        (none while Redis is full: they would be refused with it; they wait for one it
        takes, the newest `journal_capacity` of them)."""
        if self.full:
            self.outbox.trim()
            return self.outbox.first, []
        return self.outbox.take()

    def _journal_bounds(self) -> str:
        """The journal's bounds as the scripts that append take them: `capacity:total`
        (entries a stream, bytes over every stream: redis_total.py)."""
        return f"{self.journal_capacity}:{self.journal_total}"

    def _watch(self, script: str, answer: Any) -> None:
        """A script that appended to the journal says whether it took it past its total
        (its answer's `over`, last: JOURNAL): the worker cuts it then (`journal_shed`)."""
        if not isinstance(answer, list):
            return
        if script in {"changes", "peek"}:  # (PEEK's `over` is always 0)
            over = len(answer) > 7 and answer[0] != b"HELD" and answer[7] == 1
        elif script == "write":
            over = answer[-1] == 1 and len(answer) in (2, 5)
        else:
            over = len(answer) > 1 and answer[1] == 1
        if over and not self.shedding:
            self.journal_shed()

    def journal_shed(self) -> None:
        """Cut the journal to its total (redis_total.py): the bytes of every stream, then the
        streams above the level, in round trips of their own (without waiting, on a serving
        worker); one cut at a time."""
        self.shedding = True
        if self._sending():
            asked = self._send("journal-sizes", [self.keys["journal-seq:org"]], [])
            cut = self._then(asked, self._shed_args)

            def then(done: asyncio.Future[tuple[list[str], list[Any]]]) -> None:
                if done.cancelled() or done.exception() is not None:
                    self.shedding = False
                    return
                keys, args = done.result()
                if len(keys) == 1:
                    self.shedding = False
                    return
                sent = self._send("journal-shed", keys, args)
                sent.add_done_callback(handled)
                sent.add_done_callback(lambda _: setattr(self, "shedding", False))

            cut.add_done_callback(then)
            return
        try:
            with contextlib.suppress(StoreUnavailable):
                found = self._call("journal-sizes", [self.keys["journal-seq:org"]], [])
                keys, args = self._shed_args(found)
                if len(keys) > 1:
                    self._call("journal-shed", keys, args)
        finally:
            self.shedding = False

    def _shed_args(self, found: list[Any]) -> tuple[list[str], list[Any]]:
        level, orgs = plan(found, self.journal_total)
        keys = [self.keys["journal-seq:org"]]
        keys += [self._stream(org) if org != NO_ORG else self.keys["journal-org"] for org in orgs]
        return keys, [level, *orgs]

    @property
    def journal_capacity(self) -> int:
        return self.outbox.capacity

    @journal_capacity.setter
    def journal_capacity(self, capacity: int) -> None:
        self.outbox.capacity = capacity

    def _when_full(
        self, sent: asyncio.Future[Any], keys: list[str], args: list[Any]
    ) -> asyncio.Future[Any]:
        """A read's catch-up (`sent`), sent again as CHANGES_FULL if Redis refused it for want
        of room: the reads are answered (and counted) whether Redis has room or not."""
        out: asyncio.Future[Any] = sent.get_loop().create_future()
        settle = functools.partial(_forward, out)

        def back(done: asyncio.Future[Any]) -> None:
            if not done.cancelled() and isinstance(done.exception(), StoreFull):
                self._send("changes-full", keys, args).add_done_callback(settle)
            else:
                settle(done)

        sent.add_done_callback(back)
        return out

    @staticmethod
    def _then(
        sent: asyncio.Future[Any],
        finish: Callable[[Any], T],
        failed: Callable[[], None] | None = None,
    ) -> asyncio.Future[T]:
        """A future for `finish(answer)`, resolved in the order the answers came; `failed`
        runs first when there is none."""
        done: asyncio.Future[T] = sent.get_loop().create_future()

        def landed(_: asyncio.Future[Any]) -> None:
            try:
                result = finish(sent.result())  # the store's own state follows every answer
            except Exception as exc:  # StoreUnavailable; anything else is a bug, told as such
                if failed is not None:
                    failed()
                if not done.cancelled():
                    done.set_exception(exc)
                return
            if not done.cancelled():
                done.set_result(result)

        sent.add_done_callback(landed)
        return done

    def _call(self, script: str, keys: list[str], args: list[Any], retry: bool = False) -> Any:
        """One script on the store's own connection: redis-py's command path (pool, retries,
        instrumentation) cost as much CPU as the rest of a request, so the hot path sends
        EVALSHA itself; the first call of a script (NOSCRIPT) goes through the client, which
        loads it. `retry`: a script safe to run twice is tried again on a new connection
        once (Redis unreachable for a moment). Any script not sent at all because its shard
        died is tried again at the shard the cluster names instead (a failover)."""
        try:
            with deadline(time.monotonic() + TIMEOUT_S):  # (on a cluster or TLS: all of it)
                answer = self._call_once(script, keys, args, retry)
        except Refused as exc:
            if script in ROOMY:
                self._answered(exc)
            raise
        if script in ROOMY:
            self._answered(None)
            self._watch(script, answer)
        return answer

    def _call_once(
        self, script: str, keys: list[str], args: list[Any], retry: bool, conn: Any = None
    ) -> Any:
        """`_call`'s round trip, on `conn` (the lane's, on its thread) or the store's own."""
        conn = conn or self._conn
        if conn is None or self._client is None:
            raise StoreUnavailable(f"{self.where} is not open")
        runner = self._scripts[script]
        for attempt in (1, 2):
            sent, aimed = False, getattr(conn, "node", None)  # (a cluster's: the shard)
            try:
                unstale(conn)  # idle since Redis restarted: not onto the dead socket
                conn.send_command("EVALSHA", runner.sha, len(keys), *keys, *args)
                sent = True
                answer = conn.read_response()
                self.down = None
                return answer
            except Exception as exc:  # redis.RedisError, OSError: the batch did not happen
                if type(exc).__name__ == "NoScriptError":
                    try:
                        return runner(keys=keys, args=args)
                    except Exception as again:
                        raise error(self.where, again) from None
                conn.disconnect()
                failure = error(self.where, exc)
                # An error reply, a refusal among them, is an answer: Redis was reached.
                answer = isinstance(failure, Refused) or type(exc).__name__ == "ResponseError"
                # Nothing left, and the cluster now names another owner of the slot (the
                # shard died, a replica took over): sent there, it runs once.
                followed = not sent and getattr(conn, "node", None) != aimed
                late = left() == 0  # (its deadline passed: what failed is the answer)
                if not (retry or followed) or attempt == 2 or answer or late:
                    if not answer:
                        self.down = str(failure)
                    if sent and not answer and not retry:  # it went, and may have run
                        raise OutcomeUnknown(str(failure)) from None
                    raise failure from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _changes(
        self,
        token: str,
        max_distance: int | None = None,
        buckets: Sequence[Bucket] = (),
        windows: bool = False,
        mend: bool = False,
    ) -> Changes | None:
        """Beyond `max_distance` commits behind, everything is read instead of the log."""
        if token:
            self._give_back()
        keys, args, counts, carried = self._changes_args(
            token, max_distance, buckets, windows, mend
        )
        try:
            answer = self._call("changes", keys, args + carried[1], retry=True)
        except StoreUnavailable as exc:
            self.outbox.back(*carried)
            if token or not isinstance(exc, StoreFull):
                raise
            answer = self._call("changes-full", keys, args, retry=True)
        try:
            found = self._changes_answer(answer, token, buckets, counts)
            if not isinstance(found, list):
                return found
            listed = self.listed
            return self._whole(self._everything(), found, listed)
        except BaseException:  # the lease was taken but the request will not run: it goes back
            if token and self.token == token:
                self._release(token)
            raise

    def _changes_args(
        self,
        token: str,
        max_distance: int | None,
        buckets: Sequence[Bucket],
        listed: bool = False,
        mend: bool = False,
        *,
        carry: bool = True,
    ) -> tuple[list[str], list[Any], dict[Bucket, int], tuple[int, list[bytes]]]:
        """The CHANGES script's keys and arguments (without the journal's entries, which it
        carries when Redis takes it: the last of the four, with the number of the first;
        none unless `carry`). `mend`: the sandbox is not held to its census (a lease for a
        commit that replaces it whole, or a worker's first look: it starts, and its requests
        say what is wrong)."""
        windows: dict[Bucket, int] = {}  # each window once, with how many reads it counts
        for bucket in buckets:
            windows[bucket] = windows.get(bucket, 0) + 1
        keys = [self.keys[k] for k in ("log", "commits", "lease", "journal", "journal-seq")]
        keys += [self.keys[k] for k in ("wants", "mark", "journal-floor", "reads", "reset-mark")]
        keys += [self.keys[k] for k in ("handoff", "behind", "whole", "meta", "rows", "order")]
        keys.append(self.keys["journal-seq:org"])
        far = self.log_length // 2 if max_distance is None else max_distance
        args: list[Any] = [self.seen, token, self.lease_ms, far, self._journal_bounds()]
        # (on a full Redis `_carried` carries none either, and keeps the newest waiting)
        carried = self._carried() if carry or self.full else (self.outbox.first, [])
        wants = redis_handoff.WANTS_MS  # (read as sent: the lease-protocol tests widen both)
        args += [self.ident, carried[0], wants, wants, len(windows)]
        args += [
            f"{b.window}:{n}:{read_field(b.api_key_id, b.endpoint_class)}"
            for b, n in windows.items()
        ]
        args.append(("l" if listed else "") + ("m" if mend else ""))
        keys += self._streams(carried[1])  # the journal's (redis_journal.py JOURNAL)
        return keys, args, windows, carried

    def _changes_answer(
        self, answer: Any, token: str, buckets: Sequence[Bucket], windows: dict[Bucket, int]
    ) -> Changes | list[int] | None:
        """The changes the CHANGES script's `answer` brings; None: another worker holds the
        lease; or, when the log does not reach back (or holds a wipe), only each counted
        read's number: everything is to be read (`_whole`). The caller gives back a lease
        taken here if that fails."""
        if answer[0] == b"HELD":
            self.in_line = len(answer) > 1 and answer[1] == 1
            return None
        if token:
            self.token = token  # a catch-up without the lease leaves a held one alone
        n, entries = int(answer[1]), answer[2]
        recounted = answer[6] != self.commits_born  # the count was lost and made anew since
        counted = _numbers(buckets, windows, answer[3])
        self.reset_mark = int(answer[4] or 0)
        self.listed = listed = _listed(answer[5]) if answer[5] is not None else None
        if n == self.seen and not recounted:
            return Changes(counted=counted, windows=listed)
        batches: list[Batch] = []
        expected = n
        for _, fields in entries:  # newest first
            number, count, batch = read_entry(fields)
            if number != expected:
                break  # the log was trimmed past what we saw
            expected -= count
            batches.append(batch)
        if answer[0] != b"OK" or expected != self.seen or recounted or any(b.wipe for b in batches):
            return counted
        batches.reverse()
        self.seen = n
        return Changes(batches, counted=counted, windows=listed)

    @staticmethod
    def _whole(everything: Stored | None, counted: list[int], listed: Any = None) -> Changes:
        """Changes that replace the copy with everything (None: the sandbox is gone)."""
        gone = everything is None
        return Changes(everything=everything, counted=counted, gone=gone, windows=listed)

    def _everything_keys(self) -> list[str]:
        keys = ("meta", "rows", "order", "commits", "at", "reset-mark", "journal-floor", "whole")
        return [self.keys[k] for k in keys]

    def _everything(self) -> Stored | None:
        """Meta, every row in first-written order and the commit number, as of one instant."""
        return self._stored(self._call("everything", self._everything_keys(), [], retry=True))

    def _stored(self, answer: Any) -> Stored | None:
        """The EVERYTHING script's answer (None: the sandbox is gone)."""
        meta, pairs, order, commits, at, now, mark, whole = answer
        rows = dict(zip(pairs[::2], pairs[1::2], strict=True))
        self.seen = int(commits or 0)
        self.commits_born = whole.partition(b":")[0] if whole else b"0"  # (no census: INTACT)
        self.reset_mark = int(mark or 0)
        if meta is None:
            return None
        found: list[Row] = []
        for field in order:
            data = rows.get(field)
            if data is not None:
                table, _, ident = field.decode().partition(SEP)
                found.append((table, ident, data))
        elapsed = int(now[0]) * 1000 + int(now[1]) // 1000 - int(at) if at is not None else 0
        return Stored(meta, iter(found), max(0, elapsed))


def _more(done: asyncio.Future[Any]) -> bool:
    """PEEK's answer says it is CHANGES's to do (a census to adopt)."""
    answer = done.result()
    return isinstance(answer, list) and answer[:1] == [b"MORE"]


def _forward(out: asyncio.Future[Any], done: asyncio.Future[Any]) -> None:
    """`done`'s outcome, handed to `out` (unless `out` was cancelled)."""
    if out.done():
        return
    if done.cancelled():
        out.cancel()
    elif done.exception() is not None:
        out.set_exception(done.exception())  # type: ignore[arg-type]
    else:
        out.set_result(done.result())


def _resolve(done: asyncio.Future[T], result: T) -> None:
    if not done.cancelled():
        done.set_result(result)


def _read_org(found: Any) -> list[tuple[int, bytes]]:
    """READ_ORG's answer: (number, entry), oldest first, of the journals of the versions
    before (every organization's: the tenant's view picks its own) and of the organization's
    stream, all of them (its view holds them to its organization's bound)."""
    older, oldest, mine = found
    return sorted(entries(older) + entries(oldest) + org_entries(mine, numbered=True))


def _read_all(found: Any, capacity: int) -> list[tuple[int, bytes]]:
    """READ_ALL's answer: (number, entry) of the sandbox's newest `capacity`, oldest first,
    from the journals of the versions before, the stream of no organization (its entries have
    no organization's number) and each organization's."""
    older, oldest, none, *streams = found
    read = entries(older) + entries(oldest) + org_entries(none, numbered=False)
    for stream in streams:
        read += org_entries(stream, numbered=True)
    read.sort()  # no number is in two
    return read[-capacity:]


def answering(marks: list[bytes]) -> frozenset[bytes]:
    """The names of the live workers that answer requests, from their liveness marks
    (`LEADER WORKER`, redis_serving.py): the main process of `serve --workers N` (its own
    leader) answers none, and its mark stands for its workers only until theirs are there."""
    pairs = [m.partition(b" ")[::2] for m in marks]
    leading = {leader for leader, worker in pairs if leader != worker}
    return frozenset(w for leader, w in pairs if leader != w or leader not in leading)


def _looping() -> bool:
    """Whether an event loop runs in this thread (a worker serving): then no round trip may
    wait (the pipe's); outside one (start-up, a stopping server, tests) the store's own
    synchronous connection serves."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _listed(found: list[bytes]) -> list[tuple[str, str, int, int]]:
    """The `reads` hash (HGETALL: field, value, ...) as windows (redis_log.read_value)."""
    listed = []
    for field, value in zip(found[::2], found[1::2], strict=True):
        key, _, endpoint_class = field.decode().rpartition(":")
        window, used, _ = value.split(b":")
        listed.append((key, endpoint_class, int(window), int(used)))
    return listed


def _numbers(buckets: Sequence[Bucket], windows: dict[Bucket, int], last: list[Any]) -> list[int]:
    """Each read's number in its window: a window counted k times up to `last` numbers its
    reads last - k + 1 ... last, in the order they were given."""
    next_of = {b: int(top) - k + 1 for (b, k), top in zip(windows.items(), last, strict=True)}
    numbers = []
    for bucket in buckets:
        numbers.append(next_of[bucket])
        next_of[bucket] += 1
    return numbers


def _field(org: str) -> str:
    """An organization's field in `org-marks`: its id in hex, which neither the WRITE script's
    `|field=marks` nor anything else has to escape."""
    return org.encode("utf-8", "surrogatepass").hex()


def _org_marks(found: Any) -> list[int]:
    """ORG_MARKS's answer: none yet, or the marks space-separated."""
    if not found:
        return []
    text = found.decode() if isinstance(found, bytes) else str(found)
    return [int(n) for n in text.split()]
