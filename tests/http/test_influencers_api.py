"""Reading, listing, patching and deleting influencers."""

from __future__ import annotations

from support import PROJECT, Mock, auth

LIST = f"/v1/projects/{PROJECT}/influencers"


def create_many(mock: Mock, count: int) -> list[str]:
    return [mock.create(json={}).json()["influencerId"] for _ in range(count)]


def test_list_is_newest_first_and_paginates_with_an_opaque_cursor(mock: Mock) -> None:
    ids = create_many(mock, 7)
    pages, cursor = [], None
    while True:
        query = f"?limit=3&cursor={cursor}" if cursor else "?limit=3"
        body = mock.client.get(LIST + query, headers=auth()).json()
        pages.append([i["influencerId"] for i in body["items"]])
        cursor = body["nextCursor"]
        if cursor is None:
            break
    assert pages == [ids[6:3:-1], ids[3:0:-1], ids[0:1]]


def test_default_limit_is_25(mock: Mock) -> None:
    create_many(mock, 26)
    body = mock.client.get(LIST, headers=auth()).json()
    assert len(body["items"]) == 25 and body["nextCursor"]


def test_status_filter(mock: Mock) -> None:
    ready = mock.create(json={}).json()["influencerId"]
    mock.advance(60)
    pending = mock.create(json={}).json()["influencerId"]
    by_status = {
        s: [
            i["influencerId"]
            for i in mock.client.get(f"{LIST}?status={s}", headers=auth()).json()["items"]
        ]
        for s in ("ready", "pending", "training", "failed")
    }
    assert by_status == {"ready": [ready], "pending": [pending], "training": [], "failed": []}


def test_delete_is_soft_and_a_second_delete_is_404(mock: Mock) -> None:
    accepted = mock.create(json={}).json()
    keep = mock.create(json={}).json()["influencerId"]
    url = f"/v1/influencers/{accepted['influencerId']}"
    response = mock.client.delete(url, headers=auth())
    assert response.status_code == 200
    assert response.json() == {
        "influencerId": accepted["influencerId"],
        "status": "deleted",
        "deletedAt": "2026-01-01T00:00:00.000Z",
    }
    assert mock.client.delete(url, headers=auth()).status_code == 404
    assert mock.client.get(url, headers=auth()).status_code == 404
    assert mock.client.patch(url, headers=auth(), json={"name": "x"}).status_code == 404
    items = mock.client.get(LIST, headers=auth()).json()["items"]
    assert [i["influencerId"] for i in items] == [keep]
    assert mock.job(accepted["jobId"]).status_code == 200  # the job stays readable


def test_delete_accepts_a_reason_and_validates_it(mock: Mock) -> None:
    influencer = mock.create(json={}).json()["influencerId"]
    url = f"/v1/influencers/{influencer}"
    bad = mock.client.request("DELETE", url, headers=auth(), json={"reason": "x" * 1025})
    assert bad.status_code == 422
    ok = mock.client.request("DELETE", url, headers=auth(), json={"reason": "duplicate persona"})
    assert ok.status_code == 200


def test_patch_overrides_and_survives_completion(mock: Mock) -> None:
    influencer = mock.create(json={}).json()["influencerId"]
    mock.advance(10)
    response = mock.client.patch(
        f"/v1/influencers/{influencer}",
        headers=auth(),
        json={"name": "Nova Park", "brandVoice": "witty", "language": "es-MX", "ageRange": None},
    )
    assert response.status_code == 200
    patched = response.json()
    assert (patched["name"], patched["brandVoice"], patched["language"], patched["ageRange"]) == (
        "Nova Park",
        "witty",
        "es-MX",
        None,
    )
    assert patched["updatedAt"] == "2026-01-01T00:00:10.000Z"
    mock.advance(60)
    ready = mock.influencer(influencer).json()
    assert (ready["status"], ready["name"]) == ("ready", "Nova Park")
