"""Fault and outcome rules set through the control plane, and the chaos profile.

A rule matches requests (method, path, organization, project, operation) and gives them a
fault, a latency, a job outcome or a progression, optionally only `count` times or with a
`probability`. A rule's chance is drawn from the seed, its id and how many matching requests it
drew for before (`drawn`, kept and exported with it), never from a process-wide random nor
from the request's number: two runs with one seed inject the same faults into the same
requests, after a reset too (which does not rewind request numbers), and on Redis whichever
worker answers (a request while rules are set takes the write lease, so the draws of one rule
are made in one order). The chaos profile draws by request number.

Whose request a rule steers depends on who made it. The operator's rule (admin token, or an
open server) matches the organization a request acts in. A tenant's rule (an organization's
own key on a shared sandbox) matches the requests that organization's keys send, wherever they
act: a parent key's request in its child (X-Layers-Organization) is the parent's, as its
journal shows, so the parent steers it and the child, which cannot see it, does not.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass, field
from hashlib import blake2b
from itertools import chain
from typing import Any

from .errors import ApiError
from .glob import PathGlob
from .prefer import Preferences
from .records import canonical_id

EFFECTS = ("fault", "latencyMs", "outcome", "stage", "progression")
# A partner request is checked against the rules that could match it (`Rules` indexes them by
# whose requests they steer and by operationId), and each of those is bounded (control.yaml caps
# its strings). The operator holds at most MAX_RULES rules of its own and each organization at
# most MAX_TENANT_RULES of its own, neither counting the other's: a total shared by all would
# refuse a tenant's add because of rules it can neither see nor delete (telling it they exist),
# and let one busy organization stop every other. The total is then MAX_RULES +
# MAX_TENANT_RULES per organization (the README gives the worst case): about 1 MB for the
# operator's 1,000 and 0.1 MB for each organization whose rules are full. A request pays only
# for its own organization's (bench/rules.py: 25 us for the operator's 1,000 spread over 30
# organizations, 0.1 ms with each one's 100 too), except for the operator's rules that name
# no organization and its operation (or none): every such request checks those (up to 0.7 ms
# for 1,000 that each test a path glob).
MAX_RULES = 1_000
MAX_TENANT_RULES = 100


def rule_organization(named: str, organizations: Container[str]) -> str | None:
    """The organization a rule's `match.organizationId` names, as requests carry it (prefix and
    all; a bare uuid is taken), or None when there is none such: that rule would never fire.
    One check for POST /_mock/rules and an import's rules, so that neither takes what the
    other refuses."""
    org_id = named if named in organizations else canonical_id("org_", named)
    return org_id if org_id and org_id in organizations else None


def no_organization(named: str) -> str:
    return (
        f"match.organizationId: the server has no organization {named!r} "
        "(GET /_mock/fixtures lists them)."
    )


def chance(seed: int, salt: str) -> float:
    """A uniform draw in [0, 1) that depends on the seed and the salt alone."""
    digest = blake2b(salt.encode(), digest_size=8, key=seed.to_bytes(8, "big")).digest()
    return int.from_bytes(digest, "big") / 2**64


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """What a rule can match on; `sequence` numbers requests for seeded chance.
    `organization_id`: the organization the request acts in; `sender_id`: the organization
    of the key that sent it (the same, unless a parent key acts in its child)."""

    method: str
    path: str
    operation_id: str
    organization_id: str | None
    project_id: str | None
    sequence: int
    sender_id: str | None


@dataclass(slots=True)
class Rule:
    rule_id: str
    spec: dict[str, Any]  # the input as given, echoed back by the control plane
    remaining: int | None
    _path: PathGlob | None = field(default=None, repr=False)
    tenant: str | None = None  # the organization that made it; None: the operator
    drawn: int = 0  # matching requests its `probability` was drawn for (shown once past 0)

    @classmethod
    def from_input(cls, rule_id: str, spec: dict[str, Any], tenant: str | None = None) -> Rule:
        """`spec` as control.yaml's RuleInput validated it; JSON `2.0` counts as 2."""
        path = spec["match"].get("path")
        for name in ("count", "latencyMs"):
            if name in spec:
                spec[name] = int(spec[name])
        return cls(rule_id, spec, spec.get("count"), PathGlob(path) if path else None, tenant)

    def matches(self, request: RequestFacts) -> bool:
        match = self.spec["match"]
        # a tenant's rule: the requests its keys send (its match names it); the operator's:
        # the organization a request acts in
        whose = request.organization_id if self.tenant is None else request.sender_id
        return (
            (match.get("method") is None or match["method"].upper() == request.method)
            and (self._path is None or self._path.matches(request.path))
            and match.get("operationId") in (None, request.operation_id)
            and match.get("organizationId") in (None, whose)
            and self.tenant in (None, whose)
            and match.get("projectId") in (None, request.project_id)
        )

    @property
    def organization_id(self) -> str | None:
        return self.spec["match"].get("organizationId")

    def public(self) -> dict[str, Any]:
        shown = {"ruleId": self.rule_id, **self.spec, "remaining": self.remaining}
        if self.tenant is not None:
            shown["tenant"] = self.tenant
        if self.drawn:
            shown["drawn"] = self.drawn
        return shown


# Where a rule is indexed: whose organization it steers requests of, and its operationId (None:
# any). ("any", None, op): the operator's rule naming no organization, any request's;
# ("in", org, op): the operator's naming one, the requests acting in it; ("by", org, op): an
# organization's own, the requests its keys send (`Rule.matches` says the same). A request can
# match only the rules under its six keys: on a shared sandbox one tenant's rules cost other
# tenants' requests nothing.
IndexKey = tuple[str, str | None, str | None]


def _index_key(rule: Rule) -> IndexKey:
    operation = rule.spec["match"].get("operationId")
    if rule.tenant is not None:
        return ("by", rule.tenant, operation)
    org_id = rule.organization_id
    return ("any", None, operation) if org_id is None else ("in", org_id, operation)


class Rules:
    """The rules in the order they were added (`rules`: read it, change it only through these
    methods, which keep the index and each maker's rules with it). `changed` names the rules
    added, used or deleted since the state was last stored (an ordered set): a durable store
    keeps a row a rule and writes only these, not the thousands a sandbox may hold
    (core/persist.py); `restore` marks nothing (what replaces the state writes it whole)."""

    __slots__ = ("_index", "_makers", "_next", "_placed", "_serial", "changed", "rules")

    def __init__(self) -> None:
        self.rules: dict[str, Rule] = {}
        self._next = 0
        # each key's rules by serial: the order added, which decides the first to set an effect
        self._index: dict[IndexKey, dict[int, Rule]] = {}
        self._placed: dict[str, tuple[IndexKey, int]] = {}
        self._makers: dict[str | None, dict[str, Rule]] = {}  # None: the operator's
        self._serial = 0
        self.changed: dict[str, None] = {}

    def _put(self, rule: Rule) -> None:
        self._drop(rule.rule_id)
        key = _index_key(rule)
        self._serial += 1
        self.rules[rule.rule_id] = rule
        self._index.setdefault(key, {})[self._serial] = rule
        self._placed[rule.rule_id] = (key, self._serial)
        self._makers.setdefault(rule.tenant, {})[rule.rule_id] = rule

    def _drop(self, rule_id: str) -> bool:
        rule = self.rules.pop(rule_id, None)
        if rule is None:
            return False
        key, serial = self._placed.pop(rule_id)
        bucket = self._index[key]
        del bucket[serial]
        if not bucket:
            del self._index[key]
        mine = self._makers[rule.tenant]
        del mine[rule_id]
        if not mine:
            del self._makers[rule.tenant]
        return True

    def _empty(self) -> None:
        self.rules, self._index, self._placed, self._makers = {}, {}, {}, {}

    def add(self, spec: dict[str, Any], tenant: str | None = None) -> Rule:
        """A new rule; `tenant`: added by that organization (its match names it already)."""
        bound = MAX_RULES if tenant is None else MAX_TENANT_RULES
        if len(self._makers.get(tenant, ())) >= bound:
            whose = "the operator" if tenant is None else "this organization"
            raise ApiError(
                "CONFLICT",
                f"There are already {bound} rules of {whose}; delete some before adding more.",
            )
        self._next += 1
        while f"rule_{self._next}" in self.rules:  # an imported rule may hold the next id
            self._next += 1
        rule = Rule.from_input(f"rule_{self._next}", spec, tenant)
        self._put(rule)
        self.changed[rule.rule_id] = None
        return rule

    def delete(self, rule_id: str) -> bool:
        if not self._drop(rule_id):
            return False
        self.changed[rule_id] = None
        return True

    @property
    def next(self) -> int:
        """The number of the last rule id handed out (an imported rule may hold a later one)."""
        return self._next

    @next.setter
    def next(self, value: int) -> None:
        self._next = value

    def put(self, rule_id: str, item: dict[str, Any] | None) -> None:
        """A rule as another worker stored it (as `snapshot` writes one; None: deleted), at
        the end of the order when new, not marked changed."""
        if item is None:
            self._drop(rule_id)
            return
        remaining = None if item["remaining"] is None else int(item["remaining"])
        drawn = int(item.get("drawn", 0))
        old = self.rules.get(rule_id)
        if old is not None:  # used (a rule changes no other way): it keeps its place
            old.remaining, old.drawn = remaining, drawn
            return
        self._put(_stored(rule_id, item, remaining, drawn))

    def _restored(self, item: dict[str, Any]) -> None:
        remaining = None if item["remaining"] is None else int(item["remaining"])
        self._put(_stored(item["ruleId"], item, remaining, int(item.get("drawn", 0))))

    def of(self, tenant: str | None) -> list[Rule]:
        """Every rule, or the rules one organization made (a tenant's own)."""
        if tenant is None:
            return list(self.rules.values())
        return list(self._makers.get(tenant, {}).values())

    def clear(self, tenant: str | None = None) -> int:
        """Every rule, or one organization's own (see `of`); how many went."""
        if tenant is None:
            count = len(self.rules)
            self.changed.update(dict.fromkeys(self.rules))
            self._empty()
            return count
        gone = self.of(tenant)
        for rule in gone:
            self.changed[rule.rule_id] = None
            self._drop(rule.rule_id)
        return len(gone)

    def apply(self, seed: int, request: RequestFacts, prefs: Preferences) -> Preferences:
        """Effects of every matching rule; the request's own Prefer header wins over rules."""
        if not self.rules:
            return prefs
        index, operation = self._index, request.operation_id
        acting, sender = request.organization_id, request.sender_id
        buckets = [
            bucket
            for key in (
                ("any", None, None),
                ("any", None, operation),
                ("in", acting, None),
                ("in", acting, operation),
                ("by", sender, None),
                ("by", sender, operation),
            )
            if (bucket := index.get(key))
        ]
        if not buckets:
            return prefs
        if len(buckets) == 1:
            candidates = list(buckets[0].values())
        else:  # each bucket is in serial order already: the sort merges runs
            candidates = [
                rule for _, rule in sorted(chain.from_iterable(b.items() for b in buckets))
            ]
        found: dict[str, Any] = {}
        for rule in candidates:
            if not rule.matches(request):
                continue
            probability = rule.spec.get("probability")
            if probability is not None:
                drawn = rule.drawn
                rule.drawn = drawn + 1
                self.changed[rule.rule_id] = None
                if chance(seed, f"{rule.rule_id}:{drawn}") >= probability:
                    continue
            for name in EFFECTS:
                if name in rule.spec:
                    found.setdefault(name, rule.spec[name])
            if rule.remaining is not None:
                rule.remaining -= 1
                self.changed[rule.rule_id] = None
                if rule.remaining <= 0:
                    self._drop(rule.rule_id)
        if not found:
            return prefs
        return Preferences(
            outcome=prefs.outcome or found.get("outcome"),
            stage=prefs.stage or found.get("stage"),
            progression=prefs.progression or found.get("progression"),
            fault=prefs.fault or found.get("fault"),
            latency_ms=prefs.latency_ms or found.get("latencyMs"),
        )

    def snapshot(self) -> dict[str, Any]:
        return {"next": self._next, "rules": [r.public() for r in self.rules.values()]}

    def restore(self, snapshot: dict[str, Any]) -> None:
        """A snapshot as `snapshot()` wrote it, already checked against control.yaml."""
        self._empty()
        for item in snapshot["rules"]:
            self._restored(item)
        self._next = int(snapshot["next"])


def _stored(rule_id: str, item: dict[str, Any], remaining: int | None, drawn: int) -> Rule:
    """A rule as `Rule.public` wrote it (a row, a snapshot, an export); one made before rules
    carried their maker is the operator's, one before they carried `drawn` draws anew."""
    spec = {k: v for k, v in item.items() if k not in ("ruleId", "remaining", "tenant", "drawn")}
    rule = Rule.from_input(rule_id, spec, item.get("tenant"))
    rule.remaining, rule.drawn = remaining, drawn
    return rule
