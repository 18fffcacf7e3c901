"""The dashboard's journal reads the chosen organization's own share, on every store (on Redis
the page fetches that share from every worker before it renders). It showed the newest entries
of all organizations whichever was chosen, so on a busy sandbox the chosen one's were not there,
and its entry would not open."""

from __future__ import annotations

from every_store import Servers, tenanted  # noqa: F401 - a fixture
from support import FULL, GLOBEX, GLOBEX_ORG


def test_the_dashboard_shows_and_opens_a_quiet_organizations_entry_after_anothers_burst(
    tenanted: Servers,  # noqa: F811
) -> None:
    status, headers, _ = tenanted("GET", "/v1/whoami", GLOBEX)
    assert status == 200
    request_id = headers["x-request-id"]
    for _ in range(1_000):  # Acme's burst: Globex's entry leaves the newest 1,000 of all
        tenanted("GET", "/v1/whoami", FULL)
    chosen = f"organizationId={GLOBEX_ORG}"
    status, _, share = tenanted("GET", "/_mock/requests", None, None, chosen)
    assert status == 200 and share["total"] == 1, share
    sequence = share["items"][0]["sequence"]  # the operator's number of it
    for page in ("/_mock/ui", "/_mock/ui/live"):
        status, _, html = tenanted("GET", page, None, None, chosen, text=True)
        assert status == 200, html
        assert html.count("<tr data-sequence=") == 1, page
        assert f'<tr data-sequence="{sequence}"' in html, page
    entry = f"/_mock/ui/requests/{sequence}"
    status, _, html = tenanted("GET", entry, None, None, chosen, text=True)
    assert status == 200 and request_id in html, html
    assert tenanted("GET", entry, None, None, "", text=True)[0] == 404  # not in the union

    # a tenant's page reads its own share, by its own numbers
    status, _, html = tenanted("GET", "/_mock/ui/live", GLOBEX, None, "", text=True)
    assert status == 200 and html.count('<tr data-sequence="1"') == 1, html
    status, _, html = tenanted("GET", "/_mock/ui/requests/1", GLOBEX, None, "", text=True)
    assert status == 200 and request_id in html, html
