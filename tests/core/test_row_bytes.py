"""snapshot.row_bytes: a record's row is the JSON orjson writes for the record itself (the
format every durable store and export holds), whichever way it is made."""

from __future__ import annotations

from dataclasses import fields, replace

import orjson

from layers_mock_server.core.fixtures import load_fixtures
from layers_mock_server.core.jobs import JobFacts
from layers_mock_server.core.records import InfluencerFacts
from layers_mock_server.core.snapshot import TABLES, row_bytes, table_rows
from layers_mock_server.core.state import State

INFLUENCER = InfluencerFacts(
    "inf_0193a6b2-4e8e-7c4a-9a1b-2f3e4d5c6b7a",
    "org_1",
    "prj_1",
    "job_1",
    1_700_000_000_000,
    "female",
    None,
    "friendly",
    "en",
    'Ada Quote"s \\ Ünïcødé \u2028',
)
JOB = JobFacts("job_1", "org_1", "prj_1", "inf_1", 1_700_000_000_000)


def records() -> list[tuple[str, object]]:
    """The fixtures' records of every table, and an influencer and a job with every optional
    field unset, then set (a list, a tuple, text JSON escapes)."""
    state = State.from_fixtures(load_fixtures(), 0)
    found: list[tuple[str, object]] = []
    for table in TABLES:
        found += [(table, record) for record in getattr(state, table).values()]
    influencer = replace(
        INFLUENCER,
        age_range="25-34",
        prompt="x" * 300,
        name_override="Bo",
        patched_ms=2**53 - 1,
        deleted_ms=0,
        position=41,
    )
    job = replace(
        JOB,
        outcome="failed",
        end_stage=2,
        progression="poll",
        cancel_ms=-1,
        poll_steps_ms=[1, 2, 3],
        schedule_ms=(0, 5, 9),
        credits=7,
    )
    found += [("influencers", INFLUENCER), ("influencers", influencer)]
    return [*found, ("jobs", JOB), ("jobs", job)]


def test_a_records_row_is_the_json_orjson_writes_for_the_record() -> None:
    rows = records()
    assert {table for table, _ in rows} == set(TABLES)
    for table, record in rows:
        if table == "projects":  # written without its list of influencer ids
            row = orjson.loads(row_bytes(table, record))
            assert "influencer_ids" not in row
            assert row == {k: v for k, v in orjson.loads(orjson.dumps(record)).items() if k in row}
            continue
        assert row_bytes(table, record) == orjson.dumps(record), (table, record)
        names = [f.name for f in fields(type(record))]  # type: ignore[arg-type]
        assert list(orjson.loads(row_bytes(table, record))) == names


def test_an_export_writes_the_same_rows() -> None:
    state = State.from_fixtures(load_fixtures(), 0)
    state.influencers[INFLUENCER.influencer_id] = INFLUENCER
    exported = dict(table_rows(state, "influencers"))
    assert exported == {INFLUENCER.influencer_id: orjson.dumps(INFLUENCER)}
