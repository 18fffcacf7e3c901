"""Reading an import as it arrives (core/layout.py): any chunking, bounded sizes."""

from __future__ import annotations

import itertools

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import PROJECT, SEED

from layers_mock_server.core import layout
from layers_mock_server.core.clock import Clock
from layers_mock_server.core.errors import ApiError
from layers_mock_server.core.fixtures import load_fixtures
from layers_mock_server.core.layout import StateReader
from layers_mock_server.core.restore import StateBuilder
from layers_mock_server.core.simulator import JobPlan, Simulator
from layers_mock_server.core.snapshot import export_chunks
from layers_mock_server.statecheck import state_check


def export(count: int = 30) -> bytes:
    sim = Simulator(load_fixtures(), Clock("virtual"), SEED)
    for n in range(count):
        sim.create_influencer(sim.state.projects[PROJECT], {"prompt": f"p{n}"}, JobPlan())
    return b"".join(export_chunks(sim.state, sim.requests, sim.clock))


DOCUMENT = export()


def read(chunks: list[bytes]) -> int:
    builder = StateBuilder(state_check())
    reader = StateReader(builder)
    for chunk in chunks:
        reader.feed(chunk)
    reader.end()
    return len(builder.finish().state.influencers)


@settings(max_examples=30, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=len(DOCUMENT)), max_size=40))
def test_an_export_reads_the_same_however_it_is_cut(cuts: list[int]) -> None:
    bounds = [0, *sorted(set(cuts)), len(DOCUMENT)]
    assert read([DOCUMENT[a:b] for a, b in itertools.pairwise(bounds)]) == 30


def test_the_same_document_in_another_layout_reads_whole() -> None:
    again = orjson.dumps(orjson.loads(DOCUMENT), option=orjson.OPT_INDENT_2)
    assert read([again]) == 30


def test_a_document_past_either_bound_is_422(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(layout, "MAX_WHOLE_BYTES", 1000)
    whole = orjson.dumps(orjson.loads(DOCUMENT))
    with pytest.raises(ApiError, match="Invalid body") as other_layout:
        read([whole])
    assert "not in the layout of an export" in str(other_layout.value.details)
    monkeypatch.setattr(layout, "MAX_STATE_BYTES", len(DOCUMENT) - 1)
    with pytest.raises(ApiError) as too_big:
        read([DOCUMENT])
    assert "larger than" in str(too_big.value.details)
