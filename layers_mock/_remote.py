"""The testing API over HTTP, for a mock that runs elsewhere: `layers_mock.connect(...)`.

A team whose CI shares one hosted sandbox (`layers-mock serve --admin-token ...`, perhaps on
Redis with many workers) cannot run the mock in-process; `connect` gives it the same methods
as `LayersMock`, as far as they make sense over HTTP, through the control plane's routes:

- with `key="lp_test_..."` (a tenant: one organization of the sandbox) every call carries that
  key and acts on that organization only: `now`/`advance`/`set_clock`/`sleep` are its own
  clock (`/_mock/organizations/{id}/clock...`; the first move gives it a clock of its own,
  `follow_server_clock()` hands it back), `reset()` resets its data, `requests()` and
  `assert_called()` read its journal entries, `rules` are its rules. The rest of the
  sandbox never moves. What only the operator may do (a new seed, the server clock, another
  organization) is refused by the server (403) and raised as a LayersMockError that says so.
- with `admin_token=` (the operator) the calls act on the whole server, as `LayersMock`'s do,
  and `organization(...)` steers one organization.
- with neither: an open server (loopback, no admin token), as the operator.

Not offered remotely: `transport`/`async_transport` and `serve()` (the mock is already a
server; `client()` and `async_client()` are httpx clients on its URL). Every failure is a
LayersMockError with the server's own message (a killed key's 401, a 404, a 422, a 503), or
one sentence when the server cannot be reached or is not a layers-mock; never a traceback
of httpx's internals.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

import orjson

from ._asgi import require_httpx
from ._organization import Organization
from ._slept import Slept
from ._views import (
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

JOURNAL_LIMIT = 1000  # what /_mock/requests returns at most, which is all the journal keeps
_HEADER_TOKEN = re.compile(r"[!-~]+")  # a key or token as one header value carries it


def connect(
    base_url: str,
    *,
    key: str | None = None,
    admin_token: str | None = None,
    timeout: float = 10.0,
) -> RemoteMock:
    """The mock served at `base_url` (`http://HOST:PORT`), steered as a tenant (`key`, one of
    its organization's API keys) or as the operator (`admin_token`); see the module docs.
    Checks the credentials at once: a wrong key or token is a LayersMockError here."""
    require_httpx()
    if key is not None and admin_token is not None:
        raise LayersMockError(
            "connect() takes key= (a tenant: one organization) or admin_token= (the "
            "operator), not both"
        )
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not 0 < timeout < math.inf
    ):
        raise LayersMockError(f"timeout must be a positive number of seconds, not {timeout!r}")
    for name, value in (("key", key), ("admin_token", admin_token)):
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise LayersMockError(f"{name} must be a non-empty string, not {value!r}")
        if value is not None and not _HEADER_TOKEN.fullmatch(value):
            # An Authorization header carries it: anything else is httpx's UnicodeEncodeError
            # or "Illegal header value" (as if the server could not be reached), or a token
            # no server could ever match. The value is not echoed: it is a secret.
            raise LayersMockError(
                f"{name} must be printable ASCII with no spaces or control characters, "
                "as an Authorization header carries it"
            )
    return RemoteMock(_base(base_url), key=key, admin_token=admin_token, timeout=timeout)


def _base(base_url: Any) -> str:
    if not isinstance(base_url, str):
        raise LayersMockError(
            f"base_url must be a URL such as http://127.0.0.1:4010, not {base_url!r}"
        )
    shown = _shown(base_url.strip())
    try:
        parts = urlsplit(base_url.strip())
        _ = parts.port  # a port that is not a number, or out of range
    except ValueError as exc:
        raise LayersMockError(f"{shown!r} is not a URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise LayersMockError(
            f"{shown!r} is not the URL of a server: use http(s)://HOST[:PORT], "
            "e.g. http://127.0.0.1:4010"
        )
    if parts.query or parts.fragment:
        raise LayersMockError(f"{shown!r}: the base URL takes no query or fragment")
    return base_url.strip().rstrip("/")


def _shown(url: str) -> str:
    """The URL as messages show it: a password in it (`http://user:pw@host`) masked."""
    scheme, sep, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    userinfo, at, host = authority.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    return f"{scheme}{sep}{userinfo.split(':', 1)[0]}:***@{host}{slash}{path}"


class RemoteMock:
    """A layers-mock served elsewhere, steered over HTTP (see the module docs). Use it as a
    context manager, or `close()` it, to close its connections."""

    def __init__(
        self, base_url: str, *, key: str | None, admin_token: str | None, timeout: float
    ) -> None:
        import httpx

        self.base_url = base_url
        self._shown = _shown(base_url)  # for messages: no password of the URL in them
        self._tenant_key = key
        self._timeout = timeout
        token = key if key is not None else admin_token
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        self._http = httpx.Client(base_url=base_url, headers=headers, timeout=timeout)
        self._carry_ns = 0
        # A tenant's journal shows what was answered after its last reset: that reset's mark
        # (`GET /_mock/requests?after=`), None before any (reset())
        self._after: int | None = None
        try:
            fixtures = self._control("GET", "/_mock/fixtures")
            try:
                self._know(fixtures, key)
            except (KeyError, TypeError, AttributeError):  # JSON, not layers-mock's fixtures
                raise LayersMockError(
                    f"{self._shown} is not a layers-mock: GET /_mock/fixtures answered "
                    f"{fixtures!r:.80}"
                ) from None
        except BaseException:
            self._http.close()
            raise
        self.rules = Rules(self._control)

    def _know(self, fixtures: Any, key: str | None) -> None:
        """Keys, projects and (a tenant) its organization, from the server's fixtures."""
        if not isinstance(fixtures, dict) or not isinstance(fixtures.get("organizations"), list):
            raise TypeError("no list of organizations")
        self._organization: Organization | None = None
        self._key_ids: frozenset[str] | None = None
        if key is not None:
            mine = [
                org
                for org in fixtures["organizations"]
                if any(k["key"] == key for k in org["keys"])
            ]
            if not mine:
                raise LayersMockError(
                    f"the key {_masked(key)} belongs to no organization of the mock at "
                    f"{self._shown}"
                )
            org = mine[0]
            # An open server (no admin token) shows every organization: keep to this one.
            fixtures = {**fixtures, "organizations": [org]}
            self._organization = Organization(self._control, org["organizationId"], key)
            self._key_ids = frozenset(k["apiKeyId"] for k in org["keys"])
        self.keys, self.projects, self.foreign_project = roles_of(fixtures)

    def __enter__(self) -> RemoteMock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def __repr__(self) -> str:
        who = f"organization {self._organization.id}" if self._organization else "operator"
        return f"RemoteMock({self._shown!r}, {who})"

    # -- who

    @property
    def organization_id(self) -> str | None:
        """The tenant's organization; None for the operator."""
        return self._organization.id if self._organization else None

    @property
    def project(self) -> str:
        """A project of the full key's organization (the tenant's own, for a tenant)."""
        if not self.projects:
            raise LayersMockError("the organization has no project in these fixtures")
        return self.projects[0]

    @property
    def seed(self) -> int:
        seed: int = self._control("GET", "/_mock/seed")["seed"]
        return seed

    # -- clients

    def _key(self, key: str | None) -> str:
        if key is None:
            return self._tenant_key or self.keys.full
        if not isinstance(key, str):
            raise LayersMockError(f"key must be a role of `keys` or an API key, not {key!r}")
        found = self.keys.get(key)
        if found is not None:
            return found
        if key.startswith(("lp_live_", "lp_test_")):
            return key
        raise LayersMockError(f"no {key!r} key in these fixtures (roles: full, scopeless, ...)")

    def client(self, key: str | None = None, **kwargs: Any) -> httpx.Client:
        """An httpx.Client on the server with `Authorization: Bearer <key>`: the tenant's key
        by default (the full key for the operator), or a role of `keys`, or any key."""
        import httpx

        headers = {"Authorization": f"Bearer {self._key(key)}", **kwargs.pop("headers", {})}
        kwargs.setdefault("timeout", self._timeout)
        return httpx.Client(base_url=self.base_url, headers=headers, **kwargs)

    def async_client(self, key: str | None = None, **kwargs: Any) -> httpx.AsyncClient:
        """`client()` for asyncio code."""
        import httpx

        headers = {"Authorization": f"Bearer {self._key(key)}", **kwargs.pop("headers", {})}
        kwargs.setdefault("timeout", self._timeout)
        return httpx.AsyncClient(base_url=self.base_url, headers=headers, **kwargs)

    # -- time: the tenant's organization's clock, or the server's for the operator

    @property
    def now(self) -> datetime:
        if self._organization is not None:
            return self._organization.now
        return parse_instant(self._control("GET", "/_mock/clock")["now"])

    def advance(self, seconds: float | timedelta) -> datetime:
        """Move the clock forward (never backwards: LayersMockError); returns the new time.
        Below a millisecond is carried to the next advance, as in `LayersMock.advance`."""
        wire, self._carry_ns = carried(seconds, self._carry_ns)
        return self.now if wire is None else self._advance(wire)

    def _advance(self, seconds: Any) -> datetime:
        if self._organization is not None:
            return self._organization.advance(seconds)
        moved = self._control("POST", "/_mock/clock/advance", {"seconds": seconds})
        return parse_instant(moved["now"])

    def set_clock(self, instant: datetime | str) -> datetime:
        """Jump to `instant` (never backwards: LayersMockError)."""
        self._carry_ns = 0
        if self._organization is not None:
            return self._organization.set_clock(instant)
        wire = wire_instant(instant)
        return parse_instant(self._control("POST", "/_mock/clock/set", {"now": wire})["now"])

    def follow_server_clock(self) -> datetime:
        """A tenant: drop the organization's own clock and follow the server's again."""
        if self._organization is None:
            raise LayersMockError(
                "the operator's clock is the server clock; to hand an organization back to "
                "it, use organization(id).follow_server_clock()"
            )
        return self._organization.follow_server_clock()

    def sleep(self, seconds: float, result: Any = None) -> Slept:
        """A drop-in for time.sleep: advances the clock when it is virtual (the server's is,
        or the tenant's organization has its own), and really sleeps on a wall clock."""
        if not (isinstance(seconds, int | float) and math.isfinite(seconds) and seconds >= 0):
            raise ValueError("sleep length must be a non-negative number")
        virtual = self._control("GET", "/_mock/clock")["mode"] == "virtual"
        if virtual or (self._organization is not None and self._organization.detached):
            if seconds:
                self.advance(seconds)
        else:
            time.sleep(seconds)
        return Slept(result)

    # -- state

    def reset(self, seed: int | None = None) -> None:
        """A tenant: its organization back to its fixtures, its clock following the server's
        (nobody else's data moves). The operator: the whole server, with `seed` if given."""
        self._carry_ns = 0
        if self._organization is not None:
            if seed is not None:
                self._control("POST", "/_mock/reset", {"seed": seed})  # the server's 403
            # An organization's reset keeps the server's journal (it is the server's, not the
            # organization's data); its requests() start again from here, as after
            # LayersMock.reset(): those answered after the reset, by the reset's mark (not
            # by `sequence`: on a shared sandbox a request answered just before the reset
            # can reach the journal after it).
            body = {"organizationId": self._organization.id}
            mark = self._control("POST", "/_mock/reset", body).get("mark")
            if not isinstance(mark, int):
                raise LayersMockError(
                    f"{self._shown} reset the organization but answered no journal mark: it "
                    "is an older layers-mock, whose requests() after a reset this version "
                    "cannot count (use the same version on both sides)"
                )
            self._after = mark
            return
        self._control("POST", "/_mock/reset", {} if seed is None else {"seed": seed})

    def organization(self, who: str) -> Organization:
        """The operator: one organization's clock and reset (`who`: an organization id, a
        role of `keys` or a key; given a key, the calls carry it)."""
        if self._organization is not None:
            raise LayersMockError(
                "organization() is the operator's (connect with admin_token=): a tenant key "
                "steers its own organization, through this object's methods"
            )
        if not isinstance(who, str):
            raise LayersMockError(
                f"organization() takes an organization id, a role or a key, not {who!r}"
            )
        if who.startswith("org_"):
            return Organization(self._control, who, None)
        key = self._key(who)
        for org in self._control("GET", "/_mock/fixtures")["organizations"]:
            if any(k["key"] == key for k in org["keys"]):
                return Organization(self._control, org["organizationId"], key)
        raise LayersMockError(f"the key {_masked(key)} belongs to no organization of the mock")

    # -- verification

    def requests(self, method: str | None = None, path: str | None = None) -> list[Recorded]:
        """What the server answered, oldest first (a tenant: its organization's requests).
        Bodies and headers are there when the server keeps them (`serve --journal-bodies`)."""
        filters(method, path)
        recorded = [recorded_from(item) for item in reversed(self._journal(JOURNAL_LIMIT))]
        return [r for r in recorded if matches(r, method, path)]

    def _journal(self, limit: int) -> list[dict[str, Any]]:
        """Journal entries, newest first: the tenant's own since its last reset."""
        asked: dict[str, Any] = {"limit": limit}
        if self._after is not None:
            asked["after"] = self._after
        if self._organization is not None:  # its own share, not the newest 1,000 of all
            asked["organizationId"] = self._organization.id
        query = urlencode(asked)
        items: list[dict[str, Any]] = self._control("GET", "/_mock/requests", query=query)["items"]
        if self._key_ids is not None:  # a server before organizationId= sends every one's
            items = [i for i in items if i["apiKeyId"] in self._key_ids]
        return items

    def assert_called(self, method: str, path: str, *, times: int | None = None) -> list[Recorded]:
        """Assert the server answered `method path` at least once, or exactly `times` times."""
        return check_called(self.requests, method, path, times)

    def assert_not_called(self, method: str, path: str) -> None:
        self.assert_called(method, path, times=0)

    @staticmethod
    def prefer(**kwargs: Any) -> dict[str, str]:
        """`LayersMock.prefer`: headers asking for an outcome or a fault on one request."""
        from . import LayersMock

        return LayersMock.prefer(**kwargs)

    # -- the control plane, over HTTP

    def _control(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        query: str = "",
        *,
        key: str | None = None,
    ) -> Any:
        import httpx

        try:
            payload = orjson.dumps(body) if body is not None else None
        except TypeError as exc:  # e.g. an integer past 64 bits
            raise LayersMockError(f"cannot send {body!r}: {exc}") from None
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        if key is not None:  # an organization's own calls (organization())
            headers["Authorization"] = f"Bearer {key}"
        url = path + (f"?{query}" if query else "")
        try:
            response = self._http.request(method, url, content=payload, headers=headers)
        except httpx.TimeoutException:
            raise LayersMockError(
                f"{self._shown} did not answer {method} {path} within {self._timeout} s"
            ) from None
        except httpx.HTTPError as exc:
            raise LayersMockError(
                f"cannot reach {self._shown}: {exc or type(exc).__name__}"
            ) from None
        try:
            answer = orjson.loads(response.content) if response.content else None
        except orjson.JSONDecodeError:
            answer = ...
        if answer is ... or (response.status_code >= 400 and not _enveloped(answer)):
            raise LayersMockError(
                f"{self._shown} is not a layers-mock (or not this version): {method} {path} "
                f"answered {response.status_code} {response.headers.get('content-type', '')}"
            )
        if response.status_code >= 400:
            status = response.status_code
            raise LayersMockError(f"{error_text(answer, status)} ({status} from {self._shown})")
        return answer


def _enveloped(answer: Any) -> bool:
    return isinstance(answer, dict) and isinstance(answer.get("error"), dict)


def _masked(key: str) -> str:
    """A key as messages show it: its prefix, never the secret."""
    return repr(key[:12] + "…") if len(key) > 12 else repr(key)
