"""The whole state as one JSON document (an export), and the rows a durable store keeps.

Export then import into a fresh server gives a server that answers every later request exactly
as the first would have: records, counters of the id mint, idempotency records, rate windows,
rules and the clock's instant all travel. A row of a durable store is the same JSON as a row of
an export, so a file and an export hold one format and are read back by one reader
(restore.py).

The export is written one record per line:

    {"format":"layers-mock/state@2","seed":7,...,"rules":{...},
    "organizations":[
    {...},
    {...}
    ],
    ...
    "idempotency":[
    ]}

It is an ordinary JSON document; the layout only lets an import read it a line at a time, so
that a million influencers never sit in memory as one parsed tree (layout.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import fields
from typing import Any

import orjson

from .clock import Clock
from .idempotency import StoredResponse, unpack_headers
from .jobs import JobFacts
from .records import ApiKey, InfluencerFacts, Organization, Project
from .requestids import RequestIds
from .state import State

FORMAT = "layers-mock/state@2"
TABLES: dict[str, type] = {
    "organizations": Organization,
    "keys": ApiKey,
    "projects": Project,
    "influencers": InfluencerFacts,
    "jobs": JobFacts,
}
KEY_FIELD = {
    "organizations": "organization_id",
    "keys": "key",
    "projects": "project_id",
    "influencers": "influencer_id",
    "jobs": "job_id",
    "idempotency": "key",
}
ALL_TABLES = (*TABLES, "idempotency")  # the order of an export
CHUNK_ROWS = 2_000  # rows per chunk of a streamed export


PROJECT_FIELDS = tuple(f.name for f in fields(Project) if f.name != "influencer_ids")


def project_row(project: Project) -> dict[str, Any]:
    """A project without its list of influencer ids: the list grows with every create (a
    commit would cost O(influencers)) and is rebuilt from the influencers' positions."""
    return {name: getattr(project, name) for name in PROJECT_FIELDS}


def idempotency_row(key: bytes, record: StoredResponse) -> dict[str, Any]:
    return {
        "key": key.hex(),
        "api_key_id": record.api_key_id,
        "operation_id": record.operation_id,
        "fingerprint": record.fingerprint.hex(),
        "status": record.status,
        "headers": [
            [k.decode("latin-1"), v.decode("latin-1")] for k, v in unpack_headers(record.headers)
        ],
        "body": None if record.body is None else record.body.decode(),
        "stored_ms": record.stored_ms,
    }


def _field_dict(cls: type) -> Callable[[Any], dict[str, Any]]:
    """A function making a record's dict of its fields, in their order, as a dict display
    of attribute reads. orjson writes a slotted dataclass (every record type) as that dict's
    bytes, but at ~1.0 µs an influencer or a job row against ~0.5 µs for this function and
    the dict together (it looks up each field's kind on every call): a Redis commit encodes
    two rows a create. The names are the dataclass's own fields (identifiers)."""
    names = [f.name for f in fields(cls)]
    assert all(name.isidentifier() for name in names)
    source = "lambda r: {" + ", ".join(f"{name!r}: r.{name}" for name in names) + "}"
    made: Callable[[Any], dict[str, Any]] = eval(source)  # noqa: S307 - field names only
    return made


ROW_DICTS: dict[type, Callable[[Any], dict[str, Any]]] = {
    cls: _field_dict(cls) for table, cls in TABLES.items() if table != "projects"
}


def row_bytes(table: str, record: Any) -> bytes:
    """The row's JSON: what orjson writes for the dataclass, from the dict of its fields
    (`_field_dict`); a project without its list of influencer ids (`project_row`)."""
    if table == "projects":
        return orjson.dumps(project_row(record))
    as_dict = ROW_DICTS.get(type(record))
    return orjson.dumps(record if as_dict is None else as_dict(record))


def meta(state: State, ids: RequestIds, clock: Clock) -> dict[str, Any]:
    """Everything of the state that is not a record: seed, counters, clock, rates, rules."""
    return {
        "format": FORMAT,
        "seed": state.seed,
        "clock": _clocks(state, clock),
        "mint": dict(state.mint.counters),
        "requests": dict(ids.counters),
        "rates": state.rates.snapshot(),
        "rules": state.rules.snapshot(),
    }


# The meta row a durable store keeps says it was written so (control.yaml's meta has no such
# field: `persist.load` takes it out before the check): its rules, rate windows and
# organizations' clocks are rows of their own (PARTS), not in it. A meta row without it was
# written by an earlier version, which kept them all in the meta row.
PART_ROWS = "partRows"
# The tables of the rows that hold what the meta row of an export holds: a rule a row (id: its
# rule id), a rate window a row (`rate_ident`), an organization's own clock a row (id: the
# organization's). Each commit writes only those changed (their `changed` marks): a sandbox may
# hold thousands of rules and of windows, and a create changes one window.
PARTS = ("rules", "rates", "clocks")


def stored_meta(state: State, ids: RequestIds, clock: Clock) -> dict[str, Any]:
    """The meta row a durable store keeps: `meta` without the rules, rate windows and
    organizations' clocks (rows of their own, PARTS), a few hundred bytes however big the
    sandbox."""
    return {
        "format": FORMAT,
        "seed": state.seed,
        "clock": clock.snapshot(),
        "mint": dict(state.mint.counters),
        "requests": dict(ids.counters),
        "rates": [],
        "rules": {"next": state.rules.next, "rules": []},
        PART_ROWS: True,
    }


def rate_ident(bucket: tuple[str, str]) -> str:
    """A rate window's row id: its class (which holds no colon), then its API key."""
    return f"{bucket[1]}:{bucket[0]}"


def part_row(state: State, table: str, ident: str) -> bytes | None:
    """The row of a rule, a rate window or an organization's clock (PARTS), or None when it
    is gone: the rule deleted, the window dropped, the clock following the server's."""
    if table == "rules":
        rule = state.rules.rules.get(ident)
        return None if rule is None else orjson.dumps(rule.public())
    if table == "rates":
        endpoint_class, _, api_key_id = ident.partition(":")
        window = state.rates.window((api_key_id, endpoint_class))
        return None if window is None else orjson.dumps([api_key_id, endpoint_class, *window])
    own = state.clocks.detached.get(ident)
    return None if own is None else orjson.dumps(own)


def changed_parts(state: State) -> Iterator[tuple[str, str]]:
    """(table, id) of every part row changed since the state was last stored."""
    for rule_id in state.rules.changed:
        yield "rules", rule_id
    for bucket in state.rates.changed:
        yield "rates", rate_ident(bucket)
    for org_id in state.clocks.changed:
        yield "clocks", org_id


def all_parts(state: State) -> Iterator[tuple[str, str, bytes]]:
    """Every part row, in the order an export lists them."""
    for rule in state.rules.rules.values():
        yield "rules", rule.rule_id, orjson.dumps(rule.public())
    for api_key_id, endpoint_class, window, used in state.rates.snapshot():
        ident = rate_ident((api_key_id, endpoint_class))
        yield "rates", ident, orjson.dumps([api_key_id, endpoint_class, window, used])
    for org_id, own in state.clocks.detached.items():
        yield "clocks", org_id, orjson.dumps(own)


def _clocks(state: State, clock: Clock) -> dict[str, Any]:
    """The server clock, and the organizations' own clocks when any has one (orgclocks.py)."""
    snapshot: dict[str, Any] = clock.snapshot()
    if state.clocks.detached:
        snapshot["organizations"] = state.clocks.snapshot()
    return snapshot


def table_rows(state: State, table: str) -> Iterator[tuple[str, bytes]]:
    """(id, row) of every record of `table`, in insertion order."""
    if table == "idempotency":
        for key, record in state.idempotency.items():
            yield key.hex(), orjson.dumps(idempotency_row(key, record))
        return
    for ident, record in getattr(state, table).items():
        yield ident, row_bytes(table, record)


def export_chunks(state: State, ids: RequestIds, clock: Clock) -> Iterator[bytes]:
    """The export, in the one-record-per-line layout, a few thousand rows per chunk."""
    yield orjson.dumps(meta(state, ids, clock))[:-1] + b",\n"
    for n, table in enumerate(ALL_TABLES):
        yield b'"' + table.encode() + b'":[\n'
        pending: list[bytes] = []
        for _, data in table_rows(state, table):
            if pending:
                pending.append(b",\n")
            pending.append(data)
            if len(pending) >= 2 * CHUNK_ROWS:
                yield b"".join(pending)
                pending = [b""]  # the next row still needs its separator
        if pending:
            yield b"".join(pending) + b"\n"
        yield b"]}\n" if n == len(ALL_TABLES) - 1 else b"],\n"
