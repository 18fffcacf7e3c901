"""The journal's stream on Redis (stores/redis_journal.py): the entries of one round trip are
one stream entry, and still exactly the newest `capacity` entries are kept and read, numbered
one by one; entries an older version kept (one a stream entry) are read with them."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import journal_v2
import orjson
import pytest
from grouped import Worker
from redisd import RedisServer
from starlette.testclient import TestClient
from support import ACME_ORG, FULL, GLOBEX, SEED, auth

from layers_mock_server.core.journal import JournalEntry
from layers_mock_server.core.store import Batch, StoreConflict
from layers_mock_server.http.app import build_app
from layers_mock_server.settings import Settings, make_deps
from layers_mock_server.stores import redis_journal
from layers_mock_server.stores.redis import RedisStore
from layers_mock_server.stores.redis_journal import CHUNK, _decode, _encode, counted


@pytest.fixture
def store(redis_server: RedisServer) -> Iterator[RedisStore]:
    opened = RedisStore(redis_server.sandbox())
    opened.open()
    yield opened
    opened.close()


def send(store: RedisStore, *entries: bytes) -> None:
    """What a round trip takes along (journal_flush is the one that goes alone)."""
    store.outbox.add(*entries)
    store.journal_flush()


def numbered(first: int, last: int) -> list[tuple[int, bytes]]:
    return [(n, b"e%d" % n) for n in range(first, last + 1)]


def test_the_newest_entries_are_kept_and_read_exactly_however_they_were_sent(
    store: RedisStore,
) -> None:
    store.journal_capacity = 5
    send(store, b"e1", b"e2", b"e3", b"e4")
    send(store, b"e5")
    send(store, b"e6", b"e7", b"e8", b"e9")
    assert store.journal_read(5) == numbered(5, 9)
    assert store.journal_read(3) == numbered(7, 9)
    held = store._client.xrange(store.keys["journal-org"])  # (of no organization)
    # what Redis holds: the stream entries with one of the newest five, no more
    assert [fields[b"n"] for _, fields in held] == [b"5", b"6"]


def test_a_round_trip_with_more_entries_than_a_stream_entry_holds_keeps_them_all(
    store: RedisStore,
) -> None:
    many = CHUNK * 2 + 10
    send(store, *(b"e%d" % n for n in range(1, many + 1)))
    assert store.journal_read(1000) == numbered(1, many)
    assert store._client.xlen(store.keys["journal-org"]) == 3


def test_entries_an_older_version_kept_are_read_with_the_new_ones_until_cleared(
    store: RedisStore,
) -> None:
    """Versions before kept one entry a stream entry, under `journal`, capped by MAXLEN."""
    client = store._client
    for n in (1, 2):
        client.xadd(store.keys["journal-v1"], {"n": n, "e": b"e%d" % n}, maxlen=1000)
    client.set(store.keys["journal-seq"], 2)
    send(store, b"e3", b"e4")
    assert store.journal_read(1000) == numbered(1, 4)
    assert store.journal_read(3) == numbered(2, 4)
    store.journal_clear()
    assert store.journal_read(1000) == []
    assert not client.exists(store.keys["journal-v1"])


def test_a_stream_ahead_of_its_counters_does_not_stop_the_journal(store: RedisStore) -> None:
    """Only an edited Redis gets there (the counters and the streams change in the same
    scripts): the journal starts again rather than refuse every round trip after."""
    send(store, b"e1", b"e2")
    store._client.delete(store.keys["journal-seq"], store.keys["journal-seq:org"])
    send(store, b"e1")
    assert store.journal_read(1000) == numbered(1, 1)
    send(store, b"e2")
    store._client.hset(store.keys["journal-seq:org"], "~-", 1)  # behind its stream's last
    send(store, b"e3")  # dropped, not refused
    assert store.journal_read(1000) == numbered(3, 3)


def answered_at(position: int, name: str) -> bytes:
    """An entry as a worker sends it: JSON that starts with where its copy stood."""
    return orjson.dumps([[position], name])


def names(store: RedisStore) -> list[str]:
    return [orjson.loads(raw)[1] for _, raw in store.journal_read(1000)]


def test_a_global_resets_commit_clears_the_journal_and_drops_what_was_answered_before_it(
    store: RedisStore,
) -> None:
    """Entries reach Redis after their answers, alone (APPEND), with a catch-up (CHANGES) or
    with a commit (WRITE): on each way, one answered before the reset's commit (a copy at
    commit 1) is dropped, one answered after it kept, and a group's own entries go with their
    commit as they are."""
    store.write(Batch([], []))  # commit 1
    send(store, answered_at(1, "before the reset, in time"))
    store.clearing = True  # a global reset's commit (SharedJournal.clear, under a gate)
    store.write(Batch([], [], wipe=True))  # commit 2
    assert names(store) == []
    send(store, answered_at(1, "append: before"), answered_at(2, "append: after"))
    store.outbox.add(answered_at(1, "catch-up: before"), answered_at(2, "catch-up: after"))
    store.changes()
    store.outbox.add(answered_at(0, "commit: before"), answered_at(3, "commit: after"))
    store.staged = [answered_at(2, "the group's own")]
    store.write(Batch([], []))  # commit 3
    assert names(store) == [
        "append: after",
        "catch-up: after",
        "commit: after",
        "the group's own",
    ]
    assert [n for n, _ in store.journal_read(1000)] == [1, 2, 3, 4]  # numbered from 1 again


def test_a_reset_whose_commit_is_refused_clears_nothing(store: RedisStore) -> None:
    send(store, answered_at(0, "kept"))
    store.clearing = True
    store.seen += 1  # another worker wrote since: the script refuses the write
    with pytest.raises(StoreConflict):
        store.write(Batch([], [], wipe=True))
    assert not store.clearing  # and no later commit clears it either
    store.forget()
    store.changes()
    store.write(Batch([], []))
    send(store, answered_at(0, "answered before the write, late"))
    assert names(store) == ["kept", "answered before the write, late"]


def test_a_reset_no_gate_holds_clears_the_journal_at_the_commit_it_wrote(
    store: RedisStore,
) -> None:
    store.write(Batch([], [], wipe=True))  # written alone (no gate): then cleared
    send(store, answered_at(0, "before"))
    store.journal_clear()
    send(store, answered_at(0, "late"), answered_at(1, "after"))
    assert names(store) == ["after"]


def test_an_entry_a_version_before_positions_sent_is_read_as_answered_before_any_reset(
    redis_server: RedisServer,
) -> None:
    """Its JSON starts with its worker's own number, not a position: read as it was, it
    counts as answered before every reset's mark."""
    deps = make_deps(Settings(state=redis_server.sandbox(), clock="virtual", seed=SEED))
    older = [9, 0, "GET", "/v1/whoami", "", 200, "req_older", None, "whoami", None, None, None, 1]
    with TestClient(build_app(deps)) as client:
        send(deps.sim.shared, orjson.dumps(older))
        items = client.get("/_mock/requests").json()["items"]
        assert [(i["path"], i["requestId"], i["sequence"]) for i in items] == [
            ("/v1/whoami", "req_older", 1)
        ]
        reset = client.post("/_mock/reset", json={"organizationId": ACME_ORG})
        assert reset.status_code == 200  # (an organization's: the journal stays)
        after = client.get(f"/_mock/requests?after={reset.json()['mark']}&method=GET")
        assert after.json()["items"] == []


def test_an_entry_is_written_position_first_with_or_without_bodies_and_read_back_alike() -> None:
    bare = (7, 1000, "POST", "/v1/x", "a=1", 202, "req_1", "key_1", "op", None, None, None, 120, 42)
    bare = (*bare, None, 0)  # no organization (a keyless answer), so none to number it in
    request = ([(b"content-type", b"application/json"), (b"x-name", b"\xe9")], b"{}", False)
    response = ([(b"x-request-id", b"req_1")], b'{"ok":true}', True)
    kept = (*bare[:10], request, response, *bare[12:])
    # the position first (where an older version kept its own sequence), then the rest
    assert orjson.loads(_encode(bare)) == [[42], *bare[1:13]]
    for entry in (bare, kept):
        assert _encode(JournalEntry(*entry)) == _encode(entry)  # a tuple or an entry, alike
        assert _decode(7, _encode(entry)) == JournalEntry(*entry)
    # an organization's goes after the position, for the script that numbers it (it comes
    # back numbered from Redis: test_each_organizations_entries_are_numbered_...)
    assert orjson.loads(_encode((*bare[:14], "org_a", 0)))[0] == [42, "org_a"]
    assert orjson.loads(_encode((*kept[:14], "org_a", 0)))[0] == [42, "org_a"]


def test_each_organizations_entries_are_numbered_among_its_own_until_the_journal_is_cleared(
    store: RedisStore,
) -> None:
    """What a tenant reads as `sequence` (issue 12 point 4): the script numbers an entry of an
    organization among that organization's, whatever entries of others or of none came in
    between, and in whichever round trip; an organization JSON would escape travels in hex
    and is numbered all the same; a hash of counters spoiled by hand is started anew."""

    def entry(org: str | None, name: str) -> bytes:
        fields = (0, 0, "GET", "/v1/whoami", "", 200, name, None, None, None, None, None, 1, 0)
        return _encode((*fields, org, 0))

    def heads() -> list[tuple[str, str | None, int]]:
        entries = [_decode(n, raw) for n, raw in store.journal_read(100)]
        return [(e.requestId, e.org, e.orgSequence) for e in entries]

    quoted = 'org "quoted" \\ one'
    send(store, entry("org_a", "a1"), entry("org_b", "b1"), entry(None, "none"))
    send(store, entry("org_a", "a2"), entry(quoted, "q1"), entry(quoted, "q2"))
    assert heads() == [
        ("a1", "org_a", 1),
        ("b1", "org_b", 1),
        ("none", None, 0),
        ("a2", "org_a", 2),
        ("q1", quoted, 1),  # read back as its id, which names its share (not in hex)
        ("q2", quoted, 2),
    ]

    # each organization's in a stream of its own, stored as they were sent (their numbers
    # are the stream entry's and their fields' names)
    def stored(org: str | None) -> list[bytes]:
        key = store.keys["journal-org"]
        if org is not None:
            key = store._stream(counted(org).encode())
        raw = store._client.eval("return redis.call('XRANGE', KEYS[1], '-', '+')", 1, key)
        return [value for _, fields in raw for value in fields[3::2]]

    assert stored("org_a") == [entry("org_a", "a1"), entry("org_a", "a2")]
    assert stored("org_b") == [entry("org_b", "b1")]
    assert stored(None) == [entry(None, "none")]
    assert stored(quoted) == [entry(quoted, "q1"), entry(quoted, "q2")]
    store._client.set(store.keys["journal-seq:org"], "spoiled")
    assert heads() == [] and store.journal_read(100, "org_a") == []  # read as none, no error
    send(store, entry("org_b", "b-anew"))
    assert heads()[-1] == ("b-anew", "org_b", 1)
    store.journal_clear()
    send(store, entry("org_a", "a-after"))
    assert heads() == [("a-after", "org_a", 1)]


def test_an_entry_a_version_before_organization_numbers_sent_is_the_operators_alone(
    redis_server: RedisServer,
) -> None:
    """An entry of a key from before entries were numbered among their organization's (a
    sandbox's journal across a rolling upgrade) has no number a tenant could be shown: it is
    not listed to the tenant (a `sequence` of 0 would be an answer the spec does not
    describe: a 500 under --strict), and the operator still sees it."""
    operator = "operator-secret-for-tenants"
    older_id = "req_01KDVDNA00" + "A" * 16
    settings = Settings(
        state=redis_server.sandbox(), clock="virtual", seed=SEED, strict=True, admin_token=operator
    )
    deps = make_deps(settings)
    key_id = deps.sim.state.keys[FULL].api_key_id
    older = [[0], 0, "GET", "/v1/whoami", "", 200, older_id, key_id, "whoami", None, None, None]
    with TestClient(build_app(deps)) as client:
        send(deps.sim.shared, orjson.dumps([*older, 1]))
        assert client.get("/v1/whoami", headers=auth(FULL)).status_code == 200
        mine = client.get("/_mock/requests", headers=auth(FULL))
        assert mine.status_code == 200, mine.text
        assert [(i["sequence"], i["path"]) for i in mine.json()["items"]] == [(1, "/v1/whoami")]
        everyone = client.get("/_mock/requests", headers=auth(operator)).json()["items"]
        assert [i["requestId"] for i in everyone][1:] == [older_id]


def test_a_journal_the_version_before_kept_is_served_after_the_upgrade_and_a_rollback_works(
    store: RedisStore,
) -> None:
    """The version before kept every organization's entries in one stream (`journal-v2`,
    capped at 1,000 over all of them); this one keeps a stream an organization. Its entries
    are read with the new ones, numbered on from them, until a global reset clears them; a
    rollback to it finds its stream and counters as it left them (its scripts run, and see
    its own entries), and what it appends meanwhile is read once this version is back."""
    client = store._client
    old = {name: client.register_script(getattr(journal_v2, name)) for name in ("APPEND", "READ")}
    old_keys = [store.keys[k] for k in ("journal", "journal-seq")]
    old_keys += [f"{store.keys['journal']}:from-old", store.keys["journal-floor"]]
    old_keys.append(store.keys["journal-seq:org"])
    sent_by_old = itertools.count(1)

    def entry(org: str | None, name: str) -> bytes:
        fields = (0, 0, "GET", "/v1/whoami", "", 200, name, None, None, None, None, None, 1, 0)
        return _encode((*fields, org, 0))

    def old_append(*entries: bytes) -> None:
        old["APPEND"](keys=old_keys, args=[1000, next(sent_by_old), *entries])
        for _ in entries[1:]:
            next(sent_by_old)

    def read(org: str | None) -> list[tuple[int, str, int]]:
        found = [_decode(n, raw) for n, raw in store.journal_read(1000, org)]
        return [(e.sequence, e.requestId, e.orgSequence) for e in found if org in (None, e.org)]

    old_append(entry("org_a", "a1"), entry(None, "none1"))
    send(store, entry("org_a", "a2"), entry("org_b", "b1"))  # upgraded
    assert read("org_a") == [(1, "a1", 1), (3, "a2", 2)]
    assert [name for _, name, _ in read(None)] == ["a1", "none1", "a2", "b1"]
    old_append(entry("org_a", "a3"))  # rolled back: it appends and reads as it did
    assert [fields[-1] for _, fields in old["READ"](keys=old_keys[:1] * 2, args=[1000])[0]] == [
        entry("org_a", "a3"),
        entry(None, "none1"),
    ]
    send(store, entry("org_a", "a4"))  # upgraded again
    assert read("org_a") == [(1, "a1", 1), (3, "a2", 2), (5, "a3", 3), (6, "a4", 4)]
    assert [n for n, _, _ in read(None)] == [1, 2, 3, 4, 5, 6]
    client.delete(*old_keys[:2], old_keys[4])  # a global reset on the version before
    assert read("org_a") == [] and read(None) == []  # what the streams hold is from before it
    send(store, entry("org_a", "a-after"))
    assert read("org_a") == [(1, "a-after", 1)]
    assert client.xlen(store._stream(b"org_a")) == 1


def test_many_organizations_each_keep_their_own_and_the_operator_reads_the_newest_of_all(
    store: RedisStore,
) -> None:
    """Hostile: 300 organizations, 30 entries each, in round trips that mix them. Each keeps
    its own newest `capacity` (20) whatever the others sent; the operator's read is the
    sandbox's newest `capacity`, and Redis sends only the stream entries that hold one of
    those, not every organization's all (paged: READ_ALL)."""
    store.journal_capacity = 20

    def entry(org: int, n: int) -> bytes:
        fields = (0, 0, "GET", f"/{org}/{n}", "", 200, f"r{org}-{n}", None, None, None)
        return _encode((*fields, None, None, 1, 0, f"org_{org}", 0))

    for n in range(30):
        send(store, *(entry(org, n) for org in range(300)))
    for org in (0, 150, 299):
        found = [_decode(k, raw) for k, raw in store.journal_read(20, f"org_{org}")]
        assert [e.path for e in found] == [f"/{org}/{n}" for n in range(10, 30)]
        assert [e.orgSequence for e in found] == list(range(11, 31))
    newest = store.journal_read(20)
    assert [_decode(k, raw).path for k, raw in newest] == [f"/{o}/29" for o in range(280, 300)]
    assert [k for k, _ in newest] == list(range(300 * 30 - 19, 300 * 30 + 1))
    # what READ_ALL sent: the last round trip's stream entry of each of those 20
    sent = store._call(
        "journal-read", *store._read_all_args(list(map(b"org_%d".__mod__, range(300))), 20)
    )
    assert sum(len(stream) for stream in sent[2:]) == 20


def test_a_global_reset_deletes_the_streams_of_the_organizations_the_server_knew(
    redis_server: RedisServer,
) -> None:
    """A reset's script cannot find the streams by itself (every key it touches is declared):
    the worker names those of every organization it knew, and they go with the reset's
    commit, or with the clearing when no gate holds the reset. (One it did not name is read
    no more, and dropped by that organization's next entry.)"""
    operator = "operator-secret-for-tenants"
    globex_org = "org_8d1e5f3a-6c2b-4e7d-a9f0-1b3c5d7e9f02"
    settings = Settings(
        state=redis_server.sandbox(), clock="virtual", seed=SEED, admin_token=operator
    )
    deps = make_deps(settings)
    store = deps.sim.shared
    with TestClient(build_app(deps)) as client:
        for key in (FULL, GLOBEX):
            assert client.get("/v1/whoami", headers=auth(key)).status_code == 200
        assert client.get("/v1/whoami").status_code == 401
        assert client.get("/_mock/requests", headers=auth(operator)).json()["total"] == 3
        streams = [
            store.stream_of(ACME_ORG),
            store.stream_of(globex_org),
            store.keys["journal-org"],
        ]
        assert store._client.exists(*streams) == 3
        assert client.post("/_mock/reset", json={}, headers=auth(operator)).status_code == 200
        assert store._client.exists(*streams) == 0
        assert client.get("/v1/whoami", headers=auth(GLOBEX)).status_code == 200
        store.sweeping = [store.stream_of(globex_org)]
        store.journal_clear()  # a reset no gate holds
        assert store._client.exists(*streams) == 0


def test_an_organization_imported_after_a_reset_brings_back_no_stream_of_before_it(
    redis_server: RedisServer,
) -> None:
    """An organization only an import brought (no fixture has it) and that a later import
    took away keeps its stream (an import keeps the journal), and a global reset then cannot
    name it (the server knows it no more): its counter goes, and its stream is read no more.
    Imported again, it found that stream still in Redis, hidden, until its next request: the
    import's commit names the streams of the organizations it brings and drops those the
    journal does not count (they held an organization's worth of Redis for nothing)."""
    operator = "operator-secret-for-tenants"
    settings = Settings(
        state=redis_server.sandbox(), clock="virtual", seed=SEED, admin_token=operator
    )
    deps = make_deps(settings)
    store = deps.sim.shared
    admin = {**auth(operator), "content-type": "application/json"}
    imported_org, imported_key = "org_imported-only", "lp_test_importedx_Q1w2E3r4T5y6U7i8"
    with TestClient(build_app(deps)) as client:
        fixtures = client.get("/_mock/state", headers=admin).content
        state = orjson.loads(fixtures)
        [org] = [o for o in state["organizations"] if o["organization_id"] == ACME_ORG]
        [key] = [k for k in state["keys"] if k["key"] == FULL]
        state["organizations"].append({**org, "organization_id": imported_org})
        state["keys"].append(
            {**key, "key": imported_key, "api_key_id": "key_imported", "org_id": imported_org}
        )
        extended = orjson.dumps(state)

        def load(document: bytes) -> None:
            put = client.put("/_mock/state", content=document, headers=admin)
            assert put.status_code == 200, put.text

        load(extended)
        for key_ in (FULL, imported_key):
            assert client.get("/v1/whoami", headers=auth(key_)).status_code == 200
        assert client.get("/_mock/requests", headers=admin).json()["total"] == 2  # (sent)
        stream = store.stream_of(imported_org)
        assert store._client.exists(stream) == 1
        load(fixtures)
        assert client.post("/_mock/reset", json={}, headers=admin).status_code == 200
        assert store._client.exists(stream) == 1  # not named: the server knew it no more
        load(extended)
        assert store._client.exists(stream) == 0
        assert client.get("/_mock/requests", headers=auth(imported_key)).json()["total"] == 0
        # an organization the journal still counts keeps its stream through an import
        assert client.get("/v1/whoami", headers=auth(imported_key)).status_code == 200
        assert client.get("/_mock/requests", headers=admin).json()["total"] == 1
        load(extended)
        assert store._client.exists(stream) == 1
        read = client.get("/_mock/requests", headers=auth(imported_key)).json()
        assert [e["path"] for e in read["items"]] == ["/v1/whoami"]


def test_entries_in_a_row_go_to_their_own_organizations_streams_however_alike_their_heads(
    store: RedisStore,
) -> None:
    """The script finds an entry's organization by comparing its head with the one before's
    (`[[position,"org"]`, shared by the entries of a group) and matches its pattern only when
    they differ: an organization whose id starts with another's, the same organization at
    another position, one of no organization and one whose id JSON escapes, in a row, each
    still goes to its own stream and is numbered among its own."""

    def entry(position: int, org: str | None, name: str) -> bytes:
        fields = (0, 0, "GET", "/v1/whoami", "", 200, name, None, None, None, None, None, 1)
        return _encode((*fields, position, org, 0))

    quoted = 'org_a "quoted"'
    row = [
        entry(3, "org_a", "a1"),
        entry(3, "org_a", "a2"),
        entry(3, "org_ab", "ab1"),
        entry(3, "org_a", "a3"),
        entry(4, "org_a", "a4"),
        entry(4, None, "none"),
        entry(4, quoted, "q1"),
        entry(4, "org_a", "a5"),
        entry(4, "org_a", "a6"),
    ]
    send(store, *row)
    read = [_decode(n, raw) for n, raw in store.journal_read(100)]
    assert [(e.requestId, e.org, e.orgSequence) for e in read] == [
        ("a1", "org_a", 1),
        ("a2", "org_a", 2),
        ("ab1", "org_ab", 1),
        ("a3", "org_a", 3),
        ("a4", "org_a", 4),
        ("none", None, 0),
        ("q1", quoted, 1),
        ("a5", "org_a", 5),
        ("a6", "org_a", 6),
    ]

    def stored(org: str) -> list[bytes]:
        key = store._stream(counted(org).encode())
        raw = store._client.eval("return redis.call('XRANGE', KEYS[1], '-', '+')", 1, key)
        return [value for _, fields in raw for value in fields[3::2]]

    assert stored("org_a") == [row[0], row[1], row[3], row[4], row[7], row[8]]
    assert stored("org_ab") == [row[2]]
    assert stored(quoted) == [row[6]]


def test_the_entries_of_reads_answered_one_after_another_reach_redis_as_one_stream_entry(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Five reads, each answered after its own catch-up: their entries wait in the worker and
    go together (the journal's flush, here the read of the journal), one append to the
    organization's stream, not one a catch-up (each carried the entry of the read before
    it: a stream entry, an XADD and its trim's XRANGE in Redis for every catch-up)."""
    monkeypatch.setattr(redis_journal, "FLUSH_S", 3600.0)  # no flush on a timer of its own
    worker = Worker(redis_server.sandbox()).listening()
    listing = ("GET", "/v1/projects", auth(FULL), None)
    for _ in range(5):
        [(status, _)] = worker.together(listing)
        assert status == 200
    assert len(worker.store.outbox) == 5  # every read's entry still waits in the worker
    [(status, page)] = worker.together(("GET", "/_mock/requests", {}, None))
    assert status == 200
    assert [i["path"] for i in page["items"]] == ["/v1/projects"] * 5
    stream = worker.store._stream(ACME_ORG.encode())
    assert worker.store._client.xlen(stream) == 1
    worker.close()


def test_a_reads_catch_up_takes_along_every_waiting_entry_once_one_is_not_a_reads_answer(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 503 a failed commit answered (or an entry a failed round trip brought back) goes with
    the worker's next round trip, a read's catch-up too, and the reads' entries waiting with
    it: only reads' answers wait for the flush."""
    monkeypatch.setattr(redis_journal, "FLUSH_S", 3600.0)
    worker = Worker(redis_server.sandbox()).listening()
    listing = ("GET", "/v1/projects", auth(FULL), None)
    worker.together(listing)
    worker.together(listing)
    assert len(worker.store.outbox) == 2  # two reads' entries wait
    worker.store.outbox.add(b"a 503's entry")  # (pressing, as `settle` adds a failed one's)
    worker.together(listing)
    assert len(worker.store.outbox) == 1  # the last read's own: the catch-up took the rest
    assert worker.store.journal_read(10)[-1] == (3, b"a 503's entry")
    worker.close()
