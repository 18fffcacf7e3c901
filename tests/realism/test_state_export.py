"""GET /_mock/state then PUT /_mock/state into a fresh server (issue 4, State that survives)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from support import FULL, GLOBEX, PROJECT, SEED, STANDARD, Mock, auth, make_mock

DESCRIPTION = "d" * 120
Step = Callable[[Mock], httpx.Response]


def before(mock: Mock) -> dict[str, str]:
    """History that the export must carry: records, idempotency, rates, rules, clock, counters."""
    plain = mock.create().json()
    keyed = mock.create(
        STANDARD, headers={"Idempotency-Key": "k-1"}, json={"gender": "male"}
    ).json()
    project = mock.client.post(
        "/v1/projects",
        headers=auth(STANDARD, **{"Idempotency-Key": "p-1"}),
        json={"name": "Exported", "timezone": "UTC", "appDescription": DESCRIPTION},
    ).json()
    mock.advance(20)
    mock.client.patch(
        f"/v1/influencers/{plain['influencerId']}", headers=auth(), json={"prompt": "hi"}
    )
    mock.client.post(
        "/_mock/rules", json={"match": {"operationId": "whoami"}, "fault": "503", "count": 2}
    )
    mock.client.get("/v1/whoami", headers=auth(STANDARD))  # one 503 spent, one left
    mock.client.post("/_mock/rules", json={"match": {}, "fault": "500", "probability": 0.3})
    for _ in range(3):  # draws of its chance: the import's go on from the 4th (`drawn`)
        mock.client.get("/v1/credits", headers=auth())
    return {"plain": plain["jobId"], "keyed": keyed["jobId"], "project": project["id"]}


def after(ids: dict[str, str]) -> list[Step]:
    """Requests after the export; each is sent to both servers and must answer the same bytes."""
    create_again = {"headers": {"Idempotency-Key": "k-1"}, "json": {"gender": "male"}}
    return [
        lambda m: m.create(STANDARD, **create_again),  # replay of a pre-export record
        lambda m: m.client.post(
            "/v1/projects",
            headers=auth(STANDARD, **{"Idempotency-Key": "p-1"}),
            json={"name": "Exported", "timezone": "UTC", "appDescription": DESCRIPTION},
        ),
        lambda m: m.create(STANDARD, headers={"Idempotency-Key": "k-1"}, json={"gender": "female"}),
        lambda m: m.create(),  # ids minted after the import
        lambda m: m.create(headers={"Idempotency-Key": "k-2"}),
        lambda m: m.create(project=ids["project"]),
        lambda m: m.client.get("/v1/whoami", headers=auth(STANDARD)),  # rule with one use left
        lambda m: m.client.get("/v1/whoami", headers=auth(STANDARD)),
        lambda m: m.job(ids["plain"]),
        lambda m: m.job(ids["keyed"], STANDARD),
        lambda m: m.client.post("/_mock/clock/advance", json={"seconds": 40}),
        lambda m: m.job(ids["plain"]),
        lambda m: m.client.post(f"/v1/jobs/{ids['keyed']}/cancel", headers=auth()),
        lambda m: m.client.get(f"/v1/projects/{PROJECT}/influencers", headers=auth()),
        lambda m: m.client.get(f"/v1/projects/{ids['project']}/influencers", headers=auth()),
        lambda m: m.client.get(f"/v1/projects/{ids['project']}", headers=auth()),
        *[lambda m: m.create(STANDARD) for _ in range(22)],  # runs into the rate limit
        lambda m: m.client.get("/_mock/rules"),
        lambda m: m.client.get("/_mock/clock"),
    ]


def answer(response: httpx.Response) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    return response.status_code, list(response.headers.raw), response.content


def test_export_then_import_answers_every_later_request_identically(mock: Mock) -> None:
    ids = before(mock)
    exported = mock.client.get("/_mock/state")
    assert exported.status_code == 200
    document = exported.json()
    assert document["format"] == "layers-mock/state@2"
    assert len(document["idempotency"]) == 2
    fresh = make_mock(seed=SEED + 100)  # another seed: the import must bring the seed along
    with fresh.client:
        fresh.create(
            GLOBEX, "prj_7b3e9d21-4a5c-4f6e-8d9b-0c1a2e3f4b5d"
        )  # history the import replaces
        imported = fresh.client.put("/_mock/state", json=document)
        assert imported.json() == {"status": "imported"}
        for n, step in enumerate(after(ids)):
            original, copy = answer(step(mock)), answer(step(fresh))
            assert copy == original, f"step {n} differs"
        assert fresh.client.get("/_mock/state").json() == mock.client.get("/_mock/state").json()


def test_the_sequence_after_import_is_not_trivially_equal(mock: Mock) -> None:
    """Guard for the test above: without the import a fresh server answers differently."""
    ids = before(mock)
    fresh = make_mock(seed=SEED)
    with fresh.client:
        differs = [answer(step(mock)) != answer(step(fresh)) for step in after(ids)]
    assert all(differs[:10])


def test_a_document_that_is_not_an_export_is_422_and_changes_nothing(mock: Mock) -> None:
    created = mock.create().json()
    for bad in (
        {"format": "other"},
        {"format": "layers-mock/state@2"},
        {"format": "layers-mock/state@2", "seed": "x"},
    ):
        response = mock.client.put("/_mock/state", json=bad)
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "VALIDATION"
    assert mock.job(created["jobId"]).status_code == 200


def test_export_lists_every_part_of_the_state(mock: Mock) -> None:
    before(mock)
    document = mock.client.get("/_mock/state").json()
    for part in (
        "organizations",
        "keys",
        "projects",
        "influencers",
        "jobs",
        "idempotency",
        "clock",
        "seed",
        "mint",
        "rates",
        "rules",
    ):
        assert part in document
    assert len(document["influencers"]) == len(document["jobs"]) == 3
    assert document["clock"]["nowMs"] == 1_767_225_620_000
    assert document["seed"] == SEED
    assert len(document["rules"]["rules"]) == 2
    assert FULL in {k["key"] for k in document["keys"]}


def test_an_export_of_another_format_is_told_by_its_format_first(mock: Mock) -> None:
    """An export a later version wrote (`layers-mock/state@3`, its header of another shape)
    was answered with what its header lacks ("keys: must be a list of rows."), as if it were
    this version's export cut short; the format is what tells the user why."""
    exported = mock.client.get("/_mock/state").text
    later = exported.replace('"layers-mock/state@2"', '"layers-mock/state@3"', 1)
    for body in (later, '{"format": "layers-mock/state@3", "organizations": []}'):
        response = mock.client.put(
            "/_mock/state", content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code == 422, response.text
        problems = response.json()["error"]["details"]["formErrors"]
        assert problems == [
            "State document: format: must be layers-mock/state@2 (it is layers-mock/state@3)."
        ]
