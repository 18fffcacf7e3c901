"""A worker's copy of a shared state, brought up to date with batches other workers committed.

On a shared store (stores/redis.py) every worker keeps the whole State in memory, as a single
server does, and before a request applies what the others committed since it last looked: the
same rows a durable store keeps (persist.py), applied in commit order. Applying a batch is the
inverse of writing one: each row replaces the record (or rule, rate window, organization's
clock) of its id, each delete removes one, and the meta row replaces the counters and the
clock (and, written by an earlier version, which kept them there, the rate windows, rules and
organizations' clocks). What is derived from the records
(a project's list of influencer ids, list indexes, wallets, the bytes the projects take) is
kept consistent here: a list index follows a new influencer at the end of its project and a job
that moved (as the simulator does), and is dropped (rebuilt on first use) after anything else;
a wallet is dropped when one of its jobs or its organization changed.

Rows come from this program's own workers, so they are not checked again the way an import is
(restore.py); a wipe (reset, import) is never applied here: the store sends everything instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from .clock import Clock
from .idempotency import StoredResponse
from .jobs import JobFacts
from .orgclocks import OrgClocks
from .records import InfluencerFacts, Project
from .restore import CONVERT
from .snapshot import PART_ROWS, PARTS, TABLES
from .state import State
from .store import Batch

COUNTERS = "counters"  # persist.COUNTERS: request-number reservations, not part of the State


@dataclass(slots=True)
class _Moves:
    """What a batch did to list indexes: projects to rebuild, influencers appended at the end
    of their list, and jobs replaced (with the facts they replaced)."""

    relist: set[str] = field(default_factory=set)
    appended: list[InfluencerFacts] = field(default_factory=list)
    jobs: list[tuple[JobFacts, JobFacts]] = field(default_factory=list)


def apply(state: State, batch: Batch, clock: Clock) -> None:
    """Apply one committed batch to `state` without marking anything of it dirty."""
    before = set(state.dirty)
    moves = _Moves()
    for table, ident in batch.deletes:
        if table in PARTS:
            _part(state, table, ident, None)
        else:
            _delete(state, table, ident, moves)
    for table, ident, data in batch.upserts:
        if table in PARTS:
            _part(state, table, ident, orjson.loads(data))
        elif table != COUNTERS:
            _upsert(state, table, ident, orjson.loads(data), moves)
    if batch.meta is not None:
        _meta(state, orjson.loads(batch.meta), clock)
    for project_id in moves.relist:
        _relist(state, project_id)
    _follow(state, moves, clock.now_ms())
    state.dirty.intersection_update(before)  # the same set object the idempotency records share


def _follow(state: State, moves: _Moves, now: int) -> None:
    """Keep built list indexes in step, as the simulator does for its own changes; a list
    that cannot be followed (anything unusual) is dropped and rebuilt on first use."""
    for inf in moves.appended:
        listing = state.listings.get(inf.project_id)
        job = state.jobs.get(inf.job_id)
        if listing is None:
            continue
        if job is None or inf.project_id in moves.relist or inf.position != len(listing.started):
            state.listings.pop(inf.project_id, None)
        else:
            listing.append(inf.position, job, now, live=inf.deleted_ms is None)
    appended = {inf.job_id for inf in moves.appended}
    for old, new in moves.jobs:
        listing = state.listings.get(new.project_id)
        owner = state.influencers.get(new.influencer_id)
        if listing is None or new.job_id in appended or owner is None:
            continue
        if owner.deleted_ms is not None:
            continue
        try:
            listing.unplace(owner.position, old, now)
            listing.place(owner.position, new, now)
        except (KeyError, ValueError):
            state.listings.pop(new.project_id, None)


def _delete(state: State, table: str, ident: str, moves: _Moves) -> None:
    if table == "idempotency":
        state.idempotency.discard(bytes.fromhex(ident))
        return
    if table not in TABLES:
        return
    old = getattr(state, table).pop(ident, None)
    if old is None:
        return
    if table == "projects":
        state.project_bytes -= old.size_bytes()
        state.listings.pop(ident, None)
    elif table == "influencers":
        moves.relist.add(old.project_id)
    elif table == "jobs":
        state.listings.pop(old.project_id, None)
        state.wallets.pop(old.org_id, None)


def _upsert(state: State, table: str, ident: str, row: dict[str, Any], moves: _Moves) -> None:
    if table == "idempotency":
        state.idempotency.replace(bytes.fromhex(ident), _answer(row))
        return
    if table not in TABLES:
        return
    record = CONVERT[table](row)
    records = getattr(state, table)
    old = records.get(ident)
    records[ident] = record
    if table == "projects":
        assert isinstance(record, Project)
        record.influencer_ids = old.influencer_ids if old is not None else []
        state.project_bytes += record.size_bytes() - (old.size_bytes() if old else 0)
    elif table == "influencers":
        project = state.projects.get(record.project_id)
        if old is None and project is not None and record.position == len(project.influencer_ids):
            project.influencer_ids.append(ident)  # the usual case: a new influencer, at the end
            moves.appended.append(record)
        elif old is None or old.position != record.position:
            moves.relist.add(record.project_id)
        elif old.deleted_ms != record.deleted_ms or old.project_id != record.project_id:
            state.listings.pop(record.project_id, None)  # deleted: rebuilt without it
    elif table == "jobs":
        if old is not None:
            moves.jobs.append((old, record))
        if record.credits or (old is not None and old.credits):
            state.wallets.pop(record.org_id, None)
    elif table == "organizations":
        state.wallets.pop(ident, None)


def _relist(state: State, project_id: str) -> None:
    """Rebuild a project's influencer ids from the influencers' positions (as restore.py does)."""
    project = state.projects.get(project_id)
    if project is None:
        return
    ours = [i for i in state.influencers.values() if i.project_id == project_id]
    project.influencer_ids = [i.influencer_id for i in sorted(ours, key=lambda i: i.position)]
    state.listings.pop(project_id, None)


def _answer(row: dict[str, Any]) -> StoredResponse:
    return StoredResponse.of(
        row["api_key_id"],
        row["operation_id"],
        bytes.fromhex(row["fingerprint"]),
        int(row["status"]),
        [(k.encode("latin-1"), v.encode("latin-1")) for k, v in row["headers"]],
        None if row["body"] is None else row["body"].encode(),
        int(row["stored_ms"]),
    )


def _part(state: State, table: str, ident: str, row: Any) -> None:
    """A rule, a rate window or an organization's clock as stored (None: deleted)."""
    if table == "rules":
        state.rules.put(ident, row)
    elif table == "rates":
        endpoint_class, _, api_key_id = ident.partition(":")
        state.rates.put((api_key_id, endpoint_class), None if row is None else (row[2], row[3]))
    else:
        state.clocks.put(ident, None if row is None else int(row))


def _whole_parts(state: State, meta: dict[str, Any]) -> None:
    """The rules, rate windows and organizations' clocks of a meta row an earlier version
    wrote (a rolling upgrade: a worker not yet upgraded committed), in place of this copy's.
    Each it held and each it now holds is marked changed, as `persist.load` marks those of
    such a meta row: this worker's next commit writes a meta row that leaves them to rows
    (snapshot.PART_ROWS), so it must write them all as rows and delete the rows of those gone
    (a rule the earlier version deleted keeps the row an upgraded worker wrote); unmarked,
    a restart after that commit found none of what the earlier version had committed."""
    rules, buckets, clocks = list(state.rules.rules), state.rates.buckets(), state.clocks
    state.rates.restore([(k, c, int(w), int(n)) for k, c, w, n in meta["rates"]])
    state.rules.restore(meta["rules"])
    state.clocks = OrgClocks.restore(meta["clock"].get("organizations", {}))
    state.clocks.changed = clocks.changed
    state.rules.changed.update(dict.fromkeys((*rules, *state.rules.rules)))
    state.rates.changed.update(dict.fromkeys((*buckets, *state.rates.buckets())))
    state.clocks.changed.update(dict.fromkeys((*clocks.detached, *state.clocks.detached)))


def _meta(state: State, meta: dict[str, Any], clock: Clock) -> None:
    state.mint.counters = {k: int(v) for k, v in meta["mint"].items()}
    if meta.get(PART_ROWS):
        state.rules.next = int(meta["rules"]["next"])
    else:  # an earlier version's: all of them in the meta row
        _whole_parts(state, meta)
    now_ms = int(meta["clock"]["nowMs"])
    # A virtual clock is where the last writer left it. A wall clock only ever moves forward
    # here: each worker's clock runs at the same speed, so adopting the latest writer's
    # instant when it is ahead keeps every worker within one round trip of the same time.
    if clock.mode == "virtual" or now_ms > clock.now_ms():
        clock.restore(now_ms)
