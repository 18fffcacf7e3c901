"""The journal: bounded by entries and by bytes, bodies kept only when asked, keys never shown."""

from __future__ import annotations

from typing import Any

from layers_mock_server.core.journal import (
    DEFAULT_MAX_BYTES,
    ENTRY_OVERHEAD,
    MAX_BODY_BYTES,
    Journal,
    redact,
)

KEY = "lp_test_acmefull_Zx81Qm4TnR7vKp2W"
REQUEST_HEADERS = [(b"authorization", f"Bearer {KEY}".encode()), (b"host", b"x")]


def add(
    journal: Journal, path: str = "/v1/whoami", body: bytes = b"", answer: bytes = b"{}"
) -> None:
    journal.add(
        0,
        "POST",
        path,
        "",
        200,
        "req_1",
        "key_1",
        "whoami",
        None,
        (REQUEST_HEADERS, body, [(b"content-type", b"application/json")], answer),
    )


def newest(journal: Journal) -> dict[str, Any]:
    return journal.query(limit=1)[0][0]


def test_bodies_are_off_by_default_and_nothing_extra_is_kept() -> None:
    journal = Journal()
    add(journal, body=b'{"gender": "female"}')
    entry = newest(journal)
    assert "request" not in entry and "response" not in entry
    assert journal.bytes == ENTRY_OVERHEAD + len("/v1/whoami")


def test_bodies_and_headers_are_kept_when_asked_with_the_key_secret_masked() -> None:
    journal = Journal(bodies=True)
    add(journal, body=f'{{"note": "{KEY}"}}'.encode(), answer=b'{"ok": true}')
    entry = newest(journal)
    assert entry["request"]["headers"]["authorization"] == "Bearer lp_test_acmefull_***"
    assert entry["request"]["body"] == '{"note": "lp_test_acmefull_***"}'
    assert entry["response"] == {
        "headers": {"content-type": "application/json"},
        "body": '{"ok": true}',
        "truncated": False,
    }
    assert KEY not in repr(journal.query())


def test_a_token_that_is_not_a_layers_key_is_masked_whole() -> None:
    journal = Journal(bodies=True)
    journal.add(
        0,
        "GET",
        "/v1/whoami",
        "",
        401,
        "r",
        None,
        "whoami",
        None,
        ([(b"authorization", b"Bearer hunter2"), (b"x-api-key", b"sekrit")], b"", [], b""),
    )
    headers = newest(journal)["request"]["headers"]
    assert headers == {"authorization": "Bearer ***", "x-api-key": "***"}


def test_a_long_body_is_cut_and_marked() -> None:
    journal = Journal(bodies=True)
    add(journal, body=b"x" * (MAX_BODY_BYTES + 10))
    request = newest(journal)["request"]
    assert len(request["body"]) == MAX_BODY_BYTES and request["truncated"] is True


def test_the_byte_bound_drops_the_oldest_entries() -> None:
    journal = Journal(bodies=True, max_bytes=20_000)
    for i in range(10):
        add(journal, path=f"/v1/jobs/{i}", body=b"y" * 4_000)
    paths = [e["path"] for e in journal.query(limit=100)[0]]
    assert paths == ["/v1/jobs/9", "/v1/jobs/8", "/v1/jobs/7", "/v1/jobs/6"]
    assert journal.bytes <= 20_000


def test_a_thousand_large_exchanges_stay_within_the_documented_bound() -> None:
    journal = Journal(bodies=True)
    for _ in range(1_000):
        add(journal, body=b"z" * MAX_BODY_BYTES, answer=b"w" * MAX_BODY_BYTES)
    assert journal.bytes <= DEFAULT_MAX_BYTES
    assert 0 < len(journal) < 1_000  # bytes, not the entry count, is what bounded it


def test_dropped_connection_has_no_response() -> None:
    journal = Journal(bodies=True)
    journal.add(
        0,
        "GET",
        "/v1/whoami",
        "",
        0,
        "r",
        "k",
        "whoami",
        "fault=drop",
        (REQUEST_HEADERS, b"", None, None),
    )
    assert newest(journal)["response"] is None


def test_redact_keeps_the_key_id_and_hides_only_secrets() -> None:
    assert redact(f"a {KEY} b lp_live_x_y") == "a lp_test_acmefull_*** b lp_live_x_***"
    assert redact("prj_254a4ce1 inf_x job_01") == "prj_254a4ce1 inf_x job_01"


def test_bodies_that_are_not_utf8_and_keys_in_any_header_are_shown_safely() -> None:
    journal = Journal(bodies=True)
    journal.add(
        0, "POST", "/v1/whoami", "", 422, "r", "k", "whoami", None,
        ([(b"x-note", f"sent with {KEY}".encode()), (b"x-bin", b"\xff")], b"\xff\xfe{", [], b""),
    )  # fmt: skip
    request = newest(journal)["request"]
    assert request["body"] == "\ufffd\ufffd{"
    assert request["headers"] == {"x-note": "sent with lp_test_acmefull_***", "x-bin": "\xff"}


def test_query_filters_counts_and_pages_over_both_entry_kinds() -> None:
    """query filters the stored tuples and builds only the page: the answers must not change."""
    journal = Journal()
    for i in range(60):
        journal.add(
            i,
            "GET" if i % 2 else "POST",
            f"/v1/jobs/job_{i % 7}",
            "",
            200 if i % 3 else 404,
            f"req_{i}",
            "key_1",
            "getJob",
            None,
            None,
        )
        if i % 10 == 0:  # record() keeps JournalEntry objects, add() tuples
            journal.record(
                at_ms=i,
                method="DELETE",
                path="/v1/jobs/job_0",
                query="",
                status=404,
                requestId=f"rec_{i}",
                apiKeyId=None,
                operationId=None,
                injected=None,
            )
    page, total = journal.query(method="get", status=404, limit=3)
    every, _ = journal.query(limit=1000)
    expected = [e for e in every if e["method"] == "GET" and e["status"] == 404]
    assert total == len(expected) and page == expected[:3]
    deletes, total = journal.query(method="DELETE", path="/v1/jobs/job_0", limit=100)
    assert total == 6 and [d["requestId"] for d in deletes][:2] == ["rec_50", "rec_40"]
    assert journal.query(path="/v1/jobs/job_6", limit=0) == (
        [],
        len([e for e in every if e["path"] == "/v1/jobs/job_6"]),
    )
    assert [e["sequence"] for e in every] == sorted((e["sequence"] for e in every), reverse=True)


def add_for(journal: Journal, org: str | None, path: str, body: bytes = b"") -> None:
    """One request of an organization's key (None: a request with no known key)."""
    journal.add(
        0, "POST", path, "", 200, f"req_{path}", None if org is None else f"key_{org}", "op",
        None, (REQUEST_HEADERS, body, [], b"{}"), None, org,
    )  # fmt: skip


def paths_of(journal: Journal, org: str | None) -> list[str]:
    """What the organization's tenant reads (None: the operator), newest first."""
    items = journal.query(limit=10_000, org=org, local=org is not None)[0]
    return [e["path"] for e in items]


def test_an_organizations_oldest_entries_survive_another_organizations_traffic() -> None:
    """Issue 12 point 4: each organization keeps its own newest entries; only its own
    traffic pushes its oldest out (the bound was the server's: a busy tenant emptied a quiet
    one's journal)."""
    journal = Journal(capacity=5)
    for n in range(3):
        add_for(journal, "org_quiet", f"/quiet/{n}")
    for n in range(2_000):
        add_for(journal, "org_busy", f"/busy/{n}")
        add_for(journal, None, f"/nokey/{n}")
    assert paths_of(journal, "org_quiet") == ["/quiet/2", "/quiet/1", "/quiet/0"]
    assert paths_of(journal, "org_busy") == [f"/busy/{n}" for n in range(1_999, 1_994, -1)]
    # the operator reads the union, newest first, within one share's bound
    assert paths_of(journal, None) == [
        "/nokey/1999", "/busy/1999", "/nokey/1998", "/busy/1998", "/nokey/1997",
    ]  # fmt: skip
    # its own traffic does push it out
    for n in range(3, 8):
        add_for(journal, "org_quiet", f"/quiet/{n}")
    assert paths_of(journal, "org_quiet") == [f"/quiet/{n}" for n in range(7, 2, -1)]


def test_an_organizations_byte_share_is_its_own() -> None:
    journal = Journal(bodies=True, max_bytes=20_000)
    add_for(journal, "org_quiet", "/quiet/0", b"q" * 4_000)
    for n in range(50):
        add_for(journal, "org_busy", f"/busy/{n}", b"b" * MAX_BODY_BYTES)
    assert paths_of(journal, "org_quiet") == ["/quiet/0"]
    assert paths_of(journal, "org_busy") == ["/busy/49"]  # one such entry fills a share
    for n in range(1, 10):
        add_for(journal, "org_quiet", f"/quiet/{n}", b"q" * 4_000)
    assert paths_of(journal, "org_quiet") == [f"/quiet/{n}" for n in range(9, 5, -1)]
    assert journal.bytes <= 2 * 20_000


def test_many_organizations_stay_within_the_server_wide_bound() -> None:
    """Hostile: organizations without number, each filling its share. The server keeps at
    most `total_bytes`; past it the fullest shares give up their oldest first, so a quiet
    organization keeps its entries while the greedy ones are cut."""
    journal = Journal(bodies=True, max_bytes=40_000, total_bytes=200_000)
    add_for(journal, "org_quiet", "/quiet/0")
    for n in range(400):
        for org in range(20):
            add_for(journal, f"org_{org}", f"/{org}/{n}", b"x" * 2_000)
    assert journal.bytes <= 200_000
    assert paths_of(journal, "org_quiet") == ["/quiet/0"]
    assert all(paths_of(journal, f"org_{org}")[0] == f"/{org}/399" for org in range(20))
    assert len(journal) == sum(len(paths_of(journal, f"org_{o}")) for o in range(20)) + 1


def test_a_global_clear_empties_every_share() -> None:
    journal = Journal()
    add_for(journal, "org_a", "/a")
    add_for(journal, None, "/none")
    journal.clear()
    assert (len(journal), journal.bytes, journal.last()) == (0, 0, None)
    assert paths_of(journal, None) == [] and paths_of(journal, "org_a") == []


def test_a_quiet_organization_keeps_its_newest_entry_when_the_total_is_cut() -> None:
    """Hostile: more organizations than the server-wide total holds each leave one large entry
    (a hosted sandbox's 10,000 tenants, bodies on). The cut takes the busy ones' oldest entries
    and never an organization's newest: every quiet tenant still reads its only request (it
    read an empty journal: the cut brought every share to a level below one entry)."""
    journal = Journal(bodies=True, max_bytes=40_000, total_bytes=100_000)
    for org in range(40):  # 40 entries of ~16 KiB: 6 times the total
        add_for(journal, f"org_{org}", f"/{org}/0", b"x" * MAX_BODY_BYTES)
    assert all(paths_of(journal, f"org_{org}") == [f"/{org}/0"] for org in range(40))
    # a busy organization is held to its newest entry too, not beyond
    for n in range(1, 30):
        add_for(journal, "org_busy", f"/busy/{n}", b"b" * MAX_BODY_BYTES)
    assert paths_of(journal, "org_busy")[0] == "/busy/29"
    assert all(paths_of(journal, f"org_{org}") == [f"/{org}/0"] for org in range(40))
    # past the newest entries, the bound holds: at most one slack's worth more
    newest = 41 * (MAX_BODY_BYTES + 2_000)
    assert journal.bytes <= newest + 100_000 // 8


def test_the_total_cut_spares_each_share_its_newest_entry_and_costs_no_sort_a_request() -> None:
    """Where the newest entries alone fill the total, the cut does not run again at every
    entry (each run sorts every share): it runs once the entries it could cut reach the
    slack."""

    class Counted(Journal):
        runs = 0

        def _shed(self) -> None:
            Counted.runs += 1
            super()._shed()

    journal = Counted(bodies=True, max_bytes=40_000, total_bytes=100_000)
    for org in range(40):
        add_for(journal, f"org_{org}", f"/{org}/0", b"x" * MAX_BODY_BYTES)
    Counted.runs = 0
    for n in range(200):  # more tenants, one request each: nothing the cut could take
        add_for(journal, f"org_new_{n}", f"/new/{n}")
    assert Counted.runs == 0
    assert all(paths_of(journal, f"org_{org}") == [f"/{org}/0"] for org in range(40))
