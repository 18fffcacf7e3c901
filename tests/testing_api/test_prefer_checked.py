"""`prefer()` refuses a value the mock would refuse, where the test wrote it: a ValueError naming
the argument and what it may be, instead of a header the server answers 422 to later."""

from __future__ import annotations

from typing import Any

import pytest

from layers_mock import LayersMock, RemoteMock
from layers_mock_server.core.jobs import STAGES


@pytest.mark.parametrize(
    ("arguments", "named", "allowed"),
    [
        ({"outcome": "exploded"}, "outcome='exploded'", "completed, failed, canceled"),
        ({"outcome": "failed; fault=500"}, "outcome=", "completed, failed, canceled"),
        ({"outcome": "Failed"}, "outcome='Failed'", "completed, failed, canceled"),
        ({"outcome": "failed", "stage": "baking"}, "stage='baking'", ", ".join(STAGES)),
        ({"stage": ""}, "stage=''", ", ".join(STAGES)),
        ({"progression": "instant"}, "progression='instant'", "time, poll"),
        ({"fault": 418}, "fault=418", "429, 500, 503, drop"),
        ({"fault": True}, "fault=True", "429, 500, 503, drop"),
        ({"latency_ms": -1}, "latency_ms=-1", "0 to 60000"),
        ({"latency_ms": 60_001}, "latency_ms=60001", "0 to 60000"),
        ({"latency_ms": 1.5}, "latency_ms=1.5", "0 to 60000"),
        ({"latency_ms": True}, "latency_ms=True", "0 to 60000"),
    ],
)
def test_a_value_the_mock_refuses_is_refused_at_call_time(
    arguments: dict[str, Any], named: str, allowed: str
) -> None:
    for prefer in (LayersMock.prefer, RemoteMock.prefer):
        with pytest.raises(ValueError, match="prefer") as refused:
            prefer(**arguments)
        message = str(refused.value)
        assert named in message
        assert allowed in message


def test_every_value_the_mock_takes_is_taken() -> None:
    assert LayersMock.prefer(outcome="canceled", stage=STAGES[-1]) == {
        "Prefer": f"outcome=canceled; stage={STAGES[-1]}"
    }
    assert LayersMock.prefer(fault=503, latency_ms=0) == {"Prefer": "fault=503; latency=0"}
    assert RemoteMock.prefer(progression="poll", latency_ms=60_000) == {
        "Prefer": "progression=poll; latency=60000"
    }
