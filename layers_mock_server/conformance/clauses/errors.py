"""Errors and every response (CONTRACT.md: Error envelope; spec: X-Request-Id, 405 with Allow,
and every response described by the spec). These judge the whole transcript of the run.
"""

from __future__ import annotations

from .. import contract as c
from ..clause import Section
from ..observe import Transcript
from ..report import Violation
from ..session import Session, error_of, expect_error

SECTION = Section("errors", "Errors and every response")

# Active clauses whose traffic has every kind of answer: 401, 404, 422, 202, 200, 304.
EVERYTHING = (
    "auth.missing-key-401",
    "tenancy.unknown-ids-404",
    "validation.unknown-field-named",
    "jobs.if-none-match-304",
)


@SECTION.observer("errors.envelope", producers=EVERYTHING)
def envelope(t: Transcript) -> None:
    """Every 4xx and 5xx body is {"error": {code, message, requestId, details?}} sent as
    application/json."""
    errors = [ex for ex in t.partner if ex.status >= 400]
    for ex in errors:
        error = error_of(ex)
        media = (ex.header("Content-Type") or "").split(";")[0].strip()
        if media != "application/json":
            raise Violation("errors.envelope", f"Content-Type {media!r} on a {ex.status}", ex)
        missing = [k for k in ("code", "message", "requestId") if not error.get(k)]
        if missing:
            raise Violation("errors.envelope", f"error envelope without {missing}", ex)
    t.need(bool(errors), "no error answer")


@SECTION.observer("errors.code-matches-status", producers=EVERYTHING)
def code_matches_status(t: Transcript) -> None:
    """The error code goes with the status (401 UNAUTHENTICATED, 403 FORBIDDEN_SCOPE, 404
    NOT_FOUND, 409 CONFLICT or IDEMPOTENCY_CONFLICT, 422 VALIDATION, 429 RATE_LIMITED, ...)."""
    errors = [ex for ex in t.partner if ex.status >= 400]
    for ex in errors:
        code = error_of(ex).get("code")
        allowed = c.ERROR_CODES.get(ex.status)
        if allowed is not None and code not in allowed:
            raise Violation("errors.code-matches-status", f"{ex.status} carried code {code!r}", ex)
    t.need(bool(errors), "no error answer")


@SECTION.observer("errors.request-id", producers=EVERYTHING)
def request_id(t: Transcript) -> None:
    """Every response carries its own X-Request-Id (req_<ULID>, never reused, a replay
    included), and an error's requestId is that same id."""
    seen: dict[str, int] = {}
    for ex in t.partner:
        header = ex.header("X-Request-Id")
        if not header or not c.REQUEST_ID.match(header):
            raise Violation("errors.request-id", f"X-Request-Id {header!r}", ex)
        if header in seen:
            raise Violation("errors.request-id", f"{header} was already used (#{seen[header]})", ex)
        seen[header] = ex.seq
        if ex.status >= 400 and error_of(ex).get("requestId") != header:
            raise Violation(
                "errors.request-id", f"requestId {error_of(ex).get('requestId')!r} != {header}", ex
            )
    t.need(bool(seen), "no response")


# (method, path, the path template whose methods Allow must list)
NOT_ALLOWED = (
    ("PUT", "/v1/influencers/inf_00000000-0000-4000-8000-000000000405", "/v1/influencers/{i}"),
    ("DELETE", "/v1/jobs/job_00000000000000000000000405", "/v1/jobs/{j}"),
    ("GET", "/v1/jobs/job_00000000000000000000000405/cancel", "/v1/jobs/{j}/cancel"),
    ("POST", "/v1/whoami", "/v1/whoami"),
)


@SECTION.clause("errors.method-not-allowed-405")
def method_not_allowed_405(s: Session) -> None:
    """An unsupported method on a known path is 405 METHOD_NOT_ALLOWED with an Allow header
    listing the path's methods."""
    clause = "errors.method-not-allowed-405"
    for method, path, template in NOT_ALLOWED:
        ex = s.call(method, path)
        expect_error(clause, ex, 405, "METHOD_NOT_ALLOWED")
        allow = {m.strip().upper() for m in (ex.header("Allow") or "").split(",") if m.strip()}
        want = c.PATH_METHODS[template]
        if not want <= allow or method in allow:
            raise Violation(clause, f"Allow {ex.header('Allow')!r}, expected {sorted(want)}", ex)


@SECTION.clause("errors.unknown-path-404")
def unknown_path_404(s: Session) -> None:
    """A path the API does not have is 404 NOT_FOUND in the error envelope."""
    for path in ("/v1/conformance-no-such-path", "/v1/jobs/job_00000000000000000000000000/x"):
        expect_error("errors.unknown-path-404", s.get(path), 404, "NOT_FOUND")


@SECTION.observer("responses.no-5xx", producers=EVERYTHING)
def no_5xx(t: Transcript) -> None:
    """No request of the run is answered with a 5xx (but a killed key's 503 KILL_SWITCH, the
    faults the run asked the mock for, and the mock's 501 NOT_SIMULATED outside the surface)."""
    for ex in t.partner:
        code = error_of(ex).get("code")
        killed = t.identity_of(ex) == "killed_key" and code == "KILL_SWITCH"
        injected = "fault=" in (ex.request_header("Prefer") or "")
        unsimulated = code == "NOT_SIMULATED" and c.operation_of(ex.method, ex.path) is None
        if ex.status >= 500 and not killed and not injected and not unsimulated:
            raise Violation("responses.no-5xx", f"answered {ex.status}", ex)
    t.need(bool(t.partner), "no response")


@SECTION.observer("responses.match-spec", producers=EVERYTHING)
def match_spec(t: Transcript) -> None:
    """Every response of the run is one the spec describes: status, headers, content type and
    body schema (Schemathesis' response checks over the whole transcript)."""
    from ..st_engine import validate_exchanges

    validate_exchanges(t.partner)
    t.need(bool(t.partner), "no response")


@SECTION.clause("errors.not-simulated-501", black_box=False)
def not_simulated_501(s: Session) -> None:
    """A Layers operation the mock does not simulate (the audit log, credit events, content,
    ...) is 501 NOT_SIMULATED naming it in details (operation, method, path), with or without
    a key: never a 404 that reads as "wrong id" (mock only)."""
    clause = "errors.not-simulated-501"
    for method, template, operation in c.NOT_SIMULATED:
        path = template.replace("{projectId}", s.project)
        for headers in (s.target.auth(), {}):
            ex = s.target.send(method, path, headers=headers)
            details = expect_error(clause, ex, 501, "NOT_SIMULATED").get("details") or {}
            want = {"operation": operation, "method": method, "path": template}
            got = {k: details.get(k) for k in want}
            if got != want:
                raise Violation(clause, f"details {got}, expected {want}", ex)
