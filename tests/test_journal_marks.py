"""A reset's journal mark across a restart of a real server (`GET /_mock/requests?after=`):
on SQLite the marks continue where they were, so a mark held from before the restart still
means "answered after that reset"; a mark this server never handed out (one from before a
restart of a server in memory, whose journal and resets are gone) is a 422 that says so,
never an answer about some other reset."""

from __future__ import annotations

from pathlib import Path

import httpx
from served import Servers, servers  # noqa: F401 - a fixture
from support import FULL, GLOBEX, auth

STRICT = ("--strict",)  # a response the spec does not describe is a 500


def reset(url: str) -> int:
    answer = httpx.post(url + "/_mock/reset", timeout=60)
    assert answer.status_code == 200, answer.text
    mark: int = answer.json()["mark"]
    return mark


def after(url: str, mark: int) -> httpx.Response:
    return httpx.get(url + "/_mock/requests", params={"after": mark}, timeout=60)


def whoami(url: str) -> str:
    answer = httpx.get(url + "/v1/whoami", headers=auth(FULL), timeout=60)
    assert answer.status_code == 200, answer.text
    request_id: str = answer.headers["x-request-id"]
    return request_id


def test_marks_continue_across_a_restart_on_sqlite(
    servers: Servers,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Marks 1 and 2 before a kill -9; after the restart the next reset answers 3, and mark 2
    still lists every request answered since (the journal itself starts empty: it is not
    kept in the file), not nothing until two more resets, then the wrong ones."""
    path = tmp_path / "state.sqlite"
    first = servers(path, extra=STRICT)
    assert [reset(first.url), reset(first.url)] == [1, 2]
    whoami(first.url)
    first.kill()
    again = servers(path, extra=STRICT)
    since = whoami(again.url)
    listed = after(again.url, 2)
    assert listed.status_code == 200, listed.text
    assert [e["requestId"] for e in listed.json()["items"]] == [since]
    assert reset(again.url) == 3
    later = whoami(again.url)
    assert [e["requestId"] for e in after(again.url, 3).json()["items"]] == [later]
    unknown = after(again.url, 4)
    assert unknown.status_code == 422, unknown.text
    said = unknown.json()["error"]["details"]["fieldErrors"]["after"]
    assert said == ["No reset answered mark 4: the latest this server handed out is 3."], said


def test_a_mark_from_before_a_restart_in_memory_is_a_422(servers: Servers) -> None:  # noqa: F811
    """In memory a restart loses the journal and the resets: mark 2 from before it names no
    reset of the new server, and is refused, not answered with an empty list (then, two
    resets later, with another reset's requests)."""
    first = servers(None, memory=True, extra=STRICT)
    assert [reset(first.url), reset(first.url)] == [1, 2]
    first.kill()
    again = servers(None, memory=True, extra=STRICT)
    whoami(again.url)
    stale = after(again.url, 2)
    assert stale.status_code == 422, stale.text
    body = stale.json()["error"]
    assert body["code"] == "VALIDATION" and body["message"] == "Invalid query.", body
    assert body["details"]["fieldErrors"]["after"] == [
        "No reset answered mark 2: the latest this server handed out is 0."
    ]
    assert after(again.url, 0).json()["total"] == 1  # 0: every request


def test_a_tenants_marks_continue_across_a_restart_on_sqlite(
    servers: Servers,  # noqa: F811
    tmp_path: Path,
) -> None:
    """A tenant's own marks (issue 12 point 4: 1, 2, 3 whatever other organizations reset)
    are kept in the file as the server's are: after a kill -9 its next reset answers 3, not
    1, and its mark 2 still lists its requests answered since, numbered among its own."""
    path = tmp_path / "state.sqlite"
    admin = ("--admin-token", "operator-secret-for-tenants")
    first = servers(path, extra=(*STRICT, *admin))

    def tenant_reset(url: str, key: str) -> int:
        answer = httpx.post(url + "/_mock/reset", json={}, headers=auth(key), timeout=60)
        assert answer.status_code == 200, answer.text
        mark: int = answer.json()["mark"]
        return mark

    assert [tenant_reset(first.url, FULL), tenant_reset(first.url, GLOBEX)] == [1, 1]
    assert tenant_reset(first.url, FULL) == 2
    first.kill()
    again = servers(path, extra=(*STRICT, *admin))
    httpx.get(again.url + "/v1/whoami", headers=auth(GLOBEX), timeout=60)
    since = whoami(again.url)
    listed = httpx.get(
        again.url + "/_mock/requests", params={"after": 2}, headers=auth(FULL), timeout=60
    )
    assert listed.status_code == 200, listed.text
    assert [(e["sequence"], e["requestId"]) for e in listed.json()["items"]] == [(1, since)]
    assert tenant_reset(again.url, FULL) == 3
    assert tenant_reset(again.url, GLOBEX) == 2
