"""A clock move the mock refuses names the field that was sent, with the number as it was
sent; and the clock moves in whole milliseconds, so a move below one is refused, not a 200
that moves nothing. The same on the server clock and on an organization's own."""

from __future__ import annotations

import pytest
from support import ACME_ORG, Mock

ROUTES = {
    "server": "/_mock/clock",
    "organization": f"/_mock/organizations/{ACME_ORG}/clock",
}
ROUTE_IDS = list(ROUTES)


def _refused(mock: Mock, path: str, body: dict[str, object]) -> dict[str, list[str]]:
    before = mock.client.get("/_mock/clock").json()["now"]
    answer = mock.client.post(path, json=body)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert (error["code"], error["message"], error["details"]["formErrors"]) == (
        "VALIDATION",
        "Invalid body.",
        [],
    )
    assert mock.client.get("/_mock/clock").json()["now"] == before  # nothing moved
    fields: dict[str, list[str]] = error["details"]["fieldErrors"]
    return fields


@pytest.mark.parametrize("route", ROUTE_IDS)
def test_a_move_past_the_end_names_seconds_with_the_number_sent(mock: Mock, route: str) -> None:
    fields = _refused(mock, f"{ROUTES[route]}/advance", {"seconds": 253402300800})
    assert fields == {
        "seconds": [
            "Cannot advance 253402300800 s from 2026-01-01T00:00:00.000Z: the clock ends at "
            "9999-12-31T23:59:59.999Z, 251635075199.999 s later."
        ]
    }


@pytest.mark.parametrize("route", ROUTE_IDS)
def test_a_jump_back_or_past_the_end_names_now(mock: Mock, route: str) -> None:
    assert mock.client.post(f"{ROUTES[route]}/advance", json={"seconds": 60}).status_code == 200
    fields = _refused(mock, f"{ROUTES[route]}/set", {"now": "2026-01-01T00:00:00.000Z"})
    assert fields == {
        "now": [
            "Cannot set the clock to 2026-01-01T00:00:00.000Z: it is already "
            "2026-01-01T00:01:00.000Z."
        ]
    }


@pytest.mark.parametrize("route", ROUTE_IDS)
@pytest.mark.parametrize("seconds", [0.0001, 1.0005, 59.9999])
def test_a_move_below_a_millisecond_is_refused_not_lost(
    mock: Mock, route: str, seconds: float
) -> None:
    fields = _refused(mock, f"{ROUTES[route]}/advance", {"seconds": seconds})
    assert fields == {
        "seconds": [
            f"The clock moves in whole milliseconds: {seconds} s is not a multiple of 0.001 s."
        ]
    }


@pytest.mark.parametrize("route", ROUTE_IDS)
def test_whole_milliseconds_move_exactly(mock: Mock, route: str) -> None:
    """Written in decimal, a float is rarely exact (1.001 * 1000 is 1000.9999999999999): a
    number that names whole milliseconds is taken as it was written."""
    for seconds in (0.001, 1.001, 0.3, 2.675, 0):
        moved = mock.client.post(f"{ROUTES[route]}/advance", json={"seconds": seconds})
        assert moved.status_code == 200, moved.text
    assert moved.json()["now"] == "2026-01-01T00:00:03.977Z"
