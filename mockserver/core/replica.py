"""A worker's copy of a shared state, brought up to date with batches other workers committed.

On a shared store (stores/redis.py) every worker keeps the whole State in memory, as a single
server does, and before a request applies what the others committed since it last looked: the
same rows a durable store keeps (persist.py), applied in commit order. Applying a batch is the
inverse of writing one: each row replaces the record of its id, each delete removes one, and
the meta row replaces the counters, rate windows and rules. What is derived from the records
(a project's list of influencer ids, list indexes, wallets, the bytes the projects take) is
kept consistent here: list indexes and wallets are dropped and rebuilt on first use.

Rows come from this program's own workers, so they are not checked again the way an import is
(restore.py); a wipe (reset, import) is never applied here: the store sends everything instead.
"""

from __future__ import annotations

from typing import Any

import orjson

from .clock import Clock
from .idempotency import StoredResponse
from .records import Project
from .restore import CONVERT
from .snapshot import TABLES
from .state import State
from .store import Batch

COUNTERS = "counters"  # persist.COUNTERS: request-number reservations, not part of the State


def apply(state: State, batch: Batch, clock: Clock) -> None:
    """Apply one committed batch to `state` without marking anything of it dirty."""
    before = set(state.dirty)
    relist: set[str] = set()
    for table, ident in batch.deletes:
        _delete(state, table, ident, relist)
    for table, ident, data in batch.upserts:
        if table != COUNTERS:
            _upsert(state, table, ident, orjson.loads(data), relist)
    for project_id in relist:
        _relist(state, project_id)
    if batch.meta is not None:
        _meta(state, orjson.loads(batch.meta), clock)
    state.dirty.intersection_update(before)  # the same set object the idempotency records share


def _delete(state: State, table: str, ident: str, relist: set[str]) -> None:
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
        relist.add(old.project_id)
    elif table == "jobs":
        state.listings.pop(old.project_id, None)
        state.wallets.pop(old.org_id, None)


def _upsert(state: State, table: str, ident: str, row: dict[str, Any], relist: set[str]) -> None:
    if table == "idempotency":
        state.idempotency.store(bytes.fromhex(ident), _answer(row))
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
        elif old is None or old.position != record.position:
            relist.add(record.project_id)
        state.listings.pop(record.project_id, None)
    elif table == "jobs":
        state.listings.pop(record.project_id, None)
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


def _meta(state: State, meta: dict[str, Any], clock: Clock) -> None:
    state.mint.counters = {k: int(v) for k, v in meta["mint"].items()}
    state.rates.restore([(k, c, int(w), int(n)) for k, c, w, n in meta["rates"]])
    state.rules.restore(meta["rules"])
    now_ms = int(meta["clock"]["nowMs"])
    # A virtual clock is where the last writer left it. A wall clock only ever moves forward
    # here: each worker's clock runs at the same speed, so adopting the latest writer's
    # instant when it is ahead keeps every worker within one round trip of the same time.
    if clock.mode == "virtual" or now_ms > clock.now_ms():
        clock.restore(now_ms)
