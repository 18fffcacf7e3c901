"""A tenant's own controls: on a shared sandbox an organization steers its own clock, data and
journal with its own API key, and never sees or touches another organization's (issue 12).

The server here has an admin token, as a shared sandbox does; without one (loopback) the
control plane stays open to every caller, partner key or not.
"""

from __future__ import annotations

from typing import Any

import pytest
from support import (
    CHILD_ORG,
    FULL,
    GLOBEX,
    GLOBEX_PROJECT,
    KILLED,
    NORTH_ADMIN,
    NORTH_ORG,
    NORTH_PROJECT,
    PROJECT,
    STANDARD,
    Mock,
    auth,
    make_mock,
)

ACME = "org_3f6c2a8e-1b7d-4c59-9e0a-5d4b8c7f1a23"
GLOBEX_ORG = "org_8d1e5f3a-6c2b-4e7d-a9f0-1b3c5d7e9f02"
UNKNOWN_ORG = "org_00000000-0000-4000-8000-000000000000"
TOKEN = "s3cret-admin"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def mock() -> Mock:
    made = make_mock()
    made.deps.admin_token = TOKEN
    return made


def as_tenant(mock: Mock, method: str, path: str, key: str = FULL, **kw: Any) -> Any:
    return mock.client.request(method, path, headers=auth(key), **kw)


def error(answer: Any) -> tuple[int, str, str]:
    body = answer.json()["error"]
    return answer.status_code, body["code"], body["message"]


def test_a_tenant_drives_its_own_clock_with_any_live_key_of_its_organization(mock: Mock) -> None:
    moved = as_tenant(
        mock, "POST", f"/_mock/organizations/{ACME}/clock/advance", json={"seconds": 60}
    )
    assert moved.status_code == 200 and moved.json()["detached"] is True
    read = as_tenant(mock, "GET", f"/_mock/organizations/{ACME}/clock", STANDARD)
    assert read.json()["now"] == "2026-01-01T00:01:00.000Z"
    assert (
        mock.client.get("/_mock/clock", headers=ADMIN).json()["now"] == "2026-01-01T00:00:00.000Z"
    )


def test_another_organization_is_404_exactly_like_an_unknown_one(mock: Mock) -> None:
    for verb, suffix, body in [
        ("GET", "", None),
        ("POST", "/advance", {"seconds": 1}),
        ("POST", "/set", {"now": "2026-02-01T00:00:00.000Z"}),
        ("POST", "/reset", None),
    ]:
        foreign = as_tenant(
            mock, verb, f"/_mock/organizations/{GLOBEX_ORG}/clock{suffix}", json=body
        )
        unknown = as_tenant(
            mock, verb, f"/_mock/organizations/{UNKNOWN_ORG}/clock{suffix}", json=body
        )
        assert error(foreign) == error(unknown) == (404, "NOT_FOUND", "Organization not found.")
    assert mock.deps.sim.state.clocks.detached == {}


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/_mock/clock/advance", {"seconds": 1}),
        ("POST", "/_mock/clock/set", {"now": "2026-02-01T00:00:00.000Z"}),
        ("POST", "/_mock/reset", {"seed": 3}),
        ("GET", "/_mock/state", None),
        ("PUT", "/_mock/state", {}),
        ("GET", "/_mock/chaos", None),
    ],
)
def test_server_wide_operations_are_403_for_a_tenant_and_change_nothing(
    mock: Mock, method: str, path: str, body: Any
) -> None:
    before = mock.client.get("/_mock/state", headers=ADMIN).json()
    answer = as_tenant(mock, method, path, json=body)
    assert error(answer)[:2] == (403, "FORBIDDEN_SCOPE")
    after = mock.client.get("/_mock/state", headers=ADMIN).json()
    after.pop("requests"), before.pop("requests")  # control request ids move on, nothing else
    assert after == before


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer ",
        f"Bearer {KILLED}",  # a key whose kill switch is on
        "Bearer lp_test_acmefull_Zx81Qm4TnR7vKp2X",  # one character off
        f"Basic {FULL}",
        f"Bearer {FULL}x",
        f"Bearer {TOKEN}x",
        "Bearer lp_" + "a" * 5000,
    ],
)
def test_a_missing_wrong_or_killed_key_is_401(mock: Mock, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    answer = mock.client.get(f"/_mock/organizations/{ACME}/clock", headers=headers)
    assert error(answer)[:2] == (401, "UNAUTHENTICATED")


def test_the_admin_reaches_every_organization(mock: Mock) -> None:
    answer = mock.client.post(
        f"/_mock/organizations/{GLOBEX_ORG}/clock/advance", headers=ADMIN, json={"seconds": 5}
    )
    assert answer.status_code == 200


def test_without_an_admin_token_a_partner_key_on_the_control_plane_changes_nothing() -> None:
    """Loopback stays open: a test client that sends its key everywhere keeps full access."""
    open_mock = make_mock()
    assert open_mock.client.post("/_mock/reset", headers=auth(FULL), json={"seed": 3}).is_success
    advanced = open_mock.client.post(
        f"/_mock/organizations/{GLOBEX_ORG}/clock/advance", headers=auth(FULL), json={"seconds": 1}
    )
    assert advanced.status_code == 200


def test_a_tenant_reads_only_its_own_journal(mock: Mock) -> None:
    mock.create(GLOBEX, GLOBEX_PROJECT, json={})
    mock.client.get("/v1/whoami", headers=auth(GLOBEX))
    mock.create(FULL, PROJECT, json={})
    mock.client.get("/v1/whoami", headers=auth(STANDARD))
    ours = as_tenant(mock, "GET", "/_mock/requests").json()
    assert ours["total"] == 2
    globex_key_id = mock.client.get("/v1/whoami", headers=auth(GLOBEX)).json()["apiKeyId"]
    assert all(item["apiKeyId"] != globex_key_id for item in ours["items"])
    theirs = as_tenant(mock, "GET", "/_mock/requests?path=/v1/whoami", GLOBEX).json()
    assert [i["apiKeyId"] for i in theirs["items"]] == [globex_key_id] * 2
    everything = mock.client.get("/_mock/requests", headers=ADMIN).json()
    assert everything["total"] == 5


def test_a_tenant_lists_only_its_own_jobs_projects_and_fixtures(mock: Mock) -> None:
    ours = mock.create(FULL, PROJECT, json={}).json()["jobId"]
    theirs = mock.create(GLOBEX, GLOBEX_PROJECT, json={}).json()["jobId"]
    jobs = as_tenant(mock, "GET", "/_mock/jobs").json()["items"]
    assert [j["jobId"] for j in jobs] == [ours]
    projects = as_tenant(mock, "GET", "/_mock/projects").json()["items"]
    assert {p["organizationId"] for p in projects} == {ACME}
    fixtures = as_tenant(mock, "GET", "/_mock/fixtures").json()["organizations"]
    assert [o["organizationId"] for o in fixtures] == [ACME]
    assert as_tenant(mock, "GET", f"/_mock/jobs/{ours}").status_code == 200
    # another organization's anything: 404, the same answer as something that does not exist
    assert error(as_tenant(mock, "GET", f"/_mock/jobs/{theirs}")) == error(
        as_tenant(mock, "GET", "/_mock/jobs/job_01KDVDNA00MC45R5SVNTSRKGTZ")
    )
    for query in (f"organizationId={GLOBEX_ORG}", f"projectId={GLOBEX_PROJECT}"):
        foreign = as_tenant(mock, "GET", f"/_mock/jobs?{query}")
        unknown = as_tenant(mock, "GET", f"/_mock/jobs?{query.replace('8d1e5f3a', '00000000')}")
        assert error(foreign) == error(unknown) and foreign.status_code == 404
    foreign = as_tenant(mock, "GET", f"/_mock/projects?organizationId={GLOBEX_ORG}")
    assert error(foreign) == error(
        as_tenant(mock, "GET", f"/_mock/projects?organizationId={UNKNOWN_ORG}")
    )


def test_a_tenant_resets_its_own_organization_only(mock: Mock) -> None:
    ours = mock.create(FULL, PROJECT, json={}).json()["jobId"]
    theirs = mock.create(GLOBEX, GLOBEX_PROJECT, json={}).json()["jobId"]
    as_tenant(
        mock,
        "POST",
        f"/_mock/organizations/{GLOBEX_ORG}/clock/advance",
        GLOBEX,
        json={"seconds": 9},
    )
    reset = as_tenant(mock, "POST", "/_mock/reset", json={})
    assert reset.status_code == 200
    assert mock.job(ours).status_code == 404
    assert mock.job(theirs, GLOBEX).status_code == 200
    assert mock.deps.sim.state.clocks.detached != {}  # Globex's clock is Globex's
    named = as_tenant(mock, "POST", "/_mock/reset", json={"organizationId": ACME})
    assert named.status_code == 200
    foreign = as_tenant(mock, "POST", "/_mock/reset", json={"organizationId": GLOBEX_ORG})
    unknown = as_tenant(mock, "POST", "/_mock/reset", json={"organizationId": UNKNOWN_ORG})
    assert error(foreign) == error(unknown) and foreign.status_code == 404
    assert mock.job(theirs, GLOBEX).status_code == 200
    seeded = as_tenant(mock, "POST", "/_mock/reset", json={"organizationId": ACME, "seed": 1})
    assert seeded.status_code == 422  # a seed is every organization's, as for the admin


def test_a_parent_key_naming_its_child_in_x_layers_organization_is_refused_not_served_as_the_parent(
    mock: Mock,
) -> None:
    """On the partner API the header moves an org:admin key into its child; the control plane
    steers the key's own organization only. Served as if the header were absent, a pipeline
    that meant to reset its child would wipe the parent's data and move the parent's clock."""
    parents = mock.create(NORTH_ADMIN, NORTH_PROJECT, json={}).json()["jobId"]
    in_child = {**auth(NORTH_ADMIN), "X-Layers-Organization": CHILD_ORG}
    for method, path, body in [
        ("POST", "/_mock/reset", None),
        ("POST", f"/_mock/organizations/{CHILD_ORG}/clock/advance", {"seconds": 60}),
        ("POST", f"/_mock/organizations/{NORTH_ORG}/clock/advance", {"seconds": 60}),
        ("GET", "/_mock/requests", None),
        ("GET", "/_mock/jobs", None),
    ]:
        answer = mock.client.request(method, path, headers=in_child, json=body)
        code, name, message = error(answer)
        assert (code, name) == (403, "FORBIDDEN_SCOPE"), (path, answer.text)
        assert "X-Layers-Organization" in message and "own key" in message
    assert mock.job(parents, NORTH_ADMIN).json()["status"] == "running"  # not reset
    assert mock.deps.sim.state.clocks.detached == {}  # no clock moved
    own = {**auth(NORTH_ADMIN), "X-Layers-Organization": NORTH_ORG}  # the key's own: harmless
    assert mock.client.get("/_mock/requests", headers=own).status_code == 200


def test_a_tenant_may_read_what_is_harmless(mock: Mock) -> None:
    for path in ("/_mock/health", "/_mock/ready", "/_mock/seed", "/_mock/clock"):
        assert as_tenant(mock, "GET", path).status_code == 200, path


def test_the_dashboard_shows_a_tenant_its_own_organization_only(mock: Mock) -> None:
    theirs = mock.create(GLOBEX, GLOBEX_PROJECT, json={}).json()["jobId"]
    page = as_tenant(mock, "GET", "/_mock/ui")
    assert page.status_code == 200
    assert "Acme" in page.text and GLOBEX not in page.text and FULL in page.text
    assert as_tenant(mock, "GET", f"/_mock/ui/jobs/{theirs}").status_code == 404
    live = as_tenant(mock, "GET", "/_mock/ui/live")
    assert live.status_code == 200 and theirs not in live.text
    entry = mock.client.get("/_mock/requests", headers=ADMIN).json()["items"][0]["sequence"]
    assert as_tenant(mock, "GET", f"/_mock/ui/requests/{entry}").status_code == 404
    assert as_tenant(mock, "GET", f"/_mock/ui/requests/{entry}", GLOBEX).status_code == 200


def test_a_tenants_rules_match_its_own_requests_only(mock: Mock) -> None:
    added = as_tenant(mock, "POST", "/_mock/rules", json={"match": {}, "fault": "503"})
    assert added.status_code == 201
    assert added.json()["match"] == {"organizationId": ACME}
    assert mock.client.get("/v1/whoami", headers=auth(FULL)).status_code == 503
    assert mock.client.get("/v1/whoami", headers=auth(GLOBEX)).status_code == 200
    bare = as_tenant(
        mock, "POST", "/_mock/rules", json={"match": {"organizationId": ACME[4:]}, "latencyMs": 1}
    )
    assert bare.json()["match"]["organizationId"] == ACME
    for named in (GLOBEX_ORG, UNKNOWN_ORG, "nope"):
        refused = as_tenant(
            mock, "POST", "/_mock/rules", json={"match": {"organizationId": named}, "fault": "503"}
        )
        assert error(refused) == (404, "NOT_FOUND", "Organization not found.")


def test_a_tenant_lists_deletes_and_clears_its_own_rules_only(mock: Mock) -> None:
    operator = mock.client.post(
        "/_mock/rules", headers=ADMIN, json={"match": {"operationId": "whoami"}, "fault": "500"}
    ).json()["ruleId"]
    theirs = as_tenant(mock, "POST", "/_mock/rules", GLOBEX, json={"match": {}, "fault": "503"})
    ours = as_tenant(mock, "POST", "/_mock/rules", json={"match": {}, "latencyMs": 1}).json()
    assert [r["ruleId"] for r in as_tenant(mock, "GET", "/_mock/rules").json()["items"]] == [
        ours["ruleId"]
    ]
    for other in (operator, theirs.json()["ruleId"], "rule_999"):
        assert error(as_tenant(mock, "DELETE", f"/_mock/rules/{other}")) == (
            404,
            "NOT_FOUND",
            "Rule not found.",
        )
    as_tenant(mock, "POST", "/_mock/rules", json={"match": {}, "latencyMs": 2})
    assert as_tenant(mock, "DELETE", "/_mock/rules").json() == {"deleted": 2}
    left = mock.client.get("/_mock/rules", headers=ADMIN).json()["items"]
    assert [r["ruleId"] for r in left] == [operator, theirs.json()["ruleId"]]
    assert as_tenant(mock, "DELETE", f"/_mock/rules/{theirs.json()['ruleId']}", GLOBEX).is_success


def test_a_tenant_holds_at_most_100_rules(mock: Mock) -> None:
    for _ in range(100):
        assert as_tenant(
            mock, "POST", "/_mock/rules", json={"match": {}, "latencyMs": 1}
        ).is_success
    full = as_tenant(mock, "POST", "/_mock/rules", json={"match": {}, "latencyMs": 1})
    assert error(full)[:2] == (409, "CONFLICT")
    assert "100 rules of this organization" in error(full)[2]
    another = as_tenant(mock, "POST", "/_mock/rules", GLOBEX, json={"match": {}, "latencyMs": 1})
    assert another.status_code == 201  # the bound is per organization


def test_a_tenant_told_its_clock_cannot_follow_yet_is_told_what_it_can_do(mock: Mock) -> None:
    """The operator may advance the server clock; a tenant may not (403), so its 422 tells it
    what it can do: reset its organization, or ask the operator."""
    path = f"/_mock/organizations/{ACME}/clock"
    assert as_tenant(mock, "POST", f"{path}/advance", json={"seconds": 60}).status_code == 200
    refused = as_tenant(mock, "POST", f"{path}/reset")
    assert refused.status_code == 422
    [said] = refused.json()["error"]["details"]["formErrors"]
    assert "; advance the server clock," not in said  # the tenant's 403
    assert said.endswith(
        "ask the sandbox's operator to advance the server clock, or reset your organization "
        "(POST /_mock/reset with this key: its data and clock return to the start)"
    )
    assert as_tenant(mock, "GET", path).json()["detached"] is True  # nothing changed
    operator = mock.client.post(f"{path}/reset", headers=ADMIN).json()["error"]["details"]
    assert operator["formErrors"][0].endswith(
        "; advance the server clock, or reset the organization (its data and clock return to "
        "the start)"
    )
