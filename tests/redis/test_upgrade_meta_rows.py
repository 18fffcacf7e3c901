"""A Redis sandbox the version before the rows of rules, rate windows and clocks wrote (meta14:
core/persist.py) is served by this one exactly. That version kept every rule, every key's
rate windows and every organization's own clock in the meta row, and no rows of tables
`rules`, `rates` and `clocks`; its Lua scripts are this version's, so its sandbox is made
here by this version's workers writing as it wrote (`previous_version`): the meta row of an
export (snapshot.meta), no part rows. The sandbox holds counted rules, a tenant's rule, rate
windows mid-window, an organization on its own virtual clock, and records; the upgraded
workers serve all of them as they were, the first commit after the upgrade moves them to
rows (a worker following it sees the same), and a follower applies an old-style entry of the
log (a worker not yet upgraded committing while the others are).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import redis
from grouped import CREATE, Worker
from redisd import RedisServer
from support import ACME_ORG, FULL, GLOBEX, PROJECT, STANDARD, auth

from layers_mock_server.core import persist, replica, snapshot
from layers_mock_server.core.store import Batch
from layers_mock_server.stores.redis_url import parse_url

TOKEN = "upgrade-admin-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
BODY = {"gender": "female", "ageRange": "young_adult", "prompt": "barista energy"}
ORG_CLOCK = f"/_mock/organizations/{ACME_ORG}/clock"


def previous_version(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process's workers write as the previous version did (`git show 8ed29bb^1`): the
    meta row of an export (rules, rate windows, organizations' clocks in it), no part rows
    in a commit or in a whole write. Reading is left as it is."""
    monkeypatch.setattr(persist, "stored_meta", snapshot.meta)
    monkeypatch.setattr(persist, "_parts", lambda state, upserts, deletes: None)
    monkeypatch.setattr(persist, "all_parts", lambda state: iter(()))


def worker(url: str) -> Worker:
    return Worker(url, admin_token=TOKEN)


def call(
    at: Worker, method: str, path: str, headers: dict[str, str] | None = None, body: Any = None
) -> tuple[int, Any]:
    return at.together((method, path, ADMIN if headers is None else headers, body))[0]


def ok(
    at: Worker, method: str, path: str, headers: dict[str, str] | None = None, body: Any = None
) -> Any:
    status, found = call(at, method, path, headers, body)
    assert status < 300, (method, path, status, found)
    return found


def export(at: Worker) -> Any:
    """The worker's export but for its request-number counters: each worker reserves blocks
    of its own (the next request id of another worker is another, on any version)."""
    found = ok(at, "GET", "/_mock/state")
    del found["requests"]
    return found


def remaining(at: Worker, key: str, read: bool = False) -> str:
    """The remaining count a create (long-running) or a read of a project (read-light) by
    `key` reports of its window."""
    sent = (
        ("GET", f"/v1/projects/{PROJECT}", auth(key)) if read else ("POST", CREATE, auth(key), BODY)
    )

    async def run() -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        answer = await at.exchange(*sent)
        await at.deps.shared.settled()  # the lease back, as `Worker.together` leaves it
        return answer

    status, headers, _ = at.loop.run_until_complete(run())
    assert status == (200 if read else 202), status
    return dict(headers)[b"x-ratelimit-remaining"].decode()


class Sandbox:
    """The Redis keys of a sandbox, read straight (no worker)."""

    def __init__(self, server: RedisServer, url: str) -> None:
        self.client = redis.Redis.from_url(server.url)
        self.tag = "{lm:" + parse_url(url)[1] + "}"

    def meta(self) -> bytes:
        found = self.client.get(f"{self.tag}:meta")
        assert isinstance(found, bytes)
        return found

    def tables(self) -> dict[str, int]:
        counted: dict[str, int] = {}
        for field in self.client.hkeys(f"{self.tag}:rows"):
            table = field.split(b"\0")[0].decode()
            counted[table] = counted.get(table, 0) + 1
        return counted

    def close(self) -> None:
        self.client.close()


def written_by_the_previous_version(url: str) -> tuple[Any, list[str]]:
    """A sandbox as the previous version leaves it (with `previous_version` in force): its
    export and the ids of its rules (the counted one last)."""
    first = worker(url)
    found = written_by_the_previous_version_on(first)
    first.close()
    return found


def written_by_the_previous_version_on(first: Worker) -> tuple[Any, list[str]]:
    """`written_by_the_previous_version`'s requests, on a worker left open."""
    ids = []
    for n in range(4):
        match = {"organizationId": ACME_ORG, "path": f"/v1/never/{n}/*"}
        ids.append(ok(first, "POST", "/_mock/rules", None, {"match": match, "fault": "503"}))
    ok(first, "DELETE", "/_mock/rules/" + ids.pop(1)["ruleId"])
    theirs = {"match": {"operationId": "whoami"}, "fault": "500", "count": 2}
    ids.append(ok(first, "POST", "/_mock/rules", auth(GLOBEX), theirs))  # a tenant's
    counted = {"match": {"operationId": "whoami", "organizationId": ACME_ORG}, "fault": "503"}
    ids.append(ok(first, "POST", "/_mock/rules", None, {**counted, "count": 3}))
    assert call(first, "GET", "/v1/whoami", auth(FULL))[0] == 503  # 2 left
    assert call(first, "GET", "/v1/whoami", auth(GLOBEX))[0] == 500  # the tenant's: 1 left
    ok(first, "POST", ORG_CLOCK + "/advance", None, {"seconds": 3600})
    # a window mid-window: 3 of STANDARD's 20 long-running requests used
    assert [remaining(first, STANDARD) for _ in range(3)] == ["19", "18", "17"]
    assert [remaining(first, STANDARD, read=True) for _ in range(2)] == ["119", "118"]
    assert remaining(first, FULL) != ""
    before = export(first)
    assert [r["remaining"] for r in before["rules"]["rules"]][-2:] == [1, 2]
    assert ACME_ORG in before["clock"]["organizations"]
    assert before["influencers"] and before["rates"]
    return before, [r["ruleId"] for r in ids]


@pytest.fixture
def old(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, Any, Sandbox]]:
    """A sandbox the previous version wrote, its export, and the sandbox's keys."""
    url = redis_server.sandbox()
    with monkeypatch.context() as m:
        previous_version(m)
        before, _ = written_by_the_previous_version(url)
    keys = Sandbox(redis_server, url)
    yield url, before, keys
    keys.close()


def test_a_sandbox_the_previous_version_wrote_is_served_exactly_and_moves_to_rows(
    old: tuple[str, Any, Sandbox],
) -> None:
    url, before, keys = old
    legacy = orjson.loads(keys.meta())
    assert snapshot.PART_ROWS not in legacy and len(legacy["rules"]["rules"]) == 5
    assert not {"rules", "rates", "clocks"} & set(keys.tables())
    first, second = worker(url), worker(url)  # both upgraded, both read the old layout
    assert export(first) == before
    assert export(second) == before
    # the first commit after the upgrade: the counted rule fires with its remaining count
    assert call(first, "GET", "/v1/whoami", auth(FULL))[0] == 503
    after = export(first)
    assert [r["remaining"] for r in after["rules"]["rules"]][-2:] == [1, 1]
    assert export(second) == after  # followed through the log
    meta = orjson.loads(keys.meta())
    assert meta[snapshot.PART_ROWS] and meta["rules"]["rules"] == [] and meta["rates"] == []
    assert "organizations" not in meta["clock"] and len(keys.meta()) < 500, keys.meta()
    tables = keys.tables()
    assert (tables["rules"], tables["clocks"]) == (5, 1)
    assert tables["rates"] == len(after["rates"]) == 2, after["rates"]  # STANDARD's
    # the rules fire on with their counts, on either worker; the window holds; the clock too
    assert call(second, "GET", "/v1/whoami", auth(FULL))[0] == 503  # the last of 3
    assert call(first, "GET", "/v1/whoami", auth(FULL))[0] == 200
    assert call(second, "GET", "/v1/whoami", auth(GLOBEX))[0] == 500  # the tenant's last
    assert call(first, "GET", "/v1/whoami", auth(GLOBEX))[0] == 200
    # a create is long-running (20 a window for STANDARD): 3 used before the upgrade
    assert remaining(second, STANDARD) == "16"
    assert remaining(first, STANDARD, read=True) == "117"  # read-light: 120, 2 used before
    clock = ok(first, "GET", ORG_CLOCK)
    assert clock == ok(second, "GET", ORG_CLOCK)
    # an hour ahead of the server's clock (which no request moved), as it was left
    assert (clock["now"], clock["detached"]) == ("2026-01-01T01:00:00.000Z", True)
    assert export(first)["clock"]["nowMs"] == before["clock"]["nowMs"]
    settled = export(first)
    assert export(second) == settled
    first.close()
    second.close()
    again = worker(url)  # a restart reads the rows
    assert export(again) == settled
    again.close()


class Applied:
    """The meta rows of the log entries a worker applies (replica.apply), parsed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.metas: list[Any] = []
        apply = replica.apply

        def kept(state: Any, batch: Batch, clock: Any) -> None:
            if batch.meta is not None:
                self.metas.append(orjson.loads(batch.meta))
            apply(state, batch, clock)

        monkeypatch.setattr(replica, "apply", kept)

    def old_style_rules(self) -> list[int]:
        """How many rules each old-style meta row applied carried."""
        return [len(m["rules"]["rules"]) for m in self.metas if snapshot.PART_ROWS not in m]


def test_a_follower_applies_the_log_entries_of_a_worker_of_the_previous_version(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rolling upgrade: a worker not yet upgraded commits, in the log, meta rows holding
    every rule, window and clock; an upgraded worker following the log takes them all."""
    url = redis_server.sandbox()
    with monkeypatch.context() as m:
        previous_version(m)
        old = worker(url)
        ok(old, "GET", "/_mock/rules")  # the sandbox made, in the old layout
    follower = worker(url)
    applied = Applied(monkeypatch)
    with monkeypatch.context() as m:
        previous_version(m)
        before, ids = written_by_the_previous_version_on(old)
    assert export(follower) == before
    assert applied.old_style_rules()[-1] == 5, applied.old_style_rules()
    with monkeypatch.context() as m:
        previous_version(m)
        ok(old, "DELETE", "/_mock/rules/" + ids[0])
        ok(old, "POST", "/_mock/clock/advance", None, {"seconds": 3600})
        ok(old, "POST", ORG_CLOCK + "/reset")  # the organization's clock follows again
        assert call(old, "GET", "/v1/whoami", auth(FULL))[0] == 503  # 1 left
        later = export(old)
    assert export(follower) == later
    assert "organizations" not in later["clock"] and applied.old_style_rules()[-1] == 4


def test_an_upgraded_worker_that_followed_the_previous_version_commits_everything_it_took(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The end of a rolling upgrade: the last worker of the previous version stops after
    committing its rules, windows and clock in its meta row; the next commit is an upgraded
    worker's, which marks its meta row as leaving them to rows. A restart must then find
    them all in rows, as that worker serves them."""
    url = redis_server.sandbox()
    with monkeypatch.context() as m:
        previous_version(m)
        old = worker(url)
        ok(old, "GET", "/_mock/rules")  # the sandbox made, in the old layout
    follower = worker(url)  # read while the old layout held no rule, window or clock
    with monkeypatch.context() as m:
        previous_version(m)
        before, _ = written_by_the_previous_version_on(old)
    old.close()
    assert export(follower) == before
    ok(follower, "POST", CREATE, auth(FULL), BODY)  # the first commit of an upgraded worker
    served = export(follower)
    follower.close()
    again = worker(url)
    assert export(again) == served
    again.close()


def test_a_group_dropped_unsent_on_an_old_layout_leaves_every_part_to_the_next_commit(
    old: tuple[str, Any, Sandbox],
) -> None:
    """cluster15 (final14's open edge): an upgraded worker that read a sandbox in the old
    layout holds every rule, rate window and clock marked, for its first commit to write them
    as rows. A group whose commit is never sent (the lease lost behind a failed commit:
    http/shared.py `_close`) clears the copy's marks (`drop_group`) and lands as a failed
    commit (`commit_failed`), as the gate does; the copy is then read again whole, from the
    old meta row still in Redis, which marks them all again. The next commit writes every
    one as a row, and a restart serves the sandbox as the worker did. Had the copy not been
    read again, that commit would have written a lean meta row and no rows: a restart would
    have found no rule, window or clock."""
    url, _, keys = old
    first = worker(url)  # (it only read: no request yet, nothing committed)
    sim = first.deps.sim
    sim.drop_group()  # what the gate does with a group it cannot send, then
    sim.commit_failed()  # ... when that group lands (`_landed`)
    assert not {"rules", "rates", "clocks"} & set(keys.tables())
    ok(first, "POST", CREATE, auth(FULL), BODY)  # the first commit after the upgrade
    tables = keys.tables()
    found = (tables.get("rules"), tables.get("clocks"), tables.get("rates"))
    assert found == (5, 1, 2), tables
    served = export(first)
    first.close()
    again = worker(url)  # a restart reads the rows
    assert export(again) == served
    again.close()
