"""A read's rate window, counted in Redis, lives exactly as long as the mock minute it counts.

Each window's counter used to be a key a minute that expired some real time after its first
read: 180 s at first, then a day on a clock that stands still (a virtual one, an
organization's own). A `standard` key whose 120 reads were spent got them back when the
counter expired, without any mock time passing; and the counters of minutes gone by stayed
until they expired, so a reset (which returns the clock to its start) found the same minutes
spent again. Now a window is one field a key, replaced when the key's clock moves on and
dropped by the reset that resets the key (tests/stores/test_served_budgets.py): nothing in
Redis expires it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import redis
from grouped import Worker
from redisd import RedisServer
from support import ACME_ORG, FULL, STANDARD, auth


def test_a_read_window_is_one_field_a_key_that_never_expires(redis_server: RedisServer) -> None:
    url = redis_server.sandbox()
    sandbox = url.rsplit("sandbox=", 1)[1]
    client = redis.Redis.from_url(redis_server.url)
    worker = Worker(url)  # a virtual server clock, and Acme on a clock of its own
    try:
        moves = [("POST", f"/_mock/organizations/{ACME_ORG}/clock/advance", {}, {"seconds": 1})]
        for _ in range(3):
            moves.append(("GET", "/v1/whoami", auth(STANDARD), None))
            moves.append((*moves[0][:3], {"seconds": 60}))
        for move in moves:
            [(status, _)] = worker.together(move)
            assert status == 200
    finally:
        worker.close()
    assert client.keys(f"{{lm:{sandbox}}}:rates:*") == []  # no key a minute
    reads = f"{{lm:{sandbox}}}:reads"
    assert client.pttl(reads) == -1  # no expiry: a clock that stands still keeps its window
    minute = int(datetime(2026, 1, 1, 0, 2, tzinfo=UTC).timestamp()) // 60  # the third read's
    field = b"key_5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9:read-light"  # STANDARD's
    assert client.hgetall(reads) == {field: f"{minute}:1:1".encode()}  # 1 read, 1 the minute before


class Twice(dict[str, str]):
    """A request's headers with `Authorization` sent twice, which a dict cannot hold."""

    def __init__(self, first: str, last: str) -> None:
        super().__init__()
        self.pairs = [("Authorization", f"Bearer {first}"), ("Authorization", f"Bearer {last}")]

    def items(self) -> Any:
        return self.pairs


def test_a_read_with_two_authorizations_is_charged_to_no_key_s_window(
    two: tuple[Worker, Worker],
) -> None:
    """The pipeline answered as the last Authorization, but the read's window in Redis was
    counted for the first: a `standard` key's reads sent behind an unlimited key's header
    went past its 120 a minute (131 of 131 answered 200 on a served sandbox; 120 and then
    429 in memory). Two lines now name no key (401), on both sides: no window is charged."""
    read = ("GET", "/v1/whoami", Twice(FULL, STANDARD), None)
    answers = [two[n % 2].together(read)[0] for n in range(121)]  # in turns, as workers do
    assert {status for status, _ in answers} == {401}
    [(status, whoami)] = two[0].together(("GET", "/v1/whoami", auth(STANDARD), None))
    assert (status, whoami["apiKeyId"]) == (200, "key_5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9")
    own = two[1].together(*[("GET", "/v1/whoami", auth(STANDARD), None)] * 120)
    assert [status for status, _ in own] == [200] * 119 + [429]  # its 120, none to the 401s
