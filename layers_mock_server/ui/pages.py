"""The dashboard's routes, one function per operationId of openapi/control.yaml."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from hashlib import blake2b
from typing import Any

from ..core.errors import ApiError
from ..deps import Deps
from ..http import control
from ..http.access import Principal
from ..http.render import dumps
from . import views
from .assets import SCRIPT, STYLESHEET, asset
from .render import render

HTML = "text/html"
# No script, style, frame or form target from anywhere but this server; the page is never
# framed (a framed Reset button could be clicked by a page the user did not mean to trust).
PAGE_HEADERS = [
    (
        "Content-Security-Policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    ),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),  # the page shows full API keys
]
# GET / for a script: every link is a route that answers (a bare /_mock/ or /v1/ is a 404):
# the control plane's keys and projects, and the partner API's "who am I" for a key. Also what
# a worker waiting for Redis answers (http/waiting.py).
LINKS = {
    "service": "layers-mock",
    "dashboard": "/_mock/ui",
    "controlPlane": "/_mock/fixtures",
    "partnerApi": "/v1/whoami",
}
JOURNAL_WINDOW = 1000  # the most /_mock/requests returns; older entries cannot be opened


@dataclass(slots=True)
class UiRequest:
    deps: Deps
    principal: Principal
    query: dict[str, Any]
    path: dict[str, str]
    accept: str
    if_none_match: str | None
    base_url: str
    token: str | None  # the page URL's ?token=, carried into the filter form


@dataclass(slots=True)
class Page:
    status: int
    body: bytes
    media_type: str = HTML
    headers: list[tuple[str, str]] = field(default_factory=lambda: list(PAGE_HEADERS))


UiHandler = Callable[[UiRequest], Page]


def _urls() -> dict[str, str]:
    css, js = asset(STYLESHEET), asset(SCRIPT)
    assert css is not None and js is not None
    return {"css_url": css.url, "js_url": js.url}


def index(req: UiRequest) -> Page:
    return index_page(req.accept)


def index_page(accept: str) -> Page:
    """GET /: a person's browser gets a link to the dashboard, a script gets the same in JSON.
    Needs no state: a worker waiting for Redis answers it too (http/waiting.py)."""
    if "text/html" in accept:
        return Page(200, render("index.html", **_urls()))
    return Page(200, dumps(LINKS), "application/json", [])


def unreachable_page(retry_after_s: int) -> Page:
    """The dashboard asked of a worker that waits for Redis (http/waiting.py): a page in the
    dashboard's look saying so, which reloads itself (a meta refresh: no script needed) until
    the real dashboard answers. It names no key, no reason and no address (the stand-in cannot
    tell who asks: /_mock/health says why, to whoever may read it)."""
    body = render("unreachable.html", refresh_s=retry_after_s, **_urls())
    headers = [*PAGE_HEADERS, ("Retry-After", str(retry_after_s))]
    return Page(503, body, headers=headers)


def dashboard(req: UiRequest) -> Page:
    context = views.page_context(req.deps, req.principal, req.query, req.base_url)
    return Page(200, render("page.html", token=req.token, **_urls(), **context))


def live(req: UiRequest) -> Page:
    """The moving parts. A page left open on an idle mock mostly gets 304s: the browser
    revalidates with If-None-Match, and an unchanged fragment costs no bytes on the wire."""
    body = render("live.html", **views.live_context(req.deps, req.principal, req.query))
    etag = '"' + blake2b(body, digest_size=12).hexdigest() + '"'
    headers = [*PAGE_HEADERS[:-1], ("Cache-Control", "no-cache"), ("ETag", etag)]
    if req.if_none_match == etag:
        return Page(304, b"", headers=headers)
    return Page(200, body, headers=headers)


def job(req: UiRequest) -> Page:
    context = views.job_context(req.deps, req.principal, req.path["jobId"], req.base_url)
    if not req.principal.sees(context["detail"]["summary"]["organizationId"]):
        raise ApiError("NOT_FOUND", "Job not found.")
    return Page(200, render("job.html", **context))


def journal_entry(req: UiRequest) -> Page:
    query = {"limit": JOURNAL_WINDOW, **views.journal_query(req.principal, req.query)}
    items = control.requests(req.deps, {}, query, {}, req.principal).body["items"]
    wanted = req.path["sequence"]
    entry = next((e for e in items if str(e["sequence"]) == wanted), None)
    keys = views.visible_keys(req.deps, req.principal)
    if entry is None or (keys is not None and entry["apiKeyId"] not in keys):
        raise ApiError("NOT_FOUND", f"No request {wanted} among the journal's newest entries.")
    return Page(200, render("request.html", **views.request_context(req.deps, entry, req.base_url)))


def static_file(req: UiRequest) -> Page:
    return asset_page(req.path["name"], req.query.get("v"))


def asset_page(name: str, version: str | None) -> Page:
    """A dashboard file: kept for a year when asked with its current `?v=` (the URL changes
    with the file), revalidated otherwise. Needs no state: a worker waiting for Redis answers
    it too (http/waiting.py), with the same headers."""
    found = asset(name)
    if found is None:
        raise ApiError("NOT_FOUND", "No such dashboard asset.")
    current = version == found.version
    cache = "public, max-age=31536000, immutable" if current else "no-cache"
    headers = [("Cache-Control", cache), ("X-Content-Type-Options", "nosniff")]
    return Page(200, found.body, found.media_type, headers)


UI_HANDLERS: dict[str, UiHandler] = {
    "mockIndex": index,
    "mockDashboard": dashboard,
    "mockDashboardLive": live,
    "mockDashboardJob": job,
    "mockDashboardRequest": journal_entry,
    "mockDashboardAsset": static_file,
}
# Open to anyone who can reach the port: they carry no state (the spec's security says so too).
PUBLIC = frozenset({"mockIndex", "mockDashboardAsset"})
# The pages that show journal entries (`Journal.fetch` first).
READS_JOURNAL = frozenset({"mockDashboard", "mockDashboardLive", "mockDashboardRequest"})
