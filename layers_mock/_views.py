"""What the testing API hands back, read from the control plane: keys by role, recorded
requests, rules; and its one error type. Private: everything here is re-exported by
`layers_mock`, where partners import it from.
"""

from __future__ import annotations

import contextlib
import fnmatch
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import orjson

# The journal's documented body bound (openapi/control.yaml, /_mock/requests): 16 KiB.
MAX_BODY_BYTES = 16 * 1024
Control = Callable[..., Any]  # LayersMock._control: (method, path, body=None, query="") -> JSON


class LayersMockError(ValueError):
    """The mock refused a control-plane call (or its set-up); the message is the mock's."""


@dataclass(frozen=True, slots=True)
class Keys:
    """API keys of the fixtures, by role; None where the fixtures have no such key."""

    full: str
    scopeless: str | None = None
    no_jobs: str | None = None
    killed: str | None = None
    foreign: str | None = None
    standard: str | None = None

    def get(self, role: str) -> str | None:
        """The key of a role by name (`"no-jobs"` and `"no_jobs"` both work), or None."""
        name = role.replace("-", "_")
        return getattr(self, name) if name in ROLES else None


ROLES = tuple(f.name for f in fields(Keys))


@dataclass(frozen=True, slots=True)
class Recorded:
    """One request the mock answered, as its journal kept it (oldest first in `requests()`)."""

    sequence: int
    at: datetime
    method: str
    path: str
    query: str
    status: int
    request_id: str
    api_key_id: str | None
    operation_id: str | None
    injected: str | None
    request_headers: Mapping[str, str]
    request_body: str
    response_headers: Mapping[str, str]
    response_body: str | None  # None when nothing was sent (a dropped connection)
    # The journal keeps at most MAX_BODY_BYTES of a body; past that it is cut, and marked.
    request_truncated: bool = False
    response_truncated: bool = False

    def request_json(self) -> Any:
        """The request body parsed, or None when it was empty."""
        _whole("request", self.request_truncated)
        return orjson.loads(self.request_body) if self.request_body.strip() else None

    def response_json(self) -> Any:
        """The response body parsed, or None when there was none."""
        _whole("response", self.response_truncated)
        return orjson.loads(self.response_body) if self.response_body else None

    def __str__(self) -> str:
        query = f"?{self.query}" if self.query else ""
        return f"{self.method} {self.path}{query} → {self.status or 'dropped'}"


def _whole(which: str, truncated: bool) -> None:
    """A cut body is not JSON: say so instead of letting orjson report a syntax error."""
    if truncated:
        raise LayersMockError(
            f"the {which} body was truncated at {MAX_BODY_BYTES} bytes by the mock's journal, "
            f"so it cannot be parsed; `{which}_body` holds the first {MAX_BODY_BYTES} bytes"
        )


class Rules:
    """Fault and outcome rules on requests your code sends itself (`/_mock/rules`)."""

    def __init__(self, control: Control) -> None:
        self._control = control

    def add(
        self,
        *,
        method: str | None = None,
        path: str | None = None,
        operation: str | None = None,
        project: str | None = None,
        organization: str | None = None,
        fault: str | int | None = None,
        latency_ms: int | None = None,
        outcome: str | None = None,
        stage: str | None = None,
        progression: str | None = None,
        count: int | None = None,
        probability: float | None = None,
    ) -> dict[str, Any]:
        """Add a rule; returns it as stored (with its `ruleId` and `remaining`)."""
        match = {
            "method": method,
            "path": path,
            "operationId": operation,
            "projectId": project,
            "organizationId": organization,
        }
        effects = {
            "fault": None if fault is None else str(fault),
            "latencyMs": latency_ms,
            "outcome": outcome,
            "stage": stage,
            "progression": progression,
            "count": count,
            "probability": probability,
        }
        body = {
            "match": {k: v for k, v in match.items() if v is not None},
            **{k: v for k, v in effects.items() if v is not None},
        }
        rule: dict[str, Any] = self._control("POST", "/_mock/rules", body)
        return rule

    def list(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self._control("GET", "/_mock/rules")["items"]
        return items

    def delete(self, rule_id: str) -> None:
        # one path segment, whatever it holds: an HTTP client resolves `.` and `..` (httpx
        # turned rules.delete("x/..") into DELETE /_mock/rules, every rule)
        segment = quote(str(rule_id), safe="").replace(".", "%2E")
        self._control("DELETE", f"/_mock/rules/{segment}")

    def clear(self) -> int:
        deleted: int = self._control("DELETE", "/_mock/rules")["deleted"]
        return deleted


def parse_instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def wire_instant(instant: datetime | str) -> str:
    """What `set_clock` accepts (an aware datetime, or ISO-8601 text with an offset or `Z`) as
    the control plane's millisecond UTC text; LayersMockError for anything else."""
    if isinstance(instant, str):
        try:
            instant = parse_instant(instant)
        except ValueError:
            raise LayersMockError(f"{instant!r} is not an ISO-8601 instant") from None
    if not isinstance(instant, datetime) or instant.tzinfo is None:
        raise LayersMockError("set_clock needs an aware datetime or ISO-8601 with an offset")
    utc = instant.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def error_text(answer: Any, status: int) -> str:
    error = answer.get("error", {}) if isinstance(answer, dict) else {}
    message = str(error.get("message", f"the mock answered {status}"))
    details = error.get("details") or {}
    problems = [*details.get("formErrors", [])]
    problems += [f"{k}: {'; '.join(v)}" for k, v in details.get("fieldErrors", {}).items()]
    return f"{message} {' '.join(problems)}".strip()


def roles_of(document: Mapping[str, Any]) -> tuple[Keys, tuple[str, ...], str | None]:
    """Keys by role and projects, from what /_mock/fixtures lists (see `Keys`)."""
    keys = [
        (org["organizationId"], key) for org in document["organizations"] for key in org["keys"]
    ]
    usable = [(org, k) for org, k in keys if not k["killed"]]
    if not usable:
        raise LayersMockError("the fixtures have no usable (not killed) key")
    everything = [(org, k) for org, k in usable if "*" in k["scopes"]]
    # the full key: every scope, preferring the unlimited tier so tests never meet a 429
    ranked = sorted(everything or usable, key=lambda ok: ok[1]["rateLimitTier"] != "unlimited")
    home, full = ranked[0]
    mine = [k for org, k in usable if org == home]

    def first(keys_: list[dict[str, Any]]) -> str | None:
        return keys_[0]["key"] if keys_ else None

    def lacks(scope: str) -> list[dict[str, Any]]:
        return [k for k in mine if scope not in k["scopes"] and "*" not in k["scopes"]]

    projects = {
        org["organizationId"]: tuple(p["projectId"] for p in org["projects"])
        for org in document["organizations"]
    }
    foreign = next(((org, k) for org, k in everything if org != home), None)
    roles = Keys(
        full=full["key"],
        scopeless=first(lacks("influencers:write")),
        no_jobs=first([k for k in lacks("jobs:read") if "influencers:write" in k["scopes"]]),
        killed=first([k for org, k in keys if org == home and k["killed"]]),
        foreign=foreign[1]["key"] if foreign else None,
        standard=first(
            [k for k in mine if "*" in k["scopes"] and k["rateLimitTier"] == "standard"]
        ),
    )
    foreign_projects = projects[foreign[0]] if foreign else ()
    return roles, projects[home], foreign_projects[0] if foreign_projects else None


def recorded_from(item: Mapping[str, Any]) -> Recorded:
    request = item.get("request") or {"headers": {}, "body": ""}
    response = item.get("response")
    return Recorded(
        sequence=item["sequence"],
        at=parse_instant(item["at"]),
        method=item["method"],
        path=item["path"],
        query=item["query"],
        status=item["status"],
        request_id=item["requestId"],
        api_key_id=item["apiKeyId"],
        operation_id=item["operationId"],
        injected=item["injected"],
        request_headers=request["headers"],
        request_body=request["body"],
        response_headers=response["headers"] if response else {},
        response_body=response["body"] if response else None,
        request_truncated=bool(request.get("truncated")),
        response_truncated=bool(response and response.get("truncated")),
    )


def matches(recorded: Recorded, method: str | None, path: str | None) -> bool:
    if method is not None and recorded.method != method.upper():
        return False
    if path is None:
        return True
    return fnmatch.fnmatchcase(recorded.path, path) if "*" in path else recorded.path == path


for _public in (LayersMockError, Keys, Recorded, Rules):
    _public.__module__ = "layers_mock"  # where partners import them from, and see them named


def filters(method: Any, path: Any, *, required: bool = False) -> None:
    """`requests`' and `assert_called`'s filters are text: anything else would fail deep in
    the matching (AttributeError) or match nothing, a test failing for the wrong reason."""
    for value in (method, path):
        if not (isinstance(value, str) or (value is None and not required)):
            raise LayersMockError(
                f"method and path must be text (such as 'GET' and '/v1/jobs/*'), not {value!r}"
            )


def check_called(
    requests: Callable[..., list[Recorded]], method: str, path: str, times: int | None
) -> list[Recorded]:
    """The in-process mock's and a remote sandbox's `assert_called`, over their `requests`."""
    filters(method, path, required=True)
    if times is not None and (isinstance(times, bool) or not isinstance(times, int) or times < 0):
        raise LayersMockError(f"times must be a whole number of calls, 0 or more, not {times!r}")
    matched = requests(method, path)
    if (times is None and matched) or len(matched) == times:
        return matched
    expected = "at least once" if times is None else f"{times} time(s)"
    seen = "\n".join(f"  {r}" for r in requests()[-20:]) or "  (nothing)"
    raise AssertionError(
        f"expected {method.upper()} {path} {expected}, it was called {len(matched)} "
        f"time(s); the mock answered (last 20):\n{seen}"
    )


def carried(seconds: Any, carry_ns: int) -> tuple[Any, int]:
    """An advance of `seconds` as the mock takes it, in whole milliseconds: (the seconds to
    send, None when it all stays below a millisecond; the nanoseconds carried to the next
    advance). What the mock refuses (negative, not finite, not a number) is sent as given, so
    that its refusal says why, and the carry stays as it was."""
    if isinstance(seconds, timedelta):
        ns = (seconds // timedelta(microseconds=1)) * 1000
    else:
        ns = nanoseconds(seconds)
    if seconds is None:  # None is also "nothing to send" to the callers: say so here
        raise LayersMockError("seconds: must be a number or a timedelta, not None")
    if ns < 0:
        return (seconds.total_seconds() if isinstance(seconds, timedelta) else seconds), carry_ns
    whole_ms, carry_ns = divmod(ns + carry_ns, 1_000_000)
    return (whole_ms / 1000 if whole_ms else None), carry_ns


def nanoseconds(seconds: Any) -> int:
    """`seconds` in whole nanoseconds; -1 for what the mock refuses (negative, not finite,
    past any float, a bool, which Python counts as an int: its answer says why, not an
    OverflowError or a silent second)."""
    if isinstance(seconds, int | float) and not isinstance(seconds, bool) and seconds >= 0:
        with contextlib.suppress(OverflowError, ValueError):
            return round(seconds * 1e9)
    return -1
