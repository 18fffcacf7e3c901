"""The whole state as one JSON document, and back.

Export then import into a fresh server gives a server that answers every later request exactly
as the first would have: records, counters of the id mint, idempotency records, rate windows,
rules and the clock's instant all travel. The per-record helpers (`row`, `from_row`,
`idempotency_item`, `meta`) are shared with the durable store, so a file and an export hold
one format.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any

from .clock import Clock
from .errors import validation
from .idempotency import IdempotencyRecords, Scope, StoredResponse
from .ids import IdMint
from .jobs import JobFacts
from .records import ApiKey, InfluencerFacts, Organization, Project
from .state import State

FORMAT = "layers-mock/state@1"
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
}


def row(record: Any) -> dict[str, Any]:
    return asdict(record)


def from_row(cls: type, data: dict[str, Any]) -> Any:
    names = {f.name for f in fields(cls)}
    values = {
        k: tuple(v) if k in ("scopes", "schedule_ms") else v for k, v in data.items() if k in names
    }
    return cls(**values)


def idempotency_item(scope: Scope, rec: StoredResponse) -> dict[str, Any]:
    return {
        "scope": list(scope),
        "fingerprint": rec.fingerprint.decode(),
        "status": rec.status,
        "body": None if rec.body is None else rec.body.decode(),
        "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in rec.headers],
        "storedMs": rec.stored_ms,
    }


def idempotency_record(item: dict[str, Any]) -> tuple[Scope, StoredResponse]:
    scope: Scope = tuple(item["scope"])
    return scope, StoredResponse(
        item["fingerprint"].encode(),
        int(item["status"]),
        None if item["body"] is None else item["body"].encode(),
        tuple((k.encode("latin-1"), v.encode("latin-1")) for k, v in item["headers"]),
        int(item["storedMs"]),
    )


def meta(state: State, clock: Clock) -> dict[str, Any]:
    """Everything of the state that is not a record: seed, counters, clock, rates, rules."""
    return {
        "format": FORMAT,
        "seed": state.seed,
        "clock": clock.snapshot(),
        "mint": dict(state.mint.counters),
        "rates": state.rates.snapshot(),
        "rules": state.rules.snapshot(),
    }


def export_state(state: State, clock: Clock) -> dict[str, Any]:
    document = meta(state, clock)
    rates, rules = document.pop("rates"), document.pop("rules")
    return {
        **document,
        **{name: [row(r) for r in getattr(state, name).values()] for name in TABLES},
        "idempotency": [idempotency_item(scope, rec) for scope, rec in state.idempotency.items()],
        "rates": rates,
        "rules": rules,
    }


def import_state(document: Any, clock: Clock) -> State:
    """Rebuild a State; a document that is not an export is a 422, and nothing changes."""
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise validation("Invalid body.", [f"Not a state export: `format` must be {FORMAT}."])
    try:
        state = State(
            seed=int(document["seed"]),
            organizations={},
            keys={},
            projects={},
            mint=IdMint(int(document["seed"]), document.get("mint", {})),
        )
        for name, cls in TABLES.items():
            table = getattr(state, name)
            for data in document.get(name, []):
                record = from_row(cls, data)
                table[getattr(record, KEY_FIELD[name])] = record
        records = IdempotencyRecords()
        for item in document.get("idempotency", []):
            records.store(*idempotency_record(item))
        state.idempotency = records
        state.rates.restore(document.get("rates", []))
        state.rules.restore(document.get("rules", {}))
        now_ms = int(document["clock"]["nowMs"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise validation("Invalid body.", [f"State document is malformed: {exc!r}."]) from None
    clock.restore(now_ms)
    return state
