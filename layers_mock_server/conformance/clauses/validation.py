"""Request validation (CONTRACT.md: Error envelope, Create influencer, Projects; spec: PATCH and
DELETE bodies, list queries, Idempotency-Key). Step 5 of the order of checks: 422 VALIDATION,
naming each bad field, and nothing written.

Every body here is meant to be rejected, so the requests are probes: they are sent even when
the job budget is spent, because a conforming deployment never starts anything for them.
"""

from __future__ import annotations

import string
from typing import Any

from hypothesis import strategies as st

from .. import contract as c
from ..clause import Needs, Section
from ..observe import Transcript
from ..report import NotChecked, Violation
from ..session import Job, Session, body_of, expect_error, field_errors

SECTION = Section("validation", "Request validation")

JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=10))
UNKNOWN_FIELDS = st.from_regex(r"\A[A-Za-z][A-Za-z0-9_]{0,15}\Z").filter(
    lambda f: f not in c.BODY_FIELDS | c.PATCH_FIELDS | {"reason"}
)


@SECTION.clause("validation.unknown-field-named", weight=2)
def unknown_field_named(s: Session) -> None:
    """Unknown create fields are 422 and each is named in fieldErrors (never silently dropped)."""

    @s.prop(
        st.tuples(UNKNOWN_FIELDS, JSON_SCALARS, st.sampled_from([{}, {"gender": "female"}])),
        ("conformanceBogus", 1, {}),
        ("style", "x", {"gender": "female"}),
    )
    def _(case: tuple[str, Any, dict[str, Any]]) -> None:
        name, value, base = case
        ex = s.create({**base, name: value})
        if not field_errors("validation.unknown-field-named", ex).get(name):
            raise Violation(
                "validation.unknown-field-named", f"unknown field {name!r} not named", ex
            )


@SECTION.clause("validation.server-fields-explained")
def server_fields_explained(s: Session) -> None:
    """name, brandVoice and language on create get a message that says why they cannot be sent."""
    for name, why in c.EXPLAINED_FIELDS.items():
        ex = s.create({name: "x"})
        messages = field_errors("validation.server-fields-explained", ex).get(name) or []
        if not any(why in str(m) for m in messages):
            raise Violation(
                "validation.server-fields-explained", f"{name}: message does not say {why!r}", ex
            )


BAD_CREATE_VALUES = st.one_of(
    st.tuples(st.just("gender"), st.text(max_size=12).filter(lambda v: v not in c.GENDERS)),
    st.tuples(st.just("gender"), st.one_of(st.integers(), st.booleans(), st.none())),
    st.tuples(st.just("ageRange"), st.text(max_size=12).filter(lambda v: v not in c.AGE_RANGES)),
    st.tuples(st.just("ageRange"), st.one_of(st.integers(), st.lists(st.integers(), max_size=2))),
    st.tuples(st.just("prompt"), st.just("")),
    st.tuples(
        st.just("prompt"), st.text(string.ascii_letters, min_size=c.PROMPT_MAX + 1, max_size=90)
    ),
    st.tuples(st.just("prompt"), st.one_of(st.integers(), st.booleans(), st.none())),
)


@SECTION.clause("validation.enum-and-length-422", weight=2)
def enum_and_length_422(s: Session) -> None:
    """Every enum, type and length rule of the create body (prompt 1 to 60) is a 422 naming it."""

    @s.prop(
        BAD_CREATE_VALUES,
        ("prompt", "x" * (c.PROMPT_MAX + 1)),
        ("prompt", ""),
        ("gender", ""),
        ("ageRange", "Adult"),
    )
    def _(case: tuple[str, Any]) -> None:
        name, value = case
        ex = s.create({name: value})
        if not field_errors("validation.enum-and-length-422", ex).get(name):
            raise Violation("validation.enum-and-length-422", f"{name} not named", ex)


def _form_error(clause: str, ex: Any) -> None:
    error = expect_error(clause, ex, 422, "VALIDATION")
    if error.get("message") != c.INVALID_BODY:
        raise Violation(clause, f"message {error.get('message')!r}, expected 'Invalid body.'", ex)
    if not (error.get("details") or {}).get("formErrors"):
        raise Violation(clause, "no details.formErrors", ex)


@SECTION.clause("validation.body-shape-422")
def body_shape_422(s: Session) -> None:
    """A body that is not a JSON object (or not JSON) is 422 'Invalid body.' with formErrors."""
    headers = {"Content-Type": "application/json"}
    for raw in (b"[]", b'"x"', b"{not json", b"1", b"null"):
        ex = s.create(headers=headers, content=raw)
        _form_error("validation.body-shape-422", ex)


@SECTION.clause("validation.content-type-422")
def content_type_422(s: Session) -> None:
    """A JSON body sent with another Content-Type is 422 'Invalid body.' with formErrors."""
    for media in ("text/plain", "application/x-www-form-urlencoded"):
        ex = s.create(headers={"Content-Type": media}, content=b'{"gender": "x"}')
        _form_error("validation.content-type-422", ex)


def valid_create_body(ex: Any) -> bool:
    """Is this create body valid by the contract (no body, {}, or good known fields)?"""
    raw = ex.request_body.strip()
    if not raw:
        return True
    media = (ex.request_header("Content-Type") or "").split(";")[0].strip().lower()
    body = ex.request_json()
    if media != "application/json" or not isinstance(body, dict):
        return False
    if not set(body) <= c.BODY_FIELDS:
        return False
    prompt = body.get("prompt", "ok")
    return (
        body.get("gender", "female") in c.GENDERS
        and body.get("ageRange", "adult") in c.AGE_RANGES
        and isinstance(prompt, str)
        and c.PROMPT_MIN <= len(prompt) <= c.PROMPT_MAX
    )


@SECTION.observer(
    "validation.valid-create-accepted",
    producers=("jobs.accepted-envelope", "jobs.cancel-accepted"),
)
def valid_create_accepted(t: Transcript) -> None:
    """Every valid create the run sent (no body, {} or good fields) was accepted with 202."""
    project = c.bare(t.session.project)
    used: dict[str, bytes] = {}
    judged = 0
    for ex in t.partner:
        op = c.operation_of(ex.method, ex.path)
        if op is None or op.name != "createInfluencer" or t.identity_of(ex) != "api_key":
            continue
        if ex.request_header("X-Layers-Organization") is not None:
            continue  # acting in another organization: not this clause's question
        key = ex.request_header("Idempotency-Key")
        if key is not None and not c.IDEMPOTENCY_KEY.match(key):
            continue  # a bad key is 422 (validation.idempotency-key-422), whatever the body
        if key is not None:
            first = used.setdefault(key, ex.request_body)
            if first != ex.request_body:
                continue  # the same key with another body: a 409 is right
        if c.bare(ex.bare_path.split("/")[3]) != project or not valid_create_body(ex):
            continue
        if ex.status in (429, 500, 503):
            continue
        judged += 1
        if ex.status != 202:
            raise Violation(
                "validation.valid-create-accepted", f"a valid create answered {ex.status}", ex
            )
    t.need(judged > 0, "no valid create was sent")


BAD_LIST_QUERIES = st.one_of(
    st.tuples(st.just("limit"), st.sampled_from(["0", "101", "-1", "abc", "1.5", "", "1e2"])),
    st.tuples(st.just("limit"), st.integers(min_value=101).map(str)),
    st.tuples(st.just("limit"), st.integers(max_value=0).map(str)),
    st.tuples(st.just("cursor"), st.sampled_from(["!!", "not-a-cursor", "%%%", "eyJ4IjoxfQ"])),
    st.tuples(
        st.just("status"),
        st.text(string.ascii_lowercase, min_size=1, max_size=10).filter(
            lambda v: v not in c.INFLUENCER_STATUSES
        ),
    ),
)


@SECTION.clause("validation.list-query-422", weight=2)
def list_query_422(s: Session) -> None:
    """List queries out of range (limit 1 to 100, a malformed cursor, an unknown status) are 422
    'Invalid query.' naming the parameter; limit 1 and 100 are accepted."""
    path = c.create_path(s.project)
    for limit in (c.LIMIT_MIN, c.LIMIT_MAX):
        ex = s.target.send("GET", path, headers=s.target.auth(), params={"limit": limit})
        if ex.status != 200:
            raise Violation("validation.list-query-422", f"limit={limit} answered {ex.status}", ex)

    @s.prop(
        BAD_LIST_QUERIES,
        ("limit", "0"),
        ("limit", str(c.LIMIT_MAX + 1)),
        ("cursor", "!!"),
        ("status", "deleted"),
    )
    def _(case: tuple[str, str]) -> None:
        name, value = case
        ex = s.target.send("GET", path, headers=s.target.auth(), params={name: value})
        fields = field_errors("validation.list-query-422", ex, c.INVALID_QUERY)
        if not fields.get(name):
            raise Violation("validation.list-query-422", f"{name}={value!r} not named", ex)


BAD_PATCHES = st.one_of(
    st.tuples(UNKNOWN_FIELDS, JSON_SCALARS),
    st.tuples(st.just("gender"), st.sampled_from([None, "robot", 1, ""])),
    st.tuples(st.just("ageRange"), st.sampled_from(["ancient", 3, ""])),
    st.tuples(st.just("brandVoice"), st.sampled_from(["loud", None, 1])),
    st.tuples(st.just("language"), st.sampled_from(["english!", "e", "", None, "en_US"])),
    st.tuples(st.just("name"), st.sampled_from(["", None, 5, "x" * (c.NAME_MAX + 1)])),
)
PATCHABLE = ("name", "gender", "ageRange", "brandVoice", "language")


def _patchable(record: dict[str, Any]) -> dict[str, Any]:
    return {k: record.get(k) for k in PATCHABLE if k != "name" or record.get("status") != "ready"}


def _unchanged(clause: str, s: Session, job: Job, before: dict[str, Any]) -> None:
    after = s.influencer_record(job)
    if before.get("status") != after.get("status"):
        before, after = {**before, "name": None}, {**after, "name": None}
    if _patchable(before) != _patchable(after):
        raise Violation(clause, f"a rejected request changed the influencer: {after}", None)


@SECTION.clause("validation.patch-body-422", needs=Needs(workbench=True), weight=2)
def patch_body_422(s: Session) -> None:
    """PATCH is strict: an empty body, an unknown field, a null gender, a bad enum or length is
    422 naming the field, and a valid field sent with it is not applied."""
    job = s.workbench_job()
    before = s.influencer_record(job)
    path = c.influencer_path(job.influencer_id)
    ex = s.call("PATCH", path, {})
    expect_error("validation.patch-body-422", ex, 422, "VALIDATION")

    @s.prop(
        BAD_PATCHES,
        ("gender", None),
        ("conformanceBogus", 1),
        ("name", "x" * (c.NAME_MAX + 1)),
        ("language", "english!"),
    )
    def _(case: tuple[str, Any]) -> None:
        name, value = case
        body = {"name": "Conformance Not Applied", name: value}
        if name == "name":
            body = {"brandVoice": "witty", name: value}
        ex = s.call("PATCH", path, body)
        if not field_errors("validation.patch-body-422", ex).get(name):
            raise Violation("validation.patch-body-422", f"{name}={value!r} not named", ex)

    _unchanged("validation.patch-body-422", s, job, before)


@SECTION.clause("validation.delete-body-422", needs=Needs(workbench=True))
def delete_body_422(s: Session) -> None:
    """A DELETE body that is sent must be valid (reason at most 1,024 characters, no unknown
    field, JSON): otherwise 422, and the influencer is not deleted."""
    job = s.workbench_job()
    path = c.influencer_path(job.influencer_id)
    clause = "validation.delete-body-422"
    ex = s.call("DELETE", path, {"reason": "x" * (c.DELETE_REASON_MAX + 1)})
    if not field_errors(clause, ex).get("reason"):
        raise Violation(clause, "reason over 1,024 characters not named", ex)
    ex = s.call("DELETE", path, {"reason": "ok", "conformanceBogus": 1})
    if not field_errors(clause, ex).get("conformanceBogus"):
        raise Violation(clause, "unknown field not named", ex)
    ex = s.call("DELETE", path, content=b"{not json", headers={"Content-Type": "application/json"})
    _form_error(clause, ex)
    ex = s.read_influencer(job)
    if ex.status != 200:
        raise Violation(clause, f"the influencer is gone after rejected DELETEs ({ex.status})", ex)


BAD_PROJECTS: list[tuple[dict[str, Any], str]] = [
    ({"timezone": "UTC"}, "name"),
    ({"name": "Conformance"}, "timezone"),
    ({"name": "ab", "timezone": "UTC"}, "name"),
    ({"name": "x" * (c.PROJECT_NAME_MAX + 1), "timezone": "UTC"}, "name"),
    ({"name": "Conformance", "timezone": "Mars/Olympus_Mons"}, "timezone"),
    ({"name": "Conformance", "timezone": "UTC", "appDescription": "x" * 99}, "appDescription"),
    ({"name": "Conformance", "timezone": "UTC", "targetGender": "robot"}, "targetGender"),
    ({"name": "Conformance", "timezone": "UTC", "brandVoice": "loud"}, "brandVoice"),
    ({"name": "Conformance", "timezone": "UTC", "primaryLanguage": "english!"}, "primaryLanguage"),
    ({"name": "Conformance", "timezone": "UTC", "conformanceBogus": 1}, "conformanceBogus"),
]


@SECTION.clause("validation.project-body-422")
def project_body_422(s: Session) -> None:
    """A project body with a missing or bad field (name 3 to 30, an IANA timezone, appDescription
    100 to 1,000, enums, unknown fields) is 422 naming it, and creates nothing."""
    if not c.grants(s.scopes(), c.PROJECTS_WRITE):
        raise NotChecked("the key lacks projects:write (whoami)")
    for body, name in BAD_PROJECTS:
        ex = s.call("POST", "/v1/projects", body)
        if not field_errors("validation.project-body-422", ex).get(name):
            raise Violation("validation.project-body-422", f"{name} not named", ex)


@SECTION.clause("validation.idempotency-key-422", needs=Needs(workbench=True))
def idempotency_key_422(s: Session) -> None:
    """An Idempotency-Key must be 1 to 255 printable ASCII characters: 256, empty or non-ASCII is
    422 'Invalid header.' naming it (and nothing is applied); exactly 255 is accepted."""
    job = s.workbench_job()
    path = c.influencer_path(job.influencer_id)
    clause = "validation.idempotency-key-422"
    before = s.influencer_record(job)
    for bad in ("k" * (c.IDEMPOTENCY_KEY_MAX + 1), "", "cl\xe9-\xe9t\xe9"):
        headers = {"Idempotency-Key": bad.encode("latin-1")}  # bytes: sent as they are
        ex = s.call("PATCH", path, {"brandVoice": "witty"}, headers=headers)
        if not field_errors(clause, ex, c.INVALID_HEADER).get("Idempotency-Key"):
            raise Violation(clause, f"a {len(bad)}-character key: Idempotency-Key not named", ex)
    _unchanged(clause, s, job, before)
    ex = s.call("PATCH", path, {"ageRange": "mature"}, headers={"Idempotency-Key": "k" * 255})
    if ex.status != 200 or body_of(ex).get("ageRange") != "mature":
        raise Violation(clause, f"a 255-character key answered {ex.status}", ex)
