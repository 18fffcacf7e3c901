"""The dashboard's HTML routes without a browser: access, escaping, assets, the root page."""

from __future__ import annotations

import html
import json
import re

import pytest
from support import FULL, GLOBEX, GLOBEX_PROJECT, KILLED, Mock, auth, make_mock

from layers_mock_server.cli import banner
from layers_mock_server.core.errors import ApiError
from layers_mock_server.core.journal import Journal
from layers_mock_server.http.access import OPEN, Principal
from layers_mock_server.http.strict import ContractViolation
from layers_mock_server.settings import Settings
from layers_mock_server.spec import control_spec, partner_spec
from layers_mock_server.ui.assets import SCRIPT, STYLESHEET, asset, asset_cache_size, stylesheet
from layers_mock_server.ui.pages import PUBLIC, UI_HANDLERS, Page, UiRequest, journal_entry
from layers_mock_server.ui.render import render
from layers_mock_server.ui.views import (
    CREATE_OPERATION,
    POLL_OPERATION,
    page_context,
    request_context,
)

HOSTILE_PROJECT = "</option><script>x()</script>"  # names are at most 30 characters
HOSTILE_INFLUENCER = '"><img src=x onerror=a()>'


def test_root_links_a_browser_to_the_dashboard_and_a_script_gets_json(mock: Mock) -> None:
    page = mock.client.get("/", headers={"Accept": "text/html,application/xhtml+xml"})
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert 'href="/_mock/ui"' in page.text
    assert mock.client.get("/").json()["dashboard"] == "/_mock/ui"


def test_every_link_the_root_advertises_answers(mock: Mock) -> None:
    """GET / named `/_mock/` and `/v1/`, which are 404s."""
    links = mock.client.get("/").json()
    del links["service"]
    for name, url in links.items():
        answer = mock.client.get(url, headers=auth())
        assert answer.status_code == 200, (name, url, answer.status_code)


def test_the_page_shows_every_panel(mock: Mock) -> None:
    job = mock.create(json={}).json()
    page = mock.client.get("/_mock/ui")
    assert page.status_code == 200 and page.text.startswith("<!doctype html>")
    for landmark in ("jobs-panel", "journal-panel", "clock-panel", "rules-panel", "fixtures-panel"):
        assert f'id="{landmark}"' in page.text
    assert f'id="job-{job["jobId"]}"' in page.text
    assert 'id="req-1"' in page.text  # the create, in the journal
    assert "lp_test_globexfull_M4nB7vC1xZ9lK6jH" in page.text  # a ready-to-paste curl per key


def test_every_kind_of_rule_is_shown(mock: Mock) -> None:
    rules = [
        {"match": {"operationId": "getJob"}, "fault": "503", "count": 2},
        {"match": {}, "latencyMs": 0, "probability": 0.5},
        {"match": {"projectId": "prj_x"}, "outcome": "failed", "stage": "training"},
        {
            "match": {"method": "POST", "path": "/v1/**"},
            "progression": "poll",
            "outcome": "canceled",
        },
    ]
    for rule in rules:
        assert mock.client.post("/_mock/rules", json=rule).status_code == 201
    text = mock.client.get("/_mock/ui/live").text
    for shown in (
        "fault 503",
        "2 left",
        "latency 0 ms",
        "p=0.5",
        "outcome failed in training",
        "progression poll",
        "outcome canceled",
        "every request",
        "path=/v1/**",
    ):
        assert shown in text


def test_a_tenants_rule_says_whose_requests_it_steers(mock: Mock) -> None:
    """`organizationId=` means the organization acted in on the operator's rule and the
    sender on a tenant's (a parent's key in its child): the list tells the two apart."""
    mock.deps.admin_token = "s3cret"
    admin = {"Authorization": "Bearer s3cret"}
    made = mock.client.post(
        "/_mock/rules", headers=auth(GLOBEX), json={"match": {}, "fault": "503"}
    )
    assert made.status_code == 201
    operator = mock.client.post(
        "/_mock/rules", headers=admin, json={"match": {"operationId": "getJob"}, "fault": "500"}
    )
    assert operator.status_code == 201
    text = mock.client.get("/_mock/ui/live?token=s3cret").text
    tenant_item, operator_item = text.split('<li data-rule="')[1:3]
    assert "the requests its own keys send" in tenant_item
    assert "the requests its own keys send" not in operator_item


def test_pages_are_locked_down_by_their_headers(mock: Mock) -> None:
    page = mock.client.get("/_mock/ui")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"  # it shows full keys
    assert "<script>" not in page.text and "style=" not in page.text  # nothing inline


def test_hostile_names_are_text_everywhere(mock: Mock) -> None:
    created = mock.client.post(
        "/v1/projects", headers=auth(FULL), json={"name": HOSTILE_PROJECT, "timezone": "UTC"}
    ).json()
    job = mock.create(project=created["id"], json={}).json()
    renamed = mock.client.patch(
        f"/v1/influencers/{job['influencerId']}", headers=auth(), json={"name": HOSTILE_INFLUENCER}
    )
    assert renamed.status_code == 200
    paths = ("/_mock/ui", "/_mock/ui/live", f"/_mock/ui?projectId={created['id']}")
    for path in (*paths, f"/_mock/ui/jobs/{job['jobId']}"):
        text = mock.client.get(path).text
        assert "<script>x()" not in text and "<img src=x" not in text, path
        assert "&lt;img src=x onerror=a()&gt;" in text, path
    assert "&lt;/option&gt;&lt;script&gt;x()&lt;/script&gt;" in mock.client.get("/_mock/ui").text


def test_a_hostile_path_and_query_in_the_journal_are_text(mock: Mock) -> None:
    mock.client.get("/v1/jobs/%3Cimg%20src=x%20onerror=a()%3E?q=%3Cscript%3Ex()", headers=auth())
    for path in ("/_mock/ui/live", "/_mock/ui/requests/1"):
        text = mock.client.get(path).text
        assert "<img src=x" not in text and "&lt;img src=x onerror=a()&gt;" in text, path


def test_journal_detail_carries_a_curl_without_the_key(mock: Mock) -> None:
    mock.create(json={"gender": "female"})
    detail = mock.client.get("/_mock/ui/requests/1").text
    assert FULL not in detail
    assert "Authorization: Bearer ${LAYERS_API_KEY}" in detail
    assert "/v1/projects/prj_254a4ce1-f4ca-42b1-9e36-17ca45ef3d39/influencers" in detail


def test_a_hostile_host_header_does_not_reach_the_curl(mock: Mock) -> None:
    mock.client.get("/v1/whoami", headers=auth())
    hostile = {"Host": "x'; rm -rf ~; echo '"}
    refused = mock.client.get("/_mock/ui/requests/1", headers=hostile)
    assert refused.status_code == 403 and "rm -rf" not in refused.text  # open mode: not loopback
    mock.deps.admin_token = "s3cret"  # with a token the Host is not checked: still never echoed
    detail = mock.client.get("/_mock/ui/requests/1?token=s3cret", headers=hostile).text
    assert "rm -rf" not in detail
    curl = re.search(r'id="detail-curl">([^<]*)<', detail)
    assert curl is not None and "http://testserver:80/v1/whoami" in curl.group(1)  # the socket's


def test_assets_ship_in_the_package_and_are_cached_by_version(mock: Mock) -> None:
    for name, media in ((STYLESHEET, "text/css"), (SCRIPT, "text/javascript")):
        found = asset(name)
        assert found is not None
        fresh = mock.client.get(found.url)
        assert fresh.headers["content-type"] == media + "; charset=utf-8"
        assert fresh.content == found.body
        assert "immutable" in fresh.headers["cache-control"]
        stale = mock.client.get(f"/_mock/ui/assets/{name}?v=old")
        assert stale.headers["cache-control"] == "no-cache"
    assert ":root" in stylesheet()  # the look the conformance report shares


def test_unknown_asset_names_are_404_and_never_grow_memory(mock: Mock) -> None:
    """A public route keyed a cache by whatever name it was asked for: one entry per request."""
    for i in range(300):
        missing = mock.client.get(f"/_mock/ui/assets/probe-{i}.css")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "NOT_FOUND"
    for name in ("../pages.py", "layers.css.bak", "LAYERS.CSS", "__init__.py"):
        assert asset(name) is None
    assert asset_cache_size() <= 2  # only the known files, however many names were asked for


def test_the_page_links_only_to_itself(mock: Mock) -> None:
    page = mock.client.get("/_mock/ui").text
    external = re.findall(r'(?:src|href)="(?!/|#|data:)([^"]+)"', page)
    assert external == []  # no CDN, no font service: it works offline


def test_admin_token_in_the_page_url_or_header(mock: Mock) -> None:
    mock.deps.admin_token = "s3cret"
    assert mock.client.get("/_mock/ui").status_code == 401
    assert mock.client.get("/_mock/ui?token=wrong").status_code == 401
    assert mock.client.get("/_mock/ui?token=").status_code == 401
    page = mock.client.get("/_mock/ui?token=s3cret")
    assert page.status_code == 200
    assert 'name="token" value="s3cret"' in page.text  # the filter form keeps it
    live = mock.client.get("/_mock/ui/live", headers={"Authorization": "Bearer s3cret"})
    assert live.status_code == 200
    # what carries no state stays open: a stylesheet link cannot send a header
    assert mock.client.get("/_mock/ui/assets/layers.css").status_code == 200
    assert mock.client.get("/").status_code == 200


def test_a_tenant_key_in_the_page_url_opens_its_own_organizations_page(mock: Mock) -> None:
    """A tenant cannot add a header to a link either: its key in `?token=` opens the page
    narrowed to its organization, with the clock controls on its organization's routes."""
    mock.deps.admin_token = "s3cret"
    mock.create(json={})
    page = mock.client.get(f"/_mock/ui?token={GLOBEX}")
    assert page.status_code == 200
    assert 'data-clock="/_mock/organizations/org_8d1e5f3a-6c2b-4e7d-a9f0-1b3c5d7e9f02/clock"' in (
        page.text
    )
    assert "Reset this organization…" in page.text and "Reset everything…" not in page.text
    assert "Acme" not in page.text  # Acme's job, project and fixtures are not Globex's
    assert mock.client.get(f"/_mock/ui?token={KILLED}").status_code == 401
    assert mock.client.get("/_mock/ui?token=lp_test_nobody").status_code == 401
    operator = mock.client.get("/_mock/ui?token=s3cret").text
    assert 'data-clock="/_mock/clock"' in operator and "Reset everything…" in operator


@pytest.mark.parametrize("path", ["/_mock/ui", "/_mock/ui/live"])
def test_a_tenants_page_filtered_by_another_organization_is_404_as_the_jobs_route(
    mock: Mock, path: str
) -> None:
    """It was a 200 listing the tenant's own jobs under a filter naming Globex (or 'no jobs
    match these filters'), where /_mock/jobs answers 404 for the same filter."""
    mock.deps.admin_token = "s3cret"
    mock.create(json={})  # Acme's job
    globex = "org_8d1e5f3a-6c2b-4e7d-a9f0-1b3c5d7e9f02"
    acme = "org_3f6c2a8e-1b7d-4c59-9e0a-5d4b8c7f1a23"
    jobs = mock.client.get(f"/_mock/jobs?organizationId={globex}", headers=auth(FULL))
    page = mock.client.get(f"{path}?organizationId={globex}", headers=auth(FULL))
    assert jobs.status_code == page.status_code == 404
    assert page.json()["error"]["code"] == "NOT_FOUND"
    own = mock.client.get(f"{path}?organizationId={acme}&token={FULL}")
    assert own.status_code == 200 and "queued" in own.text
    assert mock.client.get(f"{path}?organizationId=&token={FULL}").status_code == 200


def test_an_empty_admin_token_locks_instead_of_opening(mock: Mock) -> None:
    mock.deps.admin_token = ""
    assert mock.client.get("/_mock/ui?token=").status_code == 401
    empty = {"Authorization": "Bearer "}
    assert mock.client.get("/_mock/health", headers=empty).status_code == 401


@pytest.mark.parametrize(
    "path", ["/_mock/ui", "/_mock/ui/live", "/_mock/ui/requests/1", "/", "/_mock/jobs"]
)
def test_a_get_with_a_body_is_refused_in_the_envelope(mock: Mock, path: str) -> None:
    mock.client.get("/v1/whoami", headers=auth())
    response = mock.client.request(
        "GET", path, content=b'{"a": 1}', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "VALIDATION"


def test_open_routes_are_exactly_those_the_spec_leaves_open() -> None:
    paths = control_spec().document["paths"]
    open_ops = {
        op["operationId"]
        for item in paths.values()
        for op in item.values()
        if isinstance(op, dict) and op.get("security") == [{}]
    }
    assert open_ops == PUBLIC


def test_rule_templates_name_operations_of_the_contract() -> None:
    assert {CREATE_OPERATION, POLL_OPERATION} <= set(partner_spec().operations)


def test_an_unchanged_live_fragment_is_a_304_without_a_body(mock: Mock) -> None:
    first = mock.client.get("/_mock/ui/live")
    etag = first.headers["etag"]
    again = mock.client.get("/_mock/ui/live", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    mock.advance(1)  # the clock moved: the fragment did too
    moved = mock.client.get("/_mock/ui/live", headers={"If-None-Match": etag})
    assert moved.status_code == 200 and moved.headers["etag"] != etag
    stale = mock.client.get("/_mock/ui/live", headers={"If-None-Match": '"nope", W/"x"'})
    assert stale.status_code == 200


def test_kept_bodies_are_shown_and_replayed(mock: Mock) -> None:
    """An entry as the journal gives it when it keeps bodies (keys already redacted)."""
    body = '{"gender": "female", "prompt": "</pre><script>x()</script>"}'
    entry = {
        "sequence": 3,
        "at": "2026-01-01T00:00:00.000Z",
        "method": "POST",
        "path": "/v1/projects/prj_254a4ce1-f4ca-42b1-9e36-17ca45ef3d39/influencers",
        "query": "",
        "status": 202,
        "requestId": "req_01KDVDNA00EQ0WGATGKDQXFGG8",
        "apiKeyId": "key_0f1e2d3c-4b5a-4968-8776-655443322110",
        "operationId": "createInfluencer",
        "injected": None,
        "request": {
            "headers": {
                "authorization": "Bearer lp_test_acmefull_***",
                "content-type": "application/json",
                "idempotency-key": "k-1",
                "prefer": "outcome=failed",
                "user-agent": "partner/1.0",
            },
            "body": body,
            "truncated": False,
        },
        "response": {
            "headers": {"content-type": "application/json"},
            "body": '{"jobId": "j"}',
            "truncated": True,
        },
    }
    html = render("request.html", **request_context(mock.deps, entry, "http://h")).decode()
    assert "&lt;/pre&gt;&lt;script&gt;x()&lt;/script&gt;" in html and "<script>" not in html
    assert "Cut: the journal keeps the first 16 KiB" in html
    curl = re.search(r'id="detail-curl">([^<]*)<', html)
    assert curl is not None
    line = curl.group(1).replace("&#34;", '"').replace("&#39;", "'").replace("&gt;", ">")
    line = line.replace("&lt;", "<").replace("&amp;", "&")
    assert "'Idempotency-Key: k-1'" not in line  # names as the journal gives them: lower case
    assert "'idempotency-key: k-1'" in line and "'prefer: outcome=failed'" in line
    assert "user-agent" not in line and "lp_test_acmefull" not in line
    assert line.count("Content-Type") + line.count("content-type") == 1


def test_the_serve_banner_links_the_dashboard() -> None:
    assert "  dashboard: http://127.0.0.1:4010/_mock/ui" in banner(Settings(), [], None)
    shared = banner(Settings(host="0.0.0.0", admin_token="t0k"), [], None)
    # where it listens is no address to reach: the link goes to loopback (tests/test_cli.py)
    assert "  dashboard: http://127.0.0.1:4010/_mock/ui?token=t0k" in shared


def test_a_principal_of_one_organization_sees_only_its_own(mock: Mock) -> None:
    """The shape a tenant key will take: the views narrow to the principal's organization."""
    mock.create(json={})
    mock.create(key=GLOBEX, project=GLOBEX_PROJECT, json={})
    globex = Principal("admin", organization_id="org_8d1e5f3a-6c2b-4e7d-a9f0-1b3c5d7e9f02")
    context = page_context(mock.deps, globex, {}, "http://h")
    assert [org["name"] for org in context["fixtures"]] == ["Globex Media"]
    assert [p["name"] for p in context["projects"]] == ["Globex Studio"]
    assert {j["projectId"] for j in context["jobs"]["items"]} == {GLOBEX_PROJECT}
    assert [e["operationId"] for e in context["journal"]["items"]] == ["createInfluencer"]
    everyone = page_context(mock.deps, OPEN, {}, "http://h")
    assert len(everyone["journal"]["items"]) == 2
    # numbered among its own (issue 12 point 4): its one entry is its #1 (the server's #2),
    # and no number reaches Acme's
    acme_entry = UiRequest(mock.deps, globex, {}, {"sequence": "2"}, "", None, "http://h", None)
    with pytest.raises(ApiError):
        journal_entry(acme_entry)
    acme_entry.path = {"sequence": "1"}
    own = journal_entry(acme_entry)
    assert own.status == 200 and GLOBEX_PROJECT.encode() in bytes(own.body)


@pytest.mark.parametrize(
    ("page", "complaint"),
    [
        (Page(200, b"<p>not a document</p>"), "does not match"),
        (Page(200, b"hello", "text/plain"), "sent text/plain, the spec declares text/html"),
        (Page(200, b"<!doctype html>", headers=[]), "content-security-policy is missing"),
    ],
)
def test_strict_mode_checks_html_answers_too(
    monkeypatch: pytest.MonkeyPatch, page: Page, complaint: str
) -> None:
    monkeypatch.setitem(UI_HANDLERS, "mockDashboard", lambda req: page)
    mock = make_mock()
    with pytest.raises(ContractViolation, match=complaint):
        mock.client.get("/_mock/ui")


def test_a_journal_that_keeps_bodies_shows_them_and_replays_them() -> None:
    mock = make_mock()
    mock.deps.journal = Journal(bodies=True)  # what `serve --journal-bodies` gives
    with mock.client:
        headers = {"Idempotency-Key": "replay-1", "Prefer": "outcome=failed"}
        job = mock.create(json={"gender": "male"}, headers=headers).json()
        detail = mock.client.get("/_mock/ui/requests/1").text
    assert '"gender":"male"' in html.unescape(detail)  # the request body, as sent
    assert job["jobId"] in detail  # the response body
    assert FULL not in detail and "lp_test_acmefull_***" in detail  # redacted by the journal
    curl = re.search(r'id="detail-curl">([^<]*)<', detail)
    assert curl is not None
    line = html.unescape(curl.group(1))
    assert "'idempotency-key: replay-1'" in line and "'prefer: outcome=failed'" in line
    assert "--data-binary" in line and "male" in line and "Bearer ${LAYERS_API_KEY}" in line


def test_a_page_and_a_control_route_never_answer_one_request_id(mock: Mock) -> None:
    """The dashboard minted its ids from the state's id counters under the control plane's
    own salt: its n-th id was the control plane's n-th (three 404s, two of one id), and
    watching the mock moved a counter that a reset rewinds and an export carries."""

    def exported() -> object:
        state = json.loads(mock.client.get("/_mock/state").content)
        state.pop("requests")  # the request-id counters: every control request moves them
        return state

    before = exported()
    ids = [
        mock.client.get(path).headers["x-request-id"]
        for path in ("/_mock/ui/jobs/job_nope", "/_mock/ui/requests/7", "/_mock/jobs/job_nope")
    ]
    ids += [mock.client.get("/_mock/jobs/job_nope").headers["x-request-id"] for _ in range(2)]
    assert len(set(ids)) == len(ids), ids
    assert mock.client.get("/_mock/ui/jobs/job_nope").status_code == 404
    assert exported() == before  # nothing a page looked at moved


def test_a_tenants_dashboard_numbers_the_journal_as_its_own_requests(mock: Mock) -> None:
    """Issue 12 point 4: a tenant's page lists its requests numbered 1..n among its own (the
    server's numbers counted the other organizations' requests in between), and its request
    page resolves those numbers; the operator's page keeps the server's."""
    mock.deps.admin_token = "s3cret"
    for key in (GLOBEX, GLOBEX, FULL, GLOBEX, FULL):
        assert mock.client.get("/v1/whoami", headers=auth(key)).status_code == 200
    page = mock.client.get(f"/_mock/ui/live?token={FULL}").text
    assert re.findall(r'data-sequence="(\d+)"', page)[::2] == ["2", "1"]
    operator = mock.client.get("/_mock/ui/live?token=s3cret").text
    assert re.findall(r'data-sequence="(\d+)"', operator)[::2] == ["5", "4", "3", "2", "1"]
    own = mock.client.get(f"/_mock/ui/requests/2?token={FULL}")
    assert own.status_code == 200 and "#2 " in own.text, own.text
    assert mock.client.get(f"/_mock/ui/requests/3?token={FULL}").status_code == 404
    assert mock.client.get("/_mock/ui/requests/3?token=s3cret").status_code == 200
