"""Authentication, scopes, tenancy and identity (CONTRACT.md: Identity, keys, tenancy; Order of
checks, steps 1, 3 and 4).

Where the order of checks allows it, probes send a body that is *invalid*: a conforming server
answers 401/403/404 before it looks at the body, and a broken one answers 422 instead of
starting a job that would cost the partner money.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from .. import contract as c
from ..clause import Needs, Section
from ..observe import Transcript
from ..report import NotChecked, Violation
from ..session import Session, body_of, error_of, expect_error
from ..target import BudgetSpent

SECTION = Section("auth", "Authentication, scopes, tenancy and identity")

INVALID_BODY = {"gender": "__conformance_probe__"}  # rejected at step 5, after auth/scope/404
UNKNOWN_JOB = "job_00000000000000000000000000"
UNKNOWN_INFLUENCER = "inf_00000000-0000-4000-8000-00000000c0de"
UNKNOWN_PROJECT = "prj_00000000-0000-4000-8000-00000000f00d"


def probes(s: Session) -> list[tuple[str, str, Any]]:
    """One request per operation that can never change anything, whatever the answer."""
    return [
        ("POST", c.create_path(s.project), INVALID_BODY),
        ("GET", c.create_path(s.project), None),
        ("GET", c.job_path(UNKNOWN_JOB), None),
        ("POST", c.cancel_path(UNKNOWN_JOB), None),
        ("GET", c.influencer_path(UNKNOWN_INFLUENCER), None),
        ("PATCH", c.influencer_path(UNKNOWN_INFLUENCER), {"bogus": True}),
        ("DELETE", c.influencer_path(UNKNOWN_INFLUENCER), {"bogus": True}),
        ("GET", "/v1/whoami", None),
        ("POST", "/v1/projects", {"bogus": True}),
        ("GET", c.project_path(s.project), None),
        ("GET", c.PROJECTS, None),
        ("PATCH", c.project_path(UNKNOWN_PROJECT), {"bogus": True}),
        ("DELETE", c.project_path(UNKNOWN_PROJECT), None),
        ("POST", c.clone_path(UNKNOWN_INFLUENCER), {"bogus": True}),
        ("GET", c.CREDITS, None),
    ]


@SECTION.clause("auth.missing-key-401")
def missing_key_401(s: Session) -> None:
    """No Authorization header is 401 UNAUTHENTICATED on every operation, before 403/404/422."""
    for method, path, body in probes(s):
        ex = s.target.send(method, path, json_body=body)
        expect_error("auth.missing-key-401", ex, 401, "UNAUTHENTICATED")


MALFORMED = st.one_of(
    st.from_regex(r"\ABearer [A-Za-z0-9]{1,20}\Z"),
    st.from_regex(r"\A(Basic|Token|bearer:) [A-Za-z0-9_]{1,30}\Z"),
    st.from_regex(r"\Alp_(test|live)_[a-z]{1,8}_[A-Za-z0-9]{8,16}\Z"),  # no "Bearer "
    st.sampled_from(["Bearer", "Bearer lp_test_", "Bearer lp_test__", "Bearer  "]),
)


@SECTION.clause("auth.malformed-key-401", weight=2)
def malformed_key_401(s: Session) -> None:
    """A malformed Authorization header is 401 UNAUTHENTICATED, never 403 or 422."""

    key = s.target.ids.api_key

    @s.prop(MALFORMED, key, f"Token {key}", f"Basic {key}", f"Bearer{key}", f"Bearer: {key}")
    def _(value: str) -> None:
        ex = s.target.send("GET", "/v1/whoami", headers={"Authorization": value})
        expect_error("auth.malformed-key-401", ex, 401, "UNAUTHENTICATED")


UNKNOWN_KEYS = st.builds(
    lambda env, key_id, secret: f"lp_{env}_{key_id}_{secret}",
    st.sampled_from(["test", "live"]),
    st.from_regex(r"\Aconform[a-z0-9]{1,10}\Z"),
    st.from_regex(r"\A[A-Za-z0-9]{16}\Z"),
)


@SECTION.clause("auth.unknown-key-401", weight=2)
def unknown_key_401(s: Session) -> None:
    """A well-formed key nobody issued (lp_live_ or lp_test_) is 401, on reads and writes."""

    @s.prop(UNKNOWN_KEYS)
    def _(key: str) -> None:
        ex = s.target.send("GET", "/v1/whoami", headers=s.target.auth(key))
        expect_error("auth.unknown-key-401", ex, 401, "UNAUTHENTICATED")
        ex = s.create(INVALID_BODY, key=key)
        expect_error("auth.unknown-key-401", ex, 401, "UNAUTHENTICATED")


@SECTION.clause("auth.x-api-key-rejected")
def x_api_key_rejected(s: Session) -> None:
    """`X-Api-Key` alone is not accepted: 401 (only `Authorization: Bearer` authenticates)."""
    key = s.target.ids.api_key
    for method, path, body in probes(s)[:3]:
        ex = s.target.send(method, path, headers={"X-Api-Key": key}, json_body=body)
        expect_error("auth.x-api-key-rejected", ex, 401, "UNAUTHENTICATED")


@SECTION.clause("auth.killed-key-503", needs=Needs(identities=("killed_key",)))
def killed_key_503(s: Session) -> None:
    """A killed key gets 503 KILL_SWITCH (details.scope "key") everywhere, whoami included,
    without rate-limit headers (no bucket was charged)."""
    key = s.require("killed_key", "a key whose kill switch is on")
    for method, path, body in [*probes(s)[:3], ("GET", "/v1/whoami", None)]:
        ex = s.call(method, path, body, key=key)
        error = expect_error("auth.killed-key-503", ex, 503, "KILL_SWITCH")
        if (error.get("details") or {}).get("scope") != "key":
            raise Violation("auth.killed-key-503", "details.scope is not 'key'", ex)
        present = [h for h in c.RATE_HEADERS if ex.header(h) is not None]
        if present:
            raise Violation(
                "auth.killed-key-503", f"rate-limit headers on a killed key: {present}", ex
            )


@SECTION.clause("scope.missing-scope-403", needs=Needs(identities=("scopeless_key",)))
def missing_scope_403(s: Session) -> None:
    """A key without influencers:write gets 403 FORBIDDEN_SCOPE naming it on every influencer
    operation (reads too, sic), before the 404 and the 422."""
    key = s.require("scopeless_key", "a key without influencers:write")
    for method, path, body in probes(s):
        op = c.operation_of(method, path)
        if op is None or op.scope != c.CREATE_SCOPE:
            continue
        ex = s.call(method, path, body, key=key)
        error = expect_error("scope.missing-scope-403", ex, 403, "FORBIDDEN_SCOPE")
        required = (error.get("details") or {}).get("requiredScope")
        if required != c.CREATE_SCOPE:
            raise Violation("scope.missing-scope-403", f"details.requiredScope={required!r}", ex)


@SECTION.clause("scope.granted-scopes-honoured", needs=Needs(identities=("scopeless_key",)))
def granted_scopes_honoured(s: Session) -> None:
    """Every other operation is allowed exactly when the key's scopes (whoami) grant it: a
    granted scope is never 403, a missing one is 403 naming it; whoami needs no scope."""
    key = s.require("scopeless_key", "a key without influencers:write")
    scopes = s.scopes("scopeless_key")
    for method, path, body in probes(s):
        op = c.operation_of(method, path)
        if op is None or op.scope == c.CREATE_SCOPE:
            continue
        if method == "GET" and path == c.project_path(s.project) and not s.project_row:
            continue  # the main key cannot read it either: nothing to compare with
        try:
            ex = s.call(method, path, body, key=key)
        except BudgetSpent as exc:  # a project create, with --max-projects 0: skip that one
            s.note(f"{op.name} not probed: {exc}")
            continue
        error = error_of(ex)
        forbidden = ex.status == 403 and error.get("code") == "FORBIDDEN_SCOPE"
        if c.grants(scopes, op.scope) and forbidden:
            raise Violation(
                "scope.granted-scopes-honoured",
                f"{op.name}: 403 although {op.scope} is granted",
                ex,
            )
        if not c.grants(scopes, op.scope):
            expect_error("scope.granted-scopes-honoured", ex, 403, "FORBIDDEN_SCOPE")
            if (error.get("details") or {}).get("requiredScope") != op.scope:
                raise Violation(
                    "scope.granted-scopes-honoured",
                    f"{op.name}: requiredScope is not {op.scope}",
                    ex,
                )


@SECTION.clause("tenancy.foreign-project-404")
def foreign_project_404(s: Session) -> None:
    """Another organization's project does not exist for the caller: 404, never 403."""
    foreign = s.target.ids.foreign_project_id
    if not foreign:
        s.note("no --foreign-project-id: an unknown project id stood in for one")
        foreign = UNKNOWN_PROJECT
    probes_ = [
        s.get(c.create_path(foreign)),
        s.create(INVALID_BODY, project=foreign),
        s.get(c.project_path(foreign)),
    ]
    for ex in probes_:
        expect_error("tenancy.foreign-project-404", ex, 404, "NOT_FOUND")


@SECTION.clause("tenancy.foreign-key-404", needs=Needs(sample=True, identities=("foreign_key",)))
def foreign_key_404(s: Session) -> None:
    """The run's own job, influencer and project are 404 to a key of another organization."""
    key = s.require("foreign_key", "a key of another organization")
    job = s.sample_job()
    for method, path, body in (
        ("GET", c.job_path(job.job_id), None),
        ("GET", c.influencer_path(job.influencer_id), None),
        ("PATCH", c.influencer_path(job.influencer_id), {"bogus": True}),
        ("GET", c.create_path(s.project), None),
        ("POST", c.create_path(s.project), INVALID_BODY),
    ):
        ex = s.call(method, path, body, key=key)
        expect_error("tenancy.foreign-key-404", ex, 404, "NOT_FOUND")


UNKNOWN_IDS = st.one_of(
    st.uuids(version=4).map(str),
    st.uuids(version=4).map(lambda u: f"inf_{u}"),
    st.uuids(version=4).map(lambda u: f"prj_{u}"),
    st.from_regex(r"\Ajob_[0-9A-HJKMNP-TV-Z]{26}\Z"),
    st.from_regex(r"\A[A-Za-z0-9_-]{1,40}\Z"),  # malformed: simply unknown
)


@SECTION.clause("tenancy.unknown-ids-404", weight=2)
def unknown_ids_404(s: Session) -> None:
    """Unknown and malformed ids (project, job, influencer) are plain 404 NOT_FOUND, never 422."""

    @s.prop(UNKNOWN_IDS.filter(lambda v: c.bare(v) != c.bare(s.project)), "not-an-id", "42")
    def _(raw: str) -> None:
        for method, path, body in (
            ("GET", c.create_path(raw), None),
            ("POST", c.create_path(raw), INVALID_BODY),
            ("GET", c.job_path(raw), None),
            ("POST", c.cancel_path(raw), None),
            ("GET", c.influencer_path(raw), None),
            ("PATCH", c.influencer_path(raw), {"bogus": True}),
            ("DELETE", c.influencer_path(raw), None),
        ):
            ex = s.call(method, path, body)
            expect_error("tenancy.unknown-ids-404", ex, 404, "NOT_FOUND")


@SECTION.clause("tenancy.bare-uuid-accepted", needs=Needs(sample=True))
def bare_uuid_accepted(s: Session) -> None:
    """A bare uuid names the same project or influencer as its prj_ / inf_ form; responses
    always use the prefixed form."""
    job = s.sample_job()
    ex = s.get(c.influencer_path(c.bare(job.influencer_id)))
    if ex.status != 200 or body_of(ex).get("influencerId") != job.influencer_id:
        raise Violation("tenancy.bare-uuid-accepted", f"GET by bare uuid answered {ex.status}", ex)
    ex = s.get(c.create_path(c.bare(s.project)) + "?limit=1")
    if ex.status != 200:
        raise Violation("tenancy.bare-uuid-accepted", f"list by bare uuid answered {ex.status}", ex)
    if s.project_row:
        ex = s.get(c.project_path(c.bare(s.project)))
        if ex.status != 200 or body_of(ex).get("id") != s.project_row.get("id"):
            raise Violation("tenancy.bare-uuid-accepted", "GET project by bare uuid", ex)


@SECTION.clause("identity.whoami-describes-key")
def whoami_describes_key(s: Session) -> None:
    """whoami names the caller: organizationId = workspaceId = the project's organization,
    its own apiKeyId (another key has another), its scopes and a known tier."""
    ex = s.get("/v1/whoami")
    me = body_of(ex)
    if ex.status != 200:
        raise Violation("identity.whoami-describes-key", f"whoami answered {ex.status}", ex)
    problems = []
    if not me.get("organizationId") or me.get("workspaceId") != me.get("organizationId"):
        problems.append("workspaceId differs from organizationId")
    if s.project_row and s.project_row.get("organizationId") != me.get("organizationId"):
        problems.append("organizationId is not the project's organization")
    if not isinstance(me.get("scopes"), list):
        problems.append("scopes is not a list")
    if me.get("rateLimitTier") not in (*c.TIER_LIMITS, "unlimited"):
        problems.append(f"rateLimitTier {me.get('rateLimitTier')!r}")
    secret = s.target.ids.api_key.rsplit("_", 1)[-1]
    if not me.get("apiKeyId") or secret in str(me.get("apiKeyId")):
        problems.append("apiKeyId is missing or carries the key's secret (it must be log-safe)")
    for other in ("scopeless_key", "second_key"):
        key = getattr(s.target.ids, other)
        if key:
            theirs = body_of(s.get("/v1/whoami", key=key))
            if theirs.get("apiKeyId") == me.get("apiKeyId"):
                problems.append(f"the {other} has the same apiKeyId")
    if problems:
        raise Violation("identity.whoami-describes-key", "; ".join(problems), ex)


@SECTION.observer(
    "identity.whoami-scopes-honest",
    producers=("scope.missing-scope-403", "scope.granted-scopes-honoured"),
)
def whoami_scopes_honest(t: Transcript) -> None:
    """The scopes whoami lists are the scopes the API enforces, for every key of the run."""
    judged = False
    for ex in t.partner:
        identity = t.identity_of(ex)
        op = c.operation_of(ex.method, ex.path)
        scopes = t.session.whoami.get(identity or "", {}).get("scopes")
        if identity is None or op is None or not isinstance(scopes, list):
            continue
        if ex.request_header(c.ORG_HEADER) is not None:
            continue  # acting in another organization: org:admin is its own question (suborgs)
        forbidden = ex.status == 403 and error_of(ex).get("code") == "FORBIDDEN_SCOPE"
        granted = c.grants(scopes, op.scope)
        if forbidden and granted:
            raise Violation(
                "identity.whoami-scopes-honest", f"whoami grants {op.scope}, the API refused", ex
            )
        if not granted and not forbidden and ex.status not in (401, 405, 429, 500, 503):
            raise Violation(
                "identity.whoami-scopes-honest", f"whoami lacks {op.scope}, the API allowed", ex
            )
        judged = judged or forbidden or not granted
    if not judged:
        raise NotChecked("no evidence: no key of the run lacks a scope (--scopeless-key)")
