"""Fixture files: the organizations, keys and projects a server knows at start."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import yaml

from .clock import DEFAULT_START_MS, format_ms, parse_timestamp
from .records import TIERS, ApiKey, Organization, Project, canonical_id

# The repository's fixtures/ ships inside the package, like openapi/
# (see layers_mock_server/spec.py).
DEFAULT_FIXTURES: Traversable = files("layers_mock_server") / "fixtures" / "default.yaml"
# The key's id and secret hold no `_`, so the journal's redaction (core/journal.py) knows where
# the id ends and never shows a part of the secret.
KEY_SHAPE = re.compile(r"^lp_(live|test)_[A-Za-z0-9]+_[A-Za-z0-9]+$")
GENDERS = ("all", "female", "male")
OUTCOMES = ("completed", "failed", "canceled")


class FixtureError(ValueError):
    """A fixture file that cannot be loaded; the message names the file and the entry."""


@dataclass(slots=True)
class Fixtures:
    organizations: dict[str, Organization] = field(default_factory=dict)
    keys: dict[str, ApiKey] = field(default_factory=dict)
    projects: dict[str, Project] = field(default_factory=dict)


# Checks a raw fixtures document against the contract (layers_mock_server/fixturecheck.py):
# passed in, so that this module stays free of the spec loader.
FixtureCheck = Callable[[dict[str, Any], str], None]


def load_fixtures(
    path: Traversable | str = DEFAULT_FIXTURES, check: FixtureCheck | None = None
) -> Fixtures:
    path = Path(path) if isinstance(path, str) else path
    try:
        # libyaml's loader when there is one: same safe subset, ~10 ms less at start-up
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        document = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)  # noqa: S506
    except (OSError, yaml.YAMLError) as exc:
        raise FixtureError(f"{path}: {exc}") from exc
    return parse_fixtures(document, source=str(path), check=check)


def _need(entry: dict[str, Any], name: str, where: str) -> Any:
    if name not in entry:
        raise FixtureError(f"{where}: missing `{name}`")
    return entry[name]


def parse_fixtures(
    document: Any, source: str = "fixtures", check: FixtureCheck | None = None
) -> Fixtures:
    if not isinstance(document, dict) or not isinstance(document.get("organizations"), list):
        raise FixtureError(f"{source}: expected a mapping with an `organizations` list")
    if check is not None:
        check(document, source)
    fixtures = Fixtures()
    for i, org_entry in enumerate(document["organizations"]):
        where = f"{source}: organizations[{i}]"
        org_id = str(_need(org_entry, "organizationId", where))
        if org_id in fixtures.organizations:
            raise FixtureError(f"{where}: duplicate organizationId {org_id}")
        owner = org_entry.get("ownerEmail")
        fixtures.organizations[org_id] = Organization(
            org_id,
            str(_need(org_entry, "name", where)),
            int(org_entry.get("creditBalance", 0)),
            parent_id=org_entry.get("parentOrganizationId"),
            owner_email=None if owner is None else str(owner),
        )
        for j, p in enumerate(org_entry.get("projects", [])):
            pwhere = f"{where}.projects[{j}]"
            project_id = canonical_id("prj_", str(_need(p, "projectId", pwhere)))
            if project_id is None:
                raise FixtureError(f"{pwhere}: projectId must be prj_<uuid>")
            gender = p.get("targetGender", "all")
            if gender not in GENDERS:
                raise FixtureError(f"{pwhere}: targetGender must be one of {GENDERS}")
            if p.get("outcome") not in (None, *OUTCOMES):
                raise FixtureError(f"{pwhere}: outcome must be one of {OUTCOMES}")
            created = _instant(p.get("createdAt"), pwhere)
            fixtures.projects[project_id] = Project(
                project_id=project_id,
                org_id=org_id,
                name=str(_need(p, "name", pwhere)),
                target_gender=gender,
                brand_voice=p.get("brandVoice", "authentic"),
                primary_language=p.get("primaryLanguage", "en"),
                timezone=p.get("timezone", "UTC"),
                customer_external_id=p.get("customerExternalId"),
                app_name=p.get("appName"),
                metadata=dict(p.get("metadata", {})),
                created_ms=created,
                updated_ms=created,
                tagline=p.get("tagline"),
                owner_email=p.get("ownerEmail", owner),
                seq=len(fixtures.projects) + 1,
                outcome=p.get("outcome"),
            )
        for j, k in enumerate(org_entry.get("keys", [])):
            kwhere = f"{where}.keys[{j}]"
            key = str(_need(k, "key", kwhere))
            if not KEY_SHAPE.fullmatch(key):
                raise FixtureError(
                    f"{kwhere}: key must match {KEY_SHAPE.pattern} "
                    "(lp_live_<id>_<secret>, letters and digits only: the journal shows "
                    "everything up to the second `_` and hides the rest)"
                )
            if key in fixtures.keys:
                raise FixtureError(f"{kwhere}: duplicate key")
            tier = k.get("rateLimitTier", "standard")
            if tier not in TIERS:
                raise FixtureError(f"{kwhere}: rateLimitTier must be one of {TIERS}")
            fixtures.keys[key] = ApiKey(
                key=key,
                api_key_id=str(_need(k, "apiKeyId", kwhere)),
                org_id=org_id,
                scopes=tuple(k.get("scopes", ())),
                tier=tier,
                killed=bool(k.get("killed", False)),
                owner_email=k.get("ownerEmail", owner),
            )
    _check_parents(fixtures, source)
    return fixtures


def _instant(value: Any, where: str) -> int:
    """A fixture's createdAt; without one, the mock clock's start (never 1970). Not after the
    start: fixtures load when the clock is there (at start-up and on a reset), and nothing is
    created in the future of its organization's clock (an import refuses that)."""
    if value is None:
        return DEFAULT_START_MS
    try:
        instant = parse_timestamp(str(value))
    except ValueError:
        raise FixtureError(f"{where}: createdAt must be an ISO-8601 instant with Z") from None
    if instant > DEFAULT_START_MS:
        raise FixtureError(
            f"{where}: createdAt {format_ms(instant)} is after the mock clock's start, "
            f"{format_ms(DEFAULT_START_MS)} (a project cannot be created in its future)"
        )
    return instant


def _check_parents(fixtures: Fixtures, source: str) -> None:
    """Sub-organizations are one level deep: a parent exists and has no parent itself."""
    orgs = fixtures.organizations
    for org in orgs.values():
        parent = org.parent_id
        if parent is None:
            continue
        if parent not in orgs:
            raise FixtureError(f"{source}: {org.organization_id}: unknown parent {parent}")
        if orgs[parent].parent_id is not None or parent == org.organization_id:
            raise FixtureError(
                f"{source}: {org.organization_id}: sub-organizations are one level deep"
            )
