"""The /_mock/ control plane: health, fixtures, clock, reset, journal."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient
from support import FULL, PROJECT, Mock, auth

from layers_mock_server.core.clock import Clock
from layers_mock_server.core.fixtures import load_fixtures
from layers_mock_server.core.journal import Journal
from layers_mock_server.core.simulator import Simulator
from layers_mock_server.deps import Deps
from layers_mock_server.http.app import build_app


def test_health_and_fixtures(mock: Mock) -> None:
    assert mock.client.get("/_mock/health").json() == {"status": "ok"}
    orgs = mock.client.get("/_mock/fixtures").json()["organizations"]
    acme = orgs[0]
    assert acme["projects"] == [
        {"projectId": PROJECT, "name": "Acme Coffee", "targetGender": "female"}
    ]
    keys = {k["key"]: k for k in acme["keys"]}
    assert keys[FULL]["scopes"] == ["*"]
    assert any(k["killed"] for k in acme["keys"])
    assert {o["projects"][0]["targetGender"] for o in orgs} == {"female", "all"}


def test_clock_reads_advances_and_never_goes_back(mock: Mock) -> None:
    assert mock.client.get("/_mock/clock").json()["mode"] == "virtual"
    moved = mock.client.post("/_mock/clock/advance", json={"seconds": 90}).json()
    assert moved == {"now": "2026-01-01T00:01:30.000Z"}
    back = mock.client.post("/_mock/clock/advance", json={"seconds": -1})
    assert back.status_code == 422
    earlier = mock.client.post("/_mock/clock/set", json={"now": "2026-01-01T00:00:00.000Z"})
    assert (
        earlier.status_code == 422
        and "already" in earlier.json()["error"]["details"]["fieldErrors"]["now"][0]
    )
    later = mock.client.post("/_mock/clock/set", json={"now": "2026-01-02T00:00:00.000Z"})
    assert later.json() == {"now": "2026-01-02T00:00:00.000Z"}


def test_reset_returns_state_clock_and_seed_to_the_start(mock: Mock) -> None:
    first = mock.create(json={}).json()
    mock.advance(100)
    body = mock.client.post("/_mock/reset").json()
    assert body == {"status": "reset", "now": "2026-01-01T00:00:00.000Z", "seed": 7, "mark": 1}
    assert mock.job(first["jobId"]).status_code == 404
    assert mock.create(json={}).json() == first  # same seed, same sequence, same bytes
    reseeded = mock.client.post("/_mock/reset", json={"seed": 8}).json()
    assert reseeded["seed"] == 8
    assert mock.create(json={}).json()["jobId"] != first["jobId"]


def test_reset_one_organization_keeps_the_others(mock: Mock) -> None:
    acme = mock.create(json={}).json()
    globex = mock.create(
        key="lp_test_globexfull_M4nB7vC1xZ9lK6jH",
        project="prj_7b3e9d21-4a5c-4f6e-8d9b-0c1a2e3f4b5d",
        json={},
    ).json()
    response = mock.client.post(
        "/_mock/reset", json={"organizationId": "org_3f6c2a8e-1b7d-4c59-9e0a-5d4b8c7f1a23"}
    )
    assert response.status_code == 200
    assert mock.job(acme["jobId"]).status_code == 404
    assert mock.job(globex["jobId"], "lp_test_globexfull_M4nB7vC1xZ9lK6jH").status_code == 200
    assert mock.client.post("/_mock/reset", json={"organizationId": "org_nope"}).status_code == 404


def test_journal_is_newest_first_and_filterable(mock: Mock) -> None:
    job = mock.create(json={}).json()["jobId"]
    mock.job(job)
    mock.create(json={"gender": "robot"})
    mock.client.get("/v1/whoami")
    everything = mock.client.get("/_mock/requests").json()
    assert [e["status"] for e in everything["items"]] == [401, 422, 200, 202]
    assert everything["total"] == 4
    only_422 = mock.client.get("/_mock/requests?status=422").json()["items"]
    assert [e["operationId"] for e in only_422] == ["createInfluencer"]
    jobs = mock.client.get("/_mock/requests?method=get&path=/v1/jobs").json()["items"]
    assert [e["path"] for e in jobs] == [f"/v1/jobs/{job}"]
    assert mock.client.get("/_mock/requests?limit=1").json()["items"][0]["status"] == 401
    assert mock.client.get("/_mock/requests?limit=0").status_code == 422


def test_a_resets_mark_lists_the_requests_answered_after_it_whatever_their_sequence(
    mock: Mock,
) -> None:
    """`after` asks for what came after a reset: an organization's reset keeps the journal,
    and a global reset starts `sequence` again, but a mark handed out before still holds."""
    acme_org = "org_3f6c2a8e-1b7d-4c59-9e0a-5d4b8c7f1a23"
    mock.client.get("/v1/whoami", headers=auth())
    mock.client.get("/v1/credits", headers=auth())
    mark = mock.client.post("/_mock/reset", json={"organizationId": acme_org}).json()["mark"]
    mock.client.get("/v1/whoami", headers=auth())

    def paths(query: str) -> list[str]:
        return [e["path"] for e in mock.client.get(f"/_mock/requests?{query}").json()["items"]]

    assert paths("") == ["/v1/whoami", "/v1/credits", "/v1/whoami"]
    assert paths(f"after={mark}") == ["/v1/whoami"]
    assert mock.client.get(f"/_mock/requests?after={mark}").json()["total"] == 1
    again = mock.client.post("/_mock/reset").json()["mark"]
    assert again > mark
    assert paths(f"after={mark}") == []  # the global reset cleared the journal
    mock.client.get("/v1/credits", headers=auth())
    assert paths(f"after={mark}") == paths(f"after={again}") == ["/v1/credits"]
    unknown = mock.client.get(f"/_mock/requests?after={again + 1}")  # no reset answered it
    assert unknown.status_code == 422, unknown.text
    assert unknown.json()["error"]["details"]["fieldErrors"] == {
        "after": [
            f"No reset answered mark {again + 1}: the latest this server handed out is {again}."
        ]
    }
    for bad in ("-1", "x", "1.5", "9007199254740992"):
        assert mock.client.get(f"/_mock/requests?after={bad}").status_code == 422


def test_journal_is_bounded() -> None:
    sim = Simulator(load_fixtures(), Clock("virtual"), 7)
    client = TestClient(build_app(Deps(sim=sim, journal=Journal(capacity=5), strict=True)))
    for _ in range(8):
        client.get("/v1/whoami", headers=auth())
    body = client.get("/_mock/requests").json()
    assert body["total"] == 5
    assert [e["sequence"] for e in body["items"]] == [8, 7, 6, 5, 4]


def test_control_plane_bad_input_is_422(mock: Mock) -> None:
    assert mock.client.post("/_mock/clock/advance", json={"secs": 1}).status_code == 422
    assert mock.client.post("/_mock/clock/advance", content=b"{").status_code == 422


def test_admin_token_guards_the_control_plane_when_set(mock: Mock) -> None:
    mock.deps.admin_token = "s3cret"
    assert mock.client.get("/_mock/health").status_code == 401
    assert (
        mock.client.get("/_mock/health", headers={"Authorization": "Bearer s3cret"}).status_code
        == 200
    )


def test_reset_of_one_organization_refills_its_rate_limits(mock: Mock) -> None:
    """Issue 9, D13: the windows of the reset organization's keys were kept."""
    from support import STANDARD, bulk

    reads = [("GET", "/v1/whoami", auth(STANDARD), None)] * 120
    assert {r.status_code for r in bulk(mock.client.app, reads)} == {200}
    assert mock.client.get("/v1/whoami", headers=auth(STANDARD)).status_code == 429
    globex = "org_8d1e5f3a-6c2b-4e7d-a9f0-1b3c5d7e9f02"
    assert mock.client.post("/_mock/reset", json={"organizationId": globex}).status_code == 200
    assert mock.client.get("/v1/whoami", headers=auth(STANDARD)).status_code == 429  # not ours
    acme = "org_3f6c2a8e-1b7d-4c59-9e0a-5d4b8c7f1a23"
    assert mock.client.post("/_mock/reset", json={"organizationId": acme}).status_code == 200
    assert mock.client.get("/v1/whoami", headers=auth(STANDARD)).status_code == 200


def test_rules_are_bounded(mock: Mock, monkeypatch: Any) -> None:
    from layers_mock_server.core import rules

    monkeypatch.setattr(rules, "MAX_RULES", 3)
    rule = {"match": {"operationId": "whoami"}, "latencyMs": 1}
    assert [mock.client.post("/_mock/rules", json=rule).status_code for _ in range(4)] == [
        201,
        201,
        201,
        409,
    ]
    mock.client.delete("/_mock/rules/rule_1")
    assert mock.client.post("/_mock/rules", json=rule).json()["ruleId"] == "rule_4"


def test_an_empty_admin_token_guards_nothing_and_is_refused(mock: Mock) -> None:
    """Issue 9, D14: `--admin-token ''` off loopback let `Authorization: Bearer ` in."""
    from layers_mock_server.settings import Settings, make_deps

    mock.deps.admin_token = ""  # were one set anyway, it would open nothing
    for header in ("Bearer ", "Bearer", "bearer  "):
        refused = mock.client.post("/_mock/reset", headers={"Authorization": header})
        assert refused.status_code == 401, header
    for bad in ("", " ", "two words"):
        with pytest.raises(ValueError, match="admin-token"):
            make_deps(Settings(host="0.0.0.0", admin_token=bad))


def test_a_control_plane_miss_leaves_the_partner_ids_alone() -> None:
    """A typo'd control URL (404) or method (405) took an id from the partner counter."""
    from support import make_mock

    untouched, probed = make_mock(), make_mock()
    misses = [
        probed.client.get("/_mock/clock/"),
        probed.client.post("/_mock/nope", json={}),
        probed.client.get("/_mock"),
        probed.client.delete("/_mock/clock"),
    ]
    assert [m.status_code for m in misses] == [404, 404, 404, 405]
    assert all(m.json()["error"]["requestId"] == m.headers["x-request-id"] for m in misses)
    for mock in (untouched, probed):
        assert mock.client.post("/_mock/clock/advance", json={"seconds": 1}).status_code == 200
    expected = untouched.create(json={})
    got = probed.create(json={})
    assert got.headers["x-request-id"] == expected.headers["x-request-id"]
    assert got.json()["jobId"] == expected.json()["jobId"]
    assert probed.client.get("/v1/nope", headers=auth()).status_code == 404  # partner: counted
    assert (
        probed.create(json={}).headers["x-request-id"]
        != untouched.create(json={}).headers["x-request-id"]
    )
