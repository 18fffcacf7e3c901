"""One HTTP client for every engine: the mock in-process, or any deployment over the network.

Every request of the run goes through `Target.send`, so the budget (real job starts, time,
rate) is enforced in one place, every exchange is recorded for the report and its curl, and
the same clause code runs unchanged in-process (Starlette's sync ASGI client, no socket) or
against a URL (plain httpx).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

CREATES = re.compile(r"^/v1/projects(/[^/]+/influencers)?/?$")


class BudgetSpent(Exception):
    """A request that could start a real job was refused: the `--max-creates` budget is spent."""


class TimeUp(Exception):
    """`--max-time` is spent; whatever clause was running is reported NOT CHECKED."""


class Unsendable(ValueError):
    """The HTTP client refused to put this request on the wire (e.g. a header with trailing
    whitespace); in-process it would reach the app, over HTTP it cannot, so it is skipped."""


class TargetUnreachable(Exception):
    """The deployment did not answer at all (a usage/connection error, exit code 2)."""


@dataclass(slots=True)
class Identities:
    """The keys and projects a run may use; anything missing narrows what can be checked."""

    api_key: str
    project_id: str
    scopeless_key: str | None = None
    foreign_project_id: str | None = None


@dataclass(slots=True)
class Budget:
    max_creates: int | None  # None: unlimited (the mock)
    max_time: float | None
    rate_limit: float | None  # requests per second, None: as fast as it answers
    started: float = field(default_factory=time.monotonic)
    creates: int = 0

    def can_create(self, n: int = 1) -> bool:
        return self.max_creates is None or self.creates + n <= self.max_creates

    def remaining_time(self) -> float | None:
        if self.max_time is None:
            return None
        return self.max_time - (time.monotonic() - self.started)

    def check_time(self) -> None:
        left = self.remaining_time()
        if left is not None and left <= 0:
            raise TimeUp(f"--max-time {self.max_time:g}s spent")


@dataclass(slots=True)
class Exchange:
    method: str
    url: str
    path: str
    request_headers: dict[str, str]
    request_body: bytes
    status: int
    response_headers: dict[str, str]
    response_body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.response_body)
        except ValueError:
            return None

    def header(self, name: str) -> str | None:
        for key, value in self.response_headers.items():
            if key.lower() == name.lower():
                return value
        return None

    def redacted(self, secrets: dict[str, str]) -> dict[str, str]:
        out = {}
        for key, raw in self.request_headers.items():
            value = raw
            for secret, env in secrets.items():
                value = value.replace(secret, f"${{{env}}}")
            out[key] = value
        return out

    def curl(self, secrets: dict[str, str]) -> str:
        """A curl that reproduces the request; keys appear as $ENV references, never literally."""
        parts = ["curl", "-i", "-X", self.method, shlex.quote(self.url)]
        for key, value in self.redacted(secrets).items():
            if key.lower() in {
                "host",
                "content-length",
                "accept-encoding",
                "connection",
                "user-agent",
            }:
                continue
            quoted = f"{key}: {value}".replace('"', '\\"')
            parts += ["-H", f'"{quoted}"']
        if self.request_body:
            parts += ["--data-binary", shlex.quote(self.request_body.decode("utf-8", "replace"))]
        return " ".join(parts)

    def as_dict(self, secrets: dict[str, str]) -> dict[str, Any]:
        return {
            "request": {
                "method": self.method,
                "url": self.url,
                "headers": self.redacted(secrets),
                "body": self.request_body.decode("utf-8", "replace"),
            },
            "response": {
                "status": self.status,
                "headers": self.response_headers,
                "body": self.response_body.decode("utf-8", "replace")[:4000],
            },
            "curl": self.curl(secrets),
        }


class Target:
    """A deployment under test plus the run's budget, recorder and steering abilities."""

    def __init__(
        self,
        client: httpx.Client,
        base_url: str,
        identities: Identities,
        budget: Budget,
        *,
        app: Any = None,
        seed: int = 0,
        sleep: Callable[[float], None] = time.sleep,
        on_request: Callable[[Target], None] | None = None,
    ) -> None:
        self.client = client
        self.base_url = base_url.rstrip("/")
        self.ids = identities
        self.budget = budget
        self.app = app  # the ASGI app when in-process (Schemathesis' own checks use it)
        self.seed = seed  # also seeds Hypothesis: same seed, same cases, same sequence
        self.rng = random.Random(seed)
        self.sleep = sleep
        self.on_request = on_request
        self.exchanges: list[Exchange] = []
        self.digest = hashlib.sha256()
        self._last_send = 0.0
        self._clock_control: bool | None = None

    @property
    def in_process(self) -> bool:
        return self.app is not None

    @property
    def secrets(self) -> dict[str, str]:
        out = {self.ids.api_key: "LAYERS_API_KEY"}
        if self.ids.scopeless_key:
            out[self.ids.scopeless_key] = "LAYERS_SCOPELESS_KEY"
        return out

    def auth(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.ids.api_key}"}

    def idempotency_key(self) -> str:
        """Fresh per logical operation, yet reproducible from the seed (no uuid4)."""
        return f"conform-{self.rng.getrandbits(64):016x}"

    def send(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        json_body: Any = None,
        content: bytes | None = None,
        params: dict[str, Any] | None = None,
        may_create: bool | None = None,
    ) -> Exchange:
        """Send one request, enforcing the budget; a 429 is retried after its Retry-After."""
        self.budget.check_time()
        creates = (
            may_create
            if may_create is not None
            else (method.upper() == "POST" and bool(CREATES.match(path.split("?", maxsplit=1)[0])))
        )
        if creates and not self.budget.can_create():
            raise BudgetSpent(f"--max-creates {self.budget.max_creates} spent")
        if content is None and json_body is not None:
            content = json.dumps(json_body).encode()
            headers = {"Content-Type": "application/json", **(headers or {})}
        request = self.client.build_request(
            method, self.base_url + path, headers=headers or {}, content=content, params=params
        )
        for attempt in range(4):
            self._throttle()
            try:
                response = self.client.send(request)
            except httpx.LocalProtocolError as exc:
                raise Unsendable(f"{method} {request.url}: {exc}") from exc
            except httpx.TransportError as exc:
                raise TargetUnreachable(f"{method} {request.url}: {exc}") from exc
            if response.status_code != 429 or attempt == 3:
                break
            wait = _retry_after(response.headers.get("Retry-After"))
            left = self.budget.remaining_time()
            if left is not None and wait > left:
                break
            self.sleep(wait)
        exchange = Exchange(
            method=request.method,
            url=str(request.url),
            path=request.url.raw_path.decode(),
            request_headers=dict(request.headers),
            request_body=request.content,
            status=response.status_code,
            response_headers=dict(response.headers),
            response_body=response.content,
        )
        if creates and response.status_code in (201, 202):
            self.budget.creates += 1
        self.exchanges.append(exchange)
        self.digest.update(f"{exchange.method} {exchange.path}\n".encode() + exchange.request_body)
        if self.on_request is not None:
            self.on_request(self)
        return exchange

    def _throttle(self) -> None:
        if not self.budget.rate_limit:
            return
        gap = 1.0 / self.budget.rate_limit - (time.monotonic() - self._last_send)
        if gap > 0:
            self.sleep(gap)
        self._last_send = time.monotonic()

    # -- steering: only the mock has a clock to move ------------------------------------------
    @property
    def has_clock_control(self) -> bool:
        """True when `/_mock/clock` answers (the mock, in-process or served); never on Layers."""
        if self._clock_control is None:
            try:
                probe = self.client.get(self.base_url + "/_mock/clock")
                self._clock_control = probe.status_code == 200 and "now" in probe.text
            except httpx.TransportError:
                self._clock_control = False
        return self._clock_control

    def advance(self, seconds: float) -> None:
        response = self.client.post(
            self.base_url + "/_mock/clock/advance", json={"seconds": seconds}
        )
        response.raise_for_status()


def _retry_after(value: str | None) -> float:
    try:
        return max(0.0, min(float(value or 1), 120.0))
    except ValueError:
        return 1.0
