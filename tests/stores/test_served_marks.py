"""`GET /_mock/requests?after=<mark>` with a mark no reset answered is a 422 naming the latest
mark, on every store. On Redis (whose marks are commit numbers of the sandbox) any number was
taken: a future one answered an empty 200, as if nothing had been answered since a reset that
never happened, until enough commits made it mean some other moment."""

from __future__ import annotations

from every_store import Servers, served  # noqa: F401 - a fixture
from support import ACME_ORG, STANDARD


def test_a_mark_no_reset_answered_is_a_422_naming_the_latest(served: Servers) -> None:  # noqa: F811
    status, _, before = served("GET", "/_mock/requests", None, None, "after=1")
    assert status == 422, before
    assert before["error"]["details"]["fieldErrors"] == {
        "after": ["No reset answered mark 1: the latest this server handed out is 0."]
    }
    assert served("GET", "/v1/whoami", STANDARD)[0] == 200
    status, _, reset = served("POST", "/_mock/reset", STANDARD, {"organizationId": ACME_ORG})
    assert status == 200
    latest = reset["mark"]
    assert served("POST", "/_mock/reset")[2]["mark"] > latest  # a global reset's is later
    latest = served("POST", "/_mock/reset", STANDARD, {"organizationId": ACME_ORG})[2]["mark"]
    status, _, since = served("GET", "/_mock/requests", None, None, f"after={latest}")
    assert status == 200, since
    status, _, future = served("GET", "/_mock/requests", None, None, f"after={latest + 1}")
    assert status == 422, future
    error = future["error"]
    assert (error["code"], error["message"]) == ("VALIDATION", "Invalid query.")
    assert error["details"]["fieldErrors"] == {
        "after": [
            f"No reset answered mark {latest + 1}: the latest this server handed out is {latest}."
        ]
    }
