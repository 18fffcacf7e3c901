"""A header sent more than once. HTTP joins the lines of a list field into one list (RFC 9110
section 5.3); a field that holds one value and comes twice is the client's mistake, and which
line the mock read was an accident of how it built its header map (the last): two
Idempotency-Keys stored the answer under the second, and a parent key acted in whichever
organization its last X-Layers-Organization named."""

from __future__ import annotations

import pytest
from support import CHILD_ORG, FULL, GLOBEX, GLOBEX_ORG, NORTH_ADMIN, PROJECT, Mock

CREATE = f"/v1/projects/{PROJECT}/influencers"


def listed(mock: Mock) -> list[str]:
    page = mock.client.get(CREATE, headers={"Authorization": f"Bearer {FULL}"}).json()
    return [item["influencerId"] for item in page["items"]]


@pytest.mark.parametrize("second", ["b", "a"])
def test_an_idempotency_key_sent_twice_is_422_and_nothing_is_made(mock: Mock, second: str) -> None:
    first = mock.create(json={}, headers={"Idempotency-Key": "a"})
    assert first.status_code == 202
    before = listed(mock)
    headers = [("Authorization", f"Bearer {FULL}"), ("Idempotency-Key", "a")]
    twice = mock.client.post(CREATE, json={}, headers=[*headers, ("Idempotency-Key", second)])
    assert twice.status_code == 422, twice.text  # not a replay of "a", not a new job under "b"
    error = twice.json()["error"]
    assert error["message"] == "Invalid header."
    assert error["details"]["fieldErrors"] == {
        "Idempotency-Key": ["Given more than once; send Idempotency-Key once."]
    }
    assert listed(mock) == before
    again = mock.create(json={}, headers={"Idempotency-Key": "b"})
    assert again.status_code == 202  # "b" was never stored
    assert again.json()["jobId"] != first.json()["jobId"]


@pytest.mark.parametrize("organizations", [(GLOBEX_ORG, CHILD_ORG), (CHILD_ORG, CHILD_ORG)])
def test_x_layers_organization_sent_twice_is_one_list_naming_no_organization(
    mock: Mock, organizations: tuple[str, str]
) -> None:
    """Joined as HTTP joins a field's lines: `org_a, org_b` names no organization (as a
    malformed value does), instead of acting in the child the last line named."""
    headers = [("Authorization", f"Bearer {NORTH_ADMIN}")]
    headers += [("X-Layers-Organization", org) for org in organizations]
    whoami = mock.client.get("/v1/whoami", headers=headers)
    assert whoami.status_code == 404, whoami.text
    assert whoami.json()["error"]["code"] == "NOT_FOUND"


def test_if_none_match_is_a_list_of_tags(mock: Mock) -> None:
    """RFC 9110 section 13.1.2: a 304 when any tag of the list matches (a cache that holds
    two versions sends both); it was compared whole, and two lines by the last only."""
    job_id = mock.create(json={}).json()["jobId"]
    etag = mock.job(job_id).headers["etag"]
    auth = [("Authorization", f"Bearer {FULL}")]
    for tags in ([f'"stale", {etag}'], [f'W/{etag}, "stale"'], [etag, '"stale"'], ['"s"', etag]):
        headers = auth + [("If-None-Match", tag) for tag in tags]
        answer = mock.client.get(f"/v1/jobs/{job_id}", headers=headers)
        assert answer.status_code == 304, (tags, answer.status_code)
        assert answer.headers["etag"] == etag and answer.content == b""
    stale = [*auth, ("If-None-Match", '"stale", W/"other"')]
    assert mock.client.get(f"/v1/jobs/{job_id}", headers=stale).status_code == 200


@pytest.mark.parametrize("second", [GLOBEX, FULL])
def test_authorization_sent_twice_is_malformed_401(mock: Mock, second: str) -> None:
    """Whose key answers is no guess: it was the last line's (Node keeps the first), and on
    Redis the read's rate window was counted for the first. Its lines are one value, as
    HTTP joins them, which names no key."""
    headers = [("Authorization", f"Bearer {FULL}"), ("Authorization", f"Bearer {second}")]
    answer = mock.client.get("/v1/whoami", headers=headers)
    assert answer.status_code == 401, answer.text
    assert answer.json()["error"]["code"] == "UNAUTHENTICATED"
    made = mock.client.post(CREATE, json={}, headers=headers)
    assert made.status_code == 401
