"""Contract clauses as small named functions over plain HTTP (the Hypothesis engine).

Each clause returns nothing when it holds and raises `Violation` (with the exchange as
evidence) when it does not, or `NotChecked` when this target cannot show it. They talk to the
deployment only through `Target.send`, so the same code runs in-process and over the network.
Where the contract's order of checks allows it, probes send a body that is *invalid*: a
conforming server answers 401/403/404 before it looks at the body, and a broken one answers
422 instead of starting a job that would cost the partner money.
"""

from __future__ import annotations

import json
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from . import contract as c
from .report import NotChecked, Violation
from .target import Exchange, Target


def run_settings(max_examples: int, derandomize: bool = False) -> settings:
    """One Hypothesis profile for every engine: no example database (a seed alone must
    reproduce a run), no deadline (a deployment's latency is not a bug), no shrinking (a
    failing clause is reported with its first counterexample; shrinking would spend the
    budget of real requests)."""
    return settings(
        max_examples=max_examples,
        database=None,
        derandomize=derandomize,
        deadline=None,
        phases=(Phase.explicit, Phase.generate),
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
    )


INVALID_BODY = {"gender": "__conformance_probe__"}  # rejected by step 5, after auth/scope/404


@dataclass(slots=True)
class Session:
    """What clauses share: the target, how hard to fuzz, and the one sample job of the run."""

    target: Target
    examples: int
    sample: Exchange | None = None
    job_reads: list[Exchange] = field(default_factory=list)

    @property
    def project(self) -> str:
        return self.target.ids.project_id

    def sample_job(self) -> Exchange:
        """One real job start shared by every clause that needs a 202 (one unit of budget)."""
        if self.sample is None:
            if not self.target.budget.can_create():
                raise NotChecked("--max-creates budget spent before a job could be started")
            self.sample = self.create(
                {}, headers={"Idempotency-Key": self.target.idempotency_key()}
            )
            if self.sample.status != 202:
                raise Violation(
                    "validation.positive-accepted",
                    f"create answered {self.sample.status}",
                    self.sample,
                )
        return self.sample

    def create(
        self,
        body: Any,
        *,
        key: str | None = None,
        project: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Exchange:
        return self.target.send(
            "POST",
            c.create_path(project or self.project),
            headers={**self.target.auth(key), "Prefer": "outcome=completed", **(headers or {})},
            json_body=body,
        )

    def get(self, path: str, key: str | None = None, **headers: str) -> Exchange:
        ex = self.target.send("GET", path, headers={**self.target.auth(key), **headers})
        if path.startswith("/v1/jobs/") and ex.status in (200, 304):
            self.job_reads.append(ex)
        return ex


def prop(
    session: Session, strategy: st.SearchStrategy[Any], n: int | None = None
) -> Callable[..., None]:
    """Run `fn(value)` as a Hypothesis property: seeded, no database, no shrinking.

    Shrinking re-sends requests (and, against a real deployment, might start jobs); the first
    counterexample is evidence enough and the run stays a fixed request sequence.
    """

    def decorate(fn: Callable[[Any], None]) -> None:
        @run_settings(n or session.examples)
        @seed(session.target.seed)
        @given(strategy)
        def run(value: Any) -> None:
            fn(value)

        run()

    return decorate


def expect_error(clause: str, ex: Exchange, status: int, code: str | None = None) -> dict[str, Any]:
    body = ex.json()
    if ex.status != status:
        raise Violation(clause, f"expected {status}, got {ex.status}", ex)
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        raise Violation(clause, f"{status} without the error envelope", ex)
    if code is not None and error.get("code") != code:
        raise Violation(
            clause, f"{status} carried error.code={error.get('code')!r}, expected {code}", ex
        )
    return error


# ----------------------------------------------------------------------------- authentication
def auth_missing_key_401(s: Session) -> None:
    """A missing key must be 401 before anything else, or partners debug the wrong layer."""
    t = s.target
    probes = [
        ("POST", c.create_path(s.project), INVALID_BODY),
        ("GET", c.create_path(s.project), None),
        ("GET", "/v1/whoami", None),
        ("GET", c.job_path("job_00000000000000000000000000"), None),
    ]
    for method, path, body in probes:
        ex = t.send(method, path, json_body=body)
        expect_error("auth.missing-key-401", ex, 401, "UNAUTHENTICATED")


MALFORMED = st.one_of(
    st.from_regex(r"\ABearer [A-Za-z0-9]{1,20}\Z"),
    st.from_regex(r"\A(Basic|Token|bearer:) [A-Za-z0-9_]{1,30}\Z"),
    st.from_regex(r"\Alp_(test|live)_[a-z]{1,8}_[A-Za-z0-9]{8,16}\Z"),  # no "Bearer "
    st.just("Bearer"),
    st.just("Bearer lp_test_"),
    st.just("Bearer lp_test__"),
)


def auth_malformed_key_401(s: Session) -> None:
    """Malformed Authorization headers are 401 UNAUTHENTICATED, never 403 or 422."""

    @prop(s, MALFORMED)
    def _(value: str) -> None:
        ex = s.target.send("GET", "/v1/whoami", headers={"Authorization": value})
        expect_error("auth.malformed-key-401", ex, 401, "UNAUTHENTICATED")

    ex = s.target.send("GET", "/v1/whoami", headers={"X-Api-Key": s.target.ids.api_key})
    expect_error("auth.malformed-key-401", ex, 401, "UNAUTHENTICATED")


UNKNOWN_KEYS = st.builds(
    lambda env, key_id, secret: f"lp_{env}_{key_id}_{secret}",
    st.sampled_from(["test", "live"]),
    st.from_regex(r"\Aconform[a-z0-9]{1,10}\Z"),
    st.from_regex(r"\A[A-Za-z0-9]{16}\Z"),
)


def auth_unknown_key_401(s: Session) -> None:
    """A well-formed key nobody issued is 401, on reads and on writes alike."""

    @prop(s, UNKNOWN_KEYS)
    def _(key: str) -> None:
        ex = s.target.send("GET", "/v1/whoami", headers=s.target.auth(key))
        expect_error("auth.unknown-key-401", ex, 401, "UNAUTHENTICATED")

    ex = s.create(INVALID_BODY, key="lp_test_conformunknown_AAAAAAAAAAAAAAAA")
    expect_error("auth.unknown-key-401", ex, 401, "UNAUTHENTICATED")


# ----------------------------------------------------------------------------- scope, tenancy
def scope_forbidden_403(s: Session) -> None:
    """A key without influencers:write gets 403 FORBIDDEN_SCOPE naming the scope it lacks."""
    key = s.target.ids.scopeless_key
    if not key:
        raise NotChecked("no --scopeless-key (a key without influencers:write) was given")
    probes = [s.create(INVALID_BODY, key=key), s.get(c.create_path(s.project), key=key)]
    if s.target.budget.can_create():
        probes.append(s.create({}, key=key))
    for ex in probes:
        error = expect_error("scope.forbidden-403", ex, 403, "FORBIDDEN_SCOPE")
        required = (error.get("details") or {}).get("requiredScope")
        if required != c.CREATE_SCOPE:
            raise Violation("scope.forbidden-403", f"details.requiredScope={required!r}", ex)


def tenancy_foreign_project_404(s: Session) -> None:
    """Another organization's project does not exist for the caller: 404, never 403."""
    foreign = s.target.ids.foreign_project_id or "prj_00000000-0000-4000-8000-00000000f00d"
    for ex in (
        s.get(c.create_path(foreign)),
        s.get(f"/v1/projects/{foreign}"),
        s.create(INVALID_BODY, project=foreign),
    ):
        expect_error("tenancy.foreign-project-404", ex, 404, "NOT_FOUND")


UNKNOWN_PROJECTS = st.one_of(
    st.uuids(version=4).map(lambda u: f"prj_{u}"),
    st.uuids(version=4).map(str),
    st.from_regex(r"\A[A-Za-z0-9_-]{1,40}\Z"),
)


def tenancy_unknown_project_404(s: Session) -> None:
    """Unknown and malformed project ids are plain 404s (a malformed id is an unknown id)."""

    @prop(s, UNKNOWN_PROJECTS.filter(lambda p: p not in s.project))
    def _(project: str) -> None:
        expect_error("tenancy.unknown-project-404", s.get(c.create_path(project)), 404, "NOT_FOUND")
        expect_error(
            "tenancy.unknown-project-404", s.create(INVALID_BODY, project=project), 404, "NOT_FOUND"
        )


# ----------------------------------------------------------------------------- validation
def _field_errors(clause: str, ex: Exchange) -> dict[str, Any]:
    error = expect_error(clause, ex, 422, "VALIDATION")
    details = error.get("details") or {}
    fields = details.get("fieldErrors")
    if not isinstance(fields, dict):
        raise Violation(clause, "422 without details.fieldErrors", ex)
    return fields


JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=10))
UNKNOWN_FIELDS = st.from_regex(r"\A[A-Za-z][A-Za-z0-9_]{0,15}\Z").filter(
    lambda f: f not in c.BODY_FIELDS and f not in c.EXPLAINED_FIELDS
)


def validation_unknown_field_named(s: Session) -> None:
    """Unknown body fields are 422 and each is named in fieldErrors (never silently dropped)."""

    @prop(s, st.tuples(UNKNOWN_FIELDS, JSON_SCALARS, st.sampled_from([{}, {"gender": "female"}])))
    def _(case: tuple[str, Any, dict[str, Any]]) -> None:
        name, value, base = case
        ex = s.create({**base, name: value})
        fields = _field_errors("validation.unknown-field-named", ex)
        if not fields.get(name):
            raise Violation(
                "validation.unknown-field-named", f"unknown field {name!r} not named", ex
            )


def validation_server_fields_explained(s: Session) -> None:
    """name/brandVoice/language get a message that says why they cannot be sent."""
    for name, why in c.EXPLAINED_FIELDS.items():
        ex = s.create({name: "x"})
        messages = _field_errors("validation.server-fields-explained", ex).get(name) or []
        if not any(why in str(m) for m in messages):
            raise Violation(
                "validation.server-fields-explained", f"{name}: message does not say {why!r}", ex
            )


BAD_VALUES = st.one_of(
    st.tuples(st.just("gender"), st.text(max_size=12).filter(lambda v: v not in c.GENDERS)),
    st.tuples(st.just("gender"), st.one_of(st.integers(), st.booleans(), st.none())),
    st.tuples(st.just("ageRange"), st.text(max_size=12).filter(lambda v: v not in c.AGE_RANGES)),
    st.tuples(st.just("ageRange"), st.one_of(st.integers(), st.lists(st.integers(), max_size=2))),
    st.tuples(st.just("prompt"), st.just("")),
    st.tuples(
        st.just("prompt"), st.text(string.ascii_letters, min_size=c.PROMPT_MAX + 1, max_size=90)
    ),
    st.tuples(st.just("prompt"), st.one_of(st.integers(), st.booleans())),
)


def validation_enum_and_length_422(s: Session) -> None:
    """Every enum and length rule of the create body is a 422 naming the field."""

    @prop(s, BAD_VALUES)
    def _(case: tuple[str, Any]) -> None:
        name, value = case
        ex = s.create({name: value})
        if not _field_errors("validation.enum-and-length-422", ex).get(name):
            raise Violation("validation.enum-and-length-422", f"{name} not named", ex)


def validation_body_shape_422(s: Session) -> None:
    """A body that is not a JSON object is 422 'Invalid body.' with formErrors."""
    headers = {**s.target.auth(), "Content-Type": "application/json"}
    for raw in (b"[]", b'"x"', b"{not json", b"1"):
        ex = s.target.send("POST", c.create_path(s.project), headers=headers, content=raw)
        error = expect_error("validation.body-shape-422", ex, 422, "VALIDATION")
        if not (error.get("details") or {}).get("formErrors"):
            raise Violation("validation.body-shape-422", "no details.formErrors", ex)


# ----------------------------------------------------------------------------- idempotency
def idempotency_key_format_422(s: Session) -> None:
    """A key longer than 255 characters is 422, not silently truncated or accepted."""
    ex = s.create({}, headers={"Idempotency-Key": "k" * (c.IDEMPOTENCY_KEY_MAX + 1)})
    expect_error("idempotency.key-format-422", ex, 422, "VALIDATION")


VOLATILE = {"x-request-id", "date", "server", "connection", "keep-alive", "transfer-encoding"}


def idempotency_replay_identical(s: Session) -> None:
    """A retry with the same key and body replays the first response (same job, same body)."""
    first = s.sample_job()
    key = first.request_headers.get("idempotency-key", "")
    again = s.create({}, headers={"Idempotency-Key": key})
    if again.status != first.status or again.json() != first.json():
        raise Violation(
            "idempotency.replay-identical",
            f"replay answered {again.status} {again.response_body[:120]!r}",
            again,
        )
    a = {k.lower(): v for k, v in first.response_headers.items() if k.lower() not in VOLATILE}
    b = {k.lower(): v for k, v in again.response_headers.items() if k.lower() not in VOLATILE}
    if a != b:
        diff = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
        raise Violation("idempotency.replay-identical", f"headers differ: {diff}", again)


def idempotency_conflict_409(s: Session) -> None:
    """The same key with another body is 409 IDEMPOTENCY_CONFLICT, not a second job."""
    key = s.sample_job().request_headers.get("idempotency-key", "")
    ex = s.create({"gender": "male", "prompt": "conformance"}, headers={"Idempotency-Key": key})
    expect_error("idempotency.conflict-409", ex, 409, "IDEMPOTENCY_CONFLICT")


# ----------------------------------------------------------------------------- the 202
def jobs_accepted_envelope(s: Session) -> None:
    """The 202 names the job three consistent ways (jobId, locationUrl, Location)."""
    ex = s.sample_job()
    body = ex.json() or {}
    job_id = str(body.get("jobId"))
    want = c.job_path(job_id)
    problems = []
    if not c.JOB_ID.match(job_id):
        problems.append(f"jobId {job_id!r} is not job_<ULID>")
    if body.get("locationUrl") != want:
        problems.append(f"locationUrl {body.get('locationUrl')!r} != {want}")
    if ex.header("Location") != want:
        problems.append(f"Location {ex.header('Location')!r} != {want}")
    if (body.get("status"), body.get("stage")) != ("running", "queued"):
        problems.append(f"status/stage {body.get('status')}/{body.get('stage')} != running/queued")
    if body.get("kind") != "influencer_create":
        problems.append(f"kind {body.get('kind')!r}")
    if str(body.get("projectId", "")).removeprefix("prj_") != s.project.removeprefix("prj_"):
        problems.append(f"projectId {body.get('projectId')!r}")
    if problems:
        raise Violation("jobs.accepted-envelope", "; ".join(problems), ex)


def check_pollable(s: Session, accepted: Exchange) -> None:
    """The job a 202 names is readable at once (no eventual-consistency gap)."""
    job_id = (accepted.json() or {}).get("jobId")
    ex = s.get(c.job_path(str(job_id)))
    if ex.status != 200 or (ex.json() or {}).get("jobId") != job_id:
        raise Violation(
            "jobs.pollable-at-once", f"GET job right after 202 answered {ex.status}", ex
        )


def check_influencer_exists(s: Session, accepted: Exchange) -> None:
    """The influencer a 202 names exists at once, pending, in the same project."""
    body = accepted.json() or {}
    ex = s.get(c.influencer_path(str(body.get("influencerId"))))
    got = ex.json() or {}
    if ex.status != 200 or got.get("influencerId") != body.get("influencerId"):
        raise Violation(
            "influencers.exists-at-once", f"GET influencer after 202 answered {ex.status}", ex
        )


def jobs_pollable_at_once(s: Session) -> None:
    check_pollable(s, s.sample_job())


def influencers_exists_at_once(s: Session) -> None:
    check_influencer_exists(s, s.sample_job())


def jobs_etag_304(s: Session) -> None:
    """ETag is sent on 200, If-None-Match with it is 304 (ETag, no body), and it changes exactly
    when the envelope does (checked over every job read of the run)."""
    job_id = (s.sample_job().json() or {}).get("jobId")
    first = s.get(c.job_path(str(job_id)))
    tag = first.header("ETag")
    if first.status != 200 or not tag:
        raise Violation("jobs.etag-304", "200 without an ETag", first)
    again = s.get(c.job_path(str(job_id)), **{"If-None-Match": tag})
    body_again = again.json()
    if again.status == 200 and body_again == first.json():
        raise Violation("jobs.etag-304", "If-None-Match with the current tag answered 200", again)
    if again.status == 304 and (again.response_body or again.header("ETag") != tag):
        raise Violation("jobs.etag-304", "304 must carry the ETag and no body", again)
    check_etags(s.job_reads)


def check_etags(reads: list[Exchange]) -> None:
    seen: dict[tuple[str, str], str] = {}  # (path, etag) -> canonical body
    for ex in reads:
        tag = ex.header("ETag")
        if ex.status != 200:
            continue
        if not tag:
            raise Violation("jobs.etag-304", "200 without an ETag", ex)
        body = json.dumps(ex.json(), sort_keys=True)
        key = (ex.path, tag)
        if key in seen and seen[key] != body:
            raise Violation("jobs.etag-304", f"ETag {tag} kept while the envelope changed", ex)
        seen[key] = body
    by_body: dict[tuple[str, str], str] = {}
    for (path, tag), body in seen.items():
        other = by_body.setdefault((path, body), tag)
        if other != tag:
            raise Violation("jobs.etag-304", f"same envelope, two ETags {other} and {tag}", None)


# ----------------------------------------------------------------------------- every response
def errors_code_matches_status(exchanges: list[Exchange]) -> None:
    """A 404 labelled FORBIDDEN_SCOPE sends a partner's retry logic down the wrong branch."""
    for ex in exchanges:
        if ex.status < 400 or ex.path.startswith("/_mock/"):
            continue
        body = ex.json()
        code = body.get("error", {}).get("code") if isinstance(body, dict) else None
        allowed = c.ERROR_CODES.get(ex.status)
        if allowed is not None and code not in allowed:
            raise Violation("errors.code-matches-status", f"{ex.status} carried code {code!r}", ex)


def errors_request_id_matches(exchanges: list[Exchange]) -> None:
    """Support tickets quote requestId; it must be the X-Request-Id the partner logged."""
    for ex in exchanges:
        if ex.path.startswith("/_mock/"):
            continue
        header = ex.header("X-Request-Id")
        if not header or not c.REQUEST_ID.match(header):
            raise Violation("errors.request-id-matches", f"X-Request-Id {header!r}", ex)
        if ex.status >= 400:
            body = ex.json()
            rid = body.get("error", {}).get("requestId") if isinstance(body, dict) else None
            if rid != header:
                raise Violation("errors.request-id-matches", f"requestId {rid!r} != {header}", ex)


ClauseFn = Callable[[Session], None]

# name -> function; the order is the run order (cheap negative clauses before job starts).
CLAUSES: dict[str, ClauseFn] = {
    "auth.missing-key-401": auth_missing_key_401,
    "auth.malformed-key-401": auth_malformed_key_401,
    "auth.unknown-key-401": auth_unknown_key_401,
    "scope.forbidden-403": scope_forbidden_403,
    "tenancy.foreign-project-404": tenancy_foreign_project_404,
    "tenancy.unknown-project-404": tenancy_unknown_project_404,
    "validation.unknown-field-named": validation_unknown_field_named,
    "validation.server-fields-explained": validation_server_fields_explained,
    "validation.enum-and-length-422": validation_enum_and_length_422,
    "validation.body-shape-422": validation_body_shape_422,
    "idempotency.key-format-422": idempotency_key_format_422,
    "jobs.accepted-envelope": jobs_accepted_envelope,
    "jobs.pollable-at-once": jobs_pollable_at_once,
    "influencers.exists-at-once": influencers_exists_at_once,
    "idempotency.replay-identical": idempotency_replay_identical,
    "idempotency.conflict-409": idempotency_conflict_409,
    "jobs.etag-304": jobs_etag_304,
}

RESPONSE_CLAUSES: dict[str, Callable[[list[Exchange]], None]] = {
    "errors.code-matches-status": errors_code_matches_status,
    "errors.request-id-matches": errors_request_id_matches,
}
