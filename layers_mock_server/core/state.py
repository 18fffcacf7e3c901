"""Everything the mock remembers, in one place, so it can be reset, exported and stored."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from .credits import Wallet
from .fixtures import Fixtures
from .idempotency import IdempotencyRecords
from .ids import IdMint, check_seed
from .jobs import JobFacts
from .listing import ProjectListing
from .orgclocks import OrgClocks
from .ratelimit import RateLimiter
from .records import ApiKey, InfluencerFacts, Organization, Project
from .rules import Rules

TABLE_NAMES = ("organizations", "keys", "projects", "influencers", "jobs")


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
    clocks: OrgClocks = field(default_factory=OrgClocks)  # organizations with a clock of their own
    # (table, id) of every record changed since the last commit; tables as in TABLE_NAMES,
    # plus ("idempotency", key hex) and ("meta", "") for counters, rules, rates and the clock
    dirty: set[tuple[str, str]] = field(default_factory=set)
    # Derived from the records above and rebuilt on first use; never exported or stored.
    listings: dict[str, ProjectListing] = field(default_factory=dict)  # by project id
    wallets: dict[str, Wallet] = field(default_factory=dict)  # by organization id
    project_bytes: int = 0  # kept up to date by create_project; projects are bounded by bytes

    def __post_init__(self) -> None:
        self.seed = check_seed(self.seed)
        self.idempotency.dirty = self.dirty
        self.project_bytes = sum(p.size_bytes() for p in self.projects.values())

    def clean(self) -> None:
        """Everything is stored: no record, rule, rate window or clock is marked changed."""
        self.dirty.clear()
        self.rules.changed.clear()
        self.rates.changed.clear()
        self.clocks.changed.clear()

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

    def without_organization(self, org_id: str, fixtures: Fixtures) -> State:
        """A new State in which one organization is back to its fixtures (its created records,
        idempotency records, rate-limit windows and own clock gone) and the others keep
        everything.
        Built beside this one, so the caller can store it first and switch only on success."""
        fresh = copy.deepcopy(fixtures)
        ours = {k.api_key_id for k in self.keys.values() if k.org_id == org_id}
        ours |= {k.api_key_id for k in fresh.keys.values() if k.org_id == org_id}
        projects = {k: p for k, p in self.projects.items() if p.org_id != org_id}
        projects.update({k: p for k, p in fresh.projects.items() if p.org_id == org_id})
        keys = {k: v for k, v in self.keys.items() if v.org_id != org_id}
        keys.update({k: v for k, v in fresh.keys.items() if v.org_id == org_id})
        after = State(
            seed=self.seed,
            organizations=self.organizations,
            keys=keys,
            projects=projects,
            influencers={k: i for k, i in self.influencers.items() if i.org_id != org_id},
            jobs={k: j for k, j in self.jobs.items() if j.org_id != org_id},
            mint=self.mint,
            # and what parent keys did inside this organization (X-Layers-Organization)
            idempotency=self.idempotency.without_keys(
                ours | {f"{v.api_key_id}@{org_id}" for v in self.keys.values()}
            ),
            rates=self.rates.without_keys(ours),
            rules=self.rules,
            clocks=self.clocks.without(org_id),  # its clock follows the server's again
        )
        after.dirty |= self.dirty  # what was not yet stored still has to be
        for name in TABLE_NAMES:
            before, now = getattr(self, name), getattr(after, name)
            after.dirty.update((name, ident) for ident in before.keys() - now.keys())
            after.dirty.update(
                (name, ident) for ident, r in now.items() if before.get(ident) is not r
            )
        after.dirty.update(
            ("idempotency", key.hex())
            for key, _ in self.idempotency.items()
            if after.idempotency.get(key) is None
        )
        after.dirty.add(("meta", ""))
        return after
