"""An import (PUT /_mock/state) is refused where the control routes would refuse the same value,
on every store: a 422 naming the value by its path in the document, and nothing of it applied.
Each of these was a 200 that kept (or silently dropped) what no route would have taken."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from every_store import Servers, served  # noqa: F401 - a fixture
from starlette.testclient import TestClient
from support import ACME_ORG, SEED, STANDARD

from layers_mock_server.core.clock import Clock
from layers_mock_server.core.fixtures import load_fixtures
from layers_mock_server.core.rules import MAX_TENANT_RULES
from layers_mock_server.core.simulator import Simulator
from layers_mock_server.deps import Deps
from layers_mock_server.http.app import build_app

Edit = Callable[[dict[str, Any]], None]
GLOBEX_ORG = "org_8d1e5f3a-6c2b-4e7d-a9f0-1b3c5d7e9f02"


def _rule(rule_id: str, match: dict[str, Any]) -> dict[str, Any]:
    return {"ruleId": rule_id, "match": match, "fault": "503", "remaining": None}


def _rules(*rules: dict[str, Any]) -> Edit:
    def edit(document: dict[str, Any]) -> None:
        document["rules"] = {"next": len(rules), "rules": list(rules)}

    return edit


def _clock(**fields: Any) -> Edit:
    def edit(document: dict[str, Any]) -> None:
        document["clock"].update(fields)

    return edit


def _org_clock(document: dict[str, Any]) -> None:
    document["clock"]["organizations"] = {ACME_ORG: document["clock"]["startMs"] - 1}


def _row(table: str, **fields: Any) -> Edit:
    def edit(document: dict[str, Any]) -> None:
        document[table] = [{**document[table][0], **fields}, *document[table][1:]]

    return edit


def _two_windows(document: dict[str, Any]) -> None:
    key = document["keys"][0]["api_key_id"]
    document["rates"] = [[key, "read-light", 29_453_760, 1], [key, "read-light", 29_453_760, 2]]


START = 1_767_225_600_000
CASES: dict[str, tuple[Edit, str]] = {
    "a rule for an organization the document has not": (
        _rules(_rule("rule_1", {"organizationId": "org_nope"})),
        "rules.rules[0].match.organizationId: the server has no organization 'org_nope'",
    ),
    "a rule for an operation the contract has not": (
        _rules(_rule("rule_1", {"operationId": "explode"})),
        "rules.rules[0].match.operationId: the contract has no operation 'explode'",
    ),
    "more rules of one organization than it may add": (
        _rules(
            *(_rule(f"rule_{n}", {"organizationId": ACME_ORG}) for n in range(MAX_TENANT_RULES))
        ),
        "",  # the operator may add more than a tenant: only a bound the route holds to all
    ),
    "more rules a tenant made than it may add": (
        _rules(
            *({**_rule(f"rule_{n}", {}), "tenant": ACME_ORG} for n in range(MAX_TENANT_RULES + 1))
        ),
        f"rules.rules[{MAX_TENANT_RULES}].tenant: {ACME_ORG} made {MAX_TENANT_RULES} rules "
        "already, as many as an organization may add.",
    ),
    "a tenant's rule of an organization the document has not": (
        _rules({**_rule("rule_1", {}), "tenant": "org_nope"}),
        "rules.rules[0].tenant: the server has no organization 'org_nope'.",
    ),
    "a tenant's rule naming another organization": (
        _rules({**_rule("rule_1", {"organizationId": GLOBEX_ORG}), "tenant": ACME_ORG}),
        "rules.rules[0].match.organizationId: a tenant's rule names its own organization, "
        f"{ACME_ORG} (its tenant).",
    ),
    "a rule with more left than its count": (
        _rules({**_rule("rule_1", {}), "count": 2, "remaining": 3}),
        "rules.rules[0].remaining: must be null without a count, else from 1 to the count",
    ),
    "a rule with applications left and no count": (
        _rules({**_rule("rule_1", {}), "remaining": 3}),
        "rules.rules[0].remaining: must be null without a count, else from 1 to the count",
    ),
    "a project's timezone the routes do not know": (
        _row("projects", timezone="Mars/Olympus"),
        "projects[0].timezone: Must be one of the",
    ),
    "a project's name shorter than the routes take": (
        _row("projects", name="ab"),
        "projects[0].name: Must be at least 3 characters.",
    ),
    "an organization's owner email that is none": (
        _row("organizations", owner_email="not an email"),
        "organizations[0].owner_email: Must match",
    ),
    "two windows of one key and class": (
        _two_windows,
        "rates[1]: a second read-light window of key",
    ),
    "a wall clock into a virtual server": (
        _clock(mode="wall"),
        "clock.mode: this server's clock is virtual (serve --clock); an import cannot change "
        "it (the document's is wall). Leave clock.mode out of the document to load it on this "
        "server's clock.",
    ),
    "an instant before the clock's start": (
        _clock(nowMs=START - 1),
        "clock.nowMs: 2025-12-31T23:59:59.999Z is before the clock's start, "
        "2026-01-01T00:00:00.000Z.",
    ),
    "another start than the server's": (
        _clock(startMs=START + 1000),
        "clock.startMs: this server's clock starts at 2026-01-01T00:00:00.000Z (the document's "
        "at 2026-01-01T00:00:01.000Z); an import cannot change it. Leave clock.startMs out of the "
        "document to load it on this server's clock.",
    ),
    "an organization's clock before the start": (
        _org_clock,
        f"clock.organizations.{ACME_ORG}: 2025-12-31T23:59:59.999Z is before the clock's start, "
        "2026-01-01T00:00:00.000Z.",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_an_import_refuses_what_the_routes_refuse_and_applies_nothing(
    served: Servers,  # noqa: F811
    case: str,
) -> None:
    edit, expected = CASES[case]
    status, _, added = served("POST", "/_mock/rules", None, {"match": {}, "fault": "500"})
    assert status == 201, added
    status, _, before = served("GET", "/_mock/state")
    assert status == 200
    document = {**before, "clock": dict(before["clock"])}
    edit(document)
    status, _, answer = served("PUT", "/_mock/state", None, document)
    if not expected:  # within the bound: taken, and the rules fire
        assert status == 200, answer
        assert served("GET", "/v1/whoami", STANDARD)[0] == 503
        return
    assert status == 422, answer
    error = answer["error"]
    assert (error["code"], error["message"]) == ("VALIDATION", "Invalid body.")
    found = error["details"]["formErrors"]
    assert any(text.startswith(f"State document: {expected}") for text in found), found
    # nothing applied: the operator's rule stays and still fires, the clock is where it was
    status, _, after = served("GET", "/_mock/state")
    assert {k: after[k] for k in ("clock", "rules")} == {k: before[k] for k in ("clock", "rules")}
    assert served("GET", "/v1/whoami", STANDARD)[0] == 500


def test_a_rule_naming_its_organization_without_the_prefix_imports_as_the_route_takes_it(
    served: Servers,  # noqa: F811
) -> None:
    """The route takes a bare uuid and stores the prefixed id; an import does the same, so the
    rule fires on that organization's requests instead of never."""
    status, _, document = served("GET", "/_mock/state")
    bare = ACME_ORG.removeprefix("org_")
    _rules(_rule("rule_1", {"organizationId": bare}))(document)
    status, _, answer = served("PUT", "/_mock/state", None, document)
    assert status == 200, answer
    assert served("GET", "/_mock/rules")[2]["items"][0]["match"] == {"organizationId": ACME_ORG}
    assert served("GET", "/v1/whoami", STANDARD)[0] == 503


def test_a_wall_clock_of_another_speed_is_refused_naming_the_speed() -> None:
    """A wall server's speed is serve's option: an import that named another was taken and its
    speed dropped without a word."""
    sim = Simulator(load_fixtures(), Clock("wall", speed=60.0), SEED)
    deps = Deps(sim=sim, strict=True, progression="time")  # type: ignore[arg-type]
    client = TestClient(build_app(deps))
    document = client.get("/_mock/state").json()
    answer = client.put(
        "/_mock/state", json={**document, "clock": {**document["clock"], "speed": 1}}
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["details"]["formErrors"] == [
        "State document: clock.speed: this server's wall clock runs at 60 (serve --speed); an "
        "import cannot change it (the document's is 1). Leave clock.speed out of the document to "
        "load it on this server's clock."
    ]
    assert client.put("/_mock/state", json=document).status_code == 200


def test_a_wall_export_loads_on_a_virtual_server_once_its_mode_is_left_out() -> None:
    """A staging sandbox's export (wall clock) reproduced on a test mock (virtual clock): the
    refusal says how to load it anyway, and the document without `clock.mode` loads at its
    instant, on the virtual clock."""
    wall = TestClient(build_app(Deps(sim=Simulator(load_fixtures(), Clock("wall"), SEED))))
    virtual = Simulator(load_fixtures(), Clock("virtual"), SEED)
    target = TestClient(build_app(Deps(sim=virtual, strict=True)))  # type: ignore[arg-type]
    document = wall.get("/_mock/state").json()
    assert document["clock"]["mode"] == "wall"
    refused = target.put("/_mock/state", json=document)
    assert refused.status_code == 422, refused.text
    [said] = refused.json()["error"]["details"]["formErrors"]
    assert said.endswith("Leave clock.mode out of the document to load it on this server's clock.")
    del document["clock"]["mode"]
    assert target.put("/_mock/state", json=document).status_code == 200
    clock = target.get("/_mock/state").json()["clock"]
    assert clock["mode"] == "virtual" and clock["nowMs"] == document["clock"]["nowMs"], clock
