"""Idempotency-Key: replays are verbatim, other bodies conflict, rejections are not stored."""

from __future__ import annotations

import asyncio

import httpx
from support import FULL, HTTP_TIMEOUT_S, PROJECT, Mock, auth, make_mock, running_server

OPERATION_HEADERS = ("location", "content-type", "content-length")


def key(value: str) -> dict[str, dict[str, str]]:
    return {"headers": {"Idempotency-Key": value}}


def test_replay_is_the_first_answer_verbatim(mock: Mock) -> None:
    first = mock.create(json={"gender": "male"}, **key("k-1"))
    mock.advance(30)
    again = mock.create(json={"gender": "male"}, **key("k-1"))
    assert again.status_code == first.status_code == 202
    assert again.content == first.content
    for name in OPERATION_HEADERS:
        assert again.headers[name] == first.headers[name]
    assert again.headers["x-request-id"] != first.headers["x-request-id"]
    listing = mock.client.get(f"/v1/projects/{PROJECT}/influencers", headers=auth()).json()
    assert len(listing["items"]) == 1


def test_same_body_compared_as_parsed_json(mock: Mock) -> None:
    first = mock.create(
        content=b'{"gender":"male","ageRange":"adult"}',
        headers={"Content-Type": "application/json", "Idempotency-Key": "k-2"},
    )
    again = mock.create(
        content=b'{ "ageRange": "adult",  "gender": "male" }',
        headers={"Content-Type": "application/json", "Idempotency-Key": "k-2"},
    )
    assert again.content == first.content


def test_same_key_other_body_is_409(mock: Mock) -> None:
    mock.create(json={"gender": "male"}, **key("k-3"))
    response = mock.create(json={"gender": "female"}, **key("k-3"))
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "IDEMPOTENCY_CONFLICT"


def test_keys_are_scoped_per_api_key_and_path(mock: Mock) -> None:
    a = mock.create(json={}, **key("shared")).json()
    other_org = mock.create(
        key="lp_test_globexfull_M4nB7vC1xZ9lK6jH",
        project="prj_7b3e9d21-4a5c-4f6e-8d9b-0c1a2e3f4b5d",
        json={},
        **key("shared"),
    ).json()
    assert a["jobId"] != other_org["jobId"]


def test_a_rejected_request_is_evaluated_afresh(mock: Mock) -> None:
    assert mock.create(json={"gender": "robot"}, **key("k-4")).status_code == 422
    assert mock.create(json={"gender": "male"}, **key("k-4")).status_code == 202


def test_window_is_24_hours_of_mock_time(mock: Mock) -> None:
    first = mock.create(json={}, **key("k-5")).json()
    mock.advance(24 * 3600 - 1)
    assert mock.create(json={}, **key("k-5")).json() == first
    mock.advance(1)
    assert mock.create(json={}, **key("k-5")).json()["jobId"] != first["jobId"]


def test_keyed_ids_depend_on_seed_and_key_not_on_order() -> None:
    a, b = make_mock(), make_mock()
    a.create(json={})
    a.create(json={})
    assert (
        a.create(json={}, **key("k-6")).json()["influencerId"]
        == b.create(json={}, **key("k-6")).json()["influencerId"]
    )


def test_patch_and_delete_replay(mock: Mock) -> None:
    influencer = mock.create(json={}).json()["influencerId"]
    url = f"/v1/influencers/{influencer}"
    first = mock.client.patch(url, json={"name": "Nova"}, headers=auth(**{"Idempotency-Key": "p"}))
    mock.advance(5)
    again = mock.client.patch(url, json={"name": "Nova"}, headers=auth(**{"Idempotency-Key": "p"}))
    assert again.content == first.content
    conflict = mock.client.patch(
        url, json={"name": "Ava"}, headers=auth(**{"Idempotency-Key": "p"})
    )
    assert conflict.status_code == 409


def test_twenty_concurrent_creates_with_one_key_make_one_influencer() -> None:
    mock = make_mock()  # strict: a contract violation would surface as a 500 here

    async def burst(base: str) -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            headers = {
                "Authorization": f"Bearer {FULL}",
                "Idempotency-Key": "burst",
                "Prefer": "latency=50",  # keep every request in flight at once
            }
            return await asyncio.gather(
                *(
                    client.post(
                        f"/v1/projects/{PROJECT}/influencers",
                        json={"gender": "male"},
                        headers=headers,
                    )
                    for _ in range(20)
                )
            )

    with running_server(mock.client.app) as base:
        responses = asyncio.run(burst(base))
        listing = httpx.get(
            f"{base}/v1/projects/{PROJECT}/influencers", headers=auth(), timeout=HTTP_TIMEOUT_S
        ).json()
    assert {r.status_code for r in responses} == {202}
    assert len({r.content for r in responses}) == 1
    assert len(listing["items"]) == 1


# -- CONTRACT.md "Changes" 2026-12-01 and issue 9 D2 -------------------------------------------


def test_a_delete_retried_after_a_lost_answer_gets_its_200_again(mock: Mock) -> None:
    influencer = mock.create(json={}).json()["influencerId"]
    url = f"/v1/influencers/{influencer}"
    first = mock.client.delete(url, headers=auth(**{"Idempotency-Key": "gone"}))
    assert first.status_code == 200
    again = mock.client.delete(url, headers=auth(**{"Idempotency-Key": "gone"}))
    assert (again.status_code, again.content) == (200, first.content)  # not the 404 it is now
    assert mock.client.delete(url, headers=auth()).status_code == 404  # without the key: 404


def test_a_patch_replays_even_after_its_influencer_was_deleted(mock: Mock) -> None:
    influencer = mock.create(json={}).json()["influencerId"]
    url = f"/v1/influencers/{influencer}"
    first = mock.client.patch(url, json={"name": "Nova"}, headers=auth(**{"Idempotency-Key": "n"}))
    mock.client.delete(url, headers=auth())
    again = mock.client.patch(url, json={"name": "Nova"}, headers=auth(**{"Idempotency-Key": "n"}))
    assert (again.status_code, again.content) == (200, first.content)
    other = mock.client.patch(url, json={"name": "Ava"}, headers=auth(**{"Idempotency-Key": "n"}))
    assert other.status_code == 409  # a different body is a conflict, before the 404
    assert other.json()["error"]["code"] == "IDEMPOTENCY_CONFLICT"
    fresh = mock.client.patch(url, json={"name": "Ava"}, headers=auth(**{"Idempotency-Key": "m"}))
    assert fresh.status_code == 404  # no stored answer: the order of checks is unchanged


def test_a_replay_repeats_every_header_but_the_request_id_and_the_rate_limit(mock: Mock) -> None:
    from support import STANDARD

    first = mock.create(STANDARD, json={"gender": "male"}, **key("h"))
    again = mock.create(STANDARD, json={"gender": "male"}, **key("h"))
    assert again.content == first.content
    for name, value in first.headers.items():
        if name == "x-request-id":
            assert again.headers[name] != value
        elif name == "x-ratelimit-remaining":  # the replay counted against the bucket
            assert int(again.headers[name]) == int(value) - 1
        elif not name.startswith("x-ratelimit-"):
            assert again.headers[name] == value, name
    assert set(again.headers) == set(first.headers)


def test_a_key_reused_after_its_record_was_evicted_mints_new_ids(mock: Mock) -> None:
    mock.deps.sim.state.idempotency.max_records = 2
    first = mock.create(json={}, **key("old")).json()
    mock.create(json={}, **key("two"))
    mock.create(json={}, **key("three"))  # "old" is evicted: the oldest goes first
    renamed = mock.client.patch(
        f"/v1/influencers/{first['influencerId']}", json={"name": "Kept"}, headers=auth()
    )
    assert renamed.status_code == 200
    again = mock.create(json={}, **key("old")).json()
    assert again["influencerId"] != first["influencerId"]
    assert again["jobId"] != first["jobId"]
    assert mock.influencer(first["influencerId"]).json()["name"] == "Kept"
    listing = mock.client.get(f"/v1/projects/{PROJECT}/influencers", headers=auth()).json()
    ids = [i["influencerId"] for i in listing["items"]]
    assert len(ids) == len(set(ids)) == 4


def test_records_are_bounded_by_bytes_as_well_as_by_count(mock: Mock) -> None:
    records = mock.deps.sim.state.idempotency
    first = mock.create(json={}, **key("first")).json()
    records.max_bytes = records.size_bytes * 3  # room for three answers like this one
    latest = [mock.create(json={}, **key(f"k{n}")).json() for n in range(10)]
    assert mock.create(json={}, **key("first")).json() != first  # evicted: a new create
    assert mock.create(json={}, **key("k9")).json() == latest[-1]  # the newest still replay
