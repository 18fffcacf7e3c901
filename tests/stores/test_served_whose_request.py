"""Whose request is it? A parent's key acting in its child (X-Layers-Organization) sends a
request the parent sees in its journal, so it is the parent that steers it: a tenant's rules
match the requests its own keys send, wherever they act, and its journal numbers them among
its own. The operator's rules (admin token) match the organization a request acts in, as
before. Before, the child's rules fired on the parent's requests (which the child cannot see)
and the parent's never did; the parent's journal numbered them in the child's count. On every
store; the rule's maker travels with it through an export."""

from __future__ import annotations

from typing import Any

from every_store import Servers, tenanted  # noqa: F401 - a fixture
from support import BAKERY, CHILD_ORG, GLOBEX, NORTH_ADMIN, NORTH_ORG


def _in(organization: str | None) -> dict[str, str]:
    return {} if organization is None else {"X-Layers-Organization": organization}


def rule(served: Servers, key: str | None, match: dict[str, Any], fault: str) -> dict[str, Any]:
    status, _, added = served("POST", "/_mock/rules", key, {"match": match, "fault": fault})
    assert status == 201, added
    return added


def whoami(served: Servers, key: str, acting_in: str | None = None) -> int:
    return served("GET", "/v1/whoami", key, headers=_in(acting_in))[0]


def listed_rules(served: Servers, key: str | None) -> list[str]:
    status, _, body = served("GET", "/_mock/rules", key)
    assert status == 200, body
    return [r["ruleId"] for r in body["items"]]


def test_a_tenants_rule_steers_its_own_keys_requests_wherever_they_act(
    tenanted: Servers,  # noqa: F811
) -> None:
    bakery = rule(tenanted, BAKERY, {}, "503")
    assert bakery["tenant"] == CHILD_ORG and bakery["match"] == {"organizationId": CHILD_ORG}
    assert whoami(tenanted, BAKERY) == 503
    assert whoami(tenanted, NORTH_ADMIN, CHILD_ORG) == 200  # the parent's request: not Bakery's
    north = rule(tenanted, NORTH_ADMIN, {}, "500")
    assert north["tenant"] == NORTH_ORG
    assert whoami(tenanted, NORTH_ADMIN, CHILD_ORG) == 500  # its own key's, in its child
    assert whoami(tenanted, NORTH_ADMIN) == 500
    assert whoami(tenanted, BAKERY) == 503
    assert whoami(tenanted, GLOBEX) == 200


def test_the_operators_rule_matches_the_organization_a_request_acts_in(
    tenanted: Servers,  # noqa: F811
) -> None:
    operator = rule(tenanted, None, {"organizationId": CHILD_ORG}, "503")
    assert "tenant" not in operator
    assert whoami(tenanted, NORTH_ADMIN, CHILD_ORG) == 503
    assert whoami(tenanted, BAKERY) == 503
    assert whoami(tenanted, NORTH_ADMIN) == 200
    # not a tenant's to list or delete: neither the child's nor the parent's
    assert listed_rules(tenanted, BAKERY) == listed_rules(tenanted, NORTH_ADMIN) == []
    assert tenanted("DELETE", f"/_mock/rules/{operator['ruleId']}", BAKERY)[0] == 404
    assert tenanted("DELETE", "/_mock/rules", BAKERY)[2] == {"deleted": 0}
    assert listed_rules(tenanted, None) == [operator["ruleId"]]


def test_a_parents_request_in_its_child_is_numbered_in_the_parents_journal(
    tenanted: Servers,  # noqa: F811
) -> None:
    sent = [(BAKERY, None), (NORTH_ADMIN, CHILD_ORG), (BAKERY, None), (NORTH_ADMIN, None)]
    ids = []
    for key, acting_in in sent:
        status, headers, _ = tenanted("GET", "/v1/whoami", key, headers=_in(acting_in))
        assert status == 200
        ids.append(headers["x-request-id"])

    def journal(key: str) -> list[tuple[int, str]]:
        status, _, body = tenanted("GET", "/_mock/requests", key)
        assert status == 200, body
        return [(e["sequence"], e["requestId"]) for e in body["items"]]

    assert journal(NORTH_ADMIN) == [(2, ids[3]), (1, ids[1])]
    assert journal(BAKERY) == [(2, ids[2]), (1, ids[0])]


def test_who_made_a_rule_travels_with_an_export(tenanted: Servers) -> None:  # noqa: F811
    north = rule(tenanted, NORTH_ADMIN, {}, "500")
    status, _, document = tenanted("GET", "/_mock/state")
    assert status == 200
    assert document["rules"]["rules"][0]["tenant"] == NORTH_ORG
    assert tenanted("POST", "/_mock/reset", None, {})[0] == 200
    status, _, answer = tenanted("PUT", "/_mock/state", None, document)
    assert status == 200, answer
    assert listed_rules(tenanted, NORTH_ADMIN) == [north["ruleId"]]
    assert whoami(tenanted, NORTH_ADMIN, CHILD_ORG) == 500
    # an export made before rules carried their maker: every rule is then the operator's,
    # matching the organization a request acts in (its match names North: not Bakery)
    del document["rules"]["rules"][0]["tenant"]
    status, _, answer = tenanted("PUT", "/_mock/state", None, document)
    assert status == 200, answer
    assert listed_rules(tenanted, NORTH_ADMIN) == []
    assert listed_rules(tenanted, None) == [north["ruleId"]]
    assert whoami(tenanted, NORTH_ADMIN, CHILD_ORG) == 200
    assert whoami(tenanted, NORTH_ADMIN) == 500
