"""A tenant's add of a rule is refused by its own bound only, on every store, in the route and
in an import. Before, the server's 1,000 rules were one total: once it was full (the operator's
rules, or another organization's), a tenant's add was a 409 "There are already 1000 rules",
telling it that rules it can neither see nor delete exist, and one busy organization stopped
every other from adding any. Now the operator holds at most MAX_RULES rules of its own and each
organization MAX_TENANT_RULES of its own; neither counts the other's."""

from __future__ import annotations

from typing import Any

import pytest
from every_store import Servers, tenanted  # noqa: F401 - a fixture
from support import ACME_ORG, FULL, GLOBEX, GLOBEX_ORG

from layers_mock_server.core import rules
from layers_mock_server.core.rules import MAX_RULES, MAX_TENANT_RULES

RULE = {"match": {}, "latencyMs": 1}


def add(served: Servers, key: str | None) -> tuple[int, str]:
    """The status of adding RULE as `key` (None: the operator), and the 409's sentence."""
    status, _, body = served("POST", "/_mock/rules", key, dict(RULE, match={}))
    if status == 409:
        assert body["error"]["code"] == "CONFLICT", body
        return status, body["error"]["message"]
    assert status == 201, body
    return status, body["ruleId"]


def operators_full(bound: int) -> str:
    return f"There are already {bound} rules of the operator; delete some before adding more."


def tenants_full(bound: int) -> str:
    return f"There are already {bound} rules of this organization; delete some before adding more."


def test_a_tenants_add_is_refused_by_its_own_bound_only(
    tenanted: Servers,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(rules, "MAX_RULES", 3)
    monkeypatch.setattr(rules, "MAX_TENANT_RULES", 2)
    mine = [add(tenanted, None) for _ in range(3)]
    assert [status for status, _ in mine] == [201] * 3
    assert add(tenanted, None) == (409, operators_full(3))
    # the operator's rules are its own: a tenant still adds up to its own bound
    assert [add(tenanted, FULL)[0] for _ in range(2)] == [201, 201]
    assert add(tenanted, FULL) == (409, tenants_full(2))  # nothing of anyone else's
    assert [add(tenanted, GLOBEX)[0] for _ in range(2)] == [201, 201]
    # and the tenants' rules do not count against the operator's
    status, _, _ = tenanted("DELETE", f"/_mock/rules/{mine[0][1]}")
    assert status == 200
    assert add(tenanted, None)[0] == 201
    assert add(tenanted, None) == (409, operators_full(3))
    status, _, listed = tenanted("GET", "/_mock/rules")
    assert status == 200 and len(listed["items"]) == 7, listed


def _rule(n: int, tenant: str | None) -> dict[str, Any]:
    rule: dict[str, Any] = {
        "ruleId": f"rule_{n}",
        "match": {"path": f"/nowhere/{n}"},
        "latencyMs": 1,
        "remaining": None,
    }
    if tenant is not None:
        rule["tenant"] = tenant
    return rule


def _document(served: Servers, *makers: tuple[str | None, int]) -> dict[str, Any]:
    status, _, document = served("GET", "/_mock/state")
    assert status == 200, document
    made = [(tenant, n) for tenant, count in makers for n in range(count)]
    items = [_rule(n, tenant) for n, (tenant, _) in enumerate(made, start=1)]
    document["rules"] = {"next": len(items), "rules": items}
    return document


def test_an_import_holds_each_makers_full_bound_and_agrees_with_the_route(
    tenanted: Servers,  # noqa: F811
) -> None:
    full = _document(
        tenanted, (None, MAX_RULES), (ACME_ORG, MAX_TENANT_RULES), (GLOBEX_ORG, MAX_TENANT_RULES)
    )
    status, _, answer = tenanted("PUT", "/_mock/state", None, full)
    assert status == 200, answer
    status, _, exported = tenanted("GET", "/_mock/state")
    assert len(exported["rules"]["rules"]) == MAX_RULES + 2 * MAX_TENANT_RULES
    status, _, answer = tenanted("PUT", "/_mock/state", None, exported)  # the round trip
    assert status == 200, answer
    # each maker is at its own bound, and is told so in its own words
    assert add(tenanted, None) == (409, operators_full(MAX_RULES))
    assert add(tenanted, FULL) == (409, tenants_full(MAX_TENANT_RULES))
    assert add(tenanted, GLOBEX) == (409, tenants_full(MAX_TENANT_RULES))


def test_an_import_refuses_one_rule_of_the_operators_past_its_bound(
    tenanted: Servers,  # noqa: F811
) -> None:
    status, _, before = tenanted("GET", "/_mock/rules")
    over = _document(tenanted, (ACME_ORG, 1), (None, MAX_RULES + 1))
    status, _, answer = tenanted("PUT", "/_mock/state", None, over)
    assert status == 422, answer
    found = answer["error"]["details"]["formErrors"]
    expected = (
        f"State document: rules.rules[{MAX_RULES + 1}]: the operator made {MAX_RULES} rules "
        "already, as many as it may add."
    )
    assert expected in found, found
    assert tenanted("GET", "/_mock/rules")[2] == before  # nothing applied
