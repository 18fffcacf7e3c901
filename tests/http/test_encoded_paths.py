"""An encoded slash (`%2F`) is part of its path segment, never a separator: routes are matched on
the path the client sent, as a deployment routing on the raw path does, on the fast path, through
Starlette's router and on a served socket alike."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import orjson
import pytest
import yaml
from support import FULL, HTTP_TIMEOUT_S, PROJECT, auth, make_mock, running_server

from layers_mock_server.http.app import build_app

SPECS = Path(__file__).resolve().parents[2] / "openapi"
METHODS = ("get", "post", "patch", "delete", "put")
PARAM = re.compile(r"\{[^}]+\}")


def _routes() -> list[tuple[str, str]]:
    found = []
    for name in ("layers.yaml", "control.yaml"):
        paths = yaml.safe_load((SPECS / name).read_text())["paths"]
        for path, item in paths.items():
            found += [(method.upper(), path) for method in METHODS if method in item]
    return found


ROUTES = _routes()
TEMPLATED = [(m, p) for m, p in ROUTES if "{" in p]
NESTED = [(m, p) for m, p in ROUTES if p.count("/") >= 2]  # a slash between two segments


def _answer(response: httpx.Response) -> tuple[int, str | None]:
    try:
        code = orjson.loads(response.content)["error"]["code"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        code = None
    return response.status_code, code


def test_an_encoded_slash_in_a_project_id_is_no_route_to_its_influencers() -> None:
    """The reported case: the list of the project's influencers answered 200. Routed on the raw
    path it is `GET /v1/projects/{projectId}` of a project id that names no project."""
    mock = make_mock()
    mock.create(json={"prompt": "x"})
    for slash in ("%2F", "%2f"):
        response = mock.client.get(f"/v1/projects/{PROJECT}{slash}influencers", headers=auth())
        assert response.status_code == 404, response.text
        error = response.json()["error"]
        assert error["code"] == "NOT_FOUND"
        assert error["requestId"] == response.headers["x-request-id"]
        assert "items" not in response.text


@pytest.mark.parametrize(("method", "path"), TEMPLATED, ids=[f"{m} {p}" for m, p in TEMPLATED])
def test_a_parameter_holding_an_encoded_slash_is_an_unknown_value(method: str, path: str) -> None:
    """`a%2Fb` in a path parameter answers exactly what another unknown value (`a_b`) answers:
    the route is the same, the slash separates nothing."""
    mock = make_mock()
    headers = auth(**({"Content-Type": "application/json"} if method != "GET" else {}))
    body = b"{}" if method in ("POST", "PATCH", "PUT") else None
    answers = []
    for value in ("a_b", "a%2Fb"):
        response = mock.client.request(
            method, PARAM.sub(value, path), headers=headers, content=body
        )
        answers.append(_answer(response))
    assert answers[0] == answers[1]
    assert answers[1][0] < 500


@pytest.mark.parametrize(("method", "path"), NESTED, ids=[f"{m} {p}" for m, p in NESTED])
def test_an_encoded_slash_between_segments_is_no_route(method: str, path: str) -> None:
    """`/v1%2Fwhoami`, `/_mock%2Freset`: no route of either plane answers a path whose slash
    was encoded; nothing runs (a reset would empty the state)."""
    mock = make_mock()
    created = mock.create(json={"prompt": "x"}).json()["jobId"]
    encoded = "/" + PARAM.sub("x", path)[1:].replace("/", "%2F", 1)
    headers = auth(**({"Content-Type": "application/json"} if method != "GET" else {}))
    body = b"{}" if method in ("POST", "PATCH", "PUT") else None
    response = mock.client.request(method, encoded, headers=headers, content=body)
    assert _answer(response) == (404, "NOT_FOUND"), (encoded, response.text)
    assert mock.job(created).status_code == 200  # a `/_mock%2Freset` reset nothing


@pytest.mark.parametrize(
    "value",
    [
        "%2E%2E",
        "%2e%2e%2F%2e%2e",
        "%00",
        "a%00b",
        "%zz",
        "%",
        "%2",
        "%C0%AF",
        "%E0%80%AF",
        "%FF%FE",
        "%25%32%46",
        "%252F",
        "..%2F..%2F_mock%2Freset",
    ],
)
def test_hostile_encodings_in_a_path_parameter_are_unknown_values(value: str) -> None:
    """Dot segments, NUL, truncated and invalid escapes and overlong UTF-8 slashes are values
    like any other: a 404 in the envelope, on the partner API and the control plane."""
    mock = make_mock()
    for path in (
        f"/v1/jobs/{value}",
        f"/v1/projects/{value}/influencers",
        f"/_mock/jobs/{value}",
        f"/_mock/rules/{value}",
    ):
        method = "DELETE" if path.startswith("/_mock/rules") else "GET"
        response = mock.client.request(method, path, headers=auth())
        assert _answer(response) == (404, "NOT_FOUND"), (path, response.text)


def test_a_served_mock_routes_on_the_raw_path() -> None:
    """Through the server the mock runs on: the request line's `%2F` reaches the app undecoded
    in `raw_path`, and the answer is the same 404."""
    mock = make_mock()
    with (
        running_server(build_app(mock.deps)) as url,
        httpx.Client(base_url=url, timeout=HTTP_TIMEOUT_S) as client,
    ):
        ok = client.get(f"/v1/projects/{PROJECT}/influencers", headers=auth(FULL))
        encoded = client.get(f"/v1/projects/{PROJECT}%2Finfluencers", headers=auth(FULL))
        control = client.get("/_mock%2Fhealth")
    assert ok.status_code == 200
    assert _answer(encoded) == (404, "NOT_FOUND"), encoded.text
    assert _answer(control) == (404, "NOT_FOUND"), control.text


def test_the_testing_api_client_hands_the_raw_path_over() -> None:
    """`LayersMock.client()` calls the app in-process: it passed the decoded path as the raw
    one, so the encoded slash was a separator there and the list answered 200."""
    from layers_mock import LayersMock

    with LayersMock() as mock:
        client = mock.client()
        encoded = client.get(f"/v1/projects/{mock.project}%2Finfluencers")
        spaced = client.get("/v1/projects/a%20b/influencers")
        listed = client.get(f"/v1/projects/{mock.project}/influencers")
        journaled = [r.path for r in mock.requests()]
        project = mock.project
    assert _answer(encoded) == (404, "NOT_FOUND"), encoded.text
    assert _answer(spaced) == (404, "NOT_FOUND"), spaced.text
    assert listed.status_code == 200
    assert journaled == [
        f"/v1/projects/{project}%2Finfluencers",
        "/v1/projects/a b/influencers",
        f"/v1/projects/{project}/influencers",
    ]
