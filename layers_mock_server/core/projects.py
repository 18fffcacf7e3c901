"""Projects: the row a partner reads, and the list, patch and archive of rows.

Projects are few per organization (one per customer), so the list scans them; influencers are
the list that grows, and listing.py gives it an index.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import orjson

from .errors import ApiError, invalid_body
from .listing import encode_cursor
from .records import Project

METADATA_MAX_BYTES = 8 * 1024
# PATCH body field -> Project attribute (the rest of the body schema is read-only or unknown)
PATCHABLE = {
    "name": "name",
    "status": "status",
    "ownerEmail": "owner_email",
    "timezone": "timezone",
    "primaryLanguage": "primary_language",
    "customerExternalId": "customer_external_id",
    "appName": "app_name",
    "appDescription": "app_description",
    "tagline": "tagline",
    "brandVoice": "brand_voice",
    "targetGender": "target_gender",
    "metadata": "metadata",
}


def project_body(project: Project, fmt: Callable[[int], str]) -> dict[str, Any]:
    return {
        "id": project.project_id,
        "organizationId": project.org_id,
        "name": project.name,
        "status": project.status,
        "timezone": project.timezone,
        "customerExternalId": project.customer_external_id,
        "ownerEmail": project.owner_email,
        "primaryLanguage": project.primary_language,
        "appName": project.app_name,
        "appDescription": project.app_description,
        "tagline": project.tagline,
        "brandVoice": project.brand_voice,
        "targetGender": project.target_gender,
        "metadata": project.metadata,
        "createdAt": fmt(project.created_ms),
        "updatedAt": fmt(max(project.created_ms, project.updated_ms)),
    }


def check_metadata(body: dict[str, Any]) -> None:
    """`metadata` is opaque JSON of at most 8 KB: counted as compact UTF-8 JSON."""
    if "metadata" in body and len(orjson.dumps(body["metadata"])) > METADATA_MAX_BYTES:
        raise invalid_body(
            field_errors={"metadata": [f"Must be at most {METADATA_MAX_BYTES} bytes as JSON."]}
        )


def patch_project(project: Project, body: dict[str, Any], now_ms: int) -> None:
    """Partial: omitted fields stay; `metadata` is replaced whole, never merged."""
    check_metadata(body)
    for name, attribute in PATCHABLE.items():
        if name in body:
            setattr(project, attribute, body[name])
    project.updated_ms = now_ms


def archive_project(project: Project, now_ms: int) -> None:
    """Soft delete; archiving an archived project changes nothing (idempotent by state)."""
    if project.status != "archived":
        project.status = "archived"
        project.updated_ms = now_ms


def refuse_if_archived(project: Project) -> None:
    """Archiving pauses generation: no job starts in an archived project."""
    if project.status == "archived":
        raise ApiError(
            "CONFLICT",
            "The project is archived: PATCH it to status active before starting jobs in it.",
            {"subcode": "PROJECT_ARCHIVED", "projectId": project.project_id},
        )


def list_projects(
    projects: Iterable[Project],
    org_id: str,
    query: dict[str, Any],
    before: int | None,
    fmt: Callable[[int], str],
) -> dict[str, Any]:
    """Newest first (creation order); filters: status, name substring, customerExternalId."""
    status = query.get("status")
    search = query.get("search")
    needle = None if search is None else search.casefold()
    external = query.get("customerExternalId")
    limit: int = query["limit"]
    found = sorted(
        (
            p
            for p in projects
            if p.org_id == org_id
            and (before is None or p.seq < before)
            and (status is None or p.status == status)
            and (needle is None or needle in p.name.casefold())
            and (external is None or p.customer_external_id == external)
        ),
        key=lambda p: p.seq,
        reverse=True,
    )
    page = found[:limit]
    more = len(found) > limit
    return {
        "items": [project_body(p, fmt) for p in page],
        "nextCursor": encode_cursor(page[-1].seq) if more else None,
    }
