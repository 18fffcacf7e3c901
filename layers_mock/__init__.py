"""layers-mock in your tests: the Layers Partner API in-process, on a clock your test drives.

Install it as a dev dependency, with the extra that brings httpx and the pytest plugin, from a
checkout of layers-mock or a wheel built from one (it is not on PyPI)::

    pip install '/path/to/layers-mock[pytest]'

In-process (no socket, no thread): hand `mock.transport` to httpx, or take `mock.client()`, an
httpx client that already carries a full-scope key. Jobs move only when the test says so::

    from layers_mock import LayersMock

    with LayersMock(seed=0) as mock:
        api = mock.client()
        job = api.post(f"/v1/projects/{mock.project}/influencers", json={}).json()
        mock.advance(60)                        # the job's whole minute, at once
        assert api.get(f"/v1/jobs/{job['jobId']}").json()["status"] == "completed"

Creating one: `LayersMock(seed=0, clock="virtual", fixtures=None, progression="time")`.
`seed` fixes every id, name and URL (same seed and requests, same bytes); `clock="wall"` follows
real time (times `speed`); `fixtures` is a YAML path or the same document as a dict (default:
the fixtures shipped with layers-mock); `progression="poll"` moves a job one stage per read.
Every response is checked against the contract (`strict=True`): if the mock ever answered
something the spec does not describe, your test fails loudly instead of learning a wrong API.

Clients:
  `mock.transport` / `mock.async_transport`  httpx transports into the mock
  `mock.client(key="full")` / `mock.async_client(...)`  httpx clients with a key set (a role
      of `mock.keys` or any key) and `base_url` set
  `mock.base_url`  `http://layers-mock.test` in-process; the real URL while served

A real server, for clients that are not Python or not httpx (a Node SDK, curl, requests)::

    with LayersMock().serve() as mock:          # port=0: a free port, in a thread
        subprocess.run(["node", "client.js", mock.base_url, mock.keys.full], check=True)
        mock.assert_called("POST", "/v1/projects/*/influencers", times=1)

While served, everything below keeps working from the test and steers the same mock. A
server the script never stops (no `with`, no `close()`) is stopped when the interpreter exits.
The steering methods and `serve()` need nothing but the base install; the httpx clients need
httpx, in the `pytest` extra.

Time (the mock's, never the wall's):
  `mock.advance(seconds)`  move forward (a float or a timedelta); `mock.set_clock(instant)`
  jump to a datetime or ISO-8601 string; `mock.now` the mock's time (an aware datetime).
  `mock.sleep(seconds)`  a drop-in for `time.sleep` and `asyncio.sleep` that advances the mock
  clock instead of waiting. Inject it into the code under test (`wait_until_ready(api, job,
  sleep=mock.sleep)`; `await mock.sleep(5)` works too), or patch it in:
  `monkeypatch.setattr(time, "sleep", mock.sleep)`. A polling loop then runs instantly and the
  same way every time. Prefer injection for asyncio code: patching `asyncio.sleep` globally
  also speeds up every other coroutine's waits (the mock's own stay real).

A clock per organization (a shared sandbox's tenants, in the spirit of Stripe's test clocks):
  `org = mock.organization("foreign")` (a role, a key, or an organization id), then
  `org.advance(86400)` / `org.set_clock(instant)`: that organization gets a clock of its own
  and its jobs, timestamps, idempotency and rate-limit windows follow it; nobody else moves.
  `org.now`, `org.detached`, `org.follow_server_clock()`, `org.reset()` (its data only). Given
  a key, every call carries it, exactly as a tenant's calls on a shared sandbox.

A mock served elsewhere (a team's shared sandbox: `serve --admin-token ...`, perhaps on Redis):
  `sandbox = layers_mock.connect("http://host:4010", key="lp_test_...")` steers it over HTTP
  with the methods above that make sense there (now, advance, set_clock, sleep, reset,
  requests, assert_called, rules, keys, project, client(), async_client(), prefer). Given a
  key (a tenant), everything acts on that key's organization only: its own clock (plus
  `follow_server_clock()`), a reset of its data, its journal, its rules; what only the operator
  may do raises LayersMockError saying so. `admin_token=...` is the operator: the server's
  clock and reset, and `organization(...)` as above. A server that cannot be reached, a wrong
  key or the server's refusal (401, 404, 422, 503) is a LayersMockError with its message.

State:
  `mock.reset(seed=None)`  back to the start: fixtures reloaded, clock at its start, journal and
  rules empty (`seed`: a new seed; default: the one it was created with). `mock.seed` is the
  seed in force.
  `mock.keys`  by role: `full` (every scope), `scopeless` (no influencers:write), `no_jobs` (no
  jobs:read), `killed` (503 KILL_SWITCH), `foreign` (another organization), `standard` (every
  scope on the standard tier, to rehearse 429s); None where the fixtures have no such key.
  `mock.project`  a project of the full key's organization; `mock.projects` all of them;
  `mock.foreign_project`  one of the foreign key's organization.

Outcomes and faults:
  `mock.prefer(outcome="failed", stage="training")` → `{"Prefer": "outcome=failed;
  stage=training"}`: headers for one request (also `fault=503`, `latency_ms=1500`,
  `progression="poll"`). A real Layers server ignores `Prefer`, so the same client code runs
  against both.
  `mock.rules.add(operation="getJob", fault="503", count=2)`  steer requests your code sends
  itself (match on `method`, `path`, `operation`, `project`, `organization`; effects `fault`,
  `latency_ms`, `outcome`, `stage`, `progression`; `count`, `probability`).
  `mock.rules.list()`, `mock.rules.delete(rule_id)`, `mock.rules.clear()`.

Verification (in the spirit of WireMock's `verify`):
  `mock.requests(method=None, path=None)`  what the mock answered, oldest first, each a
  `Recorded` with the request's and the response's headers and bodies (key secrets shown as
  `***`); `path` is exact or a glob (`/v1/jobs/*`). The journal keeps the last 1,000 requests
  (and at most 4 MiB of them; a body is cut at 16 KiB): plenty for a test, reset with it.
  A cut body is marked (`request_truncated`, `response_truncated`), and its `request_json()`
  or `response_json()` raises LayersMockError saying so rather than a JSON syntax error.
  `mock.assert_called(method, path, times=None)`  at least once, or exactly `times`; the
  failure lists what the mock did see. `mock.assert_not_called(method, path)`.

The pytest plugin (installed with the package) gives each test a fresh mock, reset rather than
rebuilt, so a test's set-up costs a fraction of a millisecond::

    def test_ready(layers_mock):                       # in-process
        ...

    def test_node_sdk(layers_mock_server):             # one real server per session
        ...

    @pytest.mark.layers_mock(seed=3, clock="virtual", progression="poll")
    def test_polling(layers_mock): ...

(`pytest -p no:layers_mock` turns the plugin off.)

Errors the control plane refuses (a clock moved backwards, a bad rule) raise `LayersMockError`
(a ValueError) with the mock's message.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import socket
import time
from collections.abc import Coroutine, Iterator, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlencode

import orjson

from layers_mock_server import __version__
from layers_mock_server.settings import Settings, make_app, preference_problem

from ._asgi import (
    Runner,
    async_transport,
    call_app,
    require_httpx,
    running_loop,
    sync_transport,
)
from ._organization import Organization
from ._remote import RemoteMock, connect
from ._slept import Slept
from ._views import (
    Keys,
    LayersMockError,
    Recorded,
    Rules,
    carried,
    check_called,
    error_text,
    filters,
    matches,
    parse_instant,
    recorded_from,
    roles_of,
    wire_instant,
)

if TYPE_CHECKING:
    import httpx

    from layers_mock_server.serving import Background

__all__ = [
    "Keys",
    "LayersMock",
    "LayersMockError",
    "Organization",
    "Recorded",
    "RemoteMock",
    "Rules",
    "__version__",
    "connect",
]

IN_PROCESS_URL = "http://layers-mock.test"  # .test is reserved for testing (RFC 2606)
MAX_SEED = 2**64 - 1
JOURNAL_LIMIT = 1000  # what /_mock/requests returns at most, which is all the journal keeps
_real_sleep = time.sleep  # captured before anyone patches time.sleep with LayersMock.sleep
_real_async_sleep = asyncio.sleep


class LayersMock:
    """The Layers Partner API, in-process, on a clock the test drives. See the module docs."""

    def __init__(
        self,
        seed: int = 0,
        clock: Literal["virtual", "wall"] = "virtual",
        fixtures: str | os.PathLike[str] | Mapping[str, Any] | None = None,
        progression: Literal["time", "poll"] = "time",
        *,
        speed: float = 1.0,
        strict: bool = True,
    ) -> None:
        _check_options(seed, clock, progression, speed)
        if not isinstance(strict, bool):  # "no" or "false" would be true: strict on
            raise LayersMockError(f"strict must be True or False, not {strict!r}")
        if fixtures is not None and not isinstance(fixtures, Mapping):
            if not isinstance(fixtures, str | os.PathLike):  # pathlib's raw TypeError, else
                raise LayersMockError(
                    "fixtures must be a path to a YAML file (str or os.PathLike) or the "
                    f"document as a mapping, not {fixtures!r}"
                )
            fixtures = Path(fixtures)
        settings = Settings(
            seed=seed,
            clock=clock,
            fixtures=fixtures,
            progression=progression,
            speed=speed,
            strict=strict,
            journal_bodies=True,
        )
        try:
            self._app = make_app(settings)
        except ValueError as exc:  # fixtures that cannot be loaded, among others
            raise LayersMockError(str(exc)) from exc
        self.seed = seed  # the seed in force: `reset(seed=...)` changes it
        self._first_seed = seed
        self._carry_ns = 0  # the part of advances below the clock's millisecond, carried
        self.clock = clock
        self.progression = progression
        self._runner = Runner()
        self._base_url = IN_PROCESS_URL
        self._served: Background | None = None
        self._transport: httpx.BaseTransport | None = None
        self._async_transport: httpx.AsyncBaseTransport | None = None
        self.rules = Rules(self._control)
        self.keys, self.projects, self.foreign_project = roles_of(
            self._control("GET", "/_mock/fixtures")
        )

    # -- lifecycle

    def __enter__(self) -> LayersMock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop serving if it is, and release the private event loop."""
        self._stop_serving()
        self._runner.close()

    def __repr__(self) -> str:
        return (
            f"LayersMock(seed={self.seed}, clock={self.clock!r}, "
            f"progression={self.progression!r}) at {self.base_url}"
        )

    @property
    def project(self) -> str:
        """A project of the full key's organization: where most tests create influencers."""
        if not self.projects:
            raise LayersMockError("the full key's organization has no project in these fixtures")
        return self.projects[0]

    @property
    def base_url(self) -> str:
        return self._base_url

    # -- clients

    @property
    def transport(self) -> httpx.BaseTransport:
        """An httpx transport into the mock: `httpx.Client(transport=mock.transport, ...)`."""
        if self._transport is None:
            self._transport = sync_transport(self._app, self._runner)
        return self._transport

    @property
    def async_transport(self) -> httpx.AsyncBaseTransport:
        """The same for `httpx.AsyncClient`; the app runs in the caller's event loop."""
        if self._async_transport is None:
            self._async_transport = async_transport(self._app, self._runner)
        return self._async_transport

    def _key(self, key: str) -> str:
        if not isinstance(key, str):
            raise LayersMockError(f"key must be a role of `keys` or an API key, not {key!r}")
        found = self.keys.get(key)
        if found is not None:
            return found
        if key.startswith(("lp_live_", "lp_test_")):
            return key
        raise LayersMockError(f"no {key!r} key in these fixtures (roles: full, scopeless, ...)")

    def client(self, key: str = "full", **kwargs: Any) -> httpx.Client:
        """An httpx.Client with `Authorization: Bearer <key>` and `base_url` set; `key` is a role
        of `keys` or a key. In-process it uses `transport`; while served, the socket."""
        require_httpx()
        import httpx

        headers = {"Authorization": f"Bearer {self._key(key)}", **kwargs.pop("headers", {})}
        if self._served is None:
            kwargs.setdefault("transport", self.transport)
        return httpx.Client(base_url=self.base_url, headers=headers, **kwargs)

    def async_client(self, key: str = "full", **kwargs: Any) -> httpx.AsyncClient:
        """`client()` for asyncio code."""
        require_httpx()
        import httpx

        headers = {"Authorization": f"Bearer {self._key(key)}", **kwargs.pop("headers", {})}
        if self._served is None:
            kwargs.setdefault("transport", self.async_transport)
        return httpx.AsyncClient(base_url=self.base_url, headers=headers, **kwargs)

    # -- a real server

    @contextlib.contextmanager
    def serve(self, port: int = 0, host: str = "127.0.0.1") -> Iterator[LayersMock]:
        """Serve this mock on a real socket (granian, in a thread) for the `with` block.

        The socket is listening before this returns, so a client may connect at once (no
        readiness polling). `base_url` is the server's URL inside the block."""
        from layers_mock_server import serving

        if self._served is not None:
            raise RuntimeError("this LayersMock is already being served")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise LayersMockError(
                f"port must be a whole number from 0 (any free port) to 65535, not {port!r}"
            )
        _check_host(host)
        try:
            sock = serving.bind(host, port)
        except OSError as exc:
            raise LayersMockError(f"cannot listen on {host}:{port}: {exc}") from exc
        except (TypeError, ValueError) as exc:  # a name the resolver cannot even encode
            raise LayersMockError(f"{HOST_RULE}, not {host!r} ({exc})") from exc
        background = serving.Background(self._app, sock)
        self._runner.server_loop = background.loop
        self._served = background
        address, bound_port = sock.getsockname()[:2]
        shown = f"[{address}]" if sock.family == socket.AF_INET6 else address
        self._base_url = f"http://{shown}:{bound_port}"
        try:
            yield self
        finally:
            self._stop_serving()

    def _stop_serving(self) -> None:
        if self._served is None:
            return
        background, self._served = self._served, None
        self._runner.server_loop = None
        self._base_url = IN_PROCESS_URL
        background.stop()

    # -- time

    @property
    def now(self) -> datetime:
        """The mock's current time (UTC)."""
        return parse_instant(self._control("GET", "/_mock/clock")["now"])

    def advance(self, seconds: float | timedelta) -> datetime:
        """Move the mock clock forward; returns the new time. Never backwards (LayersMockError).

        The mock's clock counts whole milliseconds; what is left below one is carried to the
        next advance (or sleep), so 1,000 x advance(0.0004) moves it 400 ms, not 0."""
        wire, self._carry_ns = carried(seconds, self._carry_ns)
        if wire is None:
            return self.now
        return parse_instant(
            self._control("POST", "/_mock/clock/advance", {"seconds": wire})["now"]
        )

    def set_clock(self, instant: datetime | str) -> datetime:
        """Jump to `instant`: an aware datetime, or ISO-8601 text with an offset or `Z`
        (`"2026-01-02T09:00:00Z"`). Never backwards (LayersMockError)."""
        wire = wire_instant(instant)
        moved = parse_instant(self._control("POST", "/_mock/clock/set", {"now": wire})["now"])
        self._carry_ns = 0
        return moved

    def sleep(self, seconds: float, result: Any = None) -> Coroutine[Any, Any, Any]:
        """A drop-in for time.sleep and asyncio.sleep: on a virtual clock it advances the mock
        clock by `seconds` and returns at once; on a wall clock it really sleeps.

        Waits of the mock itself (an injected latency, the server's housekeeping) stay real
        even if `asyncio.sleep` was patched with this, so patching cannot stall the mock."""
        running = running_loop()
        if self._runner.owns(running):
            return _real_async_sleep(seconds, result)
        if not (isinstance(seconds, int | float) and seconds >= 0):
            raise ValueError("sleep length must be a non-negative number")
        if self.clock == "virtual":
            if seconds:
                self.advance(seconds)
        else:
            _real_sleep(seconds)
        return Slept(result)

    def organization(self, who: str) -> Organization:
        """One organization's own clock, reset and journal. `who` is a role of `keys`
        (`"foreign"`), a key (the calls then carry it, as a tenant's on a shared sandbox), or an
        organization id (the operator's calls)::

            other = mock.organization("foreign")
            other.advance(86400)    # a day passes for that organization only
        """
        if not isinstance(who, str):
            raise LayersMockError(
                f"organization() takes an organization id, a role or a key, not {who!r}"
            )
        if who.startswith("org_"):
            return Organization(self._control, who, None)
        key = self._key(who)
        for org in self._control("GET", "/_mock/fixtures", key=key)["organizations"]:
            if any(k["key"] == key for k in org["keys"]):
                return Organization(self._control, org["organizationId"], key)
        raise LayersMockError(f"the key {who!r} belongs to no organization of the mock")

    # -- state

    def reset(self, seed: int | None = None) -> None:
        """Back to the start: fixtures reloaded, clock at its start, journal and rules empty."""
        seed = self._first_seed if seed is None else seed
        _check_seed(seed)
        self._control("POST", "/_mock/reset", {"seed": seed})
        self._carry_ns = 0
        self.seed = seed

    # -- outcomes and faults

    @staticmethod
    def prefer(
        *,
        outcome: str | None = None,
        stage: str | None = None,
        progression: str | None = None,
        fault: str | int | None = None,
        latency_ms: int | None = None,
    ) -> dict[str, str]:
        """Headers asking the mock for an outcome or a fault on one request (RFC 7240).

        A value the mock would refuse is a ValueError here, naming the argument and what it
        may be (the server's own check, `preference_problem`): a typo fails where it was
        written, not as a 422 on some later request."""
        parts = {
            "outcome": outcome,
            "stage": stage,
            "progression": progression,
            "fault": fault,
            "latency": latency_ms,
        }
        for name, given in parts.items():
            # bool is an int: str(True) is "True", which every check refuses, as it should
            problem = None if given is None else preference_problem(name, str(given))
            if problem is not None:
                argument = "latency_ms" if name == "latency" else name
                raise ValueError(f"prefer({argument}={given!r}): {problem}")
        value = "; ".join(f"{name}={v}" for name, v in parts.items() if v is not None)
        if not value:
            raise TypeError("prefer() needs at least one of outcome, stage, progression, fault")
        return {"Prefer": value}

    # -- verification

    def requests(self, method: str | None = None, path: str | None = None) -> list[Recorded]:
        """What the mock answered since the start (or the last reset), oldest first.

        `method` is case-insensitive; `path` is exact or a glob (`*` matches any characters)."""
        query = urlencode({"limit": JOURNAL_LIMIT})
        filters(method, path)
        items = self._control("GET", "/_mock/requests", query=query)["items"]
        recorded = [recorded_from(item) for item in reversed(items)]
        return [r for r in recorded if matches(r, method, path)]

    def assert_called(self, method: str, path: str, *, times: int | None = None) -> list[Recorded]:
        """Assert the mock answered `method path` at least once, or exactly `times` times."""
        return check_called(self.requests, method, path, times)

    def assert_not_called(self, method: str, path: str) -> None:
        self.assert_called(method, path, times=0)

    # -- the control plane, in-process

    def _control(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        query: str = "",
        *,
        key: str | None = None,
    ) -> Any:
        try:
            payload = orjson.dumps(body) if body is not None else b""
        except TypeError as exc:  # e.g. an integer past 64 bits
            raise LayersMockError(f"cannot send {body!r}: {exc}") from None
        headers = None
        if key is not None:  # a tenant's call (organization.py): its own key, as on a sandbox
            headers = [(b"host", b"layers-mock.test"), (b"content-length", b"%d" % len(payload))]
            headers.append((b"authorization", b"Bearer " + key.encode("latin-1")))
            if payload:
                headers.append((b"content-type", b"application/json"))
        call = call_app(
            self._app, method, path, query=query.encode(), body=payload, headers=headers
        )
        status, _, raw = self._runner.run(call)
        answer = orjson.loads(raw) if raw else None
        if status >= 400:
            raise LayersMockError(error_text(answer, status))
        return answer


HOST_RULE = (
    "host must be an address or a name to listen on, such as '127.0.0.1', '::1' or "
    "'localhost' ('0.0.0.0' for every interface)"
)


def _check_host(host: Any) -> None:
    """A host the socket code would take is text: anything else was its raw TypeError, and ""
    silently meant every interface, which a test never asks for by leaving a field empty."""
    if not isinstance(host, str) or not host.isprintable() or not host or " " in host:
        raise LayersMockError(f"{HOST_RULE}, not {host!r}")


def _check_seed(seed: Any) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise LayersMockError(f"seed must be a whole number from 0 to 2**64-1, not {seed!r}")


def _check_options(seed: Any, clock: Any, progression: Any, speed: Any) -> None:
    _check_seed(seed)
    if clock not in ("virtual", "wall"):
        raise LayersMockError(f"clock must be 'virtual' or 'wall', not {clock!r}")
    if progression not in ("time", "poll"):
        raise LayersMockError(f"progression must be 'time' or 'poll', not {progression!r}")
    if not isinstance(speed, int | float) or not (math.isfinite(speed) and speed > 0):
        raise LayersMockError(f"speed must be a positive number, not {speed!r}")
