"""One dashboard request: access, query, handler, self-check, send. Errors stay in the envelope.

The same steps as a JSON control route (http/control.py), with two differences: a page answers
HTML, CSS or JavaScript, and a page URL may carry the admin token as `?token=` because a
browser following a link cannot add an Authorization header.
"""

from __future__ import annotations

from typing import Any

from ..core.errors import ApiError
from ..core.store import StoreUnavailable
from ..deps import Deps
from ..http import inputs
from ..http.access import OPEN, check_site, control_principal, token_in_query
from ..http.control import journal_of
from ..http.curl import base_url
from ..http.pipeline import RETRY_AFTER, error_headers, storage_error
from ..http.render import Headers, dumps, encode_headers, error_body
from ..http.strict import check_response
from ..spec import JSON, Operation
from .pages import PUBLIC, READS_JOURNAL, UiHandler, UiRequest, unreachable_page
from .views import journal_query

DASHBOARD = "/_mock/ui"
RETRY_AFTER_S = int(RETRY_AFTER["retry-after"])


def browser_dashboard(method: str, path: str, accept: str | None) -> bool:
    """A browser opening the dashboard: while Redis cannot be reached it gets a page that
    says so and reloads itself (`unreachable_page`), from a running worker's gate
    (http/shared.py), this pipeline, or a worker waiting for Redis (http/waiting.py) alike.
    HEAD too: its answer is the GET's headers without the body (RFC 9110 §9.3.2)."""
    return method in ("GET", "HEAD") and path == DASHBOARD and "text/html" in (accept or "")


async def send_unreachable(send: Any, out: Headers) -> None:
    """That page, after the headers already in `out` (the request id)."""
    page = unreachable_page(RETRY_AFTER_S)
    out.extend(encode_headers(page.headers))
    await send_page(send, page.status, out, page.body, page.media_type)


class UiPipeline:
    __slots__ = ("deps", "handler", "op", "public")

    def __init__(self, op: Operation, handler: UiHandler, deps: Deps) -> None:
        self.op = op
        self.handler = handler
        self.deps = deps
        self.public = op.operation_id in PUBLIC

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        deps = self.deps
        # the control plane's request ids (unique for ever, kept apart from the state):
        # watching the mock never shifts partner ids, and never moves the state
        request_id = deps.sim.request_id("control-req")
        headers = inputs.header_map(scope)
        body = await inputs.read_body(receive, headers.get("content-type"))
        out: Headers = [(b"x-request-id", request_id.encode())]
        raw_query = scope.get("query_string", b"")
        media_type = JSON
        try:
            token = token_in_query(raw_query)
            if not self.public:
                check_site(deps, headers, scope.get("server"))
            principal = (
                OPEN
                if self.public
                else control_principal(
                    deps,
                    headers.get("authorization"),
                    token,
                    headers.get("x-layers-organization"),
                )
            )
            inputs.validate_body(self.op, body)
            query = inputs.validate_query(self.op, raw_query)
            if self.op.operation_id in READS_JOURNAL:  # on Redis, from every worker
                shown = journal_query(principal, query)
                await deps.journal.fetch(journal_of(deps, principal, shown))
            request = UiRequest(
                deps,
                principal,
                query,
                scope.get("path_params", {}),
                headers.get("accept", ""),
                headers.get("if-none-match"),
                base_url(headers.get("host"), scope.get("server")),
                None if self.public else token,
            )
            page = self.handler(request)
            status, payload, media_type = page.status, page.body, page.media_type
            out.extend(encode_headers(page.headers))
        except StoreUnavailable as exc:  # the journal could not be read from Redis
            error = storage_error(exc)
            if browser_dashboard(scope["method"], scope["path"], headers.get("accept")):
                page = unreachable_page(RETRY_AFTER_S)
                status, payload, media_type = page.status, page.body, page.media_type
                out.extend(encode_headers(page.headers))
            else:
                status, payload = 503, dumps(error_body(error, request_id))
                out.extend(error_headers(error))
        except ApiError as exc:
            status, payload = exc.status, dumps(error_body(exc, request_id))
            if exc.headers:
                out.extend(encode_headers(list(exc.headers.items())))
        if deps.strict:
            check_response(self.op, status, out, payload, media_type)
        await send_page(send, status, out, payload, media_type)


async def send_page(send: Any, status: int, out: Headers, payload: bytes, media_type: str) -> None:
    """A dashboard answer on the wire: its type (text with its charset) and length. Also how
    a worker waiting for Redis sends the pages it can answer (http/waiting.py)."""
    if payload:
        charset = "" if media_type == JSON else "; charset=utf-8"
        out.append((b"content-type", (media_type + charset).encode()))
    out.append((b"content-length", str(len(payload)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": out})
    await send({"type": "http.response.body", "body": payload})
