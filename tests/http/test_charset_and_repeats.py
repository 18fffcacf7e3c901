"""A JSON body is UTF-8, and a query parameter is given once: a body declared in another charset
and a repeated parameter are refused with the 422 that names what is wrong, on the partner API
and the control plane alike, before anything changes."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from support import PROJECT, auth, make_mock

SPECS = Path(__file__).resolve().parents[2] / "openapi"
CREATE = f"/v1/projects/{PROJECT}/influencers"


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json; charset=latin-9000",
        "application/json; charset=ISO-8859-1",
        'application/json; charset="latin1"',
        "application/json;charset=utf-16",
        "application/json; charset=",
        'application/json; charset="utf-8',
        "application/json; charset=utf-8; charset=koi8-r",
        "application/problem+json; charset=us-ascii",
    ],
)
def test_a_body_in_another_charset_is_refused_on_both_planes(content_type: str) -> None:
    mock = make_mock()
    headers = auth(**{"Content-Type": content_type})
    created = mock.client.post(CREATE, headers=headers, content=b'{"prompt": "x"}')
    advanced = mock.client.post(
        "/_mock/clock/advance", headers={"Content-Type": content_type}, content=b'{"seconds": 5}'
    )
    imported = mock.client.put(
        "/_mock/state", headers={"Content-Type": content_type}, content=b"{}"
    )
    for response in (created, advanced, imported):
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert (error["code"], error["message"]) == ("VALIDATION", "Invalid body.")
        assert "charset must be utf-8" in error["details"]["formErrors"][0]
    assert mock.client.get(CREATE, headers=auth()).json()["items"] == []
    assert mock.client.get("/_mock/clock").json()["now"] == "2026-01-01T00:00:00.000Z"


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "application/json;charset=UTF-8",
        'application/json; charset="Utf-8"',
        "application/json; boundary=x; charset=utf-8",
    ],
)
def test_a_utf8_body_is_read(content_type: str) -> None:
    mock = make_mock()
    headers = auth(**{"Content-Type": content_type})
    assert mock.client.post(CREATE, headers=headers, content=b'{"prompt": "x"}').status_code == 202
    advanced = mock.client.post(
        "/_mock/clock/advance", headers={"Content-Type": content_type}, content=b'{"seconds": 5}'
    )
    assert advanced.status_code == 200, advanced.text


def _queried() -> list[tuple[str, str]]:
    """(path, query parameter) of every GET that declares query parameters."""
    found = []
    for name in ("layers.yaml", "control.yaml"):
        spec = yaml.safe_load((SPECS / name).read_text())
        shared = spec.get("components", {}).get("parameters", {})
        for path, item in spec["paths"].items():
            for listed in item.get("get", {}).get("parameters", []):
                param = shared[listed["$ref"].rsplit("/", 1)[1]] if "$ref" in listed else listed
                if param["in"] == "query":
                    found.append((path.replace("{projectId}", PROJECT), param["name"]))
    return [(path, name) for path, name in found if "{" not in path]


QUERIED = _queried()
VALUES = {"limit": "2", "status": "ready", "after": "0"}


@pytest.mark.parametrize(("path", "name"), QUERIED, ids=[f"{p}?{n}" for p, n in QUERIED])
def test_a_repeated_query_parameter_is_named(path: str, name: str) -> None:
    """`?limit=2&limit=3` took the first and said nothing: which one wins is no contract."""
    mock = make_mock()
    value = VALUES.get(name, "x")
    response = mock.client.get(f"{path}?{name}={value}&{name}={value}", headers=auth())
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert (error["code"], error["message"]) == ("VALIDATION", "Invalid query.")
    assert error["details"]["fieldErrors"] == {name: [f"Given more than once; send {name} once."]}


def test_a_parameter_given_once_among_others_is_read() -> None:
    mock = make_mock()
    for _ in range(3):
        mock.create(json={})
    listed = mock.client.get(f"{CREATE}?limit=2&other=1&other=2", headers=auth())
    assert listed.status_code == 200
    assert len(listed.json()["items"]) == 2
