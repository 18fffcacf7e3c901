"""One HTTP client for every engine: the mock in-process, or any deployment over the network.

Every request of the run goes through `Target.send`, so the budget (real job starts, time,
rate) is enforced in one place, every exchange is recorded for the report, the observers and
the replay file, and the same clause code runs unchanged in-process (Starlette's sync ASGI
client, no socket) or against a URL (plain httpx). The guard that keeps the run's hands off
what it did not create lives here too: a PATCH, DELETE or cancel of an id the run saw in a
list but never created is a bug of the runner, refused before it leaves.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx

from . import contract as c
from . import stopping
from .exchange import ClockMove, Exchange, Step

INFLUENCER_CREATE = re.compile(r"^/v1/projects/[^/]+/influencers/?$")
CREATES = re.compile(r"^/v1/projects/[^/]+/influencers/?$|^/v1/influencers/[^/]+/clone/?$")
PROJECT_CREATE = re.compile(r"^/v1/projects/?$")
ID_SEGMENT = re.compile(r"^(prj_|inf_|job_)?[0-9A-Za-z-]{20,}$")


class BudgetSpent(Exception):
    """A request that could start a real job (or create a project) was refused locally."""


class TimeUp(Exception):
    """`--max-time` is spent; whatever clause was running is reported NOT CHECKED."""


class ShareSpent(TimeUp):
    """This clause's planned share of `--max-time` is spent; the next clause gets its own."""


class Unsendable(ValueError):
    """The HTTP client refused to put this request on the wire (e.g. a header with trailing
    whitespace); in-process it would reach the app, over HTTP it cannot, so it is skipped."""


class TargetUnreachable(Exception):
    """The deployment did not answer at all (a usage/connection error, exit code 2).

    `status` is the HTTP status when it answered, but not what was needed: a 404 from the
    control plane says the target is no layers-mock, a 401 that the credential is wrong."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class NotOurs(RuntimeError):
    """The runner tried to change a resource it did not create: a bug of the runner."""


@dataclass(slots=True)
class Identities:
    """The keys and projects a run may use; anything missing narrows what can be checked."""

    api_key: str
    project_id: str
    scopeless_key: str | None = None
    foreign_project_id: str | None = None
    second_key: str | None = None  # another key of the same organization
    foreign_key: str | None = None  # a key of another organization
    killed_key: str | None = None
    throttle_key: str | None = None  # a limited-tier key the run may exhaust
    org_admin_key: str | None = None  # a key with org:admin whose organization has a child
    child_organization_id: str | None = None  # a direct child of org_admin_key's organization
    wallet_key: str | None = None  # a key (of another organization) whose wallet may run dry
    wallet_project_id: str | None = None  # a project of wallet_key's organization

    # environment variable each secret is reported as (never the key itself)
    ENV = {
        "api_key": "LAYERS_API_KEY",
        "scopeless_key": "LAYERS_SCOPELESS_KEY",
        "second_key": "LAYERS_SECOND_KEY",
        "foreign_key": "LAYERS_FOREIGN_KEY",
        "killed_key": "LAYERS_KILLED_KEY",
        "throttle_key": "LAYERS_THROTTLE_KEY",
        "org_admin_key": "LAYERS_ORG_ADMIN_KEY",
        "wallet_key": "LAYERS_WALLET_KEY",
    }

    def billable_keys(self) -> tuple[str, ...]:
        """Every key given that can start jobs (billed to someone: the budget counts them)."""
        return tuple(
            k
            for k in (
                self.api_key,
                self.scopeless_key,
                self.second_key,
                self.foreign_key,
                self.throttle_key,
                self.org_admin_key,
                self.wallet_key,
            )
            if k
        )

    def secrets(self) -> dict[str, str]:
        out = {}
        for attr, env in self.ENV.items():
            value = getattr(self, attr)
            if value:
                out[value] = env
        return out


@dataclass(slots=True)
class Budget:
    max_creates: int | None  # None: unlimited (the mock)
    max_time: float | None
    rate_limit: float | None  # requests per second, None: as fast as it answers
    max_projects: int | None = None
    now: Callable[[], float] = time.monotonic
    started: float = 0.0
    creates: int = 0
    projects: int = 0
    clause_deadline: float | None = None

    def __post_init__(self) -> None:
        self.started = self.now()

    def can_create(self, n: int = 1) -> bool:
        return self.max_creates is None or self.creates + n <= self.max_creates

    def creates_left(self) -> int | None:
        return None if self.max_creates is None else max(0, self.max_creates - self.creates)

    def can_create_project(self) -> bool:
        return self.max_projects is None or self.projects < self.max_projects

    def elapsed(self) -> float:
        return self.now() - self.started

    def remaining_time(self) -> float | None:
        left = None if self.max_time is None else self.max_time - self.elapsed()
        if self.clause_deadline is not None:
            share = self.clause_deadline - self.now()
            left = share if left is None else min(left, share)
        return left

    def check_time(self) -> None:
        if self.max_time is not None and self.elapsed() >= self.max_time:
            raise TimeUp(f"--max-time {self.max_time:g}s spent")
        if self.clause_deadline is not None and self.now() >= self.clause_deadline:
            raise ShareSpent("its planned share of --max-time was spent")


class ControlPlane:
    """The mock's `/_mock/` clock: in-process always, against a URL only with --control-plane.

    With a tenant key (--tenant-key) the run moves that key's organization's own clock
    (`/_mock/organizations/{id}/clock`, the routes a tenant of a shared sandbox may use) instead
    of the server clock, and never needs the admin token."""

    def __init__(
        self, client: httpx.Client, base_url: str, token: str | None, tenant_key: str | None = None
    ) -> None:
        self.client = client
        self.base_url = base_url
        secret = tenant_key or token
        self.headers = {"Authorization": f"Bearer {secret}"} if secret else {}
        self.tenant_key = tenant_key
        self._path: str | None = None if tenant_key else "/_mock/clock"
        self.own_keys: set[str] | None = None  # with a tenant key: its organization's keys
        self.organization_id: str | None = None  # with a tenant key: its organization
        self.advanced_s = 0.0
        self.moves = 0
        self.mode: str | None = None  # "virtual" or "wall", once the clock was read

    def _get(self, path: str) -> Any:
        try:
            response = self.client.get(self.base_url + path, headers=self.headers)
        except httpx.TransportError as exc:
            raise TargetUnreachable(f"GET {path}: {exc}") from exc
        body = _json(response.content)
        if response.status_code != 200 or not isinstance(body, dict):
            raise TargetUnreachable(
                f"GET {path} answered {response.status_code}", response.status_code
            )
        return body

    def path(self) -> str:
        """The clock this run moves: the server's, or the tenant key's organization's."""
        if self._path is None:
            organizations = self._get("/_mock/fixtures").get("organizations") or []
            mine = [
                org
                for org in organizations
                if any(k.get("key") == self.tenant_key for k in org.get("keys", []))
            ]
            if not mine:
                raise TargetUnreachable("--tenant-key: no organization of the mock has this key")
            self.own_keys = {str(k.get("key")) for k in mine[0].get("keys", [])}
            self.organization_id = str(mine[0]["organizationId"])
            self._path = f"/_mock/organizations/{mine[0]['organizationId']}/clock"
        return self._path

    def moves_jobs_of(self, key: str, acting_in: str | None) -> bool:
        """Whether moving this clock moves the jobs `key` starts (in `acting_in`, the child an
        X-Layers-Organization header names): always for the server clock; with a tenant key,
        only its own organization's."""
        if self.tenant_key is None:
            return True
        self.path()
        return acting_in is None and self.own_keys is not None and key in self.own_keys

    def clock(self) -> dict[str, Any]:
        """Raises TargetUnreachable when the clock cannot be read (wrong URL, token)."""
        path = self.path()
        body = self._get(path)
        if "now" not in body:
            raise TargetUnreachable(f"GET {path} answered no clock")
        if self.tenant_key is None:
            self.mode = str(body.get("mode"))
            return body
        # its own clock is virtual; following the server's, it runs as the server's does
        server = "virtual" if body.get("detached") else self._get("/_mock/clock").get("mode")
        self.mode = str(server)
        return {**body, "mode": self.mode}

    def now_s(self) -> float:
        return c.parse_time(self.clock()["now"]) or 0.0

    def advance(self, seconds: float) -> None:
        path = self.path() + "/advance"
        try:
            response = self.client.post(
                self.base_url + path, json={"seconds": seconds}, headers=self.headers
            )
        except httpx.TransportError as exc:
            raise TargetUnreachable(f"POST {path}: {exc}") from exc
        if response.status_code != 200:
            raise TargetUnreachable(f"POST {path} answered {response.status_code}")
        self.advanced_s += seconds
        self.moves += 1


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


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
        control: ControlPlane | None = None,
        seed: int = 0,
        sleep: Callable[[float], None] = time.sleep,
        on_request: Callable[[Target], None] | None = None,
    ) -> None:
        self.client = client
        self.base_url = base_url.rstrip("/")
        self.ids = identities
        self.budget = budget
        self.app = app  # the ASGI app when in-process
        self.control = control  # None: black box, the partner API only
        self.seed = seed  # also seeds Hypothesis: same seed, same cases, same sequence
        self.rng = random.Random(seed)
        self.sleep = sleep
        self.on_request = on_request
        self.steps: list[Step] = []
        self.exchanges: list[Exchange] = []
        self.statuses: Counter[int] = Counter()
        self.digest = hashlib.sha256()
        self.clause = ""  # the clause on whose behalf requests are being sent
        self.owned: set[str] = set()  # bare ids of jobs, influencers, projects the run created
        self.seen: set[str] = set()  # bare ids read in lists that the run did not create
        self.accepted_keys: set[str] = set()  # Idempotency-Keys whose create was accepted
        self.slept_s = 0.0
        self._last_send: float | None = None

    @property
    def in_process(self) -> bool:
        return self.app is not None

    @property
    def secrets(self) -> dict[str, str]:
        return self.ids.secrets()

    def auth(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.ids.api_key}"}

    def still_answers(self) -> bool:
        """Whether the deployment answers a whoami (unrecorded, no scope, nothing billed):
        after a request it dropped, this tells a deployment that hung up on that one request
        (a contract failure of the clause that sent it) from one that went away (exit 2)."""
        self._throttle()
        try:
            self.client.get(self.base_url + "/v1/whoami", headers=self.auth())
        except httpx.TransportError:
            return False
        return True

    def idempotency_key(self) -> str:
        """Fresh per logical operation, yet reproducible from the seed (no uuid4)."""
        return f"conform-{self.rng.getrandbits(64):016x}"

    def wait(self, seconds: float) -> None:
        """Real time passes (a black-box deployment's jobs move on the wall clock)."""
        if seconds > 0:
            self.slept_s += seconds
            self.sleep(seconds)
            stopping.check()

    def advance(self, seconds: float) -> None:
        """Move the mock's clock (only when it is ours to move) and record the move."""
        if self.control is None:
            raise RuntimeError("advance() without a control plane")
        self.control.advance(seconds)
        self.steps.append(ClockMove(seconds, len(self.steps), self.clause))

    def send(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, Any] | None = None,
        json_body: Any = None,
        content: bytes | None = None,
        params: dict[str, Any] | None = None,
        retry_429: bool = True,
        expect_replay: bool = False,
    ) -> Exchange:
        """Send one request, enforcing the budget; a 429 is retried after its Retry-After.

        --max-creates and --max-projects are hard ceilings: once spent, no request that could
        start a job or create a project on the partner's keys leaves, even one meant to be
        rejected (a broken deployment might accept it). Requests without such a key (none, a
        malformed, unknown or killed one) cannot be billed to anyone and are always sent.
        `expect_replay=True` marks the retry of an accepted create with its Idempotency-Key: it
        replays, so it is sent even when the budget is spent; if it starts a job after all,
        that is counted and reported."""
        stopping.check()
        self.budget.check_time()
        bare_path = path.split("?", maxsplit=1)[0]
        makes_project = method.upper() == "POST" and bool(PROJECT_CREATE.match(bare_path))
        creates = method.upper() == "POST" and bool(CREATES.match(bare_path))
        # A project with appDescription starts its first influencer: that is a job too.
        creates = creates or (
            makes_project
            and b"appDescription"
            in (content or b"") + (json.dumps(json_body).encode() if json_body is not None else b"")
        )
        key = (headers or {}).get("Idempotency-Key")
        replay = expect_replay and key is not None and key in self.accepted_keys
        gated = not replay and self._billable(headers or {})
        if creates and gated and not self.budget.can_create():
            raise BudgetSpent(f"--max-creates {self.budget.max_creates} spent")
        if makes_project and gated and not self.budget.can_create_project():
            raise BudgetSpent(f"--max-projects {self.budget.max_projects} spent")
        self._guard(method.upper(), bare_path)
        if content is None and json_body is not None:
            content = json.dumps(json_body).encode()
            headers = {"Content-Type": "application/json", **(headers or {})}
        request = self.client.build_request(
            method, self.base_url + path, headers=headers or {}, content=content, params=params
        )
        for attempt in range(4):
            self._throttle()
            sent = self.budget.elapsed()
            try:
                response = self.client.send(request)
            except httpx.LocalProtocolError as exc:
                raise Unsendable(f"{method} {request.url}: {exc}") from exc
            except httpx.TransportError as exc:
                raise TargetUnreachable(f"{method} {request.url}: {exc}") from exc
            exchange = self._record(request, response, creates, makes_project, sent)
            if response.status_code != 429 or not retry_429 or attempt == 3:
                return exchange
            wait = _retry_after(response.headers.get("Retry-After"))
            if self._waits_on_the_mock(request):
                self.advance(wait)
                continue
            left = self.budget.remaining_time()
            if left is not None and wait > left:
                return exchange
            self.wait(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def _waits_on_the_mock(self, request: httpx.Request) -> bool:
        """Whether a 429's Retry-After (the client's time) passes by moving the mock's clock:
        on a virtual clock real time moves no window, so sleeping it only repeats the 429.
        Only a clock the run may move and that the key's windows follow (its organization's;
        a key acting in a child counts on its own)."""
        if self.control is None:
            return False
        key = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if not key or not self.control.moves_jobs_of(key, None):
            return False  # no key, no window: whatever throttled it, it is not the mock's
        # read afresh: an organization's clock the run moved stands still from then on
        return self.control.clock().get("mode") == "virtual"

    def send_together(
        self, method: str, path: str, headers: dict[str, Any], json_body: Any, n: int
    ) -> list[Exchange]:
        """The same request `n` times at once (threads over HTTP; one after another
        in-process, where the app runs on the client's thread). Recorded in submission
        order, so the run's sequence stays a function of the seed."""
        self.budget.check_time()
        creates = method.upper() == "POST" and bool(CREATES.match(path.split("?", maxsplit=1)[0]))
        if creates and self._billable(headers) and not self.budget.can_create():
            raise BudgetSpent(f"--max-creates {self.budget.max_creates} spent")
        content = json.dumps(json_body).encode()
        headers = {"Content-Type": "application/json", **headers}
        requests = [
            self.client.build_request(
                method, self.base_url + path, headers=headers, content=content
            )
            for _ in range(n)
        ]
        sent = self.budget.elapsed()
        try:
            if self.in_process:
                responses = [self.client.send(r) for r in requests]
            else:
                with ThreadPoolExecutor(n) as pool:
                    responses = list(pool.map(self.client.send, requests))
        except httpx.TransportError as exc:
            raise TargetUnreachable(f"{method} {path}: {exc}") from exc
        return [
            self._record(q, r, creates, False, sent)
            for q, r in zip(requests, responses, strict=True)
        ]

    def _record(
        self,
        request: httpx.Request,
        response: httpx.Response,
        creates: bool,
        project: bool,
        sent: float,
    ) -> Exchange:
        exchange = Exchange(
            method=request.method,
            url=str(request.url),
            path=request.url.raw_path.decode(),
            request_headers=dict(request.headers),
            request_body=request.content,
            status=response.status_code,
            response_headers=dict(response.headers),
            response_body=response.content,
            seq=len(self.steps),
            clause=self.clause,
            sent=math.floor(sent * 1000) / 1000,  # milliseconds, never later than it was
            at=math.ceil(self.budget.elapsed() * 1000) / 1000,  # ... nor sooner
        )
        body = exchange.json()
        minted = body.get("jobId") or body.get("id") if isinstance(body, dict) else None
        if response.status_code in (201, 202) and (creates or project):
            key = request.headers.get("Idempotency-Key")
            if key:
                self.accepted_keys.add(key)
            if isinstance(minted, str) and c.bare(minted) not in self.owned:
                self.budget.creates += 1 if creates else 0
                self.budget.projects += 1 if project else 0
        self._learn_ids(exchange)
        self.steps.append(exchange)
        self.exchanges.append(exchange)
        self.statuses[exchange.status] += 1
        self.digest.update(f"{exchange.method} {exchange.path}\n".encode() + exchange.request_body)
        if self.on_request is not None:
            self.on_request(self)
        return exchange

    def _learn_ids(self, ex: Exchange) -> None:
        body = ex.json()
        if not isinstance(body, dict):
            return
        if ex.method == "POST" and ex.status in (201, 202):
            for key in ("jobId", "influencerId", "id"):
                if isinstance(body.get(key), str):
                    self.owned.add(c.bare(body[key]))
        if ex.method == "GET" and isinstance(body.get("items"), list):
            for item in body["items"]:  # influencers and projects read in lists
                if not isinstance(item, dict):
                    continue
                for key in ("influencerId", "id"):
                    if isinstance(item.get(key), str) and c.bare(item[key]) not in self.owned:
                        self.seen.add(c.bare(item[key]))

    def _guard(self, method: str, path: str) -> None:
        """Against a deployment, never change what the run did not create: a PATCH, DELETE,
        PUT or POST naming an existing id the run did not mint (the given projects, an
        influencer or project read in a list) is a bug of the runner, refused before it leaves.
        Creating an influencer in a given project is the one write on something not the run's;
        a clone names its source, so only the run's own influencers are cloned."""
        if self.in_process or method not in ("PATCH", "DELETE", "POST", "PUT"):
            return
        if method == "POST" and INFLUENCER_CREATE.match(path):
            return
        ids = self.ids
        existing = self.seen | {c.bare(ids.project_id)}
        for given in (ids.foreign_project_id, ids.wallet_project_id):
            if given:
                existing.add(c.bare(given))
        for segment in path.split("/"):
            if ID_SEGMENT.match(segment) and c.bare(segment) in existing - self.owned:
                raise NotOurs(f"refused {method} {path}: the run did not create {segment}")

    def _billable(self, headers: dict[str, Any]) -> bool:
        auth = next((str(v) for k, v in headers.items() if k.lower() == "authorization"), "")
        token = auth.removeprefix("Bearer ").strip()
        return bool(token) and token in self.ids.billable_keys()

    def _throttle(self) -> None:
        if not self.budget.rate_limit:
            return
        now = self.budget.now()
        if self._last_send is not None:
            gap = 1.0 / self.budget.rate_limit - (now - self._last_send)
            if gap > 0:
                self.wait(gap)
        self._last_send = self.budget.now()


def _retry_after(value: str | None) -> float:
    try:
        return max(0.0, min(float(value or 1), 120.0))
    except ValueError:
        return 1.0
