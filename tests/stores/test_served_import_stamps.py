"""An import refuses a timestamp no clock could have written (issue 12): a record stamped after
the "now" of the organization it belongs to (its own clock when detached, else the server's),
a job canceled before it started, an influencer patched or deleted before it was created. A
422 naming the value by its path and the clock it is held to, nothing applied, on every
store. Before, each was a 200: a job started "tomorrow", an idempotency record that would
outlive its 24 hours.

And nothing an export of this version writes is refused: organizations on clocks of their own
(ahead of the server's and behind it), a parent key acting in its child, a wall clock served
by two workers on Redis, a wall export loaded on a virtual server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from every_store import Servers, served  # noqa: F401 - a fixture
from grouped import Worker
from redisd import RedisServer
from support import (
    ACME_ORG,
    CHILD_ORG,
    CHILD_PROJECT,
    FULL,
    GLOBEX,
    GLOBEX_PROJECT,
    NORTH_ADMIN,
    PROJECT,
)

from layers_mock_server.core.clock import format_ms
from layers_mock_server.http import shared

HOUR_MS = 3_600_000
START = 1_767_225_600_000
ACME_NOW = START + HOUR_MS + 20_000  # Acme's own clock, once the set-up has moved it
Edit = Callable[[dict[str, Any]], None]


def create(sandbox: Servers, key: str, project: str, **headers: str) -> Any:
    status, _, made = sandbox(
        "POST", f"/v1/projects/{project}/influencers", key, {}, headers=headers
    )
    assert status == 202, made
    return made


IN_CHILD = {"X-Layers-Organization": CHILD_ORG}


def advance(sandbox: Servers, org: str | None, seconds: int) -> None:
    path = "/_mock/clock/advance" if org is None else f"/_mock/organizations/{org}/clock/advance"
    status, _, body = sandbox("POST", path, None, {"seconds": seconds})
    assert status == 200, body


def _exported(sandbox: Servers) -> dict[str, Any]:
    """Acme on a clock of its own, an hour ahead: an influencer made with an Idempotency-Key,
    patched, its job canceled 20 s later; Globex on the server clock with one of its own."""
    advance(sandbox, ACME_ORG, 3600)
    made = create(sandbox, FULL, PROJECT, **{"Idempotency-Key": "stamps-1"})
    advance(sandbox, ACME_ORG, 20)
    patched = sandbox("PATCH", f"/v1/influencers/{made['influencerId']}", FULL, {"name": "Ava"})
    assert patched[0] == 200, patched
    assert sandbox("POST", f"/v1/jobs/{made['jobId']}/cancel", FULL)[0] == 202
    create(sandbox, GLOBEX, GLOBEX_PROJECT)
    status, _, document = sandbox("GET", "/_mock/state")
    assert status == 200
    assert document["clock"]["organizations"] == {ACME_ORG: ACME_NOW}
    return dict(document)


def _at(table: str, field: str, value: Callable[[dict[str, Any]], int], org: str) -> Edit:
    """Set `field` of the table's first row of `org` (idempotency: the first record)."""

    def edit(document: dict[str, Any]) -> None:
        rows = document[table]
        row = next(r for r in rows if table == "idempotency" or r["org_id"] == org)
        row[field] = value(row)

    return edit


def _where(document: dict[str, Any], table: str, org: str) -> int:
    return next(
        n for n, r in enumerate(document[table]) if table == "idempotency" or r["org_id"] == org
    )


LATER = ACME_NOW + 1
SERVER = f"its organization's now, {format_ms(START)} (clock.nowMs)"
ACME = f"its organization's now, {format_ms(ACME_NOW)} (clock.organizations.{ACME_ORG})"
CASES: dict[str, tuple[str, str, Callable[[dict[str, Any]], int], str, str]] = {
    "a project created after its organization's now": (
        "projects",
        "created_ms",
        lambda row: LATER,
        ACME_ORG,
        f"{format_ms(LATER)} is after {ACME}.",
    ),
    "a project updated after the server's now": (
        "projects",
        "updated_ms",
        lambda row: START + 1,
        "org_8d1e5f3a-6c2b-4e7d-a9f0-1b3c5d7e9f02",  # Globex: follows the server clock
        f"{format_ms(START + 1)} is after {SERVER}.",
    ),
    "an influencer created after its organization's now": (
        "influencers",
        "created_ms",
        lambda row: LATER,
        ACME_ORG,
        f"{format_ms(LATER)} is after {ACME}.",
    ),
    "an influencer patched before it was created": (
        "influencers",
        "patched_ms",
        lambda row: row["created_ms"] - 1,
        ACME_ORG,
        f"{format_ms(START + HOUR_MS - 1)} is before its created_ms, {format_ms(START + HOUR_MS)}.",
    ),
    "an influencer deleted after its organization's now": (
        "influencers",
        "deleted_ms",
        lambda row: LATER,
        ACME_ORG,
        f"{format_ms(LATER)} is after {ACME}.",
    ),
    "a job started after its organization's now": (
        "jobs",
        "started_ms",
        lambda row: LATER,
        ACME_ORG,
        f"{format_ms(LATER)} is after {ACME}.",
    ),
    "a job canceled before it started": (
        "jobs",
        "cancel_ms",
        lambda row: row["started_ms"] - 1,
        ACME_ORG,
        f"{format_ms(START + HOUR_MS - 1)} is before its started_ms, {format_ms(START + HOUR_MS)}.",
    ),
    "a job canceled after its organization's now": (
        "jobs",
        "cancel_ms",
        lambda row: LATER,
        ACME_ORG,
        f"{format_ms(LATER)} is after {ACME}.",
    ),
    "an idempotency record stored after its organization's now": (
        "idempotency",
        "stored_ms",
        lambda row: LATER,
        ACME_ORG,
        f"{format_ms(LATER)} is after {ACME}.",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_stamp_no_clock_could_have_written_is_refused_naming_it(
    served: Servers,  # noqa: F811
    case: str,
) -> None:
    table, field, value, org, said = CASES[case]
    document = _exported(served)
    assert served("PUT", "/_mock/state", None, document)[0] == 200  # as exported: taken
    n = _where(document, table, org)
    _at(table, field, value, org)(document)
    status, _, answer = served("PUT", "/_mock/state", None, document)
    assert status == 422, answer
    found = answer["error"]["details"]["formErrors"]
    assert f"State document: {table}[{n}].{field}: {said}" in found, found
    status, _, after = served("GET", "/_mock/state")
    assert after[table] != document[table]  # nothing of it applied


def test_exports_of_detached_clocks_and_parents_in_children_import_whole(
    served: Servers,  # noqa: F811
) -> None:
    """Everything stamped by the clock of the organization it belongs to: Bakery a day ahead,
    its parent's key creating, patching and canceling there with an Idempotency-Key; Acme
    detached and then behind the server, which moved on; Globex on the server's clock."""
    advance(served, CHILD_ORG, 86_400)
    made = create(served, NORTH_ADMIN, CHILD_PROJECT, **IN_CHILD, **{"Idempotency-Key": "b-1"})
    advance(served, ACME_ORG, 30)
    create(served, FULL, PROJECT)
    advance(served, None, 7200)  # the server passes Acme, which stays where it was
    create(served, GLOBEX, GLOBEX_PROJECT)
    advance(served, CHILD_ORG, 20)
    for method, path, body in [
        ("PATCH", f"/v1/influencers/{made['influencerId']}", {"name": "Bo"}),
        ("POST", f"/v1/jobs/{made['jobId']}/cancel", None),
    ]:
        answer = served(method, path, NORTH_ADMIN, body, headers=IN_CHILD)
        assert answer[0] in (200, 202), answer
    status, _, document = served("GET", "/_mock/state")
    assert [r["api_key_id"].partition("@")[2] for r in document["idempotency"]] == [CHILD_ORG]
    status, _, answer = served("PUT", "/_mock/state", None, document)
    assert status == 200, answer
    after = served("GET", "/_mock/state")[2]
    assert {k: v for k, v in after.items() if k != "requests"} == {  # (control ids move on)
        k: v for k, v in document.items() if k != "requests"
    }


def test_a_wall_clock_sandbox_of_two_workers_exports_what_it_imports(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each worker reads its own wall clock: the export of one must still hold every stamp
    the other wrote (it takes the later instant when it catches up)."""
    monkeypatch.setattr(shared, "FOLLOW_S", 3600.0)  # as every_store's workers
    monkeypatch.setattr(shared, "LINGER_S", 0.0)
    monkeypatch.setattr(shared, "IDLE_S", 0.0)
    url = redis_server.sandbox()
    workers = [Worker(url, clock="wall") for _ in range(2)]
    try:
        sandbox = Servers(workers)
        for n in range(6):
            create(sandbox, [FULL, GLOBEX][n % 2], [PROJECT, GLOBEX_PROJECT][n % 2])
        document = sandbox("GET", "/_mock/state")[2]
        assert document["clock"]["mode"] == "wall"
        assert len(document["influencers"]) == 6
        status, _, answer = sandbox("PUT", "/_mock/state", None, document)
        assert status == 200, answer
    finally:
        for worker in workers:
            worker.close()
        asyncio.set_event_loop(None)
