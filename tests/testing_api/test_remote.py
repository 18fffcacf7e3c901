"""`layers_mock.connect(...)`: the testing API against a mock served elsewhere (issue 12 item 4).

A real `layers-mock serve --admin-token` subprocess on 127.0.0.1 is the shared sandbox: two
tenants (Acme and Globex, each with its own key) and the operator steer it over HTTP.
"""

from __future__ import annotations

import asyncio
import http.server
import queue
import re
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from redisd import started
from served import BANNER_TIMEOUT_S, serve_command
from support import BAKERY, CHILD_ORG, FULL, GLOBEX, HTTP_TIMEOUT_S, KILLED, NORTH_ADMIN

from layers_mock import LayersMock, LayersMockError, RemoteMock, connect
from layers_mock_server import serving
from layers_mock_server.settings import Settings, make_app

TOKEN = "operator-secret"
START = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[str]:
    """A shared sandbox: `serve` with an admin token (so tenant keys are tenants) and the
    journal's bodies kept; its base URL."""
    command = serve_command(None, "--admin-token", TOKEN, "--journal-bodies")
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    stdout = proc.stdout
    threading.Thread(target=lambda: [lines.put(x) for x in stdout], daemon=True).start()
    first = lines.get(timeout=BANNER_TIMEOUT_S)
    assert first.startswith("layers-mock listening on http://127.0.0.1:"), first
    try:
        yield first.split()[-1]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


@pytest.fixture
def operator(sandbox: str) -> Iterator[RemoteMock]:
    with connect(sandbox, admin_token=TOKEN) as mock:
        mock.reset(seed=0)  # each test starts from the fixtures
        yield mock


@pytest.fixture
def acme(sandbox: str, operator: RemoteMock) -> Iterator[RemoteMock]:
    with connect(sandbox, key=FULL) as mock:
        yield mock


@pytest.fixture
def globex(sandbox: str, operator: RemoteMock) -> Iterator[RemoteMock]:
    with connect(sandbox, key=GLOBEX) as mock:
        yield mock


def create(mock: RemoteMock) -> tuple[str, str]:
    """(influencer, job) made through the tenant's own client."""
    with mock.client() as api:
        made = api.post(f"/v1/projects/{mock.project}/influencers", json={})
    assert made.status_code == 202, made.text
    return made.json()["influencerId"], made.json()["jobId"]


def status(mock: RemoteMock, job: str) -> str:
    with mock.client() as api:
        answer: str = api.get(f"/v1/jobs/{job}").json()["status"]
        return answer


def test_one_tenants_advance_and_reset_leave_the_other_untouched(
    acme: RemoteMock, globex: RemoteMock
) -> None:
    assert acme.organization_id != globex.organization_id
    assert acme.projects != globex.projects  # each sees its own organization's fixtures
    _, acme_job = create(acme)
    globex_influencer, globex_job = create(globex)
    assert acme.advance(86400) == START.replace(day=2)
    assert status(acme, acme_job) == "completed"
    assert globex.now == START and status(globex, globex_job) in ("queued", "running")
    acme.assert_called("POST", "/v1/projects/*/influencers", times=1)
    assert all(r.api_key_id != globex.requests()[0].api_key_id for r in acme.requests())
    acme.reset()
    assert acme.requests() == []  # its journal starts again from the reset
    assert acme.now == START  # its clock follows the server's again
    with acme.client() as api:
        assert api.get(f"/v1/projects/{acme.project}/influencers").json()["items"] == []
        assert api.get(f"/v1/jobs/{acme_job}").status_code == 404
    assert [r.method for r in acme.requests()] == ["GET", "GET"]
    with globex.client() as api:
        listed = api.get(f"/v1/projects/{globex.project}/influencers").json()["items"]
    assert [i["influencerId"] for i in listed] == [globex_influencer]
    globex.assert_called("POST", "/v1/projects/*/influencers", times=1)
    assert globex.requests()[0].request_json() == {}  # bodies, as the server keeps them


def test_a_tenants_requests_since_its_reset_outlive_the_operators_reset(
    acme: RemoteMock, operator: RemoteMock
) -> None:
    """The operator's reset clears the journal and its `sequence` starts again at 1: the
    tenant's count since its own reset, made before, still shows what it sent after."""
    with acme.client() as api:
        assert api.get("/v1/whoami").status_code == api.get("/v1/whoami").status_code == 200
    acme.reset()
    operator.reset()
    with acme.client() as api:
        assert api.get("/v1/credits").status_code == 200
    assert [r.path for r in acme.requests()] == ["/v1/credits"]
    acme.assert_called("GET", "/v1/credits", times=1)


def test_a_parents_rules_and_journal_cover_what_its_key_sends_in_its_child(
    sandbox: str, operator: RemoteMock
) -> None:
    """`rules` and `requests()` of a tenant are about the requests its own keys send: a
    parent's client acting in its child (X-Layers-Organization) is steered by the parent's
    rule and listed in the parent's journal, never by or in the child's."""
    with connect(sandbox, key=NORTH_ADMIN) as north, connect(sandbox, key=BAKERY) as bakery:
        bakery.rules.add(fault="503")
        north.rules.add(operation="whoami", fault="500", count=1)
        with north.client(headers={"X-Layers-Organization": CHILD_ORG}) as api:
            assert api.get("/v1/whoami").status_code == 500
            assert api.get("/v1/whoami").status_code == 200  # the count is spent
        with bakery.client() as api:
            assert api.get("/v1/whoami").status_code == 503
        north.assert_called("GET", "/v1/whoami", times=2)
        bakery.assert_called("GET", "/v1/whoami", times=1)
        assert [r["tenant"] for r in bakery.rules.list()] == [CHILD_ORG]
        assert north.rules.list() == []


def test_a_tenant_sets_sleeps_and_hands_its_clock_back(
    acme: RemoteMock, operator: RemoteMock
) -> None:
    acme.set_clock("2026-01-01T06:00:00Z")
    acme.sleep(30)  # the server's clock is virtual: the organization's moves, nothing waits
    assert acme.now == START.replace(hour=6, second=30)
    assert operator.now == START
    with pytest.raises(LayersMockError, match="cannot follow the server clock: it is at"):
        acme.follow_server_clock()  # its jobs would un-finish
    operator.advance(86400)
    assert acme.follow_server_clock() == START.replace(day=2)


def test_a_tenants_clients_carry_its_key(acme: RemoteMock) -> None:
    async def whoami() -> str:
        async with acme.async_client() as api:
            organization: str = (await api.get("/v1/whoami")).json()["organizationId"]
            return organization

    assert asyncio.run(whoami()) == acme.organization_id
    with acme.client("scopeless") as api:  # a role of its own organization's keys
        denied = api.post(f"/v1/projects/{acme.project}/influencers", json={})
    assert denied.json()["error"]["code"] == "FORBIDDEN_SCOPE"
    with pytest.raises(LayersMockError, match="no 'foreign' key in these fixtures"):
        acme.client("foreign")  # a tenant sees only its own organization's keys


def test_the_operator_moves_the_server_and_steers_any_organization(
    operator: RemoteMock, globex: RemoteMock
) -> None:
    foreign = operator.organization("foreign")
    assert foreign.id == globex.organization_id
    foreign.advance(3600)
    assert globex.now == START.replace(hour=1) and operator.now == START
    operator.advance(60)
    assert operator.now == START.replace(minute=1)
    operator.reset(seed=5)
    assert operator.seed == 5 and globex.now == START
    with pytest.raises(LayersMockError, match="Organization not found"):
        _ = operator.organization("org_nobody").now
    with pytest.raises(LayersMockError, match="the operator's clock is the server clock"):
        operator.follow_server_clock()


def test_what_only_the_operator_may_do_is_refused_to_a_tenant_in_one_sentence(
    acme: RemoteMock, operator: RemoteMock
) -> None:
    with pytest.raises(LayersMockError, match="needs the admin token, not an API key") as new_seed:
        acme.reset(seed=3)
    assert "(403 from http://127.0.0.1:" in str(new_seed.value)
    assert operator.seed == 0
    with pytest.raises(LayersMockError, match="organization\\(\\) is the operator's"):
        acme.organization("foreign")
    with pytest.raises(LayersMockError, match="Cannot set the clock to 2025"):
        acme.set_clock(datetime(2025, 1, 1, tzinfo=UTC))
    with pytest.raises(LayersMockError, match="seconds: Must be at least 0"):
        acme.advance(-1)


@pytest.mark.parametrize(
    ("base_url", "says"),
    [
        ("127.0.0.1:4010", "is not the URL of a server: use http(s)://HOST[:PORT]"),
        ("ftp://127.0.0.1", "is not the URL of a server"),
        ("http://", "is not the URL of a server"),
        ("http://[::1", "is not a URL"),
        ("http://127.0.0.1:99999", "is not a URL"),
        ("http://127.0.0.1:4010/?x=1", "takes no query or fragment"),
        (None, "must be a URL such as http://127.0.0.1:4010"),
    ],
)
def test_a_bad_url_is_one_clear_error(base_url: str, says: str) -> None:
    with pytest.raises(LayersMockError, match=re.escape(says)):
        connect(base_url, key=FULL)


REFUSED = "needs the admin token, or an API key of your organization that is not killed"


@pytest.mark.parametrize(
    ("credentials", "says"),
    [
        ({"key": "lp_test_nobody_000000000000"}, REFUSED),
        ({"key": KILLED}, REFUSED),
        ({"admin_token": "wrong"}, REFUSED),
        ({}, REFUSED),
        ({"key": FULL, "admin_token": TOKEN}, "not both"),
        ({"key": ""}, "key must be a non-empty string"),
        ({"admin_token": 7}, "admin_token must be a non-empty string"),
        ({"key": FULL, "timeout": 0}, "timeout must be a positive number"),
        ({"key": FULL, "timeout": "10"}, "timeout must be a positive number"),
    ],
)
def test_wrong_credentials_are_one_clear_error(
    sandbox: str, credentials: dict[str, object], says: str
) -> None:
    with pytest.raises(LayersMockError, match=says):
        connect(sandbox, **credentials)  # type: ignore[arg-type]


def test_an_unreachable_host_is_one_clear_error() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, never listening: the connection is refused
        port = closed.getsockname()[1]
        with pytest.raises(LayersMockError, match=f"cannot reach http://127.0.0.1:{port}: ") as e:
            connect(f"http://127.0.0.1:{port}", key=FULL)
    assert e.value.__cause__ is None and e.value.__suppress_context__  # no httpx traceback


def test_hostile_arguments_are_one_clear_error(operator: RemoteMock, acme: RemoteMock) -> None:
    with pytest.raises(LayersMockError, match="organization\\(\\) takes an organization id"):
        operator.organization(7)  # type: ignore[arg-type]
    with pytest.raises(LayersMockError, match="key must be a role of `keys` or an API key"):
        acme.client(b"full")  # type: ignore[arg-type]
    with pytest.raises(LayersMockError, match="no 'nobody' key"):
        operator.organization("nobody")
    with pytest.raises(LayersMockError, match="seconds"):
        acme.advance("soon")  # type: ignore[arg-type]
    with pytest.raises(LayersMockError, match="ISO-8601"):
        acme.set_clock("tomorrow")
    with pytest.raises(LayersMockError, match="seconds"):
        acme.advance(None)  # type: ignore[arg-type]  # was a silent nothing
    with pytest.raises(LayersMockError, match="method and path"):
        acme.assert_called(None, "/v1/whoami")  # type: ignore[arg-type]
    with pytest.raises(LayersMockError, match="times"):
        acme.assert_called("GET", "/v1/whoami", times="1")  # type: ignore[arg-type]


class JsonApi(http.server.BaseHTTPRequestHandler):
    """Some other JSON API: 200 and a list, whatever is asked."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"[]")

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize("handler", [http.server.BaseHTTPRequestHandler, JsonApi])
def test_a_server_that_is_not_layers_mock_is_one_clear_error(
    handler: type[http.server.BaseHTTPRequestHandler],
) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        with pytest.raises(LayersMockError, match="is not a layers-mock"):
            connect(url, admin_token=TOKEN)
    finally:
        server.shutdown()
        server.server_close()


def test_a_tenant_on_an_open_server_still_resets_and_reads_only_its_own(
    layers_mock_server: LayersMock,
) -> None:
    """On loopback without an admin token the control plane ignores keys; `connect(key=...)`
    still keeps to the key's organization (its reset names it, its journal is filtered)."""
    with connect(layers_mock_server.base_url, key=GLOBEX) as globex:
        _, acme_job = create(connect(layers_mock_server.base_url, key=FULL))
        create(globex)
        assert [r.method for r in globex.requests()] == ["POST"]
        globex.reset()
        assert globex.requests() == []
        with httpx.Client(base_url=layers_mock_server.base_url, timeout=HTTP_TIMEOUT_S) as api:
            kept = api.get(f"/v1/jobs/{acme_job}", headers={"Authorization": f"Bearer {FULL}"})
        assert kept.status_code == 200  # Acme's job survived Globex's reset


def test_a_tenant_on_an_open_server_counts_its_requests_after_anothers_burst(
    layers_mock_server: LayersMock,
) -> None:
    """On an open server the journal it read was the operator's union, the newest 1,000 of
    every organization's, filtered by its keys: another team's 1,000 requests hid a tenant's
    own, which the server still held in its organization's share (assert_called said 0)."""
    with connect(layers_mock_server.base_url, key=GLOBEX) as globex:
        with globex.client() as api:
            assert api.get("/v1/whoami").status_code == 200
        with httpx.Client(base_url=layers_mock_server.base_url, timeout=HTTP_TIMEOUT_S) as api:
            for _ in range(1_000):
                api.get("/v1/whoami", headers={"Authorization": f"Bearer {FULL}"})
        globex.assert_called("GET", "/v1/whoami", times=1)


def test_a_sandbox_whose_redis_is_down_is_one_clear_error_and_then_works_again() -> None:
    """A 503 STORAGE_UNAVAILABLE of a shared sandbox on Redis (killed with kill -9) comes
    back as the server's message, and the same object works once Redis is back."""
    with started(fsync="always") as redis_server:  # killed: nothing acknowledged lost
        settings = Settings(state=redis_server.url, clock="virtual", admin_token=TOKEN)
        with (
            serving.running(make_app(settings)) as (host, port),
            connect(f"http://{host}:{port}", key=GLOBEX) as globex,
        ):
            globex.advance(60)
            redis_server.kill()
            with pytest.raises(LayersMockError, match=r"shared state.*\(503 from http"):
                globex.advance(60)
            redis_server.start()
            assert globex.advance(60) == START.replace(minute=2)
