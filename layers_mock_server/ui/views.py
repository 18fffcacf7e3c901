"""What each dashboard view shows, read through the control plane's own handlers.

Every value on the page is the body of a /_mock/ route as that route would answer it (the same
handler function, called the same way), so the page can never disagree with a script. The
Principal narrows what is shown: a tenant sees its own organization only.
"""

from __future__ import annotations

import shlex
from typing import Any

from ..core.clock import format_ms
from ..deps import Deps
from ..http import control, control_reads
from ..http.access import Principal
from ..http.curl import ENV_KEY, curl_command
from ..spec import partner_spec

JOURNAL_ROWS = 30
JOB_ROWS = 30
# The rule templates: which partner operation starts a job and which one polls it.
CREATE_OPERATION = "createInfluencer"
POLL_OPERATION = "getJob"
# Request headers a replay needs to get the same answer (the key comes from the shell).
REPLAYED_HEADERS = frozenset(
    {"content-type", "idempotency-key", "prefer", "if-none-match", "x-layers-organization"}
)


def _body(handler: control.ControlHandler, deps: Deps, who: Principal, **query: Any) -> Any:
    """Call a control route's handler exactly as its route does, and take its body."""
    return handler(deps, {}, {k: v for k, v in query.items() if v is not None}, {}, who).body


def _organizations(deps: Deps, principal: Principal) -> list[dict[str, Any]]:
    orgs = _body(control.fixtures, deps, principal)["organizations"]
    return [org for org in orgs if principal.sees(org["organizationId"])]


def visible_keys(deps: Deps, principal: Principal) -> set[str] | None:
    """The key ids whose journal entries the principal may read; None: all of them."""
    if principal.organization_id is None:
        return None
    return {k["apiKeyId"] for org in _organizations(deps, principal) for k in org["keys"]}


def journal_query(principal: Principal, query: dict[str, Any]) -> dict[str, Any]:
    """The `/_mock/requests` query behind the journal the page shows: the chosen organization's
    own share (a form's empty choice is none), else the principal's (a tenant's own, the
    operator's union). The newest entries of all would hold none of a quiet organization's on a
    busy sandbox."""
    return {"organizationId": query.get("organizationId") or principal.organization_id}


def live_context(deps: Deps, principal: Principal, filters: dict[str, Any]) -> dict[str, Any]:
    """The moving parts: clock, jobs, journal, rules. An empty filter (a form's) is no filter."""
    filters = {name: value for name, value in filters.items() if value != ""}
    # a tenant's page shows its own organization; a filter naming another one is the 404
    # that /_mock/jobs answers it, never the tenant's jobs under another's name
    organization_id = filters.get("organizationId") or principal.organization_id
    jobs = _body(
        control_reads.list_jobs,
        deps,
        principal,
        organizationId=organization_id,
        projectId=filters.get("projectId"),
        status=filters.get("status"),
        limit=JOB_ROWS,
    )
    projects = _body(control_reads.list_projects, deps, principal)
    journal = _body(
        control.requests, deps, principal, limit=JOURNAL_ROWS, **journal_query(principal, filters)
    )
    keys = visible_keys(deps, principal)
    if keys is not None:
        journal["items"] = [e for e in journal["items"] if e["apiKeyId"] in keys]
    clock = _body(control.get_clock, deps, principal)
    tenant = principal.organization_id
    clock_path = "/_mock/clock"
    if tenant is not None:  # a tenant's page runs on, and moves, its organization's clock
        now, detached = deps.sim.organization_clock(tenant)
        clock["now"] = format_ms(now)
        if detached:  # its own clock stands still until the organization moves it
            clock["mode"] = "virtual"
        clock_path = f"/_mock/organizations/{tenant}/clock"
    return {
        "clock": clock,
        "clock_path": clock_path,
        "tenant": tenant,
        "seed": _body(control.get_seed, deps, principal)["seed"],
        "jobs": jobs,
        "filtered": any(filters.get(k) for k in ("organizationId", "projectId", "status")),
        "project_names": {p["projectId"]: p["name"] for p in projects["items"]},
        "journal": journal,
        "rules": _body(control.list_rules, deps, principal)["items"],  # a tenant's: its own
        # the chaos profile is the operator's, not shown to a tenant
        "chaos": None if tenant else _body(control_reads.get_chaos, deps, principal)["profile"],
    }


def page_context(
    deps: Deps, principal: Principal, filters: dict[str, Any], base_url: str
) -> dict[str, Any]:
    """The whole page: the live parts plus fixtures, filters and the rule templates."""
    context = live_context(deps, principal, filters)
    filters = {name: value for name, value in filters.items() if value != ""}
    organizations = _organizations(deps, principal)
    keys = [k for org in organizations for k in org["keys"]]
    projects = _body(control_reads.list_projects, deps, principal)
    context.update(
        fixtures=organizations,
        projects=projects["items"],
        filters=filters,
        key_curls={
            k["apiKeyId"]: curl_command("GET", base_url + "/v1/whoami", key=k["key"]) for k in keys
        },
        key_exports={k["apiKeyId"]: "export LAYERS_API_KEY=" + shlex.quote(k["key"]) for k in keys},
        operations=sorted(partner_spec().operations),
        create_operation=CREATE_OPERATION,
        poll_operation=POLL_OPERATION,
    )
    return context


def job_context(deps: Deps, principal: Principal, job_id: str, base_url: str) -> dict[str, Any]:
    detail = control_reads.get_job(deps, {}, {}, {"jobId": job_id}, principal).body
    return {"detail": detail, "curl": curl_command("GET", f"{base_url}/v1/jobs/{job_id}")}


def request_context(deps: Deps, entry: dict[str, Any], base_url: str) -> dict[str, Any]:
    """One journal entry with its curl. When the journal keeps bodies, an entry carries
    `request` and `response` ({headers, body, truncated}, keys already redacted): they are shown,
    and the curl replays the body and the headers that change the answer."""
    request = entry.get("request")
    request_body = request["body"] if request and request["body"] else None
    replayed = [
        (name, value)
        for name, value in (request["headers"] if request else {}).items()
        if name in REPLAYED_HEADERS
    ]
    url = base_url + entry["path"] + ("?" + entry["query"] if entry["query"] else "")
    key = ENV_KEY if entry["apiKeyId"] else None
    return {
        "e": entry,
        "request": request,
        "response": entry.get("response"),
        "curl": curl_command(entry["method"], url, key=key, body=request_body, headers=replayed),
        "body_missing": request is None and entry["method"] in ("POST", "PATCH", "PUT"),
    }
