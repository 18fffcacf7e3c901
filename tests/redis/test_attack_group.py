"""Hostile mixes on a worker on Redis (http/shared.py's group commit and leases): a retry of
the same key, a 422 or a latency fault inside one group, a used-up rule, a failed commit
retried, and a control request that replaces the whole state while another worker wants
the lease. Driven straight into the worker's ASGI app, as test_grouped.py does."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from grouped import CREATE, influencers
from support import FULL, STANDARD, auth

from layers_mock_server.core.store import StoreUnavailable

WHOAMI = ("GET", "/v1/whoami", auth(FULL), None)


def test_one_group_with_a_retried_key_a_conflict_and_a_422_commits_exactly_the_good_ones(
    two: tuple[Any, Any], patient: None
) -> None:
    first, second = two
    again = auth(FULL, **{"Idempotency-Key": "k1"})
    answers = first.together(
        ("POST", CREATE, again, {"gender": "male"}),
        ("POST", CREATE, auth(FULL), {"gender": 7}),  # 422 in the middle of the group
        ("POST", CREATE, again, {"gender": "male"}),  # the same key again: the same answer
        ("POST", CREATE, again, {"gender": "female"}),  # the same key, another body: 409
        ("POST", CREATE, auth(FULL), {}),
    )
    assert [status for status, _ in answers] == [202, 422, 202, 409, 202]
    assert first.trips == ["lock", "write"]  # one group
    assert answers[0] == answers[2]
    made = {answers[0][1]["influencerId"], answers[4][1]["influencerId"]}
    assert set(influencers(second)) == made == set(influencers(first))


def test_a_latency_fault_inside_a_group_splits_it_and_loses_nothing(
    two: tuple[Any, Any], patient: None
) -> None:
    first, second = two

    async def nap(seconds: float) -> None:  # the mock's real-time wait, skipped
        assert seconds == 0.01

    first.deps.shared.nap = nap
    answers = first.together(
        ("POST", CREATE, auth(FULL), {}),
        ("POST", CREATE, auth(FULL, Prefer="latency=10"), {}),
        ("POST", CREATE, auth(FULL), {}),
    )
    assert [status for status, _ in answers] == [202] * 3
    assert sorted(influencers(second)) == sorted(b["influencerId"] for _, b in answers)


def test_a_rule_with_a_count_fires_once_in_a_group_and_is_used_up_everywhere(
    two: tuple[Any, Any], patient: None
) -> None:
    first, second = two
    rule = {"match": {"operationId": "createInfluencer"}, "fault": "500", "count": 1}
    assert first.together(("POST", "/_mock/rules", {}, rule))[0][0] == 201
    answers = first.together(*[("POST", CREATE, auth(FULL), {})] * 4)
    assert sorted(status for status, _ in answers) == [202, 202, 202, 500]
    assert len(influencers(second)) == 3
    assert second.together(("GET", "/_mock/rules", {}, None))[0][1]["items"] == []


def test_the_read_limit_holds_across_workers_while_rules_make_reads_take_the_lease(
    two: tuple[Any, Any], patient: None
) -> None:
    first, second = two
    rule = {"match": {"operationId": "cancelJob"}, "fault": "500"}  # reads now take the lease
    assert first.together(("POST", "/_mock/rules", {}, rule))[0][0] == 201
    statuses = [s for s, _ in first.together(*[("GET", "/v1/whoami", auth(STANDARD), None)] * 100)]
    statuses += [s for s, _ in second.together(*[("GET", "/v1/whoami", auth(STANDARD), None)] * 21)]
    assert statuses == [200] * 120 + [429]


def test_a_key_whose_group_commit_failed_creates_on_its_retry_once_on_any_worker(
    two: tuple[Any, Any], patient: None
) -> None:
    first, second = two
    real = first.store.send_write

    def refused(batches: Any, keep: bool) -> None:
        raise StoreUnavailable("redis://127.0.0.1:1/0: Connection reset by peer")

    first.store.send_write = refused
    again = auth(FULL, **{"Idempotency-Key": "k9"})
    answers = first.together(("POST", CREATE, again, {}), ("POST", CREATE, again, {}))
    assert [status for status, _ in answers] == [503, 503]
    first.store.send_write = real
    [retried] = first.together(("POST", CREATE, again, {}))
    assert retried[0] == 202
    assert second.together(("POST", CREATE, again, {})) == [retried]
    assert influencers(second) == [retried[1]["influencerId"]]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/_mock/reset", {}),
        ("POST", "/_mock/reset", {"organizationId": "org_3f6c2a8e-1b7d-4c59-9e0a-5d4b8c7f1a23"}),
        ("PUT", "/_mock/state", None),  # the state exported before the create
    ],
)
def test_a_reset_or_import_is_one_write_under_the_lease_and_answers_what_it_did(
    two: tuple[Any, Any], method: str, path: str, body: Any
) -> None:
    """The whole state written by a reset or an import gave the lease back; a second write
    (the meta row) then went without it, and when another worker took the lease in between
    it was refused: 503 "nothing of this request was kept", although the reset was kept.
    Now the whole state and the meta row go in one commit (one write script, sent through the
    pipe with the request's group), so no other worker can write between them."""
    first, second = two
    [(status, exported)] = first.together(("GET", "/_mock/state", {}, None))
    assert status == 200
    [(status, _)] = first.together(("POST", CREATE, auth(FULL), {}))
    assert status == 202 and len(influencers(second)) == 1
    real = first.store.send_write
    writes: list[int] = []

    def counted(batches: Any, keep: bool) -> Any:
        writes.append(len(batches))
        return real(batches, keep)

    first.store.send_write = counted
    [(status, answer)] = first.together((method, path, {}, exported if body is None else body))
    first.store.send_write = real
    assert status == 200, answer
    assert len(writes) == 1  # one write
    assert influencers(first) == influencers(second) == []  # done, everywhere


def test_the_read_limit_holds_in_the_window_another_worker_moved_the_clock_into(
    two: tuple[Any, Any],
) -> None:
    """A read's window was taken from this worker's clock before its catch-up: after another
    worker moved the clock a minute on, every read here was counted in the old window in
    Redis and answered 200 without limit (130 of 130, and 120 more on the other worker)."""
    first, second = two
    whoami = ("GET", "/v1/whoami", auth(STANDARD), None)
    assert [status for status, _ in first.together(*[whoami] * 121)] == [200] * 120 + [429]
    [(status, _)] = second.together(("POST", "/_mock/clock/advance", {}, {"seconds": 60}))
    assert status == 200
    here = [status for status, _ in first.together(*[whoami] * 100)]
    there = [status for status, _ in second.together(*[whoami] * 30)]
    assert here == [200] * 100
    assert there == [200] * 20 + [429] * 10


def test_a_commit_that_cannot_be_built_is_a_503_for_its_group_and_wedges_nothing(
    two: tuple[Any, Any], patient: None
) -> None:
    """outside13: a bug while building a group's commit (here a TypeError, as orjson raised
    for a rule's count past 64 bits) escaped the gate after the group was queued as sent: the
    group was never answered, nor any request of the worker after it (each waited for it to
    land), for good. Such a commit is one never sent: each of its requests a 503, nothing of
    it kept, and the worker serves on."""
    first, second = two
    real = first.deps.sim.group_batches

    def broken() -> Any:
        first.deps.sim.group_batches = real
        raise TypeError("Integer exceeds 64-bit range")

    first.deps.sim.group_batches = broken
    again = auth(FULL, **{"Idempotency-Key": "k13"})

    async def guarded() -> list[tuple[int, Any]]:  # a wedged worker fails here, not hangs
        return list(
            await asyncio.wait_for(
                asyncio.gather(first.call("POST", CREATE, again, {}), first.call(*WHOAMI)),
                timeout=60,
            )
        )

    answers = first.loop.run_until_complete(guarded())
    assert [status for status, _ in answers] == [503, 200]  # the read did not wait on it
    assert answers[0][1]["error"]["code"] == "STORAGE_UNAVAILABLE"
    assert "could not be built" in answers[0][1]["error"]["details"]["reason"]
    [retried] = first.together(("POST", CREATE, again, {}))
    assert retried[0] == 202
    assert second.together(("POST", CREATE, again, {})) == [retried]
    assert influencers(second) == [retried[1]["influencerId"]]
    assert first.together(WHOAMI)[0][0] == 200
