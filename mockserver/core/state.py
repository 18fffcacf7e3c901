"""Everything the mock remembers, in one place, so it can be reset, exported and stored."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from .fixtures import Fixtures
from .idempotency import IdempotencyRecords
from .ids import IdMint
from .jobs import JobFacts
from .ratelimit import RateLimiter
from .records import ApiKey, InfluencerFacts, Organization, Project
from .rules import Rules


@dataclass(slots=True)
class State:
    seed: int
    organizations: dict[str, Organization]
    keys: dict[str, ApiKey]
    projects: dict[str, Project]
    influencers: dict[str, InfluencerFacts] = field(default_factory=dict)
    jobs: dict[str, JobFacts] = field(default_factory=dict)
    mint: IdMint = field(default_factory=lambda: IdMint(0))
    idempotency: IdempotencyRecords = field(default_factory=IdempotencyRecords)
    rates: RateLimiter = field(default_factory=RateLimiter)
    rules: Rules = field(default_factory=Rules)
    # (table, id) of every record changed since the last commit; tables as in snapshot.TABLES,
    # plus ("idempotency", scope) and ("meta", "") for counters, rules and the clock
    dirty: set[tuple[str, str]] = field(default_factory=set)

    @classmethod
    def from_fixtures(cls, fixtures: Fixtures, seed: int) -> State:
        fresh = copy.deepcopy(fixtures)
        return cls(
            seed=seed,
            organizations=fresh.organizations,
            keys=fresh.keys,
            projects=fresh.projects,
            mint=IdMint(seed),
        )

    def drop_organization(self, org_id: str, fixtures: Fixtures) -> None:
        """Return one organization to its fixtures; the others keep everything."""
        fresh = copy.deepcopy(fixtures)
        self.projects = {k: p for k, p in self.projects.items() if p.org_id != org_id}
        self.projects.update({k: p for k, p in fresh.projects.items() if p.org_id == org_id})
        self.influencers = {k: i for k, i in self.influencers.items() if i.org_id != org_id}
        self.jobs = {k: j for k, j in self.jobs.items() if j.org_id != org_id}
        self.keys = {k: v for k, v in self.keys.items() if v.org_id != org_id}
        self.keys.update({k: v for k, v in fresh.keys.items() if v.org_id == org_id})
        key_ids = {v.api_key_id for v in fresh.keys.values() if v.org_id == org_id}
        self.idempotency.drop_keys(key_ids)
