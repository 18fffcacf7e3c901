"""Layers operations the mock does not simulate answer 501 NOT_SIMULATED, never a 404."""

from __future__ import annotations

import yaml
from support import Mock, auth

from layers_mock_server.spec import NOT_SIMULATED_SPEC

DOC = yaml.safe_load(NOT_SIMULATED_SPEC.read_text(encoding="utf-8"))
ROUTES = [
    (method.upper(), path, op["operationId"])
    for path, item in DOC["paths"].items()
    for method, op in item.items()
    if method != "parameters"
]


def concrete(path: str) -> str:
    return path.replace("{", "x_").replace("}", "")


def test_each_route_is_501_naming_the_operation(mock: Mock) -> None:
    for method, path, operation in ROUTES:  # one mock for all: strict mode checks each answer
        response = mock.client.request(method, concrete(path), headers=auth(), json={"a": 1})
        assert response.status_code == 501, (method, path)
        error = response.json()["error"]
        assert error["code"] == "NOT_SIMULATED"
        assert error["requestId"] == response.headers["x-request-id"]
        assert error["details"] == {"operation": operation, "method": method, "path": path}
        assert "influencer flow" in error["message"]


def test_the_client_routes_are_covered() -> None:
    """The routes Layers' own client (@layers/mcp-server 1.3.2) calls beyond the simulated ones."""
    declared = {(m, p) for m, p, _ in ROUTES}
    for route in [
        ("POST", "/v1/projects/{projectId}/content/slideshow-builder"),
        ("GET", "/v1/content/{containerId}/progress"),
        ("POST", "/v1/content/{containerId}/schedule"),
        ("GET", "/v1/projects/{projectId}/social-accounts"),
        ("GET", "/v1/projects/{projectId}/metrics"),
        ("GET", "/v1/audit-log"),
        ("GET", "/v1/credits/events"),
        ("PATCH", "/v1/content/{containerId}"),
    ]:
        assert route in declared
    assert len(declared) >= 40


def test_no_auth_is_needed_and_the_journal_records_it(mock: Mock) -> None:
    response = mock.client.get("/v1/tiktok-music")
    assert response.status_code == 501
    entry = mock.client.get("/_mock/requests").json()["items"][0]
    assert (entry["path"], entry["status"], entry["operationId"]) == (
        "/v1/tiktok-music",
        501,
        "listTiktokMusic",
    )
    assert entry["requestId"] == response.headers["x-request-id"]


def test_unknown_paths_stay_404_and_wrong_methods_405(mock: Mock) -> None:
    unknown = mock.client.get("/v1/contents/x", headers=auth())
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "NOT_FOUND"
    wrong = mock.client.put("/v1/content/x", headers=auth())
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "GET, HEAD, PATCH"
