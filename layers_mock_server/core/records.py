"""The rows the mock keeps: organizations, keys, projects and influencers.

Records hold facts only. An influencer's status, name and image are derived from its job
(see influencers.py), so nothing here has to be updated as time passes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import orjson

TIERS = ("standard", "pilot", "partner", "unlimited")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@dataclass(slots=True)
class Organization:
    organization_id: str
    name: str
    credit_balance: int = 0  # the wallet at start; usage is derived from jobs (credits.py)
    parent_id: str | None = None  # one level deep: a child's parent has no parent
    owner_email: str | None = None


@dataclass(slots=True)
class ApiKey:
    key: str
    api_key_id: str
    org_id: str
    scopes: tuple[str, ...]
    tier: str = "standard"
    killed: bool = False
    owner_email: str | None = None  # the default ownerEmail of the projects it creates

    @property
    def sandbox(self) -> bool:
        """`lp_test_` keys spend no credits (the Layers sandbox concept page)."""
        return self.key.startswith("lp_test_")

    def allows(self, scope: str | None) -> bool:
        return scope is None or "*" in self.scopes or scope in self.scopes


@dataclass(slots=True)
class Project:
    project_id: str
    org_id: str
    name: str
    target_gender: str = "all"
    brand_voice: str = "authentic"
    primary_language: str = "en"
    timezone: str = "UTC"
    customer_external_id: str | None = None
    app_name: str | None = None
    app_description: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    created_ms: int = 0
    status: str = "active"  # or "archived": soft-deleted, reversible
    owner_email: str | None = None
    tagline: str | None = None
    updated_ms: int = 0
    seq: int = 0  # creation order within the whole state: the keyset of the project list
    outcome: str | None = None  # a fixture rule: the end of every job in this project
    influencer_ids: list[str] = field(default_factory=list)  # creation order, never shrinks

    def size_bytes(self) -> int:
        """What the project costs to keep, near enough to bound the table by bytes: its
        metadata (up to a whole request body) dominates."""
        text = (self.name, self.customer_external_id, self.app_name, self.app_description)
        return 400 + len(orjson.dumps(self.metadata)) + sum(len(t or "") for t in text)


@dataclass(slots=True)
class InfluencerFacts:
    influencer_id: str
    org_id: str
    project_id: str
    job_id: str
    created_ms: int
    gender: str
    age_range: str | None
    brand_voice: str
    language: str
    generated_name: str
    prompt: str | None = None
    name_override: str | None = None
    patched_ms: int | None = None
    deleted_ms: int | None = None
    position: int = 0  # index in the project's influencer list, for cursors


# prefix -> raw id -> its canonical form or None: every request naming a project or an
# influencer in its path asks, mostly about the same few ids (the regex was ~1.5 µs of a
# create). Bounded per prefix (~150 KB at most): emptied when full.
_CANONICAL: dict[str, dict[str, str | None]] = {}
_CANONICAL_MAX = 1024
UUID_CHARS = 36


def canonical_id(prefix: str, raw: str) -> str | None:
    """`prj_<uuid>` and the bare `<uuid>` name the same thing; anything else is unknown."""
    if len(raw) > len(prefix) + UUID_CHARS:  # no id is this long: not remembered (memory)
        return None
    known = _CANONICAL.get(prefix)
    if known is None:
        known = _CANONICAL[prefix] = {}
    elif raw in known:
        return known[raw]
    bare = raw[len(prefix) :] if raw.startswith(prefix) else raw
    # an id already canonical is its own answer (one string kept, not two equal ones)
    canonical = (raw if bare is not raw else prefix + bare) if UUID_RE.match(bare) else None
    if len(known) >= _CANONICAL_MAX:
        known.clear()
    known[raw] = canonical
    return canonical
