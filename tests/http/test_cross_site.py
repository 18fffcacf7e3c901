"""A web page cannot steer or read the control plane: cross-site Origin, DNS-rebound Host."""

from __future__ import annotations

import httpx
import pytest
from support import FULL, HTTP_TIMEOUT_S, Mock, auth, running_server

from layers_mock_server.settings import Settings, make_app

HOSTILE_ORIGINS = [
    "https://evil.example",
    "http://evil.example:80",
    "null",  # a sandboxed frame or a file:// page
    "",
    "http://localhost.evil.example",
    "http://127.0.0.1.nip.io",
    "http://user@localhost",
    "http://[::1",
    "http://localhost:notaport",
    "javascript:alert(1)",
    "http://testserver/path",
    "file://",
]
HOSTILE_HOSTS = [
    "evil.example",
    "evil.example:4010",
    "127.0.0.1.nip.io",
    "localhost.evil.example",
    "[::1",
    "127.0.0.1:x",
    "user@127.0.0.1",
    "127.0.0.1/path",
    "::1",
    "0.0.0.0",
]


def _moved(mock: Mock) -> str:
    return str(mock.client.get("/_mock/clock").json()["now"])


@pytest.mark.parametrize("origin", HOSTILE_ORIGINS)
def test_a_cross_site_page_cannot_reset_the_mock(mock: Mock, origin: str) -> None:
    mock.advance(90)
    before = _moved(mock)
    refused = mock.client.post("/_mock/reset", headers={"Origin": origin})
    assert refused.status_code == 403, refused.text
    error = refused.json()["error"]
    assert error["code"] == "FORBIDDEN_SCOPE" and "Origin" in error["message"]
    assert _moved(mock) == before  # nothing was done
    stolen = mock.client.get("/_mock/state", headers={"Origin": origin})
    assert stolen.status_code == 403 and FULL not in stolen.text
    page = mock.client.get("/_mock/ui", headers={"Origin": origin})
    assert page.status_code == 403


@pytest.mark.parametrize(
    "origin",
    ["http://testserver", "http://localhost:4010", "http://127.0.0.9:1", "http://[::1]:80"],
)
def test_same_origin_and_loopback_pages_still_steer_it(mock: Mock, origin: str) -> None:
    mock.advance(90)
    done = mock.client.post("/_mock/reset", headers={"Origin": origin})
    assert done.status_code == 200, done.text


def test_the_partner_api_does_not_care_about_origin(mock: Mock) -> None:
    answer = mock.client.get("/v1/whoami", headers=auth(Origin="https://evil.example"))
    assert answer.status_code == 200


@pytest.mark.parametrize("host", HOSTILE_HOSTS)
def test_a_rebound_host_is_refused_without_an_admin_token(mock: Mock, host: str) -> None:
    """TestClient's connection comes in on "testserver": that name and loopback pass."""
    mock.advance(90)
    before = _moved(mock)
    refused = mock.client.post("/_mock/reset", headers={"Host": host})
    assert refused.status_code == 403, refused.text
    assert "Host" in refused.json()["error"]["message"]
    assert _moved(mock) == before


@pytest.mark.parametrize(
    "host", ["localhost", "LOCALHOST:4010", "127.0.0.1:4010", "127.3.2.1", "[::1]:4010"]
)
def test_loopback_hosts_pass(mock: Mock, host: str) -> None:
    assert mock.client.post("/_mock/reset", headers={"Host": host}).status_code == 200


def test_with_an_admin_token_the_host_is_the_operators_business(mock: Mock) -> None:
    """Bound to 0.0.0.0 behind a name: the token is the guard, Host cannot be known."""
    mock.deps.admin_token = "s3cret"
    headers = {"Host": "mock.internal:4010", "Authorization": "Bearer s3cret"}
    assert mock.client.post("/_mock/reset", headers=headers).status_code == 200
    cross = {**headers, "Origin": "https://evil.example"}
    assert mock.client.post("/_mock/reset", headers=cross).status_code == 403


def test_a_served_mock_refuses_a_page_and_serves_its_own_dashboard() -> None:
    app = make_app(Settings(clock="virtual", strict=True))
    with running_server(app) as url, httpx.Client(base_url=url, timeout=HTTP_TIMEOUT_S) as client:
        assert (
            client.post("/_mock/reset", headers={"Origin": "https://evil.example"}).status_code
            == 403
        )
        rebound = client.post(
            "/_mock/reset", headers={"Host": f"evil.example:{url.rsplit(':', 1)[1]}"}
        )
        assert rebound.status_code == 403
        own = client.post("/_mock/clock/advance", json={"seconds": 1}, headers={"Origin": url})
        assert own.status_code == 200  # the dashboard's fetches are same-origin
        assert client.get("/_mock/ui", headers={"Origin": url}).status_code == 200
        assert (
            client.get("/_mock/ui/assets/layers.css", headers={"Origin": "null"}).status_code == 200
        )
