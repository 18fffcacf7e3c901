"""422 VALIDATION answers: named fields, body-level problems, and hostile input."""

from __future__ import annotations

import json
from typing import Any

import jsonschema_rs
import pytest
from support import PROJECT, Mock, auth

from layers_mock_server.validation import collect_errors

CREATE = f"/v1/projects/{PROJECT}/influencers"


def details(response: object) -> dict:  # type: ignore[type-arg]
    assert response.status_code == 422, response.text  # type: ignore[attr-defined]
    error = response.json()["error"]  # type: ignore[attr-defined]
    assert error["code"] == "VALIDATION"
    return error["details"]


def test_seed_example_name_is_server_generated(mock: Mock) -> None:
    response = mock.create(json={"name": "Ava"})
    assert response.json()["error"]["message"] == "Invalid body."
    assert details(response)["fieldErrors"] == {
        "name": ["Unrecognized key — name is server-generated."]
    }


def test_inherited_fields_say_why_and_other_unknown_fields_are_named(mock: Mock) -> None:
    fields = details(mock.create(json={"brandVoice": "witty", "language": "es", "vibe": "x"}))[
        "fieldErrors"
    ]
    assert "inherited from the project" in fields["brandVoice"][0]
    assert "PATCH" in fields["language"][0]
    assert fields["vibe"] == ["Unrecognized key."]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"gender": "robot"}, "gender"),
        ({"gender": None}, "gender"),
        ({"ageRange": "25-34"}, "ageRange"),
        ({"prompt": ""}, "prompt"),
        ({"prompt": "x" * 61}, "prompt"),
        ({"prompt": 7}, "prompt"),
    ],
)
def test_each_rule_names_its_field(mock: Mock, body: dict, field: str) -> None:  # type: ignore[type-arg]
    assert list(details(mock.create(json=body))["fieldErrors"]) == [field]


def test_no_body_and_empty_object_are_valid(mock: Mock) -> None:
    assert mock.create().status_code == 202
    assert mock.create(json={}).status_code == 202
    assert mock.create(content=b"", headers={"Content-Type": "application/json"}).status_code == 202


def test_defaults_follow_the_project(mock: Mock) -> None:
    created = mock.create(json={}).json()
    influencer = mock.influencer(created["influencerId"]).json()
    assert (influencer["gender"], influencer["ageRange"]) == ("female", "young_adult")
    assert (influencer["brandVoice"], influencer["language"]) == ("casual", "en")


@pytest.mark.parametrize(
    ("content", "content_type", "expected"),
    [
        (b'{"gender": "fem', "application/json", "not valid JSON"),
        (b'{"prompt": "\xff\xfe"}', "application/json", "not valid JSON"),
        (b"[" * 5000 + b"]" * 5000, "application/json", "not valid JSON"),
        (b"[1, 2]", "application/json", "JSON object"),
        (b'"female"', "application/json", "JSON object"),
        (b"gender=female", "application/x-www-form-urlencoded", "Content-Type"),
        (b'{"gender": "female"}', "text/plain", "Content-Type"),
    ],
    ids=["truncated", "invalid-utf8", "deeply-nested", "array", "string", "form", "text"],
)
def test_body_level_problems_are_form_errors(
    mock: Mock, content: bytes, content_type: str, expected: str
) -> None:
    response = mock.create(content=content, headers={"Content-Type": content_type})
    found = details(response)
    assert found["fieldErrors"] == {}
    assert expected in found["formErrors"][0]


def test_ten_megabyte_body_is_refused_cleanly(mock: Mock) -> None:
    huge = json.dumps({"prompt": "x" * (10 * 1024 * 1024)}).encode()
    assert (
        "larger than"
        in details(mock.create(content=huge, headers={"Content-Type": "application/json"}))[
            "formErrors"
        ][0]
    )


def test_rejected_create_leaves_nothing_behind(mock: Mock) -> None:
    mock.create(json={"gender": "robot"})
    listing = mock.client.get(CREATE, headers=auth()).json()
    assert listing["items"] == []


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=abc", "limit"),
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("status=done", "status"),
        ("cursor=%%%", "cursor"),
        ("cursor=eyJiZWZvcmUiOiAtMX0", "cursor"),
    ],
)
def test_bad_query_values_are_422(mock: Mock, query: str, field: str) -> None:
    response = mock.client.get(f"{CREATE}?{query}", headers=auth())
    assert response.json()["error"]["message"] == "Invalid query."
    assert field in details(response)["fieldErrors"]


@pytest.mark.parametrize("key", [b"", b"x" * 256, "caf\u00e9".encode(), b"tab\there"])
def test_malformed_idempotency_key_is_422(mock: Mock, key: bytes) -> None:
    response = mock.create(json={}, headers={"Idempotency-Key": key})  # type: ignore[dict-item]
    assert "Idempotency-Key" in details(response)["fieldErrors"]


def test_bad_prefer_value_is_422_and_unknown_preference_ignored(mock: Mock) -> None:
    assert (
        "Prefer"
        in details(mock.create(json={}, headers={"Prefer": "outcome=exploded"}))["fieldErrors"]
    )
    assert (
        mock.create(json={}, headers={"Prefer": "return=minimal, respond-async"}).status_code == 202
    )


def test_patch_needs_at_least_one_known_field(mock: Mock) -> None:
    influencer = mock.create(json={}).json()["influencerId"]
    url = f"/v1/influencers/{influencer}"
    assert details(mock.client.patch(url, headers=auth(), json={}))["formErrors"]
    assert (
        "gender"
        in details(mock.client.patch(url, headers=auth(), json={"gender": None}))["fieldErrors"]
    )
    assert (
        "imageUrl"
        in details(mock.client.patch(url, headers=auth(), json={"imageUrl": "x"}))["fieldErrors"]
    )
    assert details(mock.client.patch(url, headers=auth()))["formErrors"] == [
        "A JSON body is required."
    ]


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        ({"foo": 1}, "overrides.foo: Unrecognized key."),
        ({"foo": 1, "bar": 2}, "overrides.foo, overrides.bar: Unrecognized key."),
        ({"gender": "robot"}, "overrides.gender: Must be one of: "),
        ({"ageRange": 3}, "overrides.ageRange: Must be "),
    ],
)
def test_a_nested_field_is_named_in_its_message(mock: Mock, overrides: Any, says: str) -> None:
    source = mock.create(json={}).json()["influencerId"]
    answer = mock.client.post(
        f"/v1/influencers/{source}/clone",
        headers=auth(),
        json={"name": "Maria ES", "overrides": overrides},
    )
    messages = details(answer)["fieldErrors"]["overrides"]
    assert any(m.startswith(says) for m in messages), messages


def test_paths_are_named_at_every_depth() -> None:
    schema = {
        "type": "object",
        "properties": {
            "a": {
                "type": "object",
                "additionalProperties": False,
                "required": ["must"],
                "properties": {
                    "must": {"type": "string"},
                    "list": {
                        "type": "array",
                        "items": {"type": "object", "properties": {"n": {"type": "integer"}}},
                    },
                },
            },
            "top": {"type": "integer"},
        },
    }
    validator = jsonschema_rs.Draft202012Validator(schema)
    fields, form = collect_errors(
        validator, {"a": {"list": [{"n": 1}, {"n": "x"}], "odd": 1}, "top": "x"}
    )
    assert form == []
    assert fields["top"] == ["Must be an integer."]  # one level: the key names it
    assert sorted(fields["a"]) == sorted(
        ["a.must: Required.", "a.list[1].n: Must be an integer.", "a.odd: Unrecognized key."]
    )
