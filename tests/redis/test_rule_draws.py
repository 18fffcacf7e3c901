"""A rule's `probability` picks the same requests whichever worker answers them, and after a
reset (core/rules.py: a draw per match of the rule, kept with it in the sandbox).

Before, the draw was salted with the request's number, which each worker takes from blocks of
its own (core/requestids.py): requests sent in turn to two workers of one sandbox were failed
by another pattern than one server fails them by, and again another after a reset."""

from __future__ import annotations

from grouped import Worker
from support import FULL, SEED, auth, make_mock

RULE = {"match": {"operationId": "whoami"}, "fault": "503", "probability": 0.5}
CALLS = 30


def on_one_server() -> list[int]:
    mock = make_mock(SEED)
    with mock.client:
        assert mock.client.post("/_mock/rules", json=RULE).status_code == 201
        return [mock.client.get("/v1/whoami", headers=auth(FULL)).status_code for _ in range(CALLS)]


def test_a_probability_rule_fails_the_same_requests_on_two_workers_as_on_one_server(
    two: tuple[Worker, Worker],
) -> None:
    expected = on_one_server()
    assert 5 <= expected.count(503) <= 25
    first, second = two
    for _ in range(2):  # from a fresh sandbox, then after a reset
        [(status, _)] = first.together(("POST", "/_mock/reset", {}, None))
        assert status == 200
        [(status, _)] = second.together(("POST", "/_mock/rules", {}, RULE))
        assert status == 201
        got = [
            (first, second)[n % 2].together(("GET", "/v1/whoami", auth(FULL), None))[0][0]
            for n in range(CALLS)
        ]
        assert got == expected
