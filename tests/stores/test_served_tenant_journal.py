"""A tenant's journal numbers are its own (issue 12 point 4), on every store: an organization
reading `/_mock/requests` with its own key sees `sequence` 1..n over its own requests, whatever
other organizations sent in between, and gets marks 1, 2, 3 from its own resets, whatever
other organizations reset. Before, both were server-wide: the gaps in a tenant's sequences
counted the other tenants' requests, and its marks jumped by their resets (on Redis, by every
commit of the sandbox). The operator (admin token) keeps the server-wide numbers."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from every_store import Servers, tenanted, tenanted_bodies  # noqa: F401 - fixtures
from support import ACME_ORG, FULL, GLOBEX, GLOBEX_ORG, GLOBEX_PROJECT, PROJECT


def whoami(served: Servers, key: str) -> str:
    status, headers, body = served("GET", "/v1/whoami", key)
    assert status == 200, body
    return headers["x-request-id"]


def listed(served: Servers, key: str | None, query: str = "") -> list[tuple[int, str]]:
    """(sequence, request id) of the journal's entries as `key` (None: the operator) sees them,
    newest first."""
    status, _, body = served("GET", "/_mock/requests", key, None, query)
    assert status == 200, body
    assert body["total"] == len(body["items"]), body
    return [(e["sequence"], e["requestId"]) for e in body["items"]]


def reset(served: Servers, key: str | None, body: Any = None) -> int:
    status, _, answer = served("POST", "/_mock/reset", key, {} if body is None else body)
    assert status == 200, answer
    mark: int = answer["mark"]
    return mark


def refused_mark(served: Servers, key: str | None, mark: int) -> list[str]:
    status, _, body = served("GET", "/_mock/requests", key, None, f"after={mark}")
    assert status == 422, body
    said: list[str] = body["error"]["details"]["fieldErrors"]["after"]
    return said


def test_a_tenants_sequences_count_its_own_requests_without_gaps(
    tenanted: Servers,  # noqa: F811
) -> None:
    order = [FULL, GLOBEX, GLOBEX, FULL, GLOBEX, FULL, GLOBEX]
    ids = [(key, whoami(tenanted, key)) for key in order]
    acme = [request_id for key, request_id in ids if key == FULL]
    globex = [request_id for key, request_id in ids if key == GLOBEX]
    assert listed(tenanted, FULL) == [(3, acme[2]), (2, acme[1]), (1, acme[0])]
    assert listed(tenanted, GLOBEX) == [
        (4, globex[3]),
        (3, globex[2]),
        (2, globex[1]),
        (1, globex[0]),
    ]
    # the operator's numbers are the server's, as before
    assert listed(tenanted, None) == [
        (7 - n, request_id) for n, (_, request_id) in enumerate(reversed(ids))
    ]
    # an organization's reset keeps the journal, and its numbers: it hands out a mark instead
    reset(tenanted, FULL)
    later = whoami(tenanted, FULL)
    assert listed(tenanted, FULL)[0] == (4, later)
    # a global reset clears the journal: everyone's numbers start again
    reset(tenanted, None)
    globex_first, acme_first = whoami(tenanted, GLOBEX), whoami(tenanted, FULL)
    assert listed(tenanted, FULL) == [(1, acme_first)]
    assert listed(tenanted, GLOBEX) == [(1, globex_first)]
    assert listed(tenanted, None) == [(2, acme_first), (1, globex_first)]


def test_a_tenants_marks_count_its_own_resets(tenanted: Servers) -> None:  # noqa: F811
    assert refused_mark(tenanted, FULL, 1) == [
        "No reset answered mark 1: the latest this server handed out is 0."
    ]
    assert reset(tenanted, FULL) == 1
    whoami(tenanted, GLOBEX)
    assert [reset(tenanted, GLOBEX), reset(tenanted, GLOBEX)] == [1, 2]
    between = whoami(tenanted, FULL)
    whoami(tenanted, GLOBEX)
    assert reset(tenanted, FULL) == 2
    assert reset(tenanted, GLOBEX) == 3
    since = whoami(tenanted, FULL)
    assert [r for _, r in listed(tenanted, FULL, "after=2")] == [since]
    assert [r for _, r in listed(tenanted, FULL, "after=1")] == [since, between]
    assert listed(tenanted, GLOBEX, "after=3") == []
    # the 422 names the tenant's own latest mark, not the server's
    assert refused_mark(tenanted, FULL, 3) == [
        "No reset answered mark 3: the latest this server handed out is 2."
    ]
    assert refused_mark(tenanted, GLOBEX, 4) == [
        "No reset answered mark 4: the latest this server handed out is 3."
    ]
    # the operator's marks are the server's, as before: its reset of Acme answers one, and
    # `after` it lists every organization's requests from then on
    operators = reset(tenanted, None, {"organizationId": ACME_ORG})
    globex_since = whoami(tenanted, GLOBEX)
    acme_since = whoami(tenanted, FULL)
    assert [r for _, r in listed(tenanted, None, f"after={operators}")] == [
        acme_since,
        globex_since,
    ]
    assert refused_mark(tenanted, None, operators + 1) == [
        f"No reset answered mark {operators + 1}: the latest this server handed out is {operators}."
    ]
    # only a tenant's own resets hand out its marks: the operator's reset of Acme answered
    # the operator's
    assert reset(tenanted, FULL) == 3


def test_a_tenants_marks_outlive_a_global_reset(tenanted: Servers) -> None:  # noqa: F811
    """The operator's global reset clears the journal; a tenant's mark from before it still
    means "after my reset" (every request since), and its next reset goes on from there."""
    assert reset(tenanted, FULL) == 1
    whoami(tenanted, FULL)
    reset(tenanted, None)
    since = whoami(tenanted, FULL)
    assert [r for _, r in listed(tenanted, FULL, "after=1")] == [since]
    assert reset(tenanted, FULL) == 2


def test_a_tenants_oldest_entries_survive_another_tenants_burst(tenanted: Servers) -> None:  # noqa: F811
    """The journal's bound (1,000 entries) is each organization's own: another team's
    pipeline sending 2,000 requests leaves a tenant's first requests where they were (it
    pushed them out: the bound was the server's). Requests with no key keep a share of
    their own, which the operator reads."""
    first = [whoami(tenanted, FULL) for _ in range(3)]
    burst = [whoami(tenanted, GLOBEX) for _ in range(2_000)]
    status, _, _ = tenanted("GET", "/v1/whoami", "lp_test_nosuchkey_0000000000000000")
    assert status == 401
    assert listed(tenanted, FULL) == [(3, first[2]), (2, first[1]), (1, first[0])]
    globex = listed(tenanted, GLOBEX, "limit=1000")
    assert globex[0] == (2_000, burst[-1]) and globex[-1] == (1_001, burst[1_000])
    assert len(globex) == 1_000
    # the operator reads the union, newest first: the newest 1,000 of every organization's
    status, _, body = tenanted("GET", "/_mock/requests", None, None, "limit=1000")
    assert status == 200 and body["total"] == 1_000
    items = body["items"]
    assert items[0]["status"] == 401 and items[0]["apiKeyId"] is None
    assert [e["requestId"] for e in items[1:]] == list(reversed(burst))[:999]
    # the tenant's own traffic still pushes its oldest out
    more = [whoami(tenanted, FULL) for _ in range(1_000)]
    mine = listed(tenanted, FULL, "limit=1000")
    assert mine[0] == (1_003, more[-1]) and mine[-1] == (4, more[0])


def test_the_operator_reads_one_organizations_share_that_fell_out_of_the_union(
    tenanted: Servers,  # noqa: F811
) -> None:
    """The operator's union holds the newest 1,000 of every organization's: after another
    organization's burst a tenant's entries are still kept, but the operator could not find
    them (`?path=` filters that union: 0 where the tenant lists 3), nor could the testing
    API's `connect(key=)` on an open server, which reads that union. `organizationId=` reads
    one organization's own share, numbered as the operator numbers everything; a tenant may
    name only its own (another, or an unknown one, is 404 as on `/_mock/jobs`)."""
    first = [whoami(tenanted, FULL) for _ in range(3)]
    burst = [whoami(tenanted, GLOBEX) for _ in range(1_001)]
    operator = listed(tenanted, None, "limit=1000")
    assert not {request_id for _, request_id in operator} & set(first)
    acme = listed(tenanted, None, f"organizationId={ACME_ORG}&path=/v1/whoami")
    assert [request_id for _, request_id in acme] == list(reversed(first))
    assert [sequence for sequence, _ in acme] == [3, 2, 1]  # the server's numbers
    named = f"organizationId={GLOBEX_ORG.removeprefix('org_')}&limit=1"  # the bare id too
    status, _, body = tenanted("GET", "/_mock/requests", None, None, named)
    assert status == 200 and body["total"] == 1_000, body  # its own share's bound
    assert [(e["sequence"], e["requestId"]) for e in body["items"]] == [(1_004, burst[-1])]
    status, _, body = tenanted("GET", "/_mock/requests", None, None, "organizationId=org_nosuch")
    assert status == 404, body
    # a tenant names its own organization, or gets a 404: it learns nothing of another
    assert listed(tenanted, FULL, f"organizationId={ACME_ORG}") == [
        (3 - n, request_id) for n, request_id in enumerate(reversed(first))
    ]
    for named in (GLOBEX_ORG, "org_nosuch"):
        status, _, body = tenanted("GET", "/_mock/requests", FULL, None, f"organizationId={named}")
        assert status == 404 and body["error"]["message"] == "Organization not found.", body


def test_an_organization_whose_id_json_escapes_reads_its_own_journal(
    tenanted: Servers,  # noqa: F811
) -> None:
    """Hostile: an imported organization whose id has a quote and a backslash (JSON escapes
    them; Redis counts such an organization by its id in hex). On Redis its tenant read an
    empty journal, and so did the operator naming it: the entries read back carried the hex
    form as their organization, which named no share."""
    status, _, document = tenanted("GET", "/_mock/state")
    assert status == 200, document
    odd, key = 'org_quote"back\\slash~', "lp_test_oddone_Secret0000000000"
    document["organizations"].append(
        {**document["organizations"][0], "organization_id": odd, "name": "Odd"}
    )
    document["keys"].append(
        {**document["keys"][0], "key": key, "api_key_id": "key_oddone", "org_id": odd}
    )
    status, _, body = tenanted("PUT", "/_mock/state", None, document)
    assert status == 200, body
    sent = [whoami(tenanted, key) for _ in range(2)]
    assert listed(tenanted, key) == [(2, sent[1]), (1, sent[0])]
    named = [request_id for _, request_id in listed(tenanted, None, f"organizationId={quote(odd)}")]
    assert named == list(reversed(sent))


def test_a_tenants_byte_share_is_its_own_with_bodies_kept(
    tenanted_bodies: Servers,  # noqa: F811
) -> None:
    """Hostile: another organization sends bodies of 20 KB (each kept cut at 16 KiB) until
    its 4 MiB are full many times over; a tenant's small entries stay. Its own large bodies
    do push its oldest out, by bytes, long before 1,000 entries."""
    served = tenanted_bodies
    first = [whoami(served, FULL) for _ in range(2)]
    big = {"name": "x" * 20_000}
    for _ in range(300):
        status, _, _ = served("POST", f"/v1/projects/{GLOBEX_PROJECT}/influencers", GLOBEX, big)
        assert status == 422
    assert listed(served, FULL) == [(2, first[1]), (1, first[0])]
    status, _, body = served("GET", "/_mock/requests", GLOBEX, None, "limit=1000")
    assert status == 200
    kept = len(body["items"])
    assert 200 < kept < 300  # ~16.4 KiB an entry within 4 MiB
    assert body["items"][0]["request"]["truncated"] is True
    for _ in range(300):
        served("POST", f"/v1/projects/{PROJECT}/influencers", FULL, big)
    mine = listed(served, FULL, "limit=1000")
    assert mine[0][0] == 302 and len(mine) == kept  # its own bytes pushed its first out
