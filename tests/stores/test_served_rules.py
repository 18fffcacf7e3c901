"""A rule of the operator's for an organization the server does not have is a 422 naming the
field, on every store: it was a 201 for a rule that could never fire (a tenant's is a 404, as
another organization's is)."""

from __future__ import annotations

from every_store import Servers, served  # noqa: F401 - a fixture
from support import ACME_ORG, STANDARD


def test_an_operators_rule_for_an_unknown_organization_is_a_422_naming_it(
    served: Servers,  # noqa: F811
) -> None:
    rule = {"match": {"organizationId": "org_nope"}, "fault": "503"}
    status, _, refused = served("POST", "/_mock/rules", None, rule)
    assert status == 422, refused
    error = refused["error"]
    assert (error["code"], error["message"]) == ("VALIDATION", "Invalid body.")
    assert error["details"]["fieldErrors"] == {
        "match": [
            "match.organizationId: the server has no organization 'org_nope' "
            "(GET /_mock/fixtures lists them)."
        ]
    }
    assert served("GET", "/_mock/rules")[2]["items"] == []
    # named without its prefix, as everywhere else: the rule fires on that organization
    rule["match"]["organizationId"] = ACME_ORG.removeprefix("org_")
    status, _, added = served("POST", "/_mock/rules", None, rule)
    assert status == 201, added
    assert added["match"]["organizationId"] == ACME_ORG
    assert served("GET", "/v1/whoami", STANDARD)[0] == 503
