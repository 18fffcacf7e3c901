"""Everything the mock remembers, in one place, so it can be reset, exported and stored."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from .credits import Wallet
from .fixtures import Fixtures
from .idempotency import IdempotencyRecords
from .ids import IdMint
from .jobs import JobFacts
from .listing import ProjectListing
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
    # Derived from the records above and rebuilt on first use; never exported or stored.
    listings: dict[str, ProjectListing] = field(default_factory=dict)  # by project id
    wallets: dict[str, Wallet] = field(default_factory=dict)  # by organization id

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
        # and what parent keys did inside this organization (X-Layers-Organization)
        key_ids |= {f"{v.api_key_id}@{org_id}" for v in self.keys.values()}
        self.idempotency.drop_keys(key_ids)
        self.listings.clear()
        self.wallets.clear()
