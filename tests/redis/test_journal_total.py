"""The journal's server-wide total on Redis (stores/redis_total.py): a hosted sandbox's many
organizations each keep their own newest entries, and all of them together at most the total
one process keeps (core/journal.py), cut by the same rule; every organization keeps its
newest entry."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import journal_v3
import orjson
import pytest
from every_store import OPERATOR, Servers
from grouped import Worker
from redisd import RedisServer
from starlette.testclient import TestClient
from support import ACME_ORG, FULL, SEED

from layers_mock_server.http.app import build_app
from layers_mock_server.settings import Settings, make_deps
from layers_mock_server.stores.redis import RedisStore, _read_all
from layers_mock_server.stores.redis_journal import _encode, counted

TOTAL = 200_000


@pytest.fixture
def store(redis_server: RedisServer) -> Iterator[RedisStore]:
    opened = RedisStore(redis_server.sandbox())
    opened.open()
    opened.journal_total = TOTAL
    yield opened
    opened.close()


def entry(org: str, n: int, size: int = 2_000) -> bytes:
    fields = (0, 0, "POST", f"/{org}/{n}", "x" * size, 200, f"r-{org}-{n}", None, None, None)
    return _encode((*fields, None, None, 1, 0, org, 0))


def send(store: RedisStore, *entries: bytes) -> None:
    store.outbox.add(*entries)
    store.journal_flush()


def streams(store: RedisStore) -> dict[str, list[bytes]]:
    """What Redis holds of each organization's stream: its journal entries, oldest first."""
    found: dict[str, list[bytes]] = {}
    prefix = store.keys["journal-org"]
    for key in store._client.scan_iter(match=prefix.replace("{", "\\{").replace("}", "\\}") + "*"):
        name = key.decode()[len(prefix) :]
        org = bytes.fromhex(name).decode() if name else "~-"
        held = store._client.xrange(key)
        found[org] = [v for _, fields in held for k, v in fields.items() if k != b"n"]
    return found


def newest_stream_entries(store: RedisStore) -> int:
    """The bytes of each stream's newest stream entry, over every stream (never cut)."""
    total = 0
    for key in store._client.scan_iter(match="*journal-org:*"):
        [(_, fields)] = store._client.xrevrange(key, count=1)
        total += sum(len(v) for k, v in fields.items() if k != b"n")
    return total


def test_many_organizations_stay_within_the_total_and_each_keeps_its_newest(
    store: RedisStore,
) -> None:
    """Hostile: 60 organizations of 30 entries each (~3.6 MB of JSON) under a total of 200 KB
    (it had no total: each stream kept its 1,000, and 10,000 organizations 40 GB with bodies).
    A quiet organization's only entry stays; the busy ones are cut to a common level; what
    the counters say is what the streams hold."""
    send(store, entry("org_quiet", 0))
    for n in range(30):
        send(store, *(entry(f"org_{o}", n) for o in range(60)))
    held = streams(store)
    size = sum(len(e) for entries in held.values() for e in entries)
    assert size <= TOTAL + newest_stream_entries(store)
    assert held["org_quiet"] == [entry("org_quiet", 0)]
    assert all(held[f"org_{o}"][-1] == entry(f"org_{o}", 29) for o in range(60))
    counters = store._client.hgetall(store.keys["journal-seq:org"])
    assert int(counters[b"~="].split(b":")[0]) == size
    for org, entries in held.items():
        assert int(counters[b"~=" + counted(org).encode()].split(b":")[0]) == sum(map(len, entries))
    # each organization still numbers its own, and a tenant reads what is left of its own
    assert len(store.journal_read(1000, "org_7")) == len(held["org_7"])
    assert b"~=" not in b"".join(
        store._call("journal-orgs", [store.keys["journal-seq:org"]], [])
    )  # the operator's read names organizations only


def test_a_total_the_newest_entries_alone_fill_cuts_nothing_of_theirs(store: RedisStore) -> None:
    """More organizations than the total holds, one entry each: every one keeps its entry,
    and no cut runs for them (each would read every stream's size)."""
    shed = 0
    real = store.journal_shed

    def counted_shed() -> None:
        nonlocal shed
        shed += 1
        real()

    store.journal_shed = counted_shed  # type: ignore[method-assign]
    for o in range(150):  # 150 x ~2 KB: 1.5 times the total
        send(store, entry(f"org_{o}", 0))
    assert shed == 0
    held = streams(store)
    assert all(held[f"org_{o}"] == [entry(f"org_{o}", 0)] for o in range(150))


OLD_SENT = iter(range(1, 10**6, 1_000))


def old_append(store: RedisStore, *entries: bytes) -> None:
    """What a worker of the version before sends (journal_v3.APPEND: IDs `<n>-0`, no bytes
    counted), numbering its entries by its own mark."""
    keys = [store.keys["journal"], store.keys["journal-seq"], store.keys["mark"] + ":old"]
    keys += [store.keys["journal-floor"], store.keys["journal-seq:org"]]
    keys += store._streams(list(entries))
    store._client.eval(journal_v3.APPEND, len(keys), *keys, 1000, next(OLD_SENT), *entries)


def test_streams_the_version_before_wrote_are_upgraded_and_a_rollback_appends_on(
    store: RedisStore,
) -> None:
    """Its streams hold entries no total counted: they are read and trimmed as before, count
    nothing (a trim subtracts their IDs' 0), and the total holds for what this version
    appends; the version before appends on to a stream this one wrote."""
    for n in range(10):
        old_append(store, *(entry(f"org_{o}", n) for o in range(40)))
    for n in range(10, 40):
        send(store, *(entry(f"org_{o}", n) for o in range(40)))
    held = streams(store)
    size = sum(len(e) for entries in held.values() for e in entries)
    assert size <= TOTAL + newest_stream_entries(store)
    assert all(held[f"org_{o}"][-1] == entry(f"org_{o}", 39) for o in range(40))
    old_append(store, entry("org_3", 40))  # a rollback
    found = store.journal_read(1000, "org_3")
    assert [raw for _, raw in found][-1].startswith(b'[[0,"org_3",41],0,"POST","/org_3/40"')
    send(store, entry("org_3", 41))  # and forward again
    assert len(store.journal_read(1000, "org_3")) == len(found) + 1
    # the version before's operator read takes every field of the counters for an
    # organization, `~=` ones too: their streams do not exist, and it reads as this one does
    fields = store._client.hkeys(store.keys["journal-seq:org"])
    assert b"~=" in fields
    read = store._call("journal-read", *store._read_all_args(fields, 1000))
    assert _read_all(read, 1000) == store.journal_read(1000)


def many_organizations(count: int) -> tuple[dict[str, Any], list[str]]:
    """A state of the fixtures' and `count` organizations more, each with a key of its own
    (an import: the way a hosted sandbox gets its tenants), and those keys."""
    deps = make_deps(Settings(clock="virtual", seed=SEED))
    with TestClient(build_app(deps)) as client:
        state = orjson.loads(client.get("/_mock/state").content)
    [org] = [o for o in state["organizations"] if o["organization_id"] == ACME_ORG]
    [key] = [k for k in state["keys"] if k["key"] == FULL]
    keys = []
    for n in range(count):
        org_id, secret = f"org_tenant-{n}", f"lp_test_tenant{n}_Q1w2E3r4T5y6U7i8"
        state["organizations"].append({**org, "organization_id": org_id})
        state["keys"].append({**key, "key": secret, "api_key_id": f"key_t{n}", "org_id": org_id})
        keys.append(secret)
    return state, keys


def test_two_workers_hold_the_total_together(redis_server: RedisServer) -> None:
    """Two workers of one sandbox (each a serve of its own: its copy, its store, its pipe),
    bodies kept, 30 tenants taking turns: each appends with its round trips and cuts when told
    (through the pipe, without waiting), and the streams stay within the total, counted
    exactly, every tenant keeping its newest entry."""
    url = redis_server.sandbox()
    workers = [Worker(url, bodies=True, admin_token=OPERATOR) for _ in range(2)]
    try:
        for worker in workers:
            worker.store.journal_total = TOTAL
        served = Servers(workers, OPERATOR)
        state, keys = many_organizations(30)
        assert served("PUT", "/_mock/state", None, state)[0] == 200
        for n in range(20):
            for key in keys:
                assert served("GET", "/v1/whoami", key, query=f"n={n}")[0] == 200
        assert served("GET", "/_mock/requests", None)[0] == 200  # (every entry sent)
        assert served("GET", "/_mock/requests", None)[0] == 200
        for worker in workers:  # the cuts they were told of, through their pipes
            deadline = time.monotonic() + 30
            while worker.store.shedding and time.monotonic() < deadline:
                worker.loop.call_soon(worker.loop.stop)  # one turn of its loop: the pipe reads
                worker.loop.run_forever()
            assert not worker.store.shedding
        store = workers[0].store
        held = streams(store)
        size = sum(len(e) for entries in held.values() for e in entries)
        assert size <= TOTAL + newest_stream_entries(store) + TOTAL // 8
        counters = store._client.hgetall(store.keys["journal-seq:org"])
        assert int(counters[b"~="].split(b":")[0]) == size
        for n, key in enumerate(keys):
            read = served("GET", "/_mock/requests", key)[2]
            assert read["items"][0]["query"] == "n=19", n
    finally:
        for worker in workers:
            worker.close()
