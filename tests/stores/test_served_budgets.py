"""Rate-limit budgets as a client sees them, the same on every store: a server in memory, on a
SQLite file, and on Redis (one worker, or two taking turns). Memory is the reference: a reset
gives back every window of the keys it resets, and only theirs.

On Redis the reads are counted in Redis itself (http/shared.py), not in the committed state,
so a reset has to drop those counters too: before it did not, and as a reset returns the clock
to its start the minute numbers repeat, so a `standard` key spent before a reset was still 429
(remaining 0) after it.
"""

from __future__ import annotations

import pytest
from every_store import READS, Servers, served  # noqa: F401 - a fixture
from support import ACME_ORG, BAKERY, CHILD_ORG, FULL, PROJECT, STANDARD

CREATES = 20  # a `standard` key's long-running budget a minute


def test_a_global_reset_gives_back_a_spent_read_budget(served: Servers) -> None:  # noqa: F811
    served.spend_reads(STANDARD)
    status, _, _ = served("POST", "/_mock/reset")
    assert status == 200
    assert served.remaining_reads(STANDARD) == (200, str(READS - 1))


def test_an_organizations_reset_gives_back_its_read_budgets_and_no_others(
    served: Servers,  # noqa: F811
) -> None:
    served.spend_reads(STANDARD)
    served.spend_reads(BAKERY)
    status, _, _ = served("POST", "/_mock/reset", STANDARD, {"organizationId": ACME_ORG})
    assert status == 200
    assert served.remaining_reads(STANDARD) == (200, str(READS - 1))
    assert served.remaining_reads(BAKERY) == (429, "0")  # another organization's: still spent
    status, _, _ = served("POST", "/_mock/reset", BAKERY, {"organizationId": CHILD_ORG})
    assert status == 200
    assert served.remaining_reads(BAKERY) == (200, str(READS - 1))


def test_a_reset_gives_back_an_organizations_own_clock_budget(served: Servers) -> None:  # noqa: F811
    """An organization on a clock of its own, ten minutes ahead, spends its reads there; its
    reset returns it to the server clock (minute 0): its budget is whole again, as it is after
    a global reset that returns every clock to its start."""
    moved = served("POST", f"/_mock/organizations/{ACME_ORG}/clock/advance", None, {"seconds": 600})
    assert moved[0] == 200
    served.spend_reads(STANDARD)
    status, _, _ = served("POST", "/_mock/reset", None, {"organizationId": ACME_ORG})
    assert status == 200
    assert served.remaining_reads(STANDARD) == (200, str(READS - 1))
    moved = served("POST", "/_mock/clock/advance", None, {"seconds": 600})
    assert moved[0] == 200  # the server clock at the minute spent on the organization's own
    assert served.remaining_reads(STANDARD) == (200, str(READS - 1))


def test_a_read_budget_follows_the_clock(served: Servers) -> None:  # noqa: F811
    """Spent, it stays spent while the clock stands still or moves within the minute, and is
    whole in the next minute."""
    served.spend_reads(STANDARD)
    assert served("POST", "/_mock/clock/advance", None, {"seconds": 59})[0] == 200
    assert served.remaining_reads(STANDARD) == (429, "0")
    assert served("POST", "/_mock/clock/advance", None, {"seconds": 1})[0] == 200
    assert served.remaining_reads(STANDARD) == (200, str(READS - 1))


@pytest.mark.parametrize("organization", [False, True], ids=["global", "organization"])
def test_a_reset_gives_back_a_spent_write_budget(served: Servers, organization: bool) -> None:  # noqa: F811
    body = {"gender": "female"}
    path = f"/v1/projects/{PROJECT}/influencers"
    for n in range(CREATES):
        status, headers, _ = served("POST", path, STANDARD, body)
        assert (status, headers["x-ratelimit-remaining"]) == (202, str(CREATES - n - 1))
    assert served("POST", path, STANDARD, body)[0] == 429
    reset = {"organizationId": ACME_ORG} if organization else None
    assert served("POST", "/_mock/reset", FULL if organization else None, reset)[0] == 200
    status, headers, _ = served("POST", path, STANDARD, body)
    assert (status, headers["x-ratelimit-remaining"]) == (202, str(CREATES - 1))


def test_an_import_brings_back_the_read_budgets_it_exported(served: Servers) -> None:  # noqa: F811
    """An export holds each key's windows; importing it after a reset puts them back, with
    the clock: the spent key is spent again, in the same minute."""
    served.spend_reads(STANDARD)
    status, _, exported = served("GET", "/_mock/state")
    assert status == 200
    assert served("POST", "/_mock/reset")[0] == 200
    assert served.remaining_reads(STANDARD) == (200, str(READS - 1))
    status, _, _ = served("PUT", "/_mock/state", None, exported)
    assert status == 200
    assert served.remaining_reads(STANDARD) == (429, "0")


def test_an_export_holds_the_reads_other_workers_counted(served: Servers) -> None:  # noqa: F811
    """On Redis an export came from one worker's copy, which held only the windows of the
    reads that worker answered: 100 reads on one worker and 20 on the other, exported from
    the first, imported, left the key 20 reads it had spent (memory: none)."""
    last = len(served.workers) - 1
    for n in range(READS):
        served.turn = 0 if n < 100 else last
        assert served("GET", "/v1/whoami", STANDARD)[0] == 200
    served.turn = 0
    status, _, exported = served("GET", "/_mock/state")
    assert status == 200
    assert served("POST", "/_mock/reset")[0] == 200
    assert served("PUT", "/_mock/state", None, exported)[0] == 200
    served.turn = 0
    assert served.remaining_reads(STANDARD) == (429, "0")
